//! Against Apache Kafka 4.1 (`tests/kafka/cluster start`: 3 KRaft brokers on loopback,
//! replication factor 3, `min.insync.replicas` 2). Frames come from Kafka's own Java producer
//! (`tests/kafka/FrameProducer.java`), which computes its own ground truth. These tests do not
//! touch the brokers, so they run side by side; broker faults are in `tests/kafka_faults.rs`.
//! Without a running cluster each test skips, naming the command that starts one
//! (`KAFKA_ACTORS_REQUIRE_KAFKA=1` makes that a failure).

mod common;

use std::collections::BTreeMap;

use actors::config::Assignment;
use actors::topic::{from_topics, PartitionId};
use common::real::{
    assert_ownership_and_commits, committed_up_to, produce_live, wait_for_data, wait_for_lines,
    written_by_commit, JavaTruth, LogEvent, Member, RealKafka,
};
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
    until_end_is_exact_with(kafka, topic, partitions, truth, model, |_| {}).await
}

/// [`until_end_is_exact`] with the settings changed by `adjust` (another listener, say).
async fn until_end_is_exact_with(
    kafka: &RealKafka,
    topic: &str,
    partitions: i32,
    truth: &JavaTruth,
    model: Model,
    adjust: impl FnOnce(&mut Settings),
) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = real_settings(kafka, topic, &out, model);
    settings.run.until_end = true;
    adjust(&mut settings);
    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{model:?} on {topic}: {e}"));
    assert!(run.completed, "{model:?}");
    let lines = output(&out);
    for line in &lines {
        assert_eq!(
            from_topics(&line.partitions),
            ids(&settings.kafka, partitions),
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
    let ends: BTreeMap<PartitionId, i64> = kafka_end_offsets(&settings, partitions);
    assert_eq!(
        committed(&settings.kafka, &ids(&settings.kafka, partitions)),
        ends,
        "{model:?}: everything read is committed"
    );
    run
}

fn kafka_end_offsets(settings: &Settings, partitions: i32) -> BTreeMap<PartitionId, i64> {
    let records = actors::kafka::stored_records(&settings.kafka, &ids(&settings.kafka, partitions))
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
        actors::frame::InvalidReason::ALL.len(),
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

/// A service SIGKILLed mid-stream and started again: nothing lost, no partial line, and the
/// only repeats are whole windows the killed process wrote after its last commit.
fn sigkill_and_restart(model: Model) {
    let test = format!("sigkill_and_restart_{}", model.as_str());
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
    let model_args = ["--model", model.as_str()];
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
    wait_for_data(&kafka, &topic, 4);
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
    let committed_up_to = committed_up_to(&kafka, &topic, &group, 4);
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
            from_topics(&line.partitions),
            ids(&kafka.config(&topic, ""), 4),
            "whole windows only: {line:?}"
        );
    }
    let seen = exact_shares(lines, &truth);
    let twice = assert_no_share_lost(&seen, &truth);
    // Repeats: windows the first process wrote and had not committed when it died (its last
    // flush: one window when it keeps up, several when it was catching up), each written once
    // more, whole.
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
    for window in &repeated {
        assert!(
            ids(&kafka.config(&topic, ""), 4)
                .iter()
                .any(|p| committed_up_to
                    .get(p)
                    .is_none_or(|wm| !written_by_commit(*wm, *window))),
            "window {window} was committed as written ({committed_up_to:?}) but written again"
        );
    }
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

/// Partitions `member` owned when its log ends (taken and not released).
fn owned_at_end(member: &Member) -> std::collections::BTreeSet<PartitionId> {
    let mut owned = std::collections::BTreeSet::new();
    for logged in member.events() {
        match logged.event {
            LogEvent::Taken { partition, .. } => {
                owned.insert(partition);
            }
            LogEvent::Released { partition, .. } => {
                owned.remove(&partition);
            }
            LogEvent::Committed(_) | LogEvent::ReadBack(_) => {}
        }
    }
    owned
}

/// Three group members in processes of their own while frames are produced live: one joins,
/// one leaves gracefully, one is SIGKILLed and another joins; a last member reads to the end.
fn group_churn(assignment: &str) {
    let test = format!("group_churn_{assignment}");
    let Some(kafka) = RealKafka::get(&test) else {
        return;
    };
    let partitions = 6;
    let topic = kafka.topic("churn", partitions);
    let group = unique("churn-group");
    let dir = common::real::member_dir(&test);
    let env = [
        ("KAFKA_ACTORS__GROUP__SESSION_TIMEOUT_MS", "6000"),
        ("KAFKA_ACTORS__GROUP__REVOKE_TIMEOUT_MS", "3000"),
        ("KAFKA_ACTORS__GROUP__ASSIGNMENT", assignment),
    ];
    let args = ["--model", "group"];
    let spawn = |name: &str, args: &[&str]| {
        Member::spawn(&kafka, name, dir.path(), &topic, &group, &env, args)
    };
    let producer = produce_live(
        &kafka,
        &topic,
        &[
            "--frames",
            "66000",
            "--rate",
            "3000",
            "--event-rate",
            "300",
            "--bad-every",
            "97",
        ],
    );
    wait_for_data(&kafka, &topic, partitions);
    let mut a = spawn("a", &args);
    let mut b = spawn("b", &args);
    wait_for_lines(&a, 1);
    let mut c = spawn("c", &args);
    std::thread::sleep(std::time::Duration::from_secs(4));
    b.stop();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let killed = owned_at_end(&a);
    a.kill();
    let committed_at_kill = committed_up_to(&kafka, &topic, &group, partitions);
    let read_back_at_kill = common::real::read_back(&kafka, &topic, &group, partitions);
    assert!(!killed.is_empty(), "a owned partitions when it was killed");
    let mut d = spawn("d", &args);
    let truth = producer.join().expect("producer");
    std::thread::sleep(std::time::Duration::from_secs(3));
    c.stop();
    d.stop();
    let mut last_args = args.to_vec();
    last_args.push("--until-end");
    let mut e = spawn("e", &last_args);
    let status = e.wait();
    assert!(status.success(), "{}", e.log_text());

    let members = [&a, &b, &c, &d, &e];
    let lines: Vec<_> = members.iter().flat_map(|m| output(&m.out)).collect();
    let seen = exact_shares(lines, &truth);
    let duplicates = assert_no_share_lost(&seen, &truth);
    let handovers = assert_ownership_and_commits(&members, &[read_back_at_kill]);
    assert!(
        handovers >= partitions as u64,
        "partitions changed hands: {handovers}"
    );
    for ((window, partition), times) in &seen {
        if *times > 1 {
            // Who wrote it, and how the partition changed hands, for the failure message.
            let writers: Vec<&str> = members
                .iter()
                .flat_map(|m| {
                    output(&m.out)
                        .into_iter()
                        .filter(|l| {
                            l.window_start == *window
                                && from_topics(&l.partitions).contains(partition)
                        })
                        .map(|_| m.name.as_str())
                })
                .collect();
            let mut handovers: Vec<common::real::Logged> = members
                .iter()
                .flat_map(|m| m.events())
                .filter(|l| match l.event {
                    LogEvent::Taken { partition: p, .. }
                    | LogEvent::Released { partition: p, .. } => p == *partition,
                    LogEvent::Committed(_) | LogEvent::ReadBack(_) => false,
                })
                .collect();
            handovers.sort_by(|a, b| a.at.cmp(&b.at));
            assert!(
                killed.contains(partition)
                    && committed_at_kill
                        .get(partition)
                        .is_none_or(|wm| !written_by_commit(*wm, *window)),
                "window {window} of partition {partition} written {times} times (by {writers:?}); \
                 committed at the kill: {committed_at_kill:?}; killed member owned {killed:?}; \
                 the partition's handovers: {handovers:?}"
            );
        }
    }
    for (partition, twice) in &duplicates {
        if killed.contains(partition) {
            // The killed member's last flush (one window at this rate) may not have been
            // committed: its new owner writes that share again.
            assert!(
                *twice <= 1,
                "partition {partition} written {twice} extra times"
            );
        } else {
            assert_eq!(
                *twice, 0,
                "partition {partition} moved only gracefully but repeated"
            );
        }
    }
    eprintln!(
        "{test}: {} windows, {handovers} handovers, killed member owned {killed:?}, shares written twice by partition {duplicates:?}",
        truth.windows().len()
    );
}

#[test]
fn group_members_join_leave_and_die_under_eager_range() {
    group_churn("range");
}

#[test]
fn group_members_join_leave_and_die_under_cooperative_sticky() {
    group_churn("cooperative-sticky");
}

/// Ownership changes in `member`'s log.
fn ownership_changes(member: &Member) -> Vec<LogEvent> {
    member
        .events()
        .into_iter()
        .map(|l| l.event)
        .filter(|e| !matches!(e, LogEvent::Committed(_) | LogEvent::ReadBack(_)))
        .collect()
}

#[test]
fn a_static_member_restarted_within_the_session_gets_its_partitions_back_without_a_rebalance() {
    let test =
        "a_static_member_restarted_within_the_session_gets_its_partitions_back_without_a_rebalance";
    let Some(kafka) = RealKafka::get(test) else {
        return;
    };
    let partitions = 4;
    let topic = kafka.topic("static", partitions);
    let group = unique("static-group");
    let dir = tempfile::tempdir().unwrap();
    let env = |id: &'static str| {
        [
            ("KAFKA_ACTORS__GROUP__SESSION_TIMEOUT_MS", "20000"),
            ("KAFKA_ACTORS__GROUP__REVOKE_TIMEOUT_MS", "5000"),
            ("KAFKA_ACTORS__GROUP__INSTANCE_ID", id),
        ]
    };
    let args = ["--model", "group"];
    let spawn = |name: &str, id: &'static str, args: &[&str]| {
        Member::spawn(&kafka, name, dir.path(), &topic, &group, &env(id), args)
    };
    let producer = produce_live(
        &kafka,
        &topic,
        &["--frames", "45000", "--rate", "3000", "--event-rate", "300"],
    );
    wait_for_data(&kafka, &topic, partitions);
    let mut one = spawn("one", "member-one", &args);
    let mut two = spawn("two", "member-two", &args);
    // Settled: both own partitions and have written windows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while owned_at_end(&one).is_empty()
        || owned_at_end(&two).is_empty()
        || output(&two.out).is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the group did not settle"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let owned_before = owned_at_end(&one);
    let two_before = ownership_changes(&two);
    one.stop();
    let mut again = spawn("one-again", "member-one", &args);
    wait_for_lines(&again, 1);
    let truth = producer.join().expect("producer");
    std::thread::sleep(std::time::Duration::from_secs(2));

    assert_eq!(
        owned_at_end(&again),
        owned_before,
        "the same partitions came back"
    );
    assert_eq!(
        ownership_changes(&two),
        two_before,
        "the other member saw no rebalance"
    );
    again.stop();
    two.stop();
    let mut last = Member::spawn(
        &kafka,
        "last",
        dir.path(),
        &topic,
        &group,
        &[],
        &["--model", "group", "--until-end"],
    );
    assert!(last.wait().success(), "{}", last.log_text());
    let members = [&one, &two, &again, &last];
    let lines: Vec<_> = members.iter().flat_map(|m| output(&m.out)).collect();
    let seen = exact_shares(lines, &truth);
    let duplicates = assert_no_share_lost(&seen, &truth);
    assert!(
        duplicates.values().all(|n| *n == 0),
        "written twice: {duplicates:?}"
    );
    assert_ownership_and_commits(&members, &[]);
}

