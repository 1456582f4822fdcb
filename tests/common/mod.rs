//! Fixtures for the end-to-end tests: an embedded cluster per test with fresh topic and group
//! names, test settings with short windows, a data set with its ground truth, and readers for
//! the output and the committed offsets.

#![allow(dead_code)]

pub mod corpus;
pub mod real;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use actors::config::{GeneratorConfig, KafkaConfig, SinkKind};
use actors::generator::{self, GeneratorReport, GroundTruth};
use actors::intake::{GroupEvent, GroupRecord};
use actors::kafka::{self, EmbeddedCluster};
use actors::line::{read_window_lines, WindowLine};
use actors::ports::StartOffset;
use actors::topic::{from_topics, PartitionId};
use kafka_actors::Settings;

/// A name no other test (or earlier run against the same cluster) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts a 3-broker embedded cluster with a fresh topic of `partitions` partitions.
pub fn cluster(partitions: i32) -> (EmbeddedCluster, String) {
    let cluster = EmbeddedCluster::start(3).expect("embedded cluster");
    let topic = unique("frames");
    cluster.create_topic(&topic, partitions, 3).expect("topic");
    (cluster, topic)
}

/// Settings for a test against `brokers`: 10 s windows, 3 s lateness, quick flushes, output
/// to `out`.
pub fn settings(brokers: &str, topic: &str, out: &Path) -> Settings {
    let mut s = Settings::default();
    s.kafka.brokers = brokers.to_owned();
    s.kafka.topic = topic.to_owned();
    s.kafka.group = unique("group");
    s.window.length_secs = 10;
    s.window.lateness_secs = 3;
    s.window.idle_after_ms = 2_000;
    s.flush.interval_ms = 100;
    s.partition.poll_timeout_ms = 50;
    s.metrics.log_interval_ms = 0;
    // Tests run services side by side: each admin endpoint takes any free port.
    s.admin.port = 0;
    s.sink.kind = SinkKind::File;
    s.sink.path = out.display().to_string();
    s
}

/// A generator configuration: event time advances one second every `event_rate` frames from a
/// fixed start, out of order by up to 3 s.
pub fn data(frames: u64, event_rate: f64, bad_ratio: f64) -> GeneratorConfig {
    GeneratorConfig {
        rate: 0,
        frames,
        users: 2_000,
        jitter_secs: 3.0,
        bad_ratio,
        seed: 7,
        event_rate,
        start_ts: 1_790_000_000.0,
        truth_file: String::new(),
    }
}

/// Partitions `0..count` of the settings' (first) input topic.
pub fn ids(kafka: &KafkaConfig, count: i32) -> Vec<PartitionId> {
    let topic = kafka.topic_names()[0].clone();
    (0..count).map(|i| PartitionId::of(&topic, i)).collect()
}

/// Produces a data set into partitions `0..partitions` of the settings' topic and returns its
/// report (truth and placements).
pub fn produce(settings: &Settings, data: &GeneratorConfig, partitions: i32) -> GeneratorReport {
    wait_generator(spawn_generator(settings, data, partitions))
}

/// Produces a data set into `partitions` (of any topics) and returns its report.
pub fn produce_to(
    settings: &Settings,
    data: &GeneratorConfig,
    partitions: Vec<PartitionId>,
) -> GeneratorReport {
    wait_generator(spawn_generator_to(settings, data, partitions))
}

/// Waits for a generator to produce all its frames.
pub fn wait_generator(handle: generator::GeneratorHandle) -> GeneratorReport {
    handle.wait().expect("generator")
}

/// The output file's window lines.
pub fn output(path: &Path) -> Vec<WindowLine> {
    if !path.exists() {
        return Vec::new();
    }
    read_window_lines(path).expect("output lines")
}

/// The group's committed offsets (partitions without one are left out).
pub fn committed(kafka: &KafkaConfig, partitions: &[PartitionId]) -> BTreeMap<PartitionId, i64> {
    kafka::committed_positions(kafka, partitions).expect("committed offsets")
}

/// Commits `positions` (partition, offset, metadata) for `kafka.group`, as an earlier run of
/// the group would have.
pub fn commit_as_before(kafka: &KafkaConfig, positions: &[(PartitionId, i64, String)]) {
    let mut committer = kafka::KafkaCommitter::new(kafka).expect("committer");
    let positions: Vec<actors::ports::CommitPosition> = positions
        .iter()
        .map(
            |(partition, offset, metadata)| actors::ports::CommitPosition {
                partition: *partition,
                offset: *offset,
                metadata: metadata.clone(),
            },
        )
        .collect();
    actors::ports::OffsetCommitter::commit(&mut committer, &positions).expect("commit");
}

/// Leaves the service's settings variables (`KAFKA_ACTORS__…`) and `RUST_LOG` of this process
/// out of `command`'s environment, so a child runs with what the test gives it only.
pub fn without_service_env(command: &mut std::process::Command) -> &mut std::process::Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("KAFKA_ACTORS__") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    // Tests run services side by side: each admin endpoint takes any free port.
    command.env("KAFKA_ACTORS__ADMIN__PORT", "0")
}

