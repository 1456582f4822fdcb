//! The group model end to end on the embedded cluster: windows against the ground truth, and
//! members joining and leaving mid-stream under eager and cooperative-sticky assignment.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use actors::config::Assignment;
use actors::intake::GroupEvent;
use actors::ports::StartOffset;
use common::*;
use kafka_actors::{Model, Settings};

/// Every partition a run was assigned at some point.
fn assigned(run: &kafka_actors::RunReport) -> BTreeSet<actors::topic::PartitionId> {
    run.summary
        .group_history
        .iter()
        .filter_map(|r| match r.event {
            GroupEvent::Assigned { partition, .. } => Some(partition),
            GroupEvent::Released { .. } => None,
        })
        .collect()
}

fn group_settings(settings: &mut Settings, assignment: Assignment) {
    settings.model = Model::Group;
    settings.group.assignment = assignment;
    // The mock coordinator waits session timeout − 1 s before a rebalance after a membership
    // change: keep it short.
    settings.group.session_timeout_ms = 3_000;
    settings.group.revoke_timeout_ms = 2_000;
}

#[actix::test]
async fn group_model_until_end_emits_exactly_the_ground_truth() {
    let (cluster, topic) = cluster(4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    group_settings(&mut settings, Assignment::CooperativeSticky);
    settings.run.until_end = true;
    let report = produce(&settings, &data(30_000, 500.0, 0.01), 4);

    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    assert_eq!(output(&out), report.truth.lines());
    assert_eq!(run.summary.metrics.frames, report.truth.valid);
    assert_eq!(
        committed(&settings.kafka, &run.partitions),
        report.end_offsets
    );
    assert_eq!(
        assigned(&run),
        ids(&settings.kafka, 4).into_iter().collect()
    );
}

#[actix::test]
async fn unlabelled_output_is_written_when_one_member_owns_every_partition() {
    let (cluster, topic) = cluster(3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    group_settings(&mut settings, Assignment::CooperativeSticky);
    settings.run.until_end = true;
    settings.sink.label_partitions = false;
    let report = produce(&settings, &data(9_000, 500.0, 0.0), 3);

    let run = kafka_actors::run(settings, std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("partitions"), "{text}");
    let mut expected = report.truth.lines();
    for line in &mut expected {
        line.partitions.clear();
    }
    assert_eq!(output(&out), expected);
}

#[actix::test]
async fn embedded_group_model_live_run_matches_the_generators_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings("", "frames", &out);
    group_settings(&mut settings, Assignment::Range);
    settings.embedded.partitions = 4;
    settings.generator.frames = 30_000;
    settings.generator.rate = 15_000;
    settings.generator.event_rate = 1_000.0;
    settings.generator.start_ts = 1_790_000_000.0;
    settings.run.until_end = true;

    let run = kafka_actors::run(settings, std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    let generator = run.generator.expect("embedded run has a generator");
    assert_eq!(output(&out), generator.truth.lines());
}

async fn stop_after(delay: Duration) {
    actix_rt::time::sleep(delay).await
}

/// Member A starts alone, B joins mid-stream, A leaves mid-stream, and after the data ends C
/// drains what is left. Checks: no frame lost, every line exact for the partitions it names,
/// window shares written twice only for partitions that changed hands (when the broker refused
/// the commit at the handover), every moved partition starts at exactly its previous owner's
/// last commit, and committed offsets never move back.
async fn members_join_and_leave_without_losing_frames(assignment: Assignment) {
    let partitions = 4;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let mut base = settings(
        cluster.bootstrap_servers(),
        &topic,
        &dir.path().join("unused"),
    );
    group_settings(&mut base, assignment);
    let member = |name: &str| {
        let mut s = base.clone();
        s.sink.path = dir
            .path()
            .join(format!("{name}.jsonl"))
            .display()
            .to_string();
        s
    };
    let mut live = data(64_000, 400.0, 0.0);
    live.rate = 4_000;
    let generator = spawn_generator(&base, &live, partitions);
    let watcher = Watcher::start(base.kafka.clone(), ids(&base.kafka, partitions), None);

    // A runs 9 s; B joins after 2 s and runs 16 s.
    let a = kafka_actors::run(member("a"), stop_after(Duration::from_secs(9)));
    let b = async {
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        kafka_actors::run(member("b"), stop_after(Duration::from_secs(16))).await
    };
    let (a, b) = futures::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    let report = actix_rt::task::spawn_blocking(move || wait_generator(generator))
        .await
        .unwrap();
    assert_eq!(report.delivered, 64_000);

    // C drains to the end.
    let mut c = member("c");
    c.run.until_end = true;
    let c = kafka_actors::run(c, std::future::pending()).await.unwrap();
    assert!(c.completed);
    let samples = watcher.finish();

    // Both A and B had partitions; B took over A's when A left.
    assert!(
        !assigned(&a).is_empty() && !assigned(&b).is_empty(),
        "A {:?} B {:?}",
        assigned(&a),
        assigned(&b)
    );
    assert_eq!(
        assigned(&b),
        ids(&base.kafka, partitions).into_iter().collect(),
        "B ends up with every partition"
    );

    // Every partition that changed hands started exactly where its previous owner last
    // committed: the release (with its commit) finished before the new owner read anything.
    let (handovers, handed_over) = assert_handovers_at_last_commit(&[&a, &b]);
    assert!(handovers >= 2, "partitions changed hands: {handovers}");
    let lost = a
        .summary
        .group_history
        .iter()
        .chain(&b.summary.group_history)
        .any(|r| matches!(r.event, GroupEvent::Released { lost: true, .. }));
    assert!(!lost, "no assignment was lost");

    // Every line is exact for the partitions it names; every share of every window appears in
    // some line (no frame lost); a share written twice is a duplicate, which only a handover
    // whose commit the broker refused can cause (the embedded cluster refuses commits while a
    // rebalance is in progress).
    let lines = ["a", "b", "c"]
        .into_iter()
        .flat_map(|name| output(&dir.path().join(format!("{name}.jsonl"))));
    let seen = exact_shares(lines, &report.truth);
    let duplicates = assert_no_share_lost(&seen, &report.truth);
    for (partition, twice) in &duplicates {
        assert!(
            *twice == 0 || handed_over.contains(partition),
            "partition {partition} never changed hands but had {twice} shares written twice"
        );
    }
    let duplicates: u32 = duplicates.values().sum();
    eprintln!("{assignment:?}: {handovers} handovers, {duplicates} window shares written twice");

    // Offsets never moved back, and everything ended committed.
    assert!(samples.len() > 50);
    for pair in samples.windows(2) {
        for (partition, offset) in &pair[0].0 {
            let later = pair[1].0.get(partition).copied().unwrap_or(i64::MIN);
            assert!(
                later >= *offset,
                "partition {partition}: committed offset went back from {offset} to {later}"
            );
        }
    }
    assert_eq!(
        committed(&base.kafka, &ids(&base.kafka, partitions)),
        report.end_offsets
    );
}

#[actix::test]
async fn cooperative_sticky_members_join_and_leave_without_losing_frames() {
    members_join_and_leave_without_losing_frames(Assignment::CooperativeSticky).await;
}

#[actix::test]
async fn eager_members_join_and_leave_without_losing_frames() {
    members_join_and_leave_without_losing_frames(Assignment::Range).await;
}

#[actix::test]
async fn a_static_member_commits_everything_before_it_stops() {
    let (cluster, topic) = cluster(3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    group_settings(&mut settings, Assignment::CooperativeSticky);
    settings.group.instance_id = "member-1".into();
    settings.run.until_end = true;
    let report = produce(&settings, &data(9_000, 500.0, 0.0), 3);

    let started = std::time::Instant::now();
    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopping does not wait for the session to expire"
    );
    assert_eq!(output(&out), report.truth.lines());
    assert_eq!(
        committed(&settings.kafka, &run.partitions),
        report.end_offsets
    );
}

#[actix::test]
async fn a_lost_assignment_is_dropped_without_a_commit_and_nothing_is_lost() {
    let partitions = 3;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    group_settings(&mut settings, Assignment::CooperativeSticky);
    let mut live = data(36_000, 400.0, 0.0);
    live.rate = 6_000;
    let generator = spawn_generator(&settings, &live, partitions);

    // The coordinator forgets the member mid-stream: its next heartbeat is answered
    // UNKNOWN_MEMBER_ID, so the member loses its assignment and joins again.
    actix_rt::time::sleep(Duration::from_millis(2_000)).await;
    let cluster = std::sync::Arc::new(cluster);
    let fault = {
        let cluster = cluster.clone();
        actix_rt::spawn(async move {
            actix_rt::time::sleep(Duration::from_millis(1_000)).await;
            cluster
                .fail_next(
                    actors::kafka::BrokerRequest::Heartbeat,
                    &[actors::kafka::BrokerError::UnknownMemberId],
                )
                .unwrap();
        })
    };
    let first = kafka_actors::run(settings.clone(), stop_after(Duration::from_secs(7)))
        .await
        .unwrap();
    fault.await.unwrap();
    let report = actix_rt::task::spawn_blocking(move || wait_generator(generator))
        .await
        .unwrap();
    let mut again = settings.clone();
    again.run.until_end = true;
    let second = kafka_actors::run(again, std::future::pending())
        .await
        .unwrap();
    assert!(second.completed);

    // The loss was seen and nothing was committed for it: the partitions came back at the
    // member's last commit from before the loss.
    let history = &first.summary.group_history;
    let lost: Vec<_> = history
        .iter()
        .filter_map(|r| match r.event {
            GroupEvent::Released {
                partition,
                committed,
                lost: true,
            } => Some((r.at, partition, committed)),
            _ => None,
        })
        .collect();
    assert!(!lost.is_empty(), "the assignment was lost: {history:?}");
    for (at, partition, committed) in lost {
        let back = history.iter().find_map(|r| match r.event {
            GroupEvent::Assigned {
                partition: p,
                start,
            } if p == partition && r.at >= at => Some(start),
            _ => None,
        });
        if let (Some(start), Some(committed)) = (back, committed) {
            assert_eq!(
                start,
                StartOffset::At(committed),
                "partition {partition} came back at its last commit"
            );
        }
    }

    // No frame lost; every line exact for the partitions it names.
    assert_no_share_lost(&exact_shares(output(&out), &report.truth), &report.truth);
    assert_eq!(
        committed(&settings.kafka, &ids(&settings.kafka, partitions)),
        report.end_offsets
    );
}
