//! Against Apache Kafka 4.1 (`tests/kafka/cluster start`: 3 KRaft brokers on loopback,
//! replication factor 3, `min.insync.replicas` 2). Frames come from Kafka's own Java producer
//! (`tests/kafka/FrameProducer.java`), which computes its own ground truth. These tests do not
//! touch the brokers, so they run side by side; broker faults are in `tests/kafka_faults.rs`.
//! Without a running cluster each test skips, naming the command that starts one
//! (`KAFKA_ACTORS_REQUIRE_KAFKA=1` makes that a failure).

mod common;

use std::collections::BTreeMap;

use actors::config::Assignment;
use common::real::{JavaTruth, RealKafka};
use common::*;
use kafka_actors::{Model, RunReport, Settings};

const WINDOW_SECS: i64 = 10;

fn real_settings(kafka: &RealKafka, topic: &str, out: &std::path::Path, model: Model) -> Settings {
    let mut s = settings(&kafka.bootstrap, topic, out);
    s.model = model;
    s.group.assignment = Assignment::CooperativeSticky;
    s
}

/// Runs the service to the end of `topic` and checks its output against `truth`: every
/// (window, partition) share written exactly once and exact, invalid records counted by
/// reason, everything committed.
async fn until_end_is_exact(
    kafka: &RealKafka,
    topic: &str,
    partitions: i32,
    truth: &JavaTruth,
    model: Model,
) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = real_settings(kafka, topic, &out, model);
    settings.run.until_end = true;
    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{model:?} on {topic}: {e}"));
    assert!(run.completed, "{model:?}");
    let lines = output(&out);
    for line in &lines {
        assert_eq!(
            line.partitions,
            (0..partitions).collect::<Vec<_>>(),
            "one service reads every partition: {line:?}"
        );
    }
    let seen = exact_shares(lines, truth);
    let twice = assert_no_share_lost(&seen, truth);
    assert!(
        twice.values().all(|n| *n == 0),
        "{model:?}: written twice {twice:?}"
    );
    let metrics = &run.summary.metrics;
    assert_eq!(metrics.frames, truth.valid, "{model:?}");
    assert_eq!(metrics.late, 0, "{model:?}");
    let invalid: BTreeMap<String, u64> = metrics
        .invalid
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(
        invalid, truth.invalid,
        "{model:?}: invalid records by reason"
    );
    let ends: BTreeMap<i32, i64> = kafka_end_offsets(&settings, partitions);
    assert_eq!(
        committed(&settings.kafka, &(0..partitions).collect::<Vec<_>>()),
        ends,
        "{model:?}: everything read is committed"
    );
    run
}

fn kafka_end_offsets(settings: &Settings, partitions: i32) -> BTreeMap<i32, i64> {
    let records =
        actors::kafka::stored_records(&settings.kafka, &(0..partitions).collect::<Vec<_>>())
            .expect("read the topic back");
    let mut ends = BTreeMap::new();
    for (partition, offset, _) in records {
        let end = ends.entry(partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

#[actix::test]
async fn frames_from_kafkas_java_producer_give_exactly_its_truth_in_both_models() {
    let Some(kafka) =
        RealKafka::get("frames_from_kafkas_java_producer_give_exactly_its_truth_in_both_models")
    else {
        return;
    };
    let topic = kafka.topic("java-frames", 4);
    let truth = kafka.produce(
        &topic,
        &[
            "--frames",
            "40000",
            "--event-rate",
            "500",
            "--jitter-ms",
            "2000",
            "--bad-every",
            "37",
            "--window",
            &WINDOW_SECS.to_string(),
        ],
    );
    assert!(truth.windows().len() >= 8, "the data spans several windows");
    assert_eq!(
        truth.invalid.len(),
        7,
        "every kind of invalid record: {:?}",
        truth.invalid
    );
    for model in [Model::Partition, Model::Group] {
        until_end_is_exact(&kafka, &topic, 4, &truth, model).await;
    }
}

#[actix::test]
async fn compressed_topics_are_read_exactly_in_both_models() {
    let Some(kafka) = RealKafka::get("compressed_topics_are_read_exactly_in_both_models") else {
        return;
    };
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = kafka.topic(&format!("frames-{codec}"), 3);
        let truth = kafka.produce(
            &topic,
            &[
                "--frames",
                "15000",
                "--compression",
                codec,
                "--bad-every",
                "101",
                "--window",
                &WINDOW_SECS.to_string(),
            ],
        );
        for model in [Model::Partition, Model::Group] {
            until_end_is_exact(&kafka, &topic, 3, &truth, model).await;
        }
    }
}