#[actix::test]
async fn a_committed_position_that_retention_deleted_is_skipped_reported_and_counted() {
    let test = "a_committed_position_that_retention_deleted_is_skipped_reported_and_counted";
    let Some(kafka) = RealKafka::get(test) else {
        return;
    };
    for model in [Model::Partition, Model::Group] {
        let topic = kafka.topic("deleted", 1);
        let truth = kafka.produce(&topic, &["--frames", "5000", "--event-rate", "100"]);
        assert_eq!(truth.valid, 5_000);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("windows.jsonl");
        let mut settings = real_settings(&kafka, &topic, &out, model);
        settings.run.until_end = true;
        // The group had read up to offset 100; then retention deleted everything below 2 000.
        commit_as_before(
            &settings.kafka,
            &[(PartitionId::of(&topic, 0), 100, String::new())],
        );
        actors::kafka::delete_records(&settings.kafka, PartitionId::of(&topic, 0), 2_000).unwrap();

        // By default the service stops, naming the partition and the gap.
        let error = kafka_actors::run(settings.clone(), std::future::pending())
            .await
            .expect_err("kafka.out_of_range = stop");
        let text = kafka_actors::error_chain(&error);
        assert!(
            text.contains(&format!("{topic}-0"))
                && text.contains("deleted before they were read")
                && text.contains("kafka.out_of_range"),
            "{model:?}: {text}"
        );
        assert!(output(&out).is_empty(), "{model:?}: nothing written");

        settings.kafka.out_of_range = actors::config::OutOfRange::Earliest;
        let run = kafka_actors::run(settings.clone(), std::future::pending())
            .await
            .unwrap();

        assert!(run.completed, "{model:?}");
        let metrics = &run.summary.metrics;
        assert_eq!(metrics.skipped_records, 1_900, "{model:?}");
        assert_eq!(
            metrics.skipped,
            vec![actors::metrics::RecordsSkipped {
                partition: PartitionId::of(&topic, 0),
                from: 100,
                to: 2_000
            }],
            "{model:?}"
        );
        assert_eq!(
            metrics.frames, 3_000,
            "{model:?}: read on from the log start"
        );
        assert_eq!(
            committed(&settings.kafka, &[PartitionId::of(&topic, 0)]),
            BTreeMap::from([(PartitionId::of(&topic, 0), 5_000)]),
            "{model:?}"
        );
    }
}

