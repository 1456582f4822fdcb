//! The `kafka-actors` binary: the embedded default end to end, stopping by time and by SIGTERM,
//! settings errors that name their key, `layout` checking static instances, and `chaos` and
//! `compare` handed to the `kafka-actors-lab` binary.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use actors::line::WindowLine;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-actors"));
    // Run from the repository so config/default.toml is layered as in normal use.
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    common::without_service_env(&mut command);
    command
}

/// Sends SIGTERM to `child`.
fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn lines(text: &[u8]) -> Vec<WindowLine> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout holds only window lines: {l:?}: {e}"))
        })
        .collect()
}

#[test]
fn run_until_end_on_the_embedded_default_prints_exactly_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let output = binary()
        .args(["run", "--until-end"])
        .env("KAFKA_ACTORS__GENERATOR__FRAMES", "20000")
        .env("KAFKA_ACTORS__GENERATOR__RATE", "0")
        .env("KAFKA_ACTORS__GENERATOR__EVENT_RATE", "1000")
        .env("KAFKA_ACTORS__GENERATOR__START_TS", "1790000000")
        .env("KAFKA_ACTORS__GENERATOR__BAD_RATIO", "0.01")
        .env("KAFKA_ACTORS__GENERATOR__TRUTH_FILE", &truth)
        .env("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "5")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    let expected = common::output(&truth);
    // 20 event seconds in 5 s windows, and the jitter reaches back into the one before.
    assert_eq!(expected.len(), 5);
    assert_eq!(lines(&output.stdout), expected);
    assert!(
        stderr.contains("Started the embedded Kafka cluster"),
        "{stderr}"
    );
}