/// Starts producing `data` in the background, recording where every frame lands.
pub fn spawn_generator(
    settings: &Settings,
    data: &GeneratorConfig,
    partitions: i32,
) -> generator::GeneratorHandle {
    spawn_generator_to(settings, data, ids(&settings.kafka, partitions))
}

/// Starts producing `data` into `partitions` in the background, recording where every frame
/// lands.
pub fn spawn_generator_to(
    settings: &Settings,
    data: &GeneratorConfig,
    partitions: Vec<PartitionId>,
) -> generator::GeneratorHandle {
    generator::spawn(
        &settings.kafka,
        data,
        settings.frames.limits(),
        settings.window.length_secs,
        partitions,
        true,
    )
    .expect("generator thread")
}

/// A ground truth split by window and partition.
pub trait Shares {
    /// (distinct uids, frames) of `partition` in the window starting at `window_start`.
    fn share(&self, window_start: i64, partition: PartitionId) -> (u64, u64);
    /// Every (window start, partition) that has frames.
    fn shares_with_frames(&self) -> Vec<(i64, PartitionId)>;
}

impl Shares for GroundTruth {
    fn share(&self, window_start: i64, partition: PartitionId) -> (u64, u64) {
        GroundTruth::share(self, window_start, partition)
    }

    fn shares_with_frames(&self) -> Vec<(i64, PartitionId)> {
        let partitions = self.partitions();
        self.lines()
            .iter()
            .flat_map(|w| partitions.iter().map(move |p| (w.window_start, *p)))
            .filter(|(w, p)| GroundTruth::share(self, *w, *p).1 > 0)
            .collect()
    }
}

/// Asserts every line is exact for the partitions it names (the producers key uids to
/// partitions, so their shares add up) and counts how often each (window, partition) share
/// was written.
pub fn exact_shares(
    lines: impl IntoIterator<Item = WindowLine>,
    truth: &impl Shares,
) -> BTreeMap<(i64, PartitionId), u32> {
    let mut seen = BTreeMap::new();
    for line in lines {
        let covered = from_topics(&line.partitions);
        assert!(!covered.is_empty(), "a line names no partition: {line:?}");
        let expected = covered
            .iter()
            .map(|p| truth.share(line.window_start, *p))
            .fold((0, 0), |acc, share| (acc.0 + share.0, acc.1 + share.1));
        assert_eq!((line.unique_users, line.frames), expected, "{line:?}");
        for partition in covered {
            *seen.entry((line.window_start, partition)).or_default() += 1;
        }
    }
    seen
}

/// Asserts every (window, partition) share with frames was written at least once, and returns
/// how many shares were written more than once, by partition.
pub fn assert_no_share_lost(
    seen: &BTreeMap<(i64, PartitionId), u32>,
    truth: &impl Shares,
) -> BTreeMap<PartitionId, u32> {
    let mut duplicates = BTreeMap::new();
    for (window, partition) in truth.shares_with_frames() {
        let times = seen.get(&(window, partition)).copied().unwrap_or(0);
        assert!(
            times >= 1,
            "window {window} lost partition {partition}'s share"
        );
        *duplicates.entry(partition).or_default() += times - 1;
    }
    duplicates
}

/// Replays the ownership changes of several group members in time order and asserts that
/// every partition that changed hands started exactly at the offset its previous owner last
/// committed. Returns the number of handovers and the partitions that changed hands.
pub fn assert_handovers_at_last_commit(
    runs: &[&kafka_actors::RunReport],
) -> (u64, BTreeSet<PartitionId>) {
    let mut events: Vec<&GroupRecord> =
        runs.iter().flat_map(|r| &r.summary.group_history).collect();
    events.sort_by_key(|r| r.at);
    let mut last_commit: BTreeMap<PartitionId, i64> = BTreeMap::new();
    let (mut handovers, mut handed_over) = (0, BTreeSet::new());
    for record in events {
        match record.event {
            GroupEvent::Released {
                partition,
                committed: Some(offset),
                ..
            } => {
                last_commit.insert(partition, offset);
            }
            GroupEvent::Released { .. } => {}
            GroupEvent::Assigned { partition, start } => {
                if let Some(offset) = last_commit.get(&partition) {
                    assert_eq!(
                        start,
                        StartOffset::At(*offset),
                        "partition {partition} changed hands"
                    );
                    handovers += 1;
                    handed_over.insert(partition);
                }
            }
        }
    }
    (handovers, handed_over)
}

/// Committed offsets and the output seen at one moment.
pub type Sample = (BTreeMap<PartitionId, i64>, Vec<WindowLine>);

/// Committed offsets (and, optionally, the output file) sampled every 50 ms while a service
/// runs.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Watcher {
    /// Starts sampling; with `out`, each sample reads the committed offsets first and then the
    /// output, so everything below a sampled commit must already be in its sampled output.
    pub fn start(kafka: KafkaConfig, partitions: Vec<PartitionId>, out: Option<PathBuf>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<_>>> = Arc::default();
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let committed = committed(&kafka, &partitions);
                    let lines = out.as_deref().map(output).unwrap_or_default();
                    samples.lock().unwrap().push((committed, lines));
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        };
        Watcher {
            stop,
            samples,
            thread,
        }
    }

    /// Stops sampling and returns the samples.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("watcher thread");
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}
