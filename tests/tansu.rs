//! Against a Kafka-compatible broker over TCP: Tansu (crates.io `tansu`, built with
//! `cargo install tansu --locked --features dynostore`), started on a loopback port for each
//! test with in-memory storage. Each test skips, saying so, when no `tansu` binary is found
//! (`TANSU_BIN`, then `PATH`, then `~/.cargo/bin`). Tansu leads every partition itself, so leader
//! changes are tested on the embedded cluster instead.

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actors::config::Assignment;
use common::*;
use kafka_actors::Model;

/// A Tansu broker for one test; killed when dropped.
struct Tansu {
    child: Child,
    bootstrap: String,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
}

fn start_tansu(test: &str) -> Option<Tansu> {
    let Some(binary) = tansu_binary() else {
        eprintln!("skipping {test}: no tansu binary (install: cargo install tansu --locked --features dynostore, or set TANSU_BIN)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(binary)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let tansu = Tansu {
        child,
        bootstrap: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&tansu.bootstrap).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {}",
            tansu.bootstrap
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(tansu)
}

#[actix::test]
async fn partition_model_until_end_on_tansu_matches_the_ground_truth() {
    let Some(tansu) = start_tansu("partition_model_until_end_on_tansu_matches_the_ground_truth")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(&tansu.bootstrap, &unique("frames"), &out);
    settings.run.until_end = true;
    actors::kafka::create_topic(&settings.kafka, 4, 1).unwrap();
    let report = produce(&settings, &data(20_000, 500.0, 0.01), 4);

    let run = kafka_actors::run(settings.clone(), std::future::pending())
        .await
        .unwrap();

    assert!(run.completed);
    assert_eq!(output(&out), report.truth.lines());
    assert_eq!(
        committed(&settings.kafka, &run.partitions),
        report.end_offsets
    );
    // Resuming from the committed offsets finds nothing more: the end is detected from the
    // fetches, not from Tansu's ListOffsets, which stops short of the last batch.
    let again = kafka_actors::run(settings, std::future::pending())
        .await
        .unwrap();
    assert!(again.completed);
    assert_eq!(again.summary.metrics.frames, 0);
    assert_eq!(output(&out), report.truth.lines());
}

#[actix::test]
async fn group_members_on_tansu_hand_partitions_over_at_their_last_commit() {
    let Some(tansu) =
        start_tansu("group_members_on_tansu_hand_partitions_over_at_their_last_commit")
    else {
        return;
    };
    let partitions = 4;
    let dir = tempfile::tempdir().unwrap();
    let mut base = settings(
        &tansu.bootstrap,
        &unique("frames"),
        &dir.path().join("unused"),
    );
    base.model = Model::Group;
    base.group.assignment = Assignment::Range;
    // Tansu holds a join for about half the session timeout.
    base.group.session_timeout_ms = 6_000;
    base.group.revoke_timeout_ms = 4_000;
    actors::kafka::create_topic(&base.kafka, partitions, 1).unwrap();
    // Tansu 0.6 answers a fetch from an offset inside a record batch with the next batch, so a
    // member resuming mid-batch would skip records (fixed after 0.6, tansu commit 87db6ea).
    // One record per batch keeps every commit on a batch boundary.
    let mut producing = base.clone();
    producing
        .kafka
        .properties
        .insert("batch.num.messages".into(), "1".into());
    let member = |name: &str| {
        let mut s = base.clone();
        s.sink.path = dir
            .path()
            .join(format!("{name}.jsonl"))
            .display()
            .to_string();
        s
    };
    let mut live = data(48_000, 400.0, 0.0);
    live.rate = 2_000;
    let generator = spawn_generator(&producing, &live, partitions);

    // A runs 16 s; B joins after 5 s and runs until after the data ends; C drains.
    let a = kafka_actors::run(member("a"), async {
        actix_rt::time::sleep(Duration::from_secs(16)).await
    });
    let b = async {
        actix_rt::time::sleep(Duration::from_secs(5)).await;
        kafka_actors::run(member("b"), async {
            actix_rt::time::sleep(Duration::from_secs(22)).await
        })
        .await
    };
    let (a, b) = futures::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    let report = actix_rt::task::spawn_blocking(move || wait_generator(generator))
        .await
        .unwrap();
    let mut c = member("c");
    c.run.until_end = true;
    assert!(
        kafka_actors::run(c, std::future::pending())
            .await
            .unwrap()
            .completed
    );

    // Every handover starts at the previous owner's last commit.
    let (handovers, _) = assert_handovers_at_last_commit(&[&a, &b]);
    assert!(handovers > 0, "partitions changed hands");

    // No frame lost. Tansu 0.6 does not keep commit metadata, so a member resuming a partition
    // cannot tell which of its windows were already written: it writes those windows again
    // from the commit on, as extra lines that can mix such partial replays with the shares it
    // owes (the service warns about it). So: every share of every window is named by a line,
    // every window's lines hold at least its frames, and the lines that are exact are counted.
    let mut named: BTreeMap<(i64, i32), u32> = BTreeMap::new();
    let mut frames: BTreeMap<i64, u64> = BTreeMap::new();
    let (mut exact_lines, mut other_lines) = (0, 0);
    for name in ["a", "b", "c"] {
        for line in output(&dir.path().join(format!("{name}.jsonl"))) {
            let expected = line
                .partitions
                .iter()
                .map(|p| report.truth.share(line.window_start, *p))
                .fold((0, 0), |acc, share| (acc.0 + share.0, acc.1 + share.1));
            if (line.unique_users, line.frames) == expected {
                exact_lines += 1;
            } else {
                other_lines += 1;
            }
            *frames.entry(line.window_start).or_default() += line.frames;
            for partition in &line.partitions {
                *named.entry((line.window_start, *partition)).or_default() += 1;
            }
        }
    }
    for expected in report.truth.lines() {
        assert!(
            frames.get(&expected.window_start).copied().unwrap_or(0) >= expected.frames,
            "window {} lost frames",
            expected.window_start
        );
        for partition in 0..partitions {
            if report.truth.share(expected.window_start, partition).1 > 0 {
                assert!(
                    named.contains_key(&(expected.window_start, partition)),
                    "window {} lost partition {partition}",
                    expected.window_start
                );
            }
        }
    }
    eprintln!("tansu, eager: {handovers} handovers, {exact_lines} exact lines, {other_lines} lines with replays");
    assert_eq!(
        committed(&base.kafka, &(0..partitions).collect::<Vec<_>>()),
        report.end_offsets
    );
}
