//! `compare` on a small data set: both models agree with the ground truth, the recovery
//! figures are measured, and the report and chart hold the figures.

use std::path::Path;
use std::process::Command;

/// `kafka-actors-lab`, run from the repository so config/default.toml is layered as in normal
/// use.
fn lab() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-actors-lab"));
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    command
}

#[test]
fn compare_reports_both_models_exact_with_report_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = lab()
        .args([
            "compare",
            "--frames",
            "20000",
            "--partitions",
            "4",
            "--rounds",
            "2",
            "--out",
        ])
        .arg(&out)
        // No group settings: compare sets what its recovery measurement needs itself.
        .env("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "5")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("partition model") && stdout.contains("group model"),
        "{stdout}"
    );
    assert!(
        stdout.contains("windows identical between models"),
        "{stdout}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["frames"], 20_000);
    assert_eq!(report["partitions"], 4);
    assert_eq!(
        report["windows"], 5,
        "20 event seconds in 5 s windows (and the one the jitter reaches)"
    );
    assert_eq!(report["models_agree"], true);
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 4, "2 rounds of each model");
    for round in rounds {
        assert_eq!(round["frames"], 20_000, "{round}");
        assert_eq!(round["windows_match_truth"], true, "{round}");
        assert!(round["frames_per_s"].as_f64().unwrap() > 0.0);
        assert!(round["cpu_us_per_frame"].as_f64().unwrap() > 0.0);
        assert!(round["first_frame_ms"].as_f64().unwrap() > 0.0);
        assert!(round["commits"].as_u64().unwrap() >= 1);
    }
    assert_eq!(
        report["recovery"]["partition_skipped_records"], 0,
        "no record was deleted before it was read"
    );
    assert_eq!(report["recovery"]["group_skipped_records"], 0);
    let restarts = report["recovery"]["partition_restart_ms"]
        .as_array()
        .unwrap();
    assert_eq!(restarts.len(), 3, "three partition restarts measured");
    assert!(restarts.iter().all(|ms| ms.as_f64().unwrap() > 0.0));
    assert!(
        report["recovery"]["group_member_leave_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{}",
        report["recovery"]
    );
    for model in ["partition", "group"] {
        assert_eq!(report[model]["windows_match_truth"], true);
        assert!(report[model]["frames_per_s"]["median"].as_f64().unwrap() > 0.0);
    }

    let chart = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(chart.starts_with("<svg"));
    for label in [
        "frames/s",
        "CPU µs per frame",
        "ms to first frame",
        "ms to end of data",
        "partition",
        "group",
    ] {
        assert!(chart.contains(label), "chart lacks {label}");
    }
    // Four panels, a bar per model each.
    assert!(chart.matches("<rect").count() >= 8);
}

/// Against brokers, compare produces its own data set into `kafka.topic`; a topic that already
/// holds records would fail the comparison for the wrong reason, so it is refused up front.
#[test]
fn compare_refuses_a_topic_that_already_holds_records() {
    let cluster = actors::kafka::EmbeddedCluster::start(1).unwrap();
    let kafka = actors::config::KafkaConfig {
        brokers: cluster.bootstrap_servers().to_owned(),
        topic: "busy".to_owned(),
        ..Default::default()
    };
    cluster.create_topic("busy", 2, 1).unwrap();
    let producer = actors::kafka::FrameProducer::new(&kafka).unwrap();
    producer
        .send(
            0,
            actors::topic::PartitionId::of("busy", 0),
            b"u",
            b"{\"ts\": 1, \"uid\": \"u\"}",
        )
        .unwrap();
    producer.flush(std::time::Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let output = lab()
        .args(["compare", "--frames", "1000", "--rounds", "1", "--brokers"])
        .arg(&kafka.brokers)
        .arg("--out")
        .arg(dir.path())
        .env("KAFKA_ACTORS__KAFKA__TOPIC", "busy")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("kafka.topic") && stderr.contains("already holds 1 records"),
        "{stderr}"
    );
}

/// Several processes per model need a real cluster: on the embedded one the group model's
/// members would repeat each other's windows (its coordinator refuses commits while a group
/// is joining), so `--instances` above 1 is refused there, naming the flag.
#[test]
fn compare_refuses_several_instances_on_the_embedded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let output = lab()
        .args(["compare", "--frames", "1000", "--instances", "3", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--instances") && stderr.contains("need a real cluster (--brokers)"),
        "{stderr}"
    );
}
