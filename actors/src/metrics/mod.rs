//! [`MetricsActor`]: per-partition and total counters, timing histograms and consumer lag, and a
//! periodic one-line summary in the log.
//!
//! It never sees single frames: partition actors report once per chunk and the batch actor once
//! per flush, so its mailbox carries a few messages per second whatever the frame rate.
//!
//! The timings keep the names of the consumer this job took over:
//! - `process_frame`: time to take a record from the client and parse it, per frame
//!   (measured per chunk, recorded once per frame of the chunk);
//! - `process_frame.normalized`: processing time of the frames of a flush / its frames;
//! - `batch.flush`: time to write, sync and commit one flush;
//! - `batch.flush.normalized`: `batch.flush` / frames covered by the flush;
//! - `batch.throughput`: frames per second between two flushes;
//! - `batch.unique.users`: distinct users of each emitted window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use hdrhistogram::Histogram;

mod snapshot;
#[cfg(test)]
mod tests;

pub use snapshot::{
    Buckets, Distributions, MetricsSnapshot, PartitionMetrics, Quantiles, RecordsSkipped,
    RestartRecord,
};

use snapshot::histogram;

use crate::config::MetricsConfig;
use crate::frame::{InvalidCounts, InvalidReason};
use crate::topic::PartitionId;

/// A partition actor processed one chunk.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChunkProcessed {
    /// The partition.
    pub partition: PartitionId,
    /// Valid frames in the chunk.
    pub frames: u64,
    /// Invalid records in the chunk, by reason.
    pub invalid: InvalidCounts,
    /// Time from the first record to the chunk being ready.
    pub process: Duration,
    /// The partition's position after the chunk.
    pub next_offset: Option<i64>,
    /// The partition's high watermark from the last fetch.
    pub high_watermark: Option<i64>,
}

/// The batch actor found frames of windows that had already closed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct FramesLate {
    /// The partition.
    pub partition: PartitionId,
    /// How many.
    pub late: u64,
}

/// A partition's event time ran more than `window.max_lead_secs` ahead of the others.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EventTimeLead {
    /// The partition.
    pub partition: PartitionId,
}

/// The batch actor finished a flush.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Flushed {
    /// Write + sync + commit.
    pub duration: Duration,
    /// Frames processed since the previous flush.
    pub frames: u64,
    /// Distinct users of each window written.
    pub unique_users: Vec<u64>,
    /// A commit was attempted.
    pub commit_attempted: bool,
    /// Invalid records written to the dead-letter topic.
    pub dead_letters: u64,
    /// The commit failed with this message.
    pub commit_error: Option<String>,
    /// What kind of failure it was.
    pub commit_failure: Option<crate::ports::CommitErrorKind>,
    /// Bytes the open windows hold after the flush.
    pub open_bytes: u64,
    /// The most they have held so far.
    pub peak_open_bytes: u64,
}

/// The batch actor paused or resumed partitions for the memory budget of open windows.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct IntakeBudget {
    /// Every partition paused now.
    pub paused: Vec<PartitionId>,
    /// How many of them were paused by this change.
    pub newly_paused: u64,
    /// The partition holding the watermark back.
    pub holder: Option<PartitionId>,
    /// Bytes the open windows hold.
    pub open_bytes: u64,
}

/// Asks for a copy of every figure.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "MetricsSnapshot")]
pub struct GetMetrics;

/// Asks for the timings and counts in buckets ([`Distributions`]).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Distributions")]
pub struct GetDistributions;

/// Returns every figure and stops the metrics actor (at shutdown).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "MetricsSnapshot")]
pub struct FinalMetrics;

/// A partition pipeline was restarted.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Restarted {
    /// The partition.
    pub partition: PartitionId,
    /// Where its reading starts again.
    pub start: crate::ports::StartOffset,
    /// Why: the failure, the stall, or a request.
    pub cause: crate::failure::PartitionFailure,
}

fn invalid_map(counts: &InvalidCounts) -> BTreeMap<&'static str, u64> {
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (InvalidReason::as_str(r), n))
        .collect()
}

struct PartitionState {
    frames: u64,
    invalid: InvalidCounts,
    late: u64,
    event_time_leads: u64,
    position: Option<i64>,
    high_watermark: Option<i64>,
    process_frame: Histogram<u64>,
    chunks: u64,
    first_chunk: Option<Instant>,
    last_chunk: Option<Instant>,
    /// Its reader has reported at least once.
    heard: bool,
}

impl Default for PartitionState {
    fn default() -> Self {
        PartitionState {
            frames: 0,
            invalid: InvalidCounts::default(),
            late: 0,
            event_time_leads: 0,
            position: None,
            high_watermark: None,
            process_frame: histogram(),
            chunks: 0,
            first_chunk: None,
            last_chunk: None,
            heard: false,
        }
    }
}

