//! The `kafka-actors` binary: the embedded default end to end, stopping by time and by SIGTERM,
//! and settings errors that name their key.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use actors::sink::WindowLine;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-actors"));
    // Run from the repository so config/default.toml is layered as in normal use.
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command.env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("KAFKA_ACTORS__") {
            command.env_remove(key);
        }
    }
    command
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
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
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
