//! Fixtures for the end-to-end tests: an embedded cluster per test with fresh topic and group
//! names, test settings with short windows, a data set with its ground truth, and readers for
//! the output and the committed offsets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use actors::config::{GeneratorConfig, KafkaConfig, SinkKind};
use actors::generator::{self, GeneratorReport};
use actors::kafka::{self, EmbeddedCluster};
use actors::sink::{read_window_lines, WindowLine};
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

/// Produces a data set and returns its report (truth and placements).
pub fn produce(settings: &Settings, data: &GeneratorConfig, partitions: i32) -> GeneratorReport {
    let handle = generator::spawn(
        &settings.kafka,
        data,
        settings.frames.limits(),
        settings.window.length_secs,
        partitions,
        true,
    )
    .expect("generator thread");
    wait_generator(handle)
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
pub fn committed(kafka: &KafkaConfig, partitions: &[i32]) -> BTreeMap<i32, i64> {
    kafka::committed_offsets(kafka, partitions)
        .expect("committed offsets")
        .into_iter()
        .filter_map(|c| c.offset.map(|o| (c.partition, o)))
        .collect()
}

/// Output lines by window start; fails if one window was written with two different results.
pub fn by_window(lines: &[WindowLine]) -> BTreeMap<i64, WindowLine> {
    let mut map = BTreeMap::new();
    for line in lines {
        if let Some(earlier) = map.insert(line.window_start, line.clone()) {
            assert_eq!(
                &earlier, line,
                "window {} written twice with different results",
                line.window_start
            );
        }
    }
    map
}