/// Frames per second between two instants.
fn rate(frames: u64, first: Option<Instant>, last: Option<Instant>) -> f64 {
    match (first, last) {
        (Some(first), Some(last)) if last > first => frames as f64 / (last - first).as_secs_f64(),
        _ => 0.0,
    }
}

/// Keeps the figures; see the module documentation.
pub struct MetricsActor {
    config: MetricsConfig,
    /// Told if this actor stops because of a panic.
    panics: Option<actix::Recipient<crate::panics::Panicked>>,
    partitions: BTreeMap<PartitionId, PartitionState>,
    process_frame: Histogram<u64>,
    process_frame_normalized: Histogram<u64>,
    flush: Histogram<u64>,
    flush_normalized: Histogram<u64>,
    throughput: Histogram<u64>,
    unique_users: Histogram<u64>,
    created: Instant,
    first_frame: Option<Instant>,
    last_frame: Option<Instant>,
    /// Processing time and frames since the last flush, for `process_frame.normalized`.
    process_since_flush: (Duration, u64),
    last_flush: Instant,
    flushes: u64,
    windows: u64,
    dead_letters: u64,
    commits: u64,
    commit_failures: u64,
    commit_failures_by_kind: BTreeMap<&'static str, u64>,
    last_summary: (Instant, u64),
    restart_log: Vec<RestartRecord>,
    leaders: Option<std::sync::Arc<crate::leaders::LeaderBoard>>,
    skipped: Vec<RecordsSkipped>,
    /// Partitions paused by the memory budget now.
    paused: std::collections::BTreeSet<PartitionId>,
    budget_pauses: u64,
    open_bytes: u64,
    peak_open_bytes: u64,
    watermark_holder: Option<PartitionId>,
}

impl MetricsActor {
    /// A metrics actor with empty figures.
    pub fn new(config: MetricsConfig) -> Self {
        let now = Instant::now();
        MetricsActor {
            config,
            panics: None,
            partitions: BTreeMap::new(),
            process_frame: histogram(),
            process_frame_normalized: histogram(),
            flush: histogram(),
            flush_normalized: histogram(),
            throughput: histogram(),
            unique_users: histogram(),
            created: now,
            first_frame: None,
            last_frame: None,
            process_since_flush: (Duration::ZERO, 0),
            last_flush: now,
            flushes: 0,
            windows: 0,
            dead_letters: 0,
            commits: 0,
            commit_failures: 0,
            commit_failures_by_kind: BTreeMap::new(),
            last_summary: (now, 0),
            restart_log: Vec::new(),
            leaders: None,
            skipped: Vec::new(),
            paused: std::collections::BTreeSet::new(),
            budget_pauses: 0,
            open_bytes: 0,
            peak_open_bytes: 0,
            watermark_holder: None,
        }
    }

    /// Tells `to` when this actor stops because of a panic.
    #[must_use]
    pub fn report_panics(mut self, to: actix::Recipient<crate::panics::Panicked>) -> Self {
        self.panics = Some(to);
        self
    }

    /// Reports partition leaders from `board`.
    #[must_use]
    pub fn with_leaders(mut self, board: std::sync::Arc<crate::leaders::LeaderBoard>) -> Self {
        self.leaders = Some(board);
        self
    }

    fn total_frames(&self) -> u64 {
        self.partitions.values().map(|p| p.frames).sum()
    }

