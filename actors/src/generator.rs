//! The frame generator: deterministic frames (the same seed and index give the same frame),
//! out of order by up to `jitter_secs`, a share of deliberately bad frames of every kind, and
//! the exact expected result ([`GroundTruth`]), computed here without any of the window code,
//! from the frames Kafka confirmed it stored.
//!
//! Frames are keyed by uid: uid `u<n>` always goes to the `n % P`-th of the `P` partitions of
//! the input topics (ordered by topic, then index), so every user lives in one partition.
//!
//! [`spawn`] runs it on its own thread, producing at `rate` frames per second.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::now_epoch_secs;
use crate::config::{GeneratorConfig, KafkaConfig};
use crate::frame::{FrameLimits, InvalidReason};
use crate::kafka::{AdapterError, Delivery, FrameProducer};
use crate::line::{rfc3339, WindowLine};
use crate::topic::{by_topic, PartitionId};

/// What a generated frame is.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameKind {
    /// A valid frame.
    Valid {
        /// Its event time as written.
        ts: f64,
        /// Its user.
        uid: String,
    },
    /// A deliberately invalid frame and the reason it must be rejected with.
    Invalid(InvalidReason),
}

/// One frame, ready to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedFrame {
    /// Target partition.
    pub partition: PartitionId,
    /// Record key (the uid).
    pub key: String,
    /// Record value.
    pub payload: Vec<u8>,
    /// What it is.
    pub kind: FrameKind,
}

/// Builds frames from the configuration; a pure function of the index (and, without
/// `event_rate`, of the wall clock).
#[derive(Debug, Clone)]
pub struct FrameGenerator {
    config: GeneratorConfig,
    limits: FrameLimits,
    partitions: Vec<PartitionId>,
    start_ts: f64,
    /// The `ts` of a frame that is too far in the future to count, if the limits have one
    /// (`frames.max_ts` far enough ahead of the clock, and `frames.max_future_secs` set).
    future_ts: Option<f64>,
    /// Seconds added to the event time of the frames of each partition (in the order of
    /// `partitions`; none: 0): producers whose clocks are off ([`Self::with_skews`]).
    skews: Vec<f64>,
}

impl FrameGenerator {
    /// A generator for `partitions` (every partition of the input topics; at least one) whose
    /// frames are checked against `limits` (the bad frames are built to break exactly one rule
    /// each).
    pub fn new(
        config: &GeneratorConfig,
        limits: FrameLimits,
        partitions: Vec<PartitionId>,
    ) -> Self {
        assert!(
            !partitions.is_empty(),
            "a generator needs a partition to write to"
        );
        let start_ts = if config.start_ts > 0.0 {
            config.start_ts
        } else {
            now_epoch_secs().floor()
        };
        // The latest plausible time, if it lies beyond what the clock allows (with an hour to
        // spare for a long run).
        let future_ts = Some(limits.max_ts.floor())
            .filter(|ts| *ts > now_epoch_secs() + limits.max_future_secs + 3_600.0);
        FrameGenerator {
            config: config.clone(),
            limits,
            partitions,
            start_ts,
            future_ts,
            skews: Vec::new(),
        }
    }

    /// The same generator with the event time of partition `partitions[i]`'s frames moved by
    /// `skews[i]` seconds (a producer whose clock is that far off; partitions past the end of
    /// `skews` keep theirs).
    #[must_use]
    pub fn with_skews(mut self, skews: Vec<f64>) -> Self {
        self.skews = skews;
        self
    }