#[test]
fn for_duration_stops_gracefully_with_exit_status_zero() {
    let started = Instant::now();
    let output = binary().args(["run", "--for", "2s"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Run time is up; draining."), "{stderr}");
    assert!(stderr.contains("Stopped."), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn sigterm_stops_gracefully_after_writing_closed_windows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let child = binary()
        .args(["run"])
        .env("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "1")
        .env("KAFKA_ACTORS__WINDOW__LATENESS_SECS", "3")
        .env("KAFKA_ACTORS__GENERATOR__JITTER_SECS", "2")
        .env("KAFKA_ACTORS__SINK__KIND", "file")
        .env("KAFKA_ACTORS__SINK__PATH", &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(7));
    sigterm(&child);
    let Output { status, stderr, .. } = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("Shutdown requested; draining."), "{stderr}");
    assert!(stderr.contains("Stopped."), "{stderr}");
    let written = common::output(&out);
    assert!(
        !written.is_empty(),
        "1 s windows closed and were written before the stop"
    );
    assert!(
        written
            .windows(2)
            .all(|w| w[0].window_start < w[1].window_start),
        "each window once, in order"
    );
}

/// `kafka-actors run` on the embedded cluster with a sink that takes `delay_ms` per write and
/// a stop deadline of `timeout_ms`; SIGTERM after 4 s (`signals` times, 300 ms apart).
/// Returns the exit status, the time from the first signal to the exit, and stderr.
fn stop_with_hanging_sink(
    delay_ms: &str,
    timeout_ms: &str,
    signals: usize,
) -> (std::process::ExitStatus, Duration, String) {
    let dir = tempfile::tempdir().unwrap();
    let child = binary()
        .args(["run"])
        .env("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "1")
        .env("KAFKA_ACTORS__SINK__KIND", "file")
        .env("KAFKA_ACTORS__SINK__PATH", dir.path().join("w.jsonl"))
        .env("KAFKA_ACTORS__SINK__WRITE_DELAY_MS", delay_ms)
        .env("KAFKA_ACTORS__SHUTDOWN__TIMEOUT_MS", timeout_ms)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let signalled = Instant::now();
    for k in 0..signals {
        if k > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        sigterm(&child);
    }
    let Output { status, stderr, .. } = child.wait_with_output().unwrap();
    (
        status,
        signalled.elapsed(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn a_stop_that_misses_its_deadline_exits_non_zero_and_a_second_signal_exits_at_once() {
    // Every write takes 20 s: the stop cannot finish within its 1 s.
    let (status, took, stderr) = stop_with_hanging_sink("20000", "1000", 1);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}: {stderr}");
    assert!(stderr.contains("shutdown.timeout_ms (1000 ms)"), "{stderr}");
    // A second signal does not wait for the 60 s deadline.
    let (status, took, stderr) = stop_with_hanging_sink("20000", "60000", 2);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}: {stderr}");
    assert!(stderr.contains("Second signal while stopping"), "{stderr}");
}

#[test]
fn invalid_settings_fail_at_start_naming_the_key() {
    let output = binary()
        .args(["run"])
        .env("KAFKA_ACTORS__WINDOW__LENGHT_SECS", "30")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("window.lenght_secs"), "{stderr}");

    let output = binary()
        .args(["run"])
        .env("KAFKA_ACTORS__FLUSH__INTERVAL_MS", "often")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("flush.interval_ms"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"no-port\"\n[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n",
    )
    .unwrap();
    let output = binary()
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kafka.brokers"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "secrets stay out of errors: {stderr}"
    );

    let output = binary().args(["run", "--for", "soon"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--for"));
}

/// A directory under the target directory holding a hard link to the service binary (so
/// that the binary looks for `kafka-actors-lab` there), and that link's path.
fn service_alone() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let service = dir.path().join("kafka-actors");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_kafka-actors"), &service).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_kafka-actors"), &service).unwrap();
    }
    (dir, service)
}

/// A stand-in `kafka-actors-lab` in `dir` that prints each argument as `[ARG]` and exits
/// with `status`. A child shell writes it, so this process never holds it open for writing
/// (a child forked meanwhile would make running it fail with "text file busy").
fn fake_lab(dir: &std::path::Path, status: i32) {
    let script = format!("#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\nexit {status}\n");
    let written = Command::new("sh")
        .args(["-c", r#"printf '%s' "$1" > "$2" && chmod +x "$2""#, "sh"])
        .arg(script)
        .arg(dir.join("kafka-actors-lab"))
        .status()
        .unwrap();
    assert!(written.success());
}

#[test]
fn chaos_and_compare_hand_every_argument_to_the_lab_binary_next_to_the_service() {
    let (dir, service) = service_alone();
    fake_lab(dir.path(), 3);
    let output = Command::new(&service)
        .args(["compare", "--help", "--frames", "5", "-x", "two words"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "[compare]\n[--help]\n[--frames]\n[5]\n[-x]\n[two words]\n"
    );
    assert_eq!(output.status.code(), Some(3), "the lab's exit status");

    let output = Command::new(&service)
        .args(["chaos", "--scenario", "stall"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "[chaos]\n[--scenario]\n[stall]\n"
    );
}

#[test]
fn chaos_and_compare_find_the_lab_binary_on_path_or_say_how_to_build_it() {
    let (_dir, service) = service_alone();
    let elsewhere = tempfile::tempdir().unwrap();
    fake_lab(elsewhere.path(), 0);
    let output = Command::new(&service)
        .args(["chaos", "--help"])
        .env("PATH", elsewhere.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "[chaos]\n[--help]\n"
    );

    let nothing = tempfile::tempdir().unwrap();
    let output = Command::new(&service)
        .args(["compare", "--frames", "1000"])
        .env("PATH", nothing.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let next_to = service.parent().unwrap().display().to_string();
    for part in [
        "kafka-actors-lab",
        next_to.as_str(),
        "PATH",
        "cargo build --release -p kafka-actors-lab",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
}

/// With the real lab binary built next to the service (`cargo build`, or `cargo test
/// --workspace`, builds both), `chaos --help` and `compare --help` are the lab's.
#[test]
fn chaos_and_compare_help_is_the_lab_binarys() {
    let lab = std::path::Path::new(env!("CARGO_BIN_EXE_kafka-actors"))
        .with_file_name(format!("kafka-actors-lab{}", std::env::consts::EXE_SUFFIX));
    if !lab.is_file() {
        eprintln!(
            "skipping: no {} (cargo build -p kafka-actors-lab builds it)",
            lab.display()
        );
        return;
    }
    let output = binary().args(["chaos", "--help"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("Usage: kafka-actors-lab chaos"), "{stdout}");
    assert!(stdout.contains("--scenario <NAME|all>"), "{stdout}");
    assert!(stdout.contains("partition-panic"), "{stdout}");

    let output = binary().args(["compare", "--help"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("Usage: kafka-actors-lab compare"),
        "{stdout}"
    );
    assert!(stdout.contains("--rounds <ROUNDS>"), "{stdout}");
}

/// `layout` checks instance settings files against the topic's partitions: a partition read
/// by two instances or by none fails naming it; a layout that reads each once is printed.
#[test]
fn layout_names_partitions_read_twice_or_not_at_all() {
    let (cluster, topic) = common::cluster(6);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, share: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("[kafka]\ntopic = \"{topic}\"\n{share}\n")).unwrap();
        path
    };
    let even = file("even", "instance = \"0/2\"");
    let layout = |files: &[&std::path::Path]| {
        binary()
            .arg("layout")
            .args(files)
            .args(["--brokers", cluster.bootstrap_servers()])
            .output()
            .unwrap()
    };
    let missing = file(
        "missing",
        &format!("[kafka.partitions]\n\"{topic}\" = \"1,3\""),
    );
    let output = layout(&[&even, &missing]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("no instance reads {topic}-5")),
        "{stderr}"
    );
    let overlapping = file(
        "overlap",
        &format!("[kafka.partitions]\n\"{topic}\" = \"1-5\""),
    );
    let output = layout(&[&even, &overlapping]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for shared in [2, 4] {
        assert!(
            stderr.contains(&format!(
                "{topic}-{shared} is read by {} and {}",
                even.display(),
                overlapping.display()
            )),
            "{stderr}"
        );
    }
    let odd = file("odd", "instance = \"1/2\"");
    let output = layout(&[&even, &odd]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Each of the 6 partitions is read by exactly one instance")
            && stdout.contains(&format!("{}: {topic} 0,2,4", even.display()))
            && stdout.contains(&format!("{}: {topic} 1,3,5", odd.display())),
        "{stdout}"
    );
    let group = file("group", "");
    let output = binary()
        .args(["layout"])
        .arg(&group)
        .args(["--brokers", cluster.bootstrap_servers()])
        .env("KAFKA_ACTORS__MODEL", "group")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("partition model"));
}