    /// A copy of every figure.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut invalid = InvalidCounts::default();
        let mut lag = 0;
        let (leaders, leader_changes) = match &self.leaders {
            Some(board) => (board.leaders(), board.changes()),
            None => Default::default(),
        };
        let mut partitions: BTreeMap<PartitionId, PartitionMetrics> = self
            .partitions
            .iter()
            .map(|(p, s)| {
                invalid.merge(&s.invalid);
                let part_lag = match (s.high_watermark, s.position) {
                    (Some(h), Some(pos)) => Some((h - pos).max(0)),
                    _ => None,
                };
                lag += part_lag.unwrap_or(0);
                let metrics = PartitionMetrics {
                    frames: s.frames,
                    invalid: invalid_map(&s.invalid),
                    late: s.late,
                    event_time_leads: s.event_time_leads,
                    chunks: s.chunks,
                    throughput: rate(s.frames, s.first_chunk, s.last_chunk),
                    process_frame_ns: Quantiles::of(&s.process_frame),
                    position: s.position,
                    lag: part_lag,
                    restarts: self
                        .restart_log
                        .iter()
                        .filter(|r| r.partition == *p)
                        .count() as u64,
                    leader: None,
                    leader_changes: 0,
                    paused: self.paused.contains(p),
                    heard: s.heard,
                };
                (*p, metrics)
            })
            .collect();
        // A paused partition shows as such even before its first figures arrive.
        for p in &self.paused {
            partitions.entry(*p).or_default().paused = true;
        }
        for (p, leader) in &leaders {
            let entry = partitions.entry(*p).or_default();
            entry.leader = Some(*leader);
            entry.leader_changes =
                leader_changes.iter().filter(|c| c.partition == *p).count() as u64;
        }
        let frames = self.total_frames();
        let throughput = rate(frames, self.first_frame, self.last_frame);
        let since_start = |t: Option<Instant>| {
            t.map(|t| t.saturating_duration_since(self.created).as_secs_f64() * 1e3)
        };
        MetricsSnapshot {
            frames,
            invalid: invalid_map(&invalid),
            late: self.partitions.values().map(|p| p.late).sum(),
            event_time_leads: self.partitions.values().map(|p| p.event_time_leads).sum(),
            partitions,
            throughput,
            process_frame_ns: Quantiles::of(&self.process_frame),
            process_frame_normalized_ns: Quantiles::of(&self.process_frame_normalized),
            batch_flush_us: Quantiles::of(&self.flush),
            batch_flush_normalized_ns: Quantiles::of(&self.flush_normalized),
            batch_throughput: Quantiles::of(&self.throughput),
            batch_unique_users: Quantiles::of(&self.unique_users),
            flushes: self.flushes,
            windows: self.windows,
            dead_letters: self.dead_letters,
            commits: self.commits,
            commit_failures: self.commit_failures,
            commit_failures_by_kind: self.commit_failures_by_kind.clone(),
            lag,
            first_frame_ms: since_start(self.first_frame),
            last_frame_ms: since_start(self.last_frame),
            restarts: self.restart_log.len() as u64,
            watchdog_recoveries: self.restart_log.iter().filter(|r| r.watchdog).count() as u64,
            restart_log: self.restart_log.clone(),
            leader_changes,
            skipped_records: self.skipped.iter().map(|s| (s.to - s.from) as u64).sum(),
            skipped: self.skipped.clone(),
            open_window_bytes: self.open_bytes,
            peak_open_window_bytes: self.peak_open_bytes,
            budget_pauses: self.budget_pauses,
            watermark_holder: self.watermark_holder,
            group_join_state: self.leaders.as_ref().and_then(|b| b.join_state()),
        }
    }

    /// The timings and counts in buckets (walks every histogram: asked for by a scrape, not
    /// with every snapshot).
    pub fn distributions(&self) -> Distributions {
        Distributions {
            process_frame_ns: Buckets::of(&self.process_frame),
            process_frame_normalized_ns: Buckets::of(&self.process_frame_normalized),
            batch_flush_us: Buckets::of(&self.flush),
            batch_flush_normalized_ns: Buckets::of(&self.flush_normalized),
            batch_throughput: Buckets::of(&self.throughput),
            batch_unique_users: Buckets::of(&self.unique_users),
        }
    }

    fn log_summary(&mut self) {
        let now = Instant::now();
        let frames = self.total_frames();
        let (since, before) = self.last_summary;
        let rate =
            (frames - before) as f64 / now.saturating_duration_since(since).as_secs_f64().max(1e-9);
        self.last_summary = (now, frames);
        let s = self.snapshot();
        tracing::info!(
            frames,
            rate = format_args!("{rate:.0}/s"),
            invalid = s.invalid.values().sum::<u64>(),
            late = s.late,
            lag = s.lag,
            windows = s.windows,
            commits = s.commits,
            commit_failures = s.commit_failures,
            restarts = s.restarts,
            leader_changes = s.leader_changes.len(),
            open_window_mib =
                format_args!("{:.1}", s.open_window_bytes as f64 / f64::from(1 << 20)),
            paused = self.paused.len(),
            process_frame_p50_ns = s.process_frame_ns.p50,
            process_frame_p99_ns = s.process_frame_ns.p99,
            flush_p99_us = s.batch_flush_us.p99,
            "Summary."
        );
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        crate::panics::report_if_unwinding("metrics", self.panics.as_ref());
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::panics::install_hook();
        // Chunks arrive in bursts from every partition; the default 16 slots would make
        // partition actors wait on bookkeeping.
        ctx.set_mailbox_capacity(1024);
        if self.config.log_interval_ms > 0 {
            ctx.run_interval(
                Duration::from_millis(self.config.log_interval_ms),
                |act, _| act.log_summary(),
            );
        }
    }
}

impl Handler<Restarted> for MetricsActor {
    type Result = ();

    /// The one place a restart is logged and counted.
    fn handle(&mut self, msg: Restarted, _: &mut Self::Context) {
        tracing::warn!(
            partition = %msg.partition,
            start = ?msg.start,
            cause = %msg.cause,
            watchdog = msg.cause.is_stall(),
            "Partition restarted."
        );
        self.restart_log.push(RestartRecord {
            at_ms: self.created.elapsed().as_secs_f64() * 1e3,
            partition: msg.partition,
            watchdog: msg.cause.is_stall(),
            cause: msg.cause,
        });
    }
}

