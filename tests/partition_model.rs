//! End to end through `kafka_actors::run` on the embedded cluster: the partition model's windows
//! against the generator's ground truth, bad frames, and commit safety across a stop and a
//! restart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use actors::frame::InvalidReason;
use actors::kafka::FrameProducer;
use actors::topic::PartitionId;
use common::*;

#[actix::test]
async fn until_end_emits_exactly_the_ground_truth_and_commits_the_end() {
    let (cluster, topic) = cluster(4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    settings.run.until_end = true;
    let report = produce(&settings, &data(40_000, 500.0, 0.0), 4);
    assert_eq!(report.delivered, 40_000);

    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    let truth = report.truth.lines();
    assert!(
        truth.len() >= 8,
        "the data spans several windows: {}",
        truth.len()
    );
    assert_eq!(
        output(&out),
        truth,
        "every window once, in order, with exact counts"
    );
    assert_eq!(run.summary.metrics.frames, 40_000);
    assert_eq!(run.summary.metrics.late, 0);
    assert_eq!(run.summary.metrics.windows, truth.len() as u64);
    assert_eq!(run.summary.drain.open_windows, 0);
    let ends: BTreeMap<PartitionId, i64> = report.end_offsets.clone();
    assert_eq!(
        committed(&settings.kafka, &run.partitions),
        ends,
        "everything processed is committed"
    );
}

#[actix::test]
async fn bad_frames_are_counted_by_reason_and_change_no_window() {
    let (cluster, topic) = cluster(3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    settings.run.until_end = true;
    settings.frames.max_bytes = 512;
    let report = produce(&settings, &data(21_000, 500.0, 0.1), 3);
    // A poison frame as the very last record of every partition.
    let producer = FrameProducer::new(&settings.kafka).unwrap();
    for partition in ids(&settings.kafka, 3) {
        producer
            .send(
                1_000_000 + partition.index as u64,
                partition,
                b"poison",
                b"{\"ts\":",
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    drop(producer);

    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap();

    assert!(
        run.completed,
        "a poison last frame does not keep a partition from finishing"
    );
    assert_eq!(output(&out), report.truth.lines());
    let metrics = &run.summary.metrics;
    for reason in InvalidReason::ALL {
        let expected = report.truth.invalid.get(&reason).copied().unwrap_or(0)
            + if reason == InvalidReason::NotJson {
                3
            } else {
                0
            };
        assert!(expected > 0, "the data set has {reason} frames");
        assert_eq!(
            metrics.invalid.get(reason.as_str()).copied().unwrap_or(0),
            expected,
            "{reason}"
        );
    }
    assert_eq!(metrics.frames, report.truth.valid);
    // The poison frames' offsets count as processed.
    let mut ends = report.end_offsets.clone();
    for end in ends.values_mut() {
        *end += 1;
    }
    assert_eq!(committed(&settings.kafka, &run.partitions), ends);
}

#[actix::test]
async fn embedded_default_live_run_matches_the_generators_truth() {
    // No brokers: `run` starts the embedded cluster and the generator, which produces while
    // the partitions consume; `until_end` waits for the generator and then drains.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let truth_file = dir.path().join("truth.jsonl");
    let mut settings = settings("", "frames", &out);
    settings.embedded.partitions = 4;
    settings.generator.frames = 30_000;
    settings.generator.rate = 15_000;
    settings.generator.event_rate = 1_000.0;
    settings.generator.start_ts = 1_790_000_000.0;
    settings.generator.truth_file = truth_file.display().to_string();
    settings.run.until_end = true;

    let run = kafka_actors::run(settings, std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    let generator = run.generator.expect("the embedded run has a generator");
    assert_eq!(generator.delivered, 30_000);
    let truth = output(&truth_file);
    assert_eq!(truth, generator.truth.lines());
    assert!(truth.len() >= 3);
    assert_eq!(output(&out), truth);
    assert_eq!(run.summary.metrics.frames, 30_000);
}

#[actix::test]
async fn stop_and_restart_emit_every_window_exactly_and_never_commit_ahead_of_output() {
    let partitions = 4;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let settings = settings(cluster.bootstrap_servers(), &topic, &out);
    // Produced live, 10 000 frames/s, 20 event seconds per wall second: windows close while
    // the first run is consuming.
    let mut live = data(60_000, 500.0, 0.01);
    live.rate = 10_000;
    let generator = spawn_generator(&settings, &live, partitions);
    let watcher = Watcher::start(
        settings.kafka.clone(),
        ids(&settings.kafka, partitions),
        Some(out.clone()),
    );

    // First run: stopped gracefully mid-stream.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopper = actix_rt::spawn(async move {
        actix_rt::time::sleep(Duration::from_millis(3_000)).await;
        let _ = stop_tx.send(());
    });
    let first = kafka_actors::run(settings.clone(), async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    stopper.await.unwrap();
    assert!(!first.completed);
    let written_first = output(&out).len();
    assert!(
        written_first >= 2,
        "windows were written before the stop: {written_first}"
    );
    assert!(
        first.summary.drain.open_windows >= 1,
        "the stop came mid-stream"
    );
    let report = actix_rt::task::spawn_blocking(move || wait_generator(generator))
        .await
        .unwrap();
    assert_eq!(report.delivered, 60_000);

    // Second run, same group: picks up from the committed offsets and drains to the end.
    let mut again = settings.clone();
    again.run.until_end = true;
    let second = kafka_actors::run(again, std::future::pending())
        .await
        .unwrap();
    assert!(second.completed);
    let samples = watcher.finish();

    // Every window exactly once, every line exact.
    let lines = output(&out);
    // A graceful stop commits what it wrote, with the watermark: nothing is written twice.
    assert_eq!(lines, report.truth.lines());
    assert_eq!(
        committed(&settings.kafka, &first.partitions),
        report.end_offsets
    );

    // At no sampled moment did a committed offset cover a frame whose share of its window (the
    // window, for that frame's partition) was not written: a line for the same window that
    // names other partitions does not count.
    let window_of: BTreeMap<(PartitionId, i64), i64> = report
        .placements
        .iter()
        .filter_map(|p| p.window.map(|w| ((p.partition, p.offset), w)))
        .collect();
    assert!(
        samples.len() >= 20,
        "the watcher sampled throughout: {}",
        samples.len()
    );
    let mut checked = 0;
    for (committed, lines) in samples.iter() {
        let durable: BTreeSet<(i64, PartitionId)> = lines
            .iter()
            .flat_map(|l| {
                actors::topic::from_topics(&l.partitions)
                    .into_iter()
                    .map(move |p| (l.window_start, p))
            })
            .collect();
        for (&(partition, offset), window) in &window_of {
            if committed.get(&partition).is_some_and(|c| offset < *c) {
                assert!(
                    durable.contains(&(*window, partition)),
                    "offset {offset} of partition {partition} committed before its share of window {window} was written"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

#[actix::test]
async fn a_partition_that_cannot_start_stops_the_service_with_its_error() {
    let (cluster, topic) = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    settings.run.until_end = true;
    // No committed offset and no permission to guess one.
    settings.kafka.auto_offset_reset = actors::config::OffsetReset::Error;
    produce(&settings, &data(1_000, 500.0, 0.0), 2);

    let error = kafka_actors::run(settings, std::future::pending())
        .await
        .unwrap_err();

    let message = kafka_actors::error_chain(&error);
    assert!(message.contains("partition"), "{message}");
    assert!(
        output(&out).is_empty(),
        "nothing was counted from a guessed position"
    );
}

#[actix::test]
async fn a_restarted_partition_resumes_from_its_commit_without_loss_or_double_counting() {
    let partitions = 4;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let settings = settings(cluster.bootstrap_servers(), &topic, &out);
    let mut live = data(40_000, 500.0, 0.0);
    live.rate = 10_000;
    let generator = spawn_generator(&settings, &live, partitions);

    // Restart partition 0 twice while frames flow, then stop once the generator is done.
    let p0 = PartitionId::of(&topic, 0);
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let driver = actix_rt::spawn(async move {
        let supervisor: actix::Addr<actors::RootSupervisor> = addr_rx.await.unwrap();
        let mut restarts = Vec::new();
        for _ in 0..2 {
            actix_rt::time::sleep(Duration::from_millis(1_200)).await;
            let before = supervisor.send(actors::metrics::GetMetrics).await.unwrap();
            let start = supervisor
                .send(actors::supervisor::RestartPartition(p0))
                .await
                .unwrap()
                .unwrap();
            restarts.push((before.partitions[&p0].position, start));
        }
        restarts
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let generator = actix_rt::task::spawn_blocking(move || {
        let report = wait_generator(generator);
        std::thread::sleep(Duration::from_millis(1_500));
        let _ = stop_tx.send(());
        report
    });
    let first = kafka_actors::run_with(
        settings.clone(),
        async move {
            let _ = stop_rx.await;
        },
        move |supervisor| {
            let _ = addr_tx.send(supervisor);
        },
    )
    .await
    .unwrap();
    let restarts = driver.await.unwrap();
    let report = generator.await.unwrap();
    for (position, start) in &restarts {
        // The new reader starts at the last commit, which never passes what was processed.
        let actors::ports::StartOffset::At(start) = start else {
            panic!("restarted from a commit: {start:?}")
        };
        assert!(
            position.is_some_and(|p| *start <= p),
            "start {start} vs position {position:?}"
        );
    }
    assert!(
        first.summary.metrics.partitions[&p0].late > 0,
        "replayed frames of written windows were skipped"
    );

    let mut again = settings.clone();
    again.run.until_end = true;
    let second = kafka_actors::run(again, std::future::pending())
        .await
        .unwrap();
    assert!(second.completed);
    // Nothing lost, nothing counted twice: every share of every window is written exactly once,
    // in lines exact for the partitions they name. (A partition still catching up after a
    // restart closes its share of a window on its own, as a separate line naming it.)
    let seen = exact_shares(output(&out), &report.truth);
    let twice = assert_no_share_lost(&seen, &report.truth);
    assert!(
        twice.values().all(|n| *n == 0),
        "shares written twice: {twice:?}"
    );
    assert_eq!(
        committed(&settings.kafka, &first.partitions),
        report.end_offsets
    );
}

/// Two instances in one consumer group, each listed its own partitions (`kafka.partitions`),
/// run one after the other: each reads and commits only its own (the other's stay
/// uncommitted), each line names only its instance's partitions, and together the lines are
/// exactly the ground truth.
#[actix::test]
async fn instances_with_listed_partitions_commit_only_their_own_and_add_up_to_the_truth() {
    let (cluster, topic) = cluster(4);
    let dir = tempfile::tempdir().unwrap();
    let base = settings(
        cluster.bootstrap_servers(),
        &topic,
        &dir.path().join("x.jsonl"),
    );
    let report = produce(&base, &data(20_000, 500.0, 0.0), 4);
    let all = ids(&base.kafka, 4);
    let mut seen_lines = Vec::new();
    for (name, ranges, mine) in [("low", "0-1", &all[..2]), ("high", "3,2", &all[2..])] {
        let mut s = base.clone();
        s.run.until_end = true;
        s.kafka.partitions = [(topic.clone(), ranges.to_owned())].into();
        let out = dir.path().join(format!("{name}.jsonl"));
        s.sink.path = out.display().to_string();
        let run = kafka_actors::run(s, std::future::pending()).await.unwrap();
        assert!(run.completed, "{name}");
        assert_eq!(run.partitions, mine, "{name}");
        let lines = output(&out);
        assert!(!lines.is_empty(), "{name}");
        for line in &lines {
            assert_eq!(
                actors::topic::from_topics(&line.partitions),
                mine,
                "{name}: {line:?}"
            );
        }
        seen_lines.extend(lines);
        // Only the partitions read so far have commits, each at its end.
        let read_so_far = if name == "low" { &all[..2] } else { &all[..] };
        let expected: BTreeMap<PartitionId, i64> = read_so_far
            .iter()
            .map(|p| (*p, report.end_offsets[p]))
            .collect();
        assert_eq!(committed(&base.kafka, &all), expected, "after {name}");
    }
    let seen = exact_shares(seen_lines, &report.truth);
    let twice = assert_no_share_lost(&seen, &report.truth);
    assert!(twice.values().all(|n| *n == 0), "{twice:?}");
}

/// A listed partition the topic does not have, or an instance that takes none, stops the
/// start with an error that says so.
#[actix::test]
async fn a_partition_subset_that_does_not_fit_the_topic_stops_the_start() {
    let (cluster, topic) = cluster(4);
    let dir = tempfile::tempdir().unwrap();
    let base = settings(
        cluster.bootstrap_servers(),
        &topic,
        &dir.path().join("w.jsonl"),
    );
    let mut listed = base.clone();
    listed.kafka.partitions = [(topic.clone(), "2-5".to_owned())].into();
    let error = kafka_actors::run(listed, std::future::pending())
        .await
        .expect_err("partitions 4 and 5 do not exist");
    assert_eq!(
        error.to_string(),
        format!(
            "invalid value for `kafka.partitions.{topic}`: topic `{topic}` has partitions 0-3, not 4-5"
        )
    );
    let mut idle = base.clone();
    idle.kafka.instance = "5/8".to_owned();
    let error = kafka_actors::run(idle, std::future::pending())
        .await
        .expect_err("instance 5/8 of a 4-partition topic reads nothing");
    let text = error.to_string();
    assert!(
        text.contains("`kafka.instance`")
            && text.contains(&format!(
                "instance 5/8 takes no partition of `{topic}` (4 partitions)"
            )),
        "{text}"
    );
}

/// One valid-looking frame stamped 70 years ahead (well inside `frames.max_ts`) as the first
/// record of a one-partition topic: it is counted as `future_ts`, not trusted. Trusted, it would
/// move the watermark to 2096, close every window at once and make every later frame late,
/// and its time would be recorded with the commits for restarts to inherit.
#[actix::test]
async fn a_frame_far_ahead_of_the_clock_is_counted_and_moves_no_window() {
    let (cluster, topic) = cluster(1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    settings.run.until_end = true;
    let producer = FrameProducer::new(&settings.kafka).unwrap();
    producer
        .send(
            u64::MAX,
            PartitionId::of(&topic, 0),
            b"u-future",
            br#"{"ts":4000000000,"uid":"u-future"}"#,
        )
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    drop(producer);
    let report = produce(&settings, &data(10_000, 500.0, 0.0), 1);

    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    let metrics = &run.summary.metrics;
    assert_eq!(metrics.invalid.get("future_ts").copied(), Some(1));
    assert_eq!(metrics.late, 0, "no frame was made late");
    assert_eq!(output(&out), report.truth.lines(), "every window exact");
    let metadata = actors::kafka::committed_offsets(&settings.kafka, &ids(&settings.kafka, 1))
        .unwrap()
        .remove(0)
        .metadata;
    let closed_below = actors::commit_meta::decode_closed_below(&metadata).expect("closed_below");
    assert!(
        closed_below < 1_800_000_000.0,
        "the commit records the data's event time, not the future frame's: {closed_below}"
    );
}

/// A full disk while writing results (the file size limit of `ulimit -f`, which makes a write
/// that crosses it fail with EFBIG, as ENOSPC would): the service stops with an error naming
/// the write, the file holds only whole lines, nothing of that flush is committed, and the next
/// run writes the rest: every window exactly once.
#[test]
fn a_full_disk_stops_the_service_with_whole_lines_and_the_next_run_completes_the_output() {
    let (cluster, topic) = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let settings = settings(cluster.bootstrap_servers(), &topic, &out);
    let report = produce(&settings, &data(60_000, 200.0, 0.0), 2);
    let expected = report.truth.lines();
    assert!(expected.len() > 25, "{} windows", expected.len());
    let run = |limit_blocks: Option<u32>| {
        let binary = env!("CARGO_BIN_EXE_kafka-actors");
        let script = match limit_blocks {
            // An ignored SIGXFSZ stays ignored across exec: the write fails instead.
            Some(blocks) => format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""),
            None => "exec \"$0\" \"$@\"".to_owned(),
        };
        let mut command = std::process::Command::new("sh");
        without_service_env(&mut command)
            .args(["-c", &script, binary, "run", "--until-end"])
            .args(["--brokers", cluster.bootstrap_servers(), "--topic", &topic])
            .args(["--group", &settings.kafka.group])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "10")
            .env("KAFKA_ACTORS__WINDOW__LATENESS_SECS", "3")
            .env("KAFKA_ACTORS__FLUSH__INTERVAL_MS", "20")
            .env("KAFKA_ACTORS__PARTITION__CHUNK_MAX_FRAMES", "200")
            .env("KAFKA_ACTORS__SINK__KIND", "file")
            .env("KAFKA_ACTORS__SINK__PATH", &out)
            .output()
            .unwrap()
    };
    let full = run(Some(4));
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "the disk filled up: {stderr}");
    assert!(stderr.contains("cannot write results"), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "only whole lines: {:?}",
        &text[text.len().saturating_sub(80)..]
    );
    let written = output(&out);
    assert!(
        !written.is_empty() && written.len() < expected.len(),
        "some windows before the disk filled: {}",
        written.len()
    );
    assert_eq!(written[..], expected[..written.len()]);

    let rest = run(None);
    assert!(
        rest.status.success(),
        "{}",
        String::from_utf8_lossy(&rest.stderr)
    );
    assert_eq!(output(&out), expected, "every window once, exact");
}

/// `--until-end` over a topic that later grows. With `run.keep_open_windows`, the windows the
/// watermark has not closed stay open (unwritten, uncommitted) and a later run completes them:
/// together the two runs write every window once, exactly. Without it (the default, for data
/// sets that are complete) the first run writes the last window with what it has, and the
/// later run counts the rest of that window as late: the behaviour the README describes.
#[actix::test]
async fn until_end_leaves_open_windows_for_a_later_run_when_asked() {
    let (cluster, topic) = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let base = settings(
        cluster.bootstrap_servers(),
        &topic,
        &dir.path().join("x.jsonl"),
    );
    let first_part = data(10_000, 500.0, 0.0);
    let second_part = actors::config::GeneratorConfig {
        seed: 8,
        start_ts: first_part.start_ts + 20.0,
        ..first_part.clone()
    };
    let partitions = ids(&base.kafka, 2);
    let mut truth = actors::generator::GroundTruth::new(10, partitions.clone());
    for part in [&first_part, &second_part] {
        let frames =
            actors::generator::FrameGenerator::new(part, base.frames.limits(), partitions.clone());
        for i in 0..part.frames {
            let frame = frames.frame(i, 0.0);
            truth.record(frame.partition, &frame.kind);
        }
    }
    let run = |keep_open: bool, name: &str| {
        let mut s = base.clone();
        s.run.until_end = true;
        s.run.keep_open_windows = keep_open;
        s.kafka.group = format!("{}-{name}", base.kafka.group);
        s.sink.path = dir
            .path()
            .join(format!("{name}.jsonl"))
            .display()
            .to_string();
        s
    };
    produce(&base, &first_part, 2);
    let kept = run(true, "kept");
    let closed = run(false, "closed");
    let first = kafka_actors::run(kept.clone(), std::future::pending())
        .await
        .unwrap();
    assert!(first.completed);
    assert!(
        first.summary.drain.open_windows > 0,
        "the last window stays open"
    );
    let written_first = output(Path::new(&kept.sink.path)).len();
    kafka_actors::run(closed.clone(), std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        output(Path::new(&closed.sink.path)).len(),
        written_first + 1,
        "without keep_open_windows the open window is written too, partly filled"
    );

    produce(&base, &second_part, 2);
    let second = kafka_actors::run(kept.clone(), std::future::pending())
        .await
        .unwrap();
    assert!(second.completed);
    // (The replay from the commit counts frames of windows already written as late: they were
    // counted by the first run.)
    // Every window once, exact, the one that spans both parts of the input included; the
    // windows still open at the second end are left for a third run.
    let still_open = second.summary.drain.open_windows;
    let expected = truth.lines();
    assert!(still_open >= 1 && still_open < expected.len());
    assert_eq!(
        output(Path::new(&kept.sink.path)),
        expected[..expected.len() - still_open],
        "two runs with open windows kept"
    );
    let later = kafka_actors::run(closed.clone(), std::future::pending())
        .await
        .unwrap();
    assert!(
        later.summary.metrics.late > 0,
        "the rest of a window written at the first end counts as late"
    );
    assert_ne!(output(Path::new(&closed.sink.path)), truth.lines());
}

/// A stop whose drain cannot finish (every write takes 3 s) ends with an error at its
/// deadline, and the flush still under way commits nothing when its write completes: the
/// windows it wrote are read again by the next run (at least once).
#[actix::test]
async fn a_stop_past_its_deadline_commits_nothing_further() {
    let partitions = 2;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    settings.sink.write_delay_ms = 3_000;
    settings.shutdown.timeout_ms = 500;
    produce(&settings, &data(4_000, 100.0, 0.0), partitions);
    let all = ids(&settings.kafka, partitions);
    let started = std::time::Instant::now();
    let result = kafka_actors::run(
        settings.clone(),
        actix_rt::time::sleep(Duration::from_millis(1_500)),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(kafka_actors::RunError::ShutdownTimeout { timeout_ms: 500 })
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "{:?}",
        started.elapsed()
    );
    let at_deadline = committed(&settings.kafka, &all);
    // The hanging write completes about 3 s after it began; its commit must not go out.
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    assert!(!output(&out).is_empty(), "the write under way completed");
    assert_eq!(committed(&settings.kafka, &all), at_deadline);
}

/// An output that refuses the last flush, the one a stop makes, fails the run: the stop ends
/// with the output's error (not as a clean stop), and nothing of that flush is written or
/// committed (the next run reads it again).
#[actix::test]
async fn an_output_that_refuses_the_stops_last_flush_fails_the_run() {
    let partitions = 2;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    // No flush but the stop's.
    settings.flush.interval_ms = 600_000;
    settings.flush.max_frames = u64::MAX / 2;
    produce(&settings, &data(4_000, 100.0, 0.0), partitions);
    let all = ids(&settings.kafka, partitions);
    let plan = actors::faults::FaultPlan::default();
    let refuse = plan.clone();
    let result = kafka_actors::run_with_faults(
        settings.clone(),
        async move {
            actix_rt::time::sleep(Duration::from_millis(1_500)).await;
            refuse.refuse_output(true);
        },
        Some(plan),
        |_| {},
    )
    .await;
    match &result {
        Err(kafka_actors::RunError::Failed {
            cause: kafka_actors::Failure::Stopped(actors::failure::StopCause::Output(failure)),
            summary,
        }) => {
            assert!(
                failure.to_string().contains(actors::faults::OUTPUT_REFUSED),
                "{failure}"
            );
            assert!(summary.metrics.frames > 0, "frames were read: {summary:?}");
        }
        other => panic!("expected the refused output to fail the stop: {other:?}"),
    }
    assert!(output(&out).is_empty(), "nothing written");
    assert!(
        committed(&settings.kafka, &all).is_empty(),
        "nothing committed"
    );
}
