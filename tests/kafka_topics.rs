//! Several input topics, and the partition model spread over processes by static partition
//! subsets, against Apache Kafka 4.1 (`tests/kafka/cluster start`). Without a running cluster
//! each test skips (`KAFKA_ACTORS_REQUIRE_KAFKA=1` makes that a failure).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use actors::config::Assignment;
use actors::topic::{from_topics, PartitionId};
use common::real::{
    assert_ownership_and_commits, committed_up_to, member_dir, produce_live, read_back,
    wait_for_data, wait_for_lines, written_by_commit, Member, RealKafka,
};
use common::*;
use kafka_actors::{error_chain, Model};

/// Frames keyed by uid over the eight partitions of two topics (3 and 5 partitions), read to
/// the end by each model: one line per window, naming all eight partitions, equal to the
/// ground truth; every partition of both topics committed at its end.
#[actix::test]
async fn two_topics_of_three_and_five_partitions_give_exactly_the_truth_in_both_models() {
    let Some(kafka) = RealKafka::get(
        "two_topics_of_three_and_five_partitions_give_exactly_the_truth_in_both_models",
    ) else {
        return;
    };
    let (a, b) = (kafka.topic("three", 3), kafka.topic("five", 5));
    let dir = tempfile::tempdir().unwrap();
    let mut base = settings(&kafka.bootstrap, &a, &dir.path().join("unused.jsonl"));
    base.kafka.topic = String::new();
    base.kafka.topics = vec![a.clone(), b.clone()];
    base.group.assignment = Assignment::CooperativeSticky;
    let mut all: Vec<PartitionId> = (0..3)
        .map(|i| PartitionId::of(&a, i))
        .chain((0..5).map(|i| PartitionId::of(&b, i)))
        .collect();
    all.sort();
    let report = actix_rt::task::spawn_blocking({
        let (base, all) = (base.clone(), all.clone());
        move || produce_to(&base, &data(24_000, 400.0, 0.02), all)
    })
    .await
    .unwrap();
    assert_eq!(
        report.end_offsets.keys().copied().collect::<Vec<_>>(),
        all,
        "every partition of both topics holds frames"
    );
    for model in [Model::Partition, Model::Group] {
        let mut s = base.clone();
        s.model = model;
        s.kafka.group = unique(&format!("two-topics-{}", model.as_str()));
        let out = dir.path().join(format!("{}.jsonl", model.as_str()));
        s.sink.path = out.display().to_string();
        s.run.until_end = true;
        let run = kafka_actors::run(s.clone(), std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{model:?}: {}", error_chain(&e)));
        assert!(run.completed, "{model:?}");
        assert_eq!(run.partitions, all, "{model:?}");
        let lines = output(&out);
        assert!(lines.len() >= 5, "{model:?}: {} windows", lines.len());
        assert_eq!(
            lines,
            report.truth.lines(),
            "{model:?}: the windows merge both topics, exactly"
        );
        assert_eq!(run.summary.metrics.frames, report.truth.valid, "{model:?}");
        assert_eq!(
            run.summary.metrics.invalid.values().sum::<u64>(),
            report.truth.invalid.values().sum::<u64>(),
            "{model:?}"
        );
        assert_eq!(
            committed(&s.kafka, &all),
            report.end_offsets,
            "{model:?}: both topics committed at their ends"
        );
    }
}

/// An input topic that does not exist stops either model at start, naming it.
#[actix::test]
async fn a_missing_input_topic_stops_the_start_naming_it_in_both_models() {
    let Some(kafka) =
        RealKafka::get("a_missing_input_topic_stops_the_start_naming_it_in_both_models")
    else {
        return;
    };
    let present = kafka.topic("present", 2);
    let missing = unique("never-created");
    let dir = tempfile::tempdir().unwrap();
    for model in [Model::Partition, Model::Group] {
        let mut s = settings(&kafka.bootstrap, &present, &dir.path().join("w.jsonl"));
        s.model = model;
        s.kafka.topic = String::new();
        s.kafka.topics = vec![present.clone(), missing.clone()];
        let started = std::time::Instant::now();
        let error = kafka_actors::run(s, std::future::pending())
            .await
            .expect_err("a missing topic is a start-up error");
        let text = error_chain(&error);
        assert!(
            text.contains(&format!("topic `{missing}` does not exist")),
            "{model:?}: {text}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{model:?}: it stops at once"
        );
    }
}

/// Three partition-model processes, `--instance 0/3`, `1/3`, `2/3`, in one consumer group,
/// read a 12-partition topic while Kafka's producer writes it. Instance 1 is SIGKILLed mid-
/// stream and started again. Every line names only its instance's partitions and is exact;
/// together the lines lose nothing; the only repeats are whole windows of the killed
/// instance's own partitions that it wrote after its last commit (its last flush), each
/// written once more; no instance ever commits a partition it does not read.
#[test]
fn three_static_instances_read_a_topic_together_and_one_killed_loses_nothing() {
    let Some(kafka) =
        RealKafka::get("three_static_instances_read_a_topic_together_and_one_killed_loses_nothing")
    else {
        return;
    };
    const PARTITIONS: i32 = 12;
    let topic = kafka.topic("thirds", PARTITIONS);
    let group = unique("thirds-group");
    let dir = member_dir("three_static_instances");
    let producer = produce_live(
        &kafka,
        &topic,
        &[
            "--frames",
            "48000",
            "--rate",
            "3000",
            "--event-rate",
            "300",
            "--bad-every",
            "61",
        ],
    );
    wait_for_data(&kafka, &topic, PARTITIONS);
    let instance = |i: usize| format!("{i}/3");
    let spawn = |name: &str, i: usize, until_end: bool| {
        let share = instance(i);
        let mut args = vec!["--model", "partition", "--instance", share.as_str()];
        if until_end {
            args.push("--until-end");
        }
        Member::spawn(&kafka, name, dir.path(), &topic, &group, &[], &args)
    };
    let mut live: Vec<(usize, Member)> = (0..3)
        .map(|i| (i, spawn(&format!("i{i}"), i, false)))
        .collect();
    wait_for_lines(&live[1].1, 3);
    let (_, mut killed) = live.remove(1);
    killed.kill();
    let committed_at_kill = committed_up_to(&kafka, &topic, &group, PARTITIONS);
    let after_kill = read_back(&kafka, &topic, &group, PARTITIONS);
    let written_before_kill = output(&killed.out);
    live.push((1, spawn("i1-restarted", 1, false)));
    let truth = producer.join().expect("producer");
    std::thread::sleep(std::time::Duration::from_secs(3));
    for (_, member) in &mut live {
        member.stop();
    }
    let mut last: Vec<(usize, Member)> = (0..3)
        .map(|i| (i, spawn(&format!("i{i}-end"), i, true)))
        .collect();
    for (_, member) in &mut last {
        let status = member.wait();
        assert!(status.success(), "{}: {}", member.name, member.log_text());
    }

    let mut members: Vec<(usize, &Member)> = vec![(1, &killed)];
    members.extend(live.iter().map(|(i, m)| (*i, m)));
    members.extend(last.iter().map(|(i, m)| (*i, m)));
    let mut lines = Vec::new();
    for (i, member) in &members {
        for line in output(&member.out) {
            let covered = from_topics(&line.partitions);
            assert!(
                covered.iter().all(|p| p.index % 3 == *i as i32),
                "{} (instance {}) wrote a line for other partitions: {line:?}",
                member.name,
                instance(*i)
            );
            lines.push(line);
        }
    }
    let seen = exact_shares(lines, &truth);
    let twice = assert_no_share_lost(&seen, &truth);
    let killed_windows: BTreeSet<i64> =
        written_before_kill.iter().map(|l| l.window_start).collect();
    let mut repeated = BTreeSet::new();
    for ((window, partition), times) in &seen {
        if *times > 1 {
            assert!(
                partition.index % 3 == 1 && *times == 2,
                "window {window} of {partition} written {times} times"
            );
            assert!(
                killed_windows.contains(window)
                    && committed_at_kill
                        .get(partition)
                        .is_none_or(|wm| !written_by_commit(*wm, *window)),
                "window {window} of {partition} was committed as written at the kill \
                 ({committed_at_kill:?}) but written again"
            );
            repeated.insert(*window);
        }
    }
    // The repeats are the killed instance's last windows: those of its last flush.
    let tail: BTreeSet<i64> = killed_windows
        .iter()
        .rev()
        .take(repeated.len())
        .copied()
        .collect();
    assert_eq!(
        repeated, tail,
        "only the last windows written before the kill repeat"
    );
    let handovers = assert_ownership_and_commits(
        &members.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        &[after_kill],
    );
    let duplicates: BTreeMap<PartitionId, u32> =
        twice.into_iter().filter(|(_, n)| *n > 0).collect();
    eprintln!(
        "three instances: {} windows, {} lines before the kill, repeated windows {repeated:?} \
         ({duplicates:?}), {handovers} partitions taken at a previous commit",
        truth.windows().len(),
        written_before_kill.len()
    );
    assert!(
        handovers >= 4 * 2,
        "the restarted and the final instances took their partitions at the commits: {handovers}"
    );
}

/// `kafka-actors-lab`, built next to the service binary (`cargo build` and `cargo test
/// --workspace` build both).
fn lab_binary() -> std::path::PathBuf {
    let lab = std::path::Path::new(env!("CARGO_BIN_EXE_kafka-actors"))
        .with_file_name(format!("kafka-actors-lab{}", std::env::consts::EXE_SUFFIX));
    assert!(
        lab.exists(),
        "no {}: build it with `cargo build -p kafka-actors-lab` (or run `cargo test --workspace`)",
        lab.display()
    );
    lab
}

/// `compare --instances 3` on Apache Kafka: each model runs as three processes on the same
/// data (the partition model as static instances, the group model as members of one group),
/// both write exactly the truth between them, each static instance's lines name only its own
/// partitions, and the report holds the time for each set to finish and the recovery after a
/// SIGKILL of one process of each model.
#[test]
fn compare_runs_each_model_as_three_processes_and_measures_a_kill() {
    let Some(kafka) =
        RealKafka::get("compare_runs_each_model_as_three_processes_and_measures_a_kill")
    else {
        return;
    };
    let topic = kafka.topic("compare-k3", 6);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let mut command = std::process::Command::new(lab_binary());
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    without_service_env(&mut command);
    let output = command
        .env("KAFKA_ACTORS__KAFKA__TOPIC", &topic)
        .args(["compare", "--brokers", &kafka.bootstrap])
        .args([
            "--frames",
            "30000",
            "--rounds",
            "1",
            "--instances",
            "3",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("3 processes per model"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["instances"], 3);
    for model in ["partition", "group"] {
        assert_eq!(
            report[model]["windows_match_truth"], true,
            "{model}: {stdout}"
        );
        assert!(
            report[model]["set_finish_ms"]["median"].as_f64().unwrap() > 0.0,
            "{model}"
        );
    }
    for killed in ["instance_killed_ms", "member_killed_ms"] {
        assert!(
            report["recovery"][killed]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{killed}: {}",
            report["recovery"]
        );
    }
    for i in 0..3 {
        let lines = common::output(&out.join(format!("partition-0-{i}.jsonl")));
        assert!(!lines.is_empty(), "instance {i}/3 wrote nothing");
        for line in lines {
            assert!(
                from_topics(&line.partitions)
                    .iter()
                    .all(|p| p.index % 3 == i),
                "instance {i}/3: {line:?}"
            );
        }
    }
}
