//! Secrets never appear: a canary value set in every sensitive librdkafka property (and in a
//! misspelt one) must be in none of stdout, stderr or the admin endpoint's answers, whether
//! the service starts normally, meets a misspelt or unsupported property or TLS material
//! librdkafka refuses, cannot reach its broker, or stops on a configuration error.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

const CANARY: &str = "CANARY-7f3a9-do-not-print";

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-actors"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    common::without_service_env(&mut command);
    command
}

/// Runs `kafka-actors run` with `settings` (TOML) and `args`; while it runs, asks the admin
/// endpoint (on `port`, when given) for every path. Returns everything it printed and
/// answered.
fn run(settings: &str, args: &[&str], port: Option<u16>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.toml");
    std::fs::write(&file, settings).unwrap();
    let mut command = binary();
    command
        .args(["run", "--config"])
        .arg(&file)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(port) = port {
        command.env("KAFKA_ACTORS__ADMIN__PORT", port.to_string());
    }
    let child = command.spawn().unwrap();
    let mut answers = String::new();
    if let Some(port) = port {
        std::thread::sleep(Duration::from_secs(3));
        for path in ["/healthz", "/readyz", "/livez", "/metrics", "/status"] {
            let url = format!("http://127.0.0.1:{port}{path}");
            match ureq::get(&url).call() {
                Ok(response) => answers.push_str(&response.into_string().unwrap_or_default()),
                Err(ureq::Error::Status(_, response)) => {
                    answers.push_str(&response.into_string().unwrap_or_default());
                }
                Err(error) => panic!("{path}: {error}"),
            }
        }
        assert!(answers.contains("kafka_actors_frames_total"), "{answers}");
    }
    let output = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}{answers}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), all)
}

fn properties(pairs: &[(&str, &str)]) -> String {
    let mut text = String::from("[kafka.properties]\n");
    for (key, value) in pairs {
        text.push_str(&format!("\"{key}\" = \"{value}\"\n"));
    }
    text
}

fn assert_clean(case: &str, all: &str) {
    assert!(
        !all.contains(CANARY),
        "{case}: the canary leaked:\n{}",
        all.lines()
            .filter(|l| l.contains(CANARY))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_secret_in_a_property_appears_nowhere() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    // A normal start on the embedded cluster with secrets set (unused over PLAINTEXT), asked
    // over HTTP while it runs.
    let accepted = properties(&[
        ("sasl.password", CANARY),
        ("sasl.username", "reader"),
        ("ssl.key.password", CANARY),
        ("ssl.keystore.password", CANARY),
        ("sasl.oauthbearer.config", CANARY),
    ]);
    let (ok, all) = run(&accepted, &["--for", "6s"], Some(port));
    assert!(ok, "{all}");
    assert_clean("normal start", &all);

    // A misspelt key, and a property this build does not support (OIDC needs libcurl): the
    // start fails naming the property.
    for key in ["sasl.pasword", "sasl.oauthbearer.client.secret"] {
        let settings = format!(
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n{}",
            properties(&[(key, CANARY)])
        );
        let (ok, all) = run(&settings, &[], None);
        assert!(!ok, "{key}: {all}");
        assert!(
            all.contains(key),
            "{key}: the error names the property: {all}"
        );
        assert_clean(key, &all);
    }

    // The same in the output producer's own properties (Kafka sink on the embedded cluster).
    let settings = format!(
        "[sink]\nkind = \"kafka\"\ntopic = \"out\"\n[sink.properties]\n\"sasl.pasword\" = \"{CANARY}\"\n"
    );
    let (ok, all) = run(&settings, &[], None);
    assert!(!ok && all.contains("sasl.pasword"), "{all}");
    assert_clean("output producer property", &all);

    // librdkafka refuses the TLS material when it creates the client.
    let settings = format!(
        "[kafka]\nbrokers = \"127.0.0.1:1\"\n{}",
        properties(&[
            ("security.protocol", "SSL"),
            ("ssl.key.pem", CANARY),
            ("ssl.certificate.pem", CANARY),
            ("ssl.key.password", CANARY),
        ])
    );
    let (ok, all) = run(&settings, &[], None);
    assert!(!ok && all.contains("ssl.certificate.pem"), "{all}");
    assert_clean("TLS material refused", &all);

    // An unreachable broker, spoken to with SASL: the start fails after its look-ups.
    let settings = format!(
        "[kafka]\nbrokers = \"127.0.0.1:1\"\n{}",
        properties(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "reader"),
            ("sasl.password", CANARY),
        ])
    );
    let (ok, all) = run(&settings, &[], None);
    assert!(!ok, "{all}");
    assert_clean("unreachable broker", &all);

    // A configuration error elsewhere: the start fails naming that key.
    let settings = format!(
        "[window]\nlength_secs = 0\n{}",
        properties(&[("sasl.password", CANARY)])
    );
    let (ok, all) = run(&settings, &[], None);
    assert!(!ok && all.contains("window.length_secs"), "{all}");
    assert_clean("config error", &all);
}

/// An authentication failure on the Apache Kafka test cluster's SASL_SSL listener (a wrong
/// password that is the canary) stops the start naming the broker and the mechanism, and the
/// canary is in nothing the process printed.
#[test]
fn an_authentication_failure_prints_no_secret() {
    let Some(kafka) = common::real::RealKafka::get("an_authentication_failure_prints_no_secret")
    else {
        return;
    };
    let answer = kafka.control(&["secure"]);
    let mut lines = answer.lines();
    let (bootstrap, ca) = (lines.next().unwrap(), lines.next().unwrap());
    let settings = format!(
        "[kafka]\nbrokers = \"{bootstrap}\"\n{}",
        properties(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "reader"),
            ("sasl.password", CANARY),
            ("ssl.ca.location", ca),
        ])
    );
    let (ok, all) = run(&settings, &[], None);
    assert!(!ok, "{all}");
    assert!(
        all.contains("SCRAM-SHA-256") && all.contains("Authentication failed"),
        "{all}"
    );
    assert_clean("authentication failure", &all);
}

/// Every file under `dir`, read as text (lossily).
fn files_text(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.push_str(&files_text(&path));
        } else {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    all
}

/// `compare` and `chaos` (the lab, through the service binary) with a secret in their
/// settings: the canary is in neither their output nor any report file they write.
#[test]
fn the_lab_reports_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(
        &settings,
        properties(&[("sasl.password", CANARY), ("sasl.username", "reader")]),
    )
    .unwrap();
    for (tool, args) in [
        ("compare", vec!["--frames", "5000", "--rounds", "1"]),
        (
            "chaos",
            vec![
                "--scenario",
                "partition-panic",
                "--model",
                "partition",
                "--frames",
                "2000",
            ],
        ),
    ] {
        let out = dir.path().join(tool);
        let output = binary()
            .arg(tool)
            .arg("--config")
            .arg(&settings)
            .args(&args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{tool}: {printed}");
        let reports = files_text(&out);
        assert!(!reports.is_empty(), "{tool} wrote reports");
        assert_clean(tool, &format!("{printed}{reports}"));
    }
}