    /// Frame number `index`; `wall_ts` is the current time, used when `event_rate` is 0.
    pub fn frame(&self, index: u64, wall_ts: f64) -> GeneratedFrame {
        // One stream per frame, so each frame depends on (seed, index) alone.
        let mut rng =
            StdRng::seed_from_u64(self.config.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let user = rng.random_range(0..self.config.users);
        let uid = format!("u{user}");
        let slot = (user % self.partitions.len() as u64) as usize;
        let partition = self.partitions[slot];
        let skew = self.skews.get(slot).copied().unwrap_or(0.0);
        let base = skew
            + if self.config.event_rate > 0.0 {
                self.start_ts + index as f64 / self.config.event_rate
            } else {
                wall_ts
            };
        let bad = self.config.bad_ratio > 0.0 && rng.random::<f64>() < self.config.bad_ratio;
        if bad {
            let reason = match InvalidReason::ALL
                [(index % InvalidReason::ALL.len() as u64) as usize]
            {
                InvalidReason::FutureTs if self.future_ts.is_none() => InvalidReason::ImplausibleTs,
                reason => reason,
            };
            let payload = self.bad_payload(reason, index, base.floor(), &uid);
            return GeneratedFrame {
                partition,
                key: uid,
                payload,
                kind: FrameKind::Invalid(reason),
            };
        }
        let jitter = self.config.jitter_secs;
        let (ts, text) = if index.is_multiple_of(2) {
            // Integer event time, at most `jitter` whole seconds before the base time.
            let back = rng.random_range(0..=jitter.floor() as i64);
            let ts = base.floor() as i64 - back;
            (ts as f64, ts.to_string())
        } else {
            let back = (rng.random::<f64>() * jitter * 1000.0).floor() / 1000.0;
            let ts = ((base - back) * 1000.0).floor() / 1000.0;
            (ts, format!("{ts:.3}"))
        };
        let payload = if index.is_multiple_of(3) {
            format!(r#"{{"uid":"{uid}","ts":{text},"src":"gen"}}"#)
        } else {
            format!(r#"{{"ts":{text},"uid":"{uid}"}}"#)
        };
        GeneratedFrame {
            partition,
            key: uid.clone(),
            payload: payload.into_bytes(),
            kind: FrameKind::Valid { ts, uid },
        }
    }

    fn bad_payload(&self, reason: InvalidReason, index: u64, ts: f64, uid: &str) -> Vec<u8> {
        match reason {
            InvalidReason::TooLarge => {
                let pad = "x".repeat(self.limits.max_bytes);
                format!(r#"{{"ts":{ts},"uid":"{uid}","pad":"{pad}"}}"#).into_bytes()
            }
            InvalidReason::NotUtf8 => {
                let mut bytes = format!(r#"{{"ts":{ts},"uid":""#).into_bytes();
                bytes.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
                bytes
            }
            InvalidReason::NotJson => format!(r#"{{"ts":{ts},"uid":"#).into_bytes(),
            InvalidReason::NotObject => format!(r#"[{ts},"{uid}"]"#).into_bytes(),
            InvalidReason::MissingField if index.is_multiple_of(2) => {
                format!(r#"{{"ts":{ts}}}"#).into_bytes()
            }
            InvalidReason::MissingField => format!(r#"{{"uid":"{uid}"}}"#).into_bytes(),
            InvalidReason::WrongType if index.is_multiple_of(2) => {
                format!(r#"{{"ts":"{ts}","uid":"{uid}"}}"#).into_bytes()
            }
            InvalidReason::WrongType => format!(r#"{{"ts":{ts},"uid":{index}}}"#).into_bytes(),
            InvalidReason::ImplausibleTs => format!(
                r#"{{"ts":{},"uid":"{uid}"}}"#,
                (self.limits.max_ts + 1e6).floor()
            )
            .into_bytes(),
            InvalidReason::FutureTs => {
                let ts = self.future_ts.unwrap_or(self.limits.max_ts + 1e6);
                format!(r#"{{"ts":{ts},"uid":"{uid}"}}"#).into_bytes()
            }
        }
    }
}

/// Where a delivered frame is and which window it counts in (`None` for a bad frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Partition.
    pub partition: PartitionId,
    /// Offset.
    pub offset: i64,
    /// The window start of a valid frame.
    pub window: Option<i64>,
}

/// The exact expected output for the frames Kafka stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroundTruth {
    window_secs: i64,
    partitions: Vec<PartitionId>,
    windows: BTreeMap<i64, (BTreeSet<String>, u64)>,
    /// Per window and partition: distinct uids and frames.
    shares: BTreeMap<(i64, PartitionId), (u64, u64)>,
    /// Bad frames by the reason they must be rejected with.
    pub invalid: BTreeMap<InvalidReason, u64>,
    /// Valid frames.
    pub valid: u64,
}

impl GroundTruth {
    /// Empty truth for windows of `window_secs` over `partitions`.
    pub fn new(window_secs: i64, partitions: Vec<PartitionId>) -> Self {
        GroundTruth {
            window_secs,
            partitions,
            ..GroundTruth::default()
        }
    }

    /// The partitions written to.
    pub fn partitions(&self) -> &[PartitionId] {
        &self.partitions
    }

    /// The window a valid frame belongs to. Written apart from the service's window code on
    /// purpose: the truth must not share its mistakes.
    fn window_of(&self, ts: f64) -> i64 {
        let whole = ts.floor() as i64;
        whole - whole.rem_euclid(self.window_secs)
    }

    /// Counts one frame stored in `partition` and returns its window, if valid.
    pub fn record(&mut self, partition: PartitionId, kind: &FrameKind) -> Option<i64> {
        match kind {
            FrameKind::Valid { ts, uid } => {
                let start = self.window_of(*ts);
                let window = self.windows.entry(start).or_default();
                let share = self.shares.entry((start, partition)).or_default();
                if window.0.insert(uid.clone()) {
                    // Frames are keyed by uid, so a uid new to the window is new to its
                    // partition's share too.
                    share.0 += 1;
                }
                share.1 += 1;
                window.1 += 1;
                self.valid += 1;
                Some(start)
            }
            FrameKind::Invalid(reason) => {
                *self.invalid.entry(*reason).or_default() += 1;
                None
            }
        }
    }

    /// One partition's share of a window: distinct uids and frames (zero if it has none).
    pub fn share(&self, window_start: i64, partition: PartitionId) -> (u64, u64) {
        self.shares
            .get(&(window_start, partition))
            .copied()
            .unwrap_or_default()
    }

    /// The expected output lines, oldest window first.
    pub fn lines(&self) -> Vec<WindowLine> {
        self.windows
            .iter()
            .map(|(start, (uids, frames))| WindowLine {
                window_start: *start,
                window_end: start + self.window_secs,
                start: rfc3339(*start),
                unique_users: uids.len() as u64,
                frames: *frames,
                partitions: by_topic(&self.partitions),
            })
            .collect()
    }
}

/// What a generator run produced.
#[derive(Debug, Clone, Default)]
pub struct GeneratorReport {
    /// Frames handed to the producer.
    pub produced: u64,
    /// Frames Kafka confirmed.
    pub delivered: u64,
    /// Frames Kafka did not store.
    pub failed: u64,
    /// Per partition, the offset after the last stored frame.
    pub end_offsets: BTreeMap<PartitionId, i64>,
    /// The expected output.
    pub truth: GroundTruth,
    /// Every stored frame's place, when asked for (tests and the loss oracle).
    pub placements: Vec<Placement>,
}

/// Failure of the generator thread.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The producer could not be created.
    #[error("generator: cannot create the producer")]
    Producer(#[from] AdapterError),
    /// A frame could not be queued.
    #[error("generator: cannot produce frame {index}: {message}")]
    Send {
        /// The frame.
        index: u64,
        /// Why.
        message: String,
    },
    /// The truth file could not be written.
    #[error("generator: cannot write the truth file `{path}`")]
    TruthFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A running generator.
pub struct GeneratorHandle {
    stop: Arc<AtomicBool>,
    pause: ProducerPause,
    thread: JoinHandle<Result<GeneratorReport, GeneratorError>>,
    done: Option<tokio::sync::oneshot::Receiver<BTreeMap<PartitionId, i64>>>,
}

/// Pauses a running generator's producing from another thread ([`GeneratorHandle::pauser`]):
/// a producer that stops sending for a while (a stalled process) and then goes on at its
/// rate; what it would have produced meanwhile comes later, not all at once.
#[derive(Debug, Clone, Default)]
pub struct ProducerPause {
    until: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl ProducerPause {
    /// Produces nothing for `hold` from now.
    pub fn pause_for(&self, hold: Duration) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + hold);
    }

    /// Whether producing is paused now.
    fn paused(&self) -> bool {
        self.until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }
}

impl GeneratorHandle {
    /// What pauses the generator's producing.
    pub fn pauser(&self) -> ProducerPause {
        self.pause.clone()
    }

    /// Asks the generator to stop after the frame it is producing.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Resolves with the end offsets once every frame has been produced and confirmed (for a
    /// finite run); never resolves if the generator is stopped first.
    pub fn finished(
        &mut self,
    ) -> Option<tokio::sync::oneshot::Receiver<BTreeMap<PartitionId, i64>>> {
        self.done.take()
    }

    /// Stops the generator, waits for the thread and returns its report.
    ///
    /// # Errors
    /// What stopped the generator.
    pub fn join(self) -> Result<GeneratorReport, GeneratorError> {
        self.stop();
        self.wait()
    }

    /// Waits until the generator has produced all its frames (a finite run) and returns its
    /// report.
    ///
    /// # Errors
    /// What stopped the generator.
    pub fn wait(self) -> Result<GeneratorReport, GeneratorError> {
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Starts producing on a new thread. With `record_placements`, the report lists where every
/// frame landed.
///
/// # Errors
/// If the thread cannot be started.
pub fn spawn(
    kafka: &KafkaConfig,
    config: &GeneratorConfig,
    limits: FrameLimits,
    window_secs: i64,
    partitions: Vec<PartitionId>,
    record_placements: bool,
) -> std::io::Result<GeneratorHandle> {
    spawn_from(
        kafka,
        FrameGenerator::new(config, limits, partitions),
        window_secs,
        record_placements,
    )
}

/// [`spawn`] with a generator of the caller's (one with skewed clocks, say).
///
/// # Errors
/// If the thread cannot be started.
pub fn spawn_from(
    kafka: &KafkaConfig,
    generator: FrameGenerator,
    window_secs: i64,
    record_placements: bool,
) -> std::io::Result<GeneratorHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let pause = ProducerPause::default();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let run = Run {
        kafka: kafka.clone(),
        config: generator.config.clone(),
        generator,
        window_secs,
        record_placements,
        stop: stop.clone(),
        pause: pause.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("generator".into())
        .spawn(move || run.run(done_tx))?;
    Ok(GeneratorHandle {
        stop,
        pause,
        thread,
        done: Some(done_rx),
    })
}

struct Run {
    kafka: KafkaConfig,
    config: GeneratorConfig,
    generator: FrameGenerator,
    window_secs: i64,
    record_placements: bool,
    stop: Arc<AtomicBool>,
    pause: ProducerPause,
}

impl Run {
    fn run(
        self,
        done: tokio::sync::oneshot::Sender<BTreeMap<PartitionId, i64>>,
    ) -> Result<GeneratorReport, GeneratorError> {
        let producer = FrameProducer::new(&self.kafka)?;
        let mut report = GeneratorReport {
            truth: GroundTruth::new(self.window_secs, self.generator.partitions.clone()),
            ..GeneratorReport::default()
        };
        let mut pending: HashMap<u64, FrameKind> = HashMap::new();
        let started = Instant::now();
        let limit = if self.config.frames == 0 {
            u64::MAX
        } else {
            self.config.frames
        };
        let mut index = 0u64;
        // Time spent paused does not count towards the rate.
        let mut paused = Duration::ZERO;
        while index < limit && !self.stop.load(Ordering::Relaxed) {
            if self.pause.paused() {
                let at = Instant::now();
                producer.poll(Duration::from_millis(10));
                self.collect(&producer, &mut pending, &mut report);
                paused += at.elapsed();
                continue;
            }
            // Frames allowed so far by the rate; produce in small bursts, then wait.
            let allowed = if self.config.rate == 0 {
                index + 1_000
            } else {
                (started.elapsed().saturating_sub(paused).as_secs_f64() * self.config.rate as f64)
                    as u64
                    + 1
            };
            if index >= allowed {
                producer.poll(Duration::from_millis(5));
                self.collect(&producer, &mut pending, &mut report);
                continue;
            }
            let wall = now_epoch_secs();
            for i in index..allowed.min(limit) {
                let frame = self.generator.frame(i, wall);
                producer
                    .send(i, frame.partition, frame.key.as_bytes(), &frame.payload)
                    .map_err(|e| GeneratorError::Send {
                        index: i,
                        message: e.to_string(),
                    })?;
                pending.insert(i, frame.kind);
                report.produced += 1;
            }
            index = allowed.min(limit);
            producer.poll(Duration::ZERO);
            self.collect(&producer, &mut pending, &mut report);
        }
        // Everything queued is either delivered or failed by the end of the flush.
        while !pending.is_empty() {
            let _ = producer.flush(Duration::from_millis(500));
            self.collect(&producer, &mut pending, &mut report);
            if self.stop.load(Ordering::Relaxed) && producer.flush(Duration::from_secs(30)).is_err()
            {
                break;
            }
        }
        if !self.config.truth_file.is_empty() {
            write_truth(&self.config.truth_file, &report.truth)?;
        }
        if index >= limit {
            // Only a run that produced all its frames has a defined end.
            let _ = done.send(report.end_offsets.clone());
        }
        tracing::info!(
            produced = report.produced,
            delivered = report.delivered,
            failed = report.failed,
            "Generator finished."
        );
        Ok(report)
    }

    fn collect(
        &self,
        producer: &FrameProducer,
        pending: &mut HashMap<u64, FrameKind>,
        report: &mut GeneratorReport,
    ) {
        for delivery in producer.take_deliveries() {
            match delivery {
                Delivery::Stored {
                    index,
                    partition,
                    offset,
                } => {
                    let Some(kind) = pending.remove(&index) else {
                        continue;
                    };
                    let window = report.truth.record(partition, &kind);
                    report.delivered += 1;
                    let end = report.end_offsets.entry(partition).or_default();
                    *end = (*end).max(offset + 1);
                    if self.record_placements {
                        report.placements.push(Placement {
                            partition,
                            offset,
                            window,
                        });
                    }
                }
                Delivery::Failed { index, reason } => {
                    pending.remove(&index);
                    report.failed += 1;
                    tracing::warn!(index, %reason, "Generated frame was not stored.");
                }
            }
        }
    }
}

fn write_truth(path: &str, truth: &GroundTruth) -> Result<(), GeneratorError> {
    let mut text = String::new();
    for line in truth.lines() {
        // Serializing a struct of integers and strings cannot fail.
        text.push_str(&serde_json::to_string(&line).unwrap_or_default());
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|source| GeneratorError::TruthFile {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }
    use crate::frame::parse_frame;

    fn limits() -> FrameLimits {
        FrameLimits {
            max_bytes: 256,
            min_ts: 946_684_800.0,
            max_ts: 4_102_444_800.0,
            max_future_secs: 300.0,
            future_after: f64::INFINITY,
            invalid: crate::frame::InvalidPolicy::NONE,
        }
        .at(now_epoch_secs())
    }

    #[test]
    fn a_skewed_partition_gets_its_event_time_moved_and_nothing_else() {
        let parts = vec![p(0), p(1)];
        let plain = FrameGenerator::new(&config(), limits(), parts.clone());
        let skewed = plain.clone().with_skews(vec![0.0, -2.0]);
        let mut moved = 0;
        for index in 0..400 {
            let (a, b) = (plain.frame(index, 0.0), skewed.frame(index, 0.0));
            assert_eq!((a.partition, &a.key), (b.partition, &b.key));
            if let (FrameKind::Valid { ts: x, .. }, FrameKind::Valid { ts: y, .. }) =
                (a.kind, b.kind)
            {
                let expected = if a.partition == p(1) { -2.0 } else { 0.0 };
                assert!(
                    (y - x - expected).abs() < 1e-6,
                    "frame {index}: {x} then {y}"
                );
                moved += usize::from(a.partition == p(1));
            }
        }
        assert!(moved > 100, "{moved}");
    }

    fn config() -> GeneratorConfig {
        GeneratorConfig {
            users: 50,
            jitter_secs: 3.0,
            bad_ratio: 0.2,
            event_rate: 100.0,
            start_ts: 1_700_000_000.0,
            ..GeneratorConfig::default()
        }
    }

    #[test]
    fn frames_are_deterministic_and_parse_as_their_kind_says() {
        let g = FrameGenerator::new(&config(), limits(), (0..4).map(p).collect());
        let mut seen = BTreeSet::new();
        for i in 0..2_000 {
            let f = g.frame(i, 0.0);
            assert_eq!(f, g.frame(i, 0.0), "frame {i} depends on the index alone");
            match (&f.kind, parse_frame(Some(&f.payload), &limits())) {
                (FrameKind::Valid { ts, uid }, Ok(parsed)) => {
                    assert_eq!(parsed.ts, *ts);
                    assert_eq!(parsed.uid, uid.as_str());
                    let user: u64 = uid[1..].parse().unwrap();
                    assert_eq!(f.partition.index as u64, user % 4, "keyed by uid");
                    let base = 1_700_000_000.0 + i as f64 / 100.0;
                    // Whole-second frames go back whole seconds from the whole base second.
                    let low = if i % 2 == 0 {
                        base.floor() - 3.0
                    } else {
                        base - 3.0
                    };
                    assert!(*ts <= base && *ts >= low, "frame {i}: ts {ts} base {base}");
                }
                (FrameKind::Invalid(reason), Err(got)) => {
                    assert_eq!(got, *reason, "frame {i}");
                    seen.insert(*reason);
                }
                (kind, parsed) => panic!("frame {i}: {kind:?} parsed as {parsed:?}"),
            }
        }
        assert_eq!(
            seen.len(),
            InvalidReason::ALL.len(),
            "every kind of bad frame appears"
        );
    }

    #[test]
    fn truth_counts_distinct_users_per_window() {
        let mut truth = GroundTruth::new(60, (0..2).map(p).collect());
        for (ts, uid) in [
            (1_700_000_040.0, "a"),
            (1_700_000_099.9, "a"),
            (1_700_000_050.0, "b"),
            (1_700_000_100.0, "a"),
        ] {
            truth.record(
                p(0),
                &FrameKind::Valid {
                    ts,
                    uid: uid.into(),
                },
            );
        }
        truth.record(p(1), &FrameKind::Invalid(InvalidReason::NotJson));
        let lines = truth.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (
                lines[0].window_start,
                lines[0].unique_users,
                lines[0].frames
            ),
            (1_700_000_040, 2, 3)
        );
        assert_eq!(
            (
                lines[1].window_start,
                lines[1].unique_users,
                lines[1].frames
            ),
            (1_700_000_100, 1, 1)
        );
        assert_eq!(truth.invalid[&InvalidReason::NotJson], 1);
    }
}