impl Handler<ChunkProcessed> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: ChunkProcessed, _: &mut Self::Context) {
        let now = Instant::now();
        let state = self.partitions.entry(msg.partition).or_default();
        state.heard = true;
        state.frames += msg.frames;
        state.invalid.merge(&msg.invalid);
        state.position = msg.next_offset.or(state.position);
        state.high_watermark = msg.high_watermark.or(state.high_watermark);
        let records = msg.frames + msg.invalid.total();
        if records > 0 {
            let per_frame = (msg.process.as_nanos() / u128::from(records)) as u64;
            // Saturating: a sample beyond the histogram's range is clamped, not lost.
            self.process_frame.saturating_record_n(per_frame, records);
            state.process_frame.saturating_record_n(per_frame, records);
            state.chunks += 1;
            state.first_chunk.get_or_insert(now);
            state.last_chunk = Some(now);
            self.process_since_flush.0 += msg.process;
            self.process_since_flush.1 += records;
            self.first_frame.get_or_insert(now);
            self.last_frame = Some(now);
        }
    }
}

impl Handler<RecordsSkipped> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: RecordsSkipped, _: &mut Self::Context) {
        tracing::error!(
            partition = %msg.partition,
            from = msg.from,
            to = msg.to,
            records = msg.to - msg.from,
            "Records were deleted from the log before they were read; reading goes on at `to` (kafka.auto_offset_reset). Their frames are missing from the results."
        );
        self.skipped.push(msg);
    }
}

impl Handler<FramesLate> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: FramesLate, _: &mut Self::Context) {
        self.partitions.entry(msg.partition).or_default().late += msg.late;
    }
}

impl Handler<EventTimeLead> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: EventTimeLead, _: &mut Self::Context) {
        self.partitions
            .entry(msg.partition)
            .or_default()
            .event_time_leads += 1;
    }
}

impl Handler<Flushed> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: Flushed, _: &mut Self::Context) {
        let now = Instant::now();
        self.flushes += 1;
        self.flush
            .saturating_record(msg.duration.as_micros() as u64);
        if msg.frames > 0 {
            self.flush_normalized
                .saturating_record((msg.duration.as_nanos() / u128::from(msg.frames)) as u64);
            let elapsed = now.saturating_duration_since(self.last_flush).as_secs_f64();
            if elapsed > 0.0 {
                self.throughput
                    .saturating_record((msg.frames as f64 / elapsed) as u64);
            }
        }
        let (process, records) = std::mem::take(&mut self.process_since_flush);
        if records > 0 {
            self.process_frame_normalized
                .saturating_record((process.as_nanos() / u128::from(records)) as u64);
        }
        self.last_flush = now;
        self.windows += msg.unique_users.len() as u64;
        self.dead_letters += msg.dead_letters;
        for users in &msg.unique_users {
            self.unique_users.saturating_record(*users);
        }
        if msg.commit_attempted {
            match &msg.commit_error {
                None => self.commits += 1,
                Some(error) => {
                    tracing::warn!(%error, "Offset commit failed; the next flush commits again.");
                    self.commit_failures += 1;
                    let kind = match msg.commit_failure {
                        Some(crate::ports::CommitErrorKind::Transient) | None => "transient",
                        Some(crate::ports::CommitErrorKind::StaleGeneration) => "stale_generation",
                        Some(crate::ports::CommitErrorKind::Permanent) => "permanent",
                    };
                    *self.commit_failures_by_kind.entry(kind).or_default() += 1;
                }
            }
        }
        self.open_bytes = msg.open_bytes;
        self.peak_open_bytes = self.peak_open_bytes.max(msg.peak_open_bytes);
    }
}

impl Handler<IntakeBudget> for MetricsActor {
    type Result = ();

    fn handle(&mut self, msg: IntakeBudget, _: &mut Self::Context) {
        self.budget_pauses += msg.newly_paused;
        self.paused = msg.paused.into_iter().collect();
        self.watermark_holder = msg.holder;
        self.open_bytes = msg.open_bytes;
        self.peak_open_bytes = self.peak_open_bytes.max(msg.open_bytes);
    }
}

impl Handler<FinalMetrics> for MetricsActor {
    type Result = MessageResult<FinalMetrics>;

    fn handle(&mut self, _: FinalMetrics, ctx: &mut Self::Context) -> Self::Result {
        ctx.stop();
        MessageResult(self.snapshot())
    }
}

impl Handler<GetMetrics> for MetricsActor {
    type Result = MessageResult<GetMetrics>;

    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<GetDistributions> for MetricsActor {
    type Result = MessageResult<GetDistributions>;

    fn handle(&mut self, _: GetDistributions, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.distributions())
    }
}
