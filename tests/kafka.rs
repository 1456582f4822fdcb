//! Against Apache Kafka 4.1 (`tests/kafka/cluster start`: 3 KRaft brokers on loopback,
//! replication factor 3, `min.insync.replicas` 2). Frames come from Kafka's own Java producer
//! (`tests/kafka/FrameProducer.java`), which computes its own ground truth. These tests do not
//! touch the brokers, so they run side by side; broker faults are in `tests/kafka_faults.rs`.
//! Without a running cluster each test skips, naming the command that starts one
//! (`KAFKA_ACTORS_REQUIRE_KAFKA=1` makes that a failure).

mod common;

use std::collections::BTreeMap;

use actors::config::Assignment;
use common::real::{JavaTruth, Member, RealKafka};
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

/// Produces with the Java producer in the background.
fn produce_live(
    kafka: &RealKafka,
    topic: &str,
    args: &[&str],
) -> std::thread::JoinHandle<JavaTruth> {
    let (kafka, topic) = (kafka.clone(), topic.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kafka.produce(&topic, &args)
    })
}

fn model_name(model: Model) -> &'static str {
    match model {
        Model::Partition => "partition",
        Model::Group => "group",
    }
}

/// Waits (up to a minute) until `member` has written `lines` window lines.
fn wait_for_lines(member: &Member, lines: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while output(&member.out).len() < lines {
        assert!(
            std::time::Instant::now() < deadline,
            "{} wrote no {lines} lines: {}",
            member.name,
            member.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A service SIGKILLed mid-stream and started again: nothing lost, no partial line, and the
/// only repeats are whole windows the killed process wrote after its last commit.
fn sigkill_and_restart(model: Model) {
    let test = format!("sigkill_and_restart_{}", model_name(model));
    let Some(kafka) = RealKafka::get(&test) else {
        return;
    };
    let topic = kafka.topic("sigkill", 4);
    let group = unique("sigkill-group");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KAFKA_ACTORS__GROUP__SESSION_TIMEOUT_MS", "6000"),
        ("KAFKA_ACTORS__GROUP__REVOKE_TIMEOUT_MS", "3000"),
    ];
    let model_args = ["--model", model_name(model)];
    let producer = produce_live(
        &kafka,
        &topic,
        &[
            "--frames",
            "36000",
            "--rate",
            "3000",
            "--event-rate",
            "300",
            "--bad-every",
            "53",
        ],
    );
    let mut first = Member::spawn(
        &kafka,
        "first",
        dir.path(),
        &topic,
        &group,
        &env,
        &model_args,
    );
    // Mid-stream: once a few windows are written, while frames keep coming.
    wait_for_lines(&first, 3);
    first.kill();
    let written_before_kill = output(&first.out);
    assert!(
        !written_before_kill.is_empty(),
        "windows closed before the kill"
    );
    let mut second = Member::spawn(
        &kafka,
        "second",
        dir.path(),
        &topic,
        &group,
        &env,
        &model_args,
    );
    let truth = producer.join().expect("producer");
    std::thread::sleep(std::time::Duration::from_secs(3));
    second.stop();
    let mut last_args = model_args.to_vec();
    last_args.push("--until-end");
    let mut last = Member::spawn(&kafka, "last", dir.path(), &topic, &group, &env, &last_args);
    let status = last.wait();
    assert!(status.success(), "{}", last.log_text());

    let mut lines = written_before_kill.clone();
    lines.extend(output(&second.out));
    lines.extend(output(&last.out));
    for line in &lines {
        assert_eq!(
            line.partitions,
            vec![0, 1, 2, 3],
            "whole windows only: {line:?}"
        );
    }
    let seen = exact_shares(lines, &truth);
    let twice = assert_no_share_lost(&seen, &truth);
    // Repeats: windows the first process wrote and did not commit before it died (one
    // flush, which holds one window at this rate), each written once more, whole.
    let repeated: Vec<i64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((w, _), n)| {
            assert_eq!(*n, 2, "window {w} written {n} times");
            *w
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let tail: Vec<i64> = written_before_kill
        .iter()
        .rev()
        .take(repeated.len())
        .map(|l| l.window_start)
        .rev()
        .collect();
    assert_eq!(
        repeated, tail,
        "only the last windows written before the kill repeat"
    );
    assert!(
        repeated.len() <= 1,
        "at most one flush repeats: {repeated:?}"
    );
    eprintln!(
        "{test}: {} windows, {} written before the kill, repeated after the restart: {} ({:?})",
        truth.windows().len(),
        written_before_kill.len(),
        repeated.len(),
        twice
    );
}

#[test]
fn sigkill_mid_stream_and_restart_loses_nothing_partition_model() {
    sigkill_and_restart(Model::Partition);
}

#[test]
fn sigkill_mid_stream_and_restart_loses_nothing_group_model() {
    sigkill_and_restart(Model::Group);
}