/// The issue a new user hit: a group whose commits lie past the end of a 20 000-frame topic
/// (the topic was recreated). By default the start stops with an error that says so; with
/// `kafka.out_of_range = earliest` the run reads the new log from its start, exactly; with
/// `latest` it passes over the records there, counting them. Both models.
#[actix::test]
async fn a_commit_past_the_end_of_a_recreated_topic_stops_or_reads_on_as_the_policy_says() {
    let Some(kafka) = RealKafka::get(
        "a_commit_past_the_end_of_a_recreated_topic_stops_or_reads_on_as_the_policy_says",
    ) else {
        return;
    };
    for model in [Model::Partition, Model::Group] {
        let topic = kafka.topic("recreated", 2);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("windows.jsonl");
        let mut settings = real_settings(&kafka, &topic, &out, model);
        settings.run.until_end = true;
        let report = produce(&settings, &data(20_000, 500.0, 0.0), 2);
        let partitions = ids(&settings.kafka, 2);
        let ends: Vec<i64> = partitions.iter().map(|p| report.end_offsets[p]).collect();
        // The group's commits from before the topic was recreated: far past today's ends.
        let stale = |metadata: String| -> Vec<(PartitionId, i64, String)> {
            partitions
                .iter()
                .map(|p| (*p, 50_000, metadata.clone()))
                .collect()
        };
        commit_as_before(
            &settings.kafka,
            &stale(actors::commit_meta::encode_closed_below(Some(
                1_800_000_000.0,
            ))),
        );

        let started = std::time::Instant::now();
        let error = kafka_actors::run(settings.clone(), std::future::pending())
            .await
            .expect_err("kafka.out_of_range = stop");
        let text = kafka_actors::error_chain(&error);
        assert!(
            text.contains("past the end of the log") && text.contains("50000"),
            "{model:?}: {text}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{model:?}: stops promptly"
        );

        settings.kafka.out_of_range = actors::config::OutOfRange::Earliest;
        let run = kafka_actors::run(settings.clone(), std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{model:?}: {}", kafka_actors::error_chain(&e)));
        assert!(run.completed, "{model:?}");
        assert_eq!(run.summary.metrics.skipped_records, 0, "{model:?}");
        assert_eq!(
            run.summary.metrics.late, 0,
            "{model:?}: the old metadata is not trusted"
        );
        assert_eq!(
            output(&out),
            report.truth.lines(),
            "{model:?}: the new log, exactly"
        );

        // `latest`, for another group with the same stale commits: nothing is read, and what
        // was passed over is counted.
        let mut latest = settings.clone();
        latest.kafka.group = unique("recreated-latest");
        latest.kafka.out_of_range = actors::config::OutOfRange::Latest;
        latest.sink.path = dir.path().join("latest.jsonl").display().to_string();
        commit_as_before(&latest.kafka, &stale(String::new()));
        let run = kafka_actors::run(latest, std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{model:?}: {}", kafka_actors::error_chain(&e)));
        assert_eq!(run.summary.metrics.frames, 0, "{model:?}");
        assert_eq!(
            run.summary.metrics.skipped_records,
            ends.iter().sum::<i64>() as u64,
            "{model:?}: every record of the new log passed over, counted"
        );
    }
}

/// Every record of the hostile corpus parses to the reason it must be counted under.
#[test]
fn every_hostile_record_is_classified_by_the_reason_it_must_be_counted_under() {
    let limits = actors::config::FrameConfig::default().limits();
    let corpus = common::corpus::hostile_records();
    assert!(corpus.len() >= 25, "{} kinds", corpus.len());
    for hostile in &corpus {
        let got = actors::frame::parse_frame(hostile.value.as_deref(), &limits);
        assert_eq!(
            got.map_err(|r| r.as_str()),
            Err(hostile.reason),
            "{}",
            hostile.name
        );
    }
}

/// The hostile corpus (a 10 MB record included) in every partition of a topic that accepts
/// records that large, among valid frames, read by both models: no crash, every bad record
/// counted under its reason, the windows of the valid frames exact.
#[actix::test]
async fn a_corpus_of_hostile_records_is_counted_by_reason_and_changes_no_window() {
    let Some(kafka) =
        RealKafka::get("a_corpus_of_hostile_records_is_counted_by_reason_and_changes_no_window")
    else {
        return;
    };
    let topic = unique("hostile");
    kafka.create_topic_with(
        &topic,
        &[
            "--partitions",
            "2",
            "--replication-factor",
            "3",
            "--config",
            "max.message.bytes=12000000",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut base = real_settings(
        &kafka,
        &topic,
        &dir.path().join("x.jsonl"),
        Model::Partition,
    );
    base.kafka
        .properties
        .insert("message.max.bytes".into(), "12000000".into());
    let report = produce(&base, &data(6_000, 300.0, 0.0), 2);
    let corpus = common::corpus::hostile_records();
    let producer = actors::kafka::FrameProducer::new(&base.kafka).unwrap();
    for (i, hostile) in corpus.iter().enumerate() {
        for partition in ids(&base.kafka, 2) {
            producer
                .send_record(
                    1_000_000 + i as u64,
                    partition,
                    hostile.key.as_deref(),
                    hostile.value.as_deref(),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", hostile.name));
        }
    }
    producer.flush(std::time::Duration::from_secs(30)).unwrap();
    drop(producer);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for hostile in &corpus {
        *expected.entry(hostile.reason.to_owned()).or_default() += 2;
    }
    for model in [Model::Partition, Model::Group] {
        let out = dir.path().join(format!("{}.jsonl", model.as_str()));
        let mut s = real_settings(&kafka, &topic, &out, model);
        s.kafka.properties = base.kafka.properties.clone();
        s.run.until_end = true;
        let run = kafka_actors::run(s, std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{model:?}: {}", kafka_actors::error_chain(&e)));
        assert!(run.completed, "{model:?}");
        let invalid: BTreeMap<String, u64> = run
            .summary
            .metrics
            .invalid
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(
            invalid, expected,
            "{model:?}: every bad record by its reason"
        );
        assert_eq!(run.summary.metrics.frames, report.truth.valid, "{model:?}");
        assert_eq!(
            output(&out),
            report.truth.lines(),
            "{model:?}: windows exact"
        );
    }
}

/// A topic written by a transactional producer that commits most transactions and aborts
/// every third (Kafka's own Java producer). Both models read committed records only, exactly
/// the producer's truth; a run to the end commits the true end of each log (past the last
/// transaction marker); and a live run idling at the end of such a log is not taken for a
/// stalled one: before the position counted markers, the watchdog saw one record waiting
/// forever and restarted every partition every `stall_timeout_ms`.
#[actix::test]
async fn transactional_input_is_read_committed_and_its_markers_never_look_like_waiting_frames() {
    let Some(kafka) = RealKafka::get(
        "transactional_input_is_read_committed_and_its_markers_never_look_like_waiting_frames",
    ) else {
        return;
    };
    let topic = kafka.topic("transactional", 2);
    let truth = kafka.produce(
        &topic,
        &[
            "--frames",
            "6000",
            "--event-rate",
            "200",
            "--transaction-size",
            "500",
            "--abort-every",
            "3",
            "--window",
            &WINDOW_SECS.to_string(),
        ],
    );
    assert_eq!(
        (truth.produced, truth.valid),
        (6_000, 4_500),
        "three of twelve transactions aborted"
    );
    let config = kafka.config(&topic, "");
    let ends = actors::kafka::end_offset_probe(&config).unwrap()(&ids(&config, 2));
    for model in [Model::Partition, Model::Group] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("windows.jsonl");
        let mut settings = real_settings(&kafka, &topic, &out, model);
        settings.supervisor.stall_timeout_ms = 1_500;
        settings.run.until_end = true;
        let run = kafka_actors::run(settings.clone(), std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{model:?}: {}", kafka_actors::error_chain(&e)));
        assert!(run.completed, "{model:?}");
        assert_eq!(
            run.summary.metrics.frames, 4_500,
            "{model:?}: committed records only"
        );
        let seen = exact_shares(output(&out), &truth);
        let twice = assert_no_share_lost(&seen, &truth);
        assert!(twice.values().all(|n| *n == 0), "{model:?}: {twice:?}");
        assert_eq!(
            committed(&settings.kafka, &ids(&config, 2)),
            ends,
            "{model:?}: committed at the end of each log, past its last marker"
        );

        // Live, at the end of the log for several stall timeouts: nothing is restarted.
        let mut live = settings.clone();
        live.run.until_end = false;
        live.run.stop_after = "6s".into();
        live.kafka.group = unique("transactional-live");
        live.sink.path = dir.path().join("live.jsonl").display().to_string();
        let run = kafka_actors::run(live, std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{model:?}: {}", kafka_actors::error_chain(&e)));
        let metrics = &run.summary.metrics;
        assert_eq!(
            (metrics.restarts, metrics.watchdog_recoveries),
            (0, 0),
            "{model:?}: {:?}",
            metrics.restart_log
        );
        assert_eq!(metrics.frames, 4_500, "{model:?}");
    }
}

/// The SASL_SSL listener of the test cluster (`tests/kafka/cluster secure`): its bootstrap
/// servers and the CA that signed the brokers' certificate.
fn secure_listener(kafka: &RealKafka) -> (String, String) {
    let answer = kafka.control(&["secure"]);
    let mut lines = answer.lines();
    let bootstrap = lines.next().expect("bootstrap servers").to_owned();
    let ca = lines.next().expect("CA file").to_owned();
    (bootstrap, ca)
}

/// Settings that reach the cluster over SASL_SSL with `mechanism` as user `reader`.
fn over_sasl_ssl(
    settings: &mut Settings,
    bootstrap: &str,
    ca: &str,
    mechanism: &str,
    password: &str,
) {
    settings.kafka.brokers = bootstrap.to_owned();
    for (key, value) in [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", mechanism),
        ("sasl.username", "reader"),
        ("sasl.password", password),
        ("ssl.ca.location", ca),
    ] {
        settings
            .kafka
            .properties
            .insert(key.to_owned(), value.to_owned());
    }
}

#[actix::test]
async fn both_models_read_exactly_over_sasl_ssl_and_a_wrong_password_stops_the_start() {
    let Some(kafka) = RealKafka::get(
        "both_models_read_exactly_over_sasl_ssl_and_a_wrong_password_stops_the_start",
    ) else {
        return;
    };
    let (bootstrap, ca) = secure_listener(&kafka);
    let topic = kafka.topic("sasl-ssl", 3);
    let truth = kafka.produce(
        &topic,
        &["--frames", "9000", "--window", "10", "--bad-every", "50"],
    );
    // SCRAM-SHA-512 for one model, SCRAM-SHA-256 and PLAIN for the other: each over TLS with
    // the cluster's own CA, each exactly the producer's truth.
    for (model, mechanism) in [
        (Model::Partition, "SCRAM-SHA-512"),
        (Model::Group, "SCRAM-SHA-256"),
        (Model::Partition, "PLAIN"),
    ] {
        until_end_is_exact_with(&kafka, &topic, 3, &truth, model, |s| {
            s.kafka.group = common::unique("sasl");
            over_sasl_ssl(s, &bootstrap, &ca, mechanism, "reader-secret");
        })
        .await;
    }
    // A wrong password stops the start within the look-up timeout, naming the broker and the
    // mechanism, never the password.
    for model in [Model::Partition, Model::Group] {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = real_settings(&kafka, &topic, &dir.path().join("w"), model);
        over_sasl_ssl(
            &mut settings,
            &bootstrap,
            &ca,
            "SCRAM-SHA-512",
            "wrong-Pa55word-canary",
        );
        let started = std::time::Instant::now();
        let error = kafka_actors::run(settings, std::future::pending())
            .await
            .expect_err("authentication fails");
        let text = kafka_actors::error_chain(&error);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{text}"
        );
        assert!(
            text.contains("sasl_ssl://127.0.0.1:"),
            "names the broker: {text}"
        );
        assert!(
            text.contains("SCRAM-SHA-512"),
            "names the mechanism: {text}"
        );
        assert!(text.contains("Authentication failed"), "{text}");
        assert!(!text.contains("wrong-Pa55word-canary"), "{text}");
    }
}

/// Keeps the assignments a member's rebalances hand to the service.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<Vec<PartitionId>>>);

impl actors::ports::AssignmentListener for Heard {
    fn assigned(&self, partitions: Vec<actors::ports::AssignedPartition>) {
        self.0
            .lock()
            .unwrap()
            .push(partitions.iter().map(|a| a.partition).collect());
    }

    fn revoking(&self, _: Vec<PartitionId>, _: actors::ports::Revocation) {}
}

/// A member that joined in the background but never served its queue (the service stopped
/// before its first assignment was handed out) closes at once with its assignment due: the
/// closing consumer takes the assignment without looking up committed offsets (a closing
/// group serves none: the look-up waited out its whole timeout, 10 s and more with
/// exactly-once output, and once never returned), and tells the service nothing.
fn a_member_closing_with_its_assignment_due_closes_at_once(assignment: Assignment) {
    let name = format!("a_member_closing_with_its_assignment_due_closes_at_once ({assignment:?})");
    let Some(kafka) = RealKafka::get(&name) else {
        return;
    };
    let topic = kafka.topic("close-due", 2);
    let scratch = std::env::temp_dir().join("unused.jsonl");
    let mut s = real_settings(&kafka, &topic, &scratch, Model::Group);
    s.kafka.group = unique("close-due-group");
    s.group.assignment = assignment;
    let heard = std::sync::Arc::new(Heard::default());
    // The look-up of committed offsets at an assignment may take as long as exactly-once
    // output lets it (`sink.transaction_timeout_ms`, up to 15 min, and 5 s): here 65 s.
    let member = actors::kafka::GroupConsumer::subscribe(
        &s.kafka,
        &s.group,
        &s.partition,
        2,
        heard.clone(),
        None,
        std::time::Duration::from_secs(65),
    )
    .expect("subscribe");
    // The member joins in the background; once the coordinator calls the group stable, the
    // assignment waits on the member's queue, which nothing serves.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (state, assigned) = actors::kafka::group_state(&s.kafka).expect("group state");
        if state == "Stable" && assigned == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: the group did not become stable with one assigned member: {state}, {assigned}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let started = std::time::Instant::now();
    drop(member);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "{name}: closing took {took:?}"
    );
    let heard = heard.0.lock().unwrap().clone();
    assert!(
        heard.is_empty(),
        "{name}: an assignment while closing reached the service: {heard:?}"
    );
}

#[test]
fn a_member_closing_with_its_assignment_due_closes_at_once_under_eager_range() {
    a_member_closing_with_its_assignment_due_closes_at_once(Assignment::Range);
}

#[test]
fn a_member_closing_with_its_assignment_due_closes_at_once_under_cooperative_sticky() {
    a_member_closing_with_its_assignment_due_closes_at_once(Assignment::CooperativeSticky);
}
