//! The admin HTTP endpoint, through real HTTP requests to the bound port: health, readiness,
//! status and Prometheus metrics (parsed with a Prometheus text parser) while the service
//! reads the embedded cluster; a taken port stops the start naming the key.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET http://127.0.0.1:port/path`: the status code and body; `None` when nothing answers.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    actix_rt::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        match agent.get(&url).call() {
            Ok(response) => Some((response.status(), response.into_string().ok()?)),
            Err(ureq::Error::Status(code, response)) => {
                Some((code, response.into_string().unwrap_or_default()))
            }
            Err(ureq::Error::Transport(_)) => None,
        }
    })
    .await
    .expect("request thread")
}

/// Polls `path` until `done` holds for its answer (up to 30 s).
async fn until(port: u16, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((code, body)) = get(port, path).await {
            if done(code, &body) {
                return (code, body);
            }
            assert!(
                Instant::now() < deadline,
                "{path} still answers {code}: {body}"
            );
        } else {
            assert!(Instant::now() < deadline, "{path}: nothing answers");
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix::test]
async fn health_readiness_status_and_prometheus_metrics_over_http() {
    let partitions = 4;
    let (cluster, topic) = cluster(partitions);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &out);
    let port = free_port();
    settings.admin.port = port;
    let report = produce(&settings, &data(12_000, 500.0, 0.05), partitions);
    let invalid: u64 = report.truth.invalid.values().sum();
    let valid = report.delivered - invalid;
    assert!(invalid > 0);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = actix_rt::spawn(kafka_actors::run(settings.clone(), async move {
        let _ = stopped.await;
    }));

    // Ready once every partition's reader has answered; alive throughout.
    let (_, ready) = until(port, "/readyz", |code, _| code == 200).await;
    assert_eq!(ready.trim(), "ready: 4 partitions");
    assert_eq!(get(port, "/healthz").await, Some((200, "ok\n".into())));
    assert_eq!(get(port, "/livez").await, Some((200, "ok\n".into())));

    // Every frame read, and the first statistics (every second) named the leaders: the status
    // shows each partition at its end.
    let (_, status) = until(port, "/status", |_, body| {
        serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
            v["frames"].as_u64() == Some(valid)
                && v["partitions"]
                    .as_object()
                    .is_some_and(|p| p.values().all(|e| e["leader"].as_i64().is_some()))
        })
    })
    .await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["model"], "partition");
    assert_eq!(status["phase"], "running");
    assert_eq!(status["ready"], true);
    assert_eq!(status["lag"], 0);
    let parts = status["partitions"].as_object().unwrap();
    assert_eq!(parts.len(), partitions as usize);
    for (partition, end) in &report.end_offsets {
        let entry = &parts[&partition.to_string()];
        assert_eq!(entry["state"], "reading", "{entry}");
        assert_eq!(entry["position"].as_i64(), Some(*end), "{entry}");
        assert_eq!(entry["lag"], 0, "{entry}");
        assert!(entry["leader"].as_i64().is_some(), "{entry}");
        assert!(entry["event_time"].as_f64().is_some(), "{entry}");
        assert_eq!(entry["restarts"], 0, "{entry}");
    }

    // Prometheus text, parsed: per-partition frames and invalid frames by reason add up.
    let (code, text) = get(port, "/metrics").await.expect("metrics answer");
    assert_eq!(code, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let value = |sample: &prometheus_parse::Sample| match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{sample:?} is not a number"),
    };
    let series = |name: &str| -> Vec<&prometheus_parse::Sample> {
        scrape.samples.iter().filter(|s| s.metric == name).collect()
    };
    let frames = series("kafka_actors_frames_total");
    assert_eq!(frames.len(), partitions as usize);
    for sample in &frames {
        assert_eq!(sample.labels.get("topic"), Some(topic.as_str()));
        assert!(sample.labels.get("partition").is_some());
    }
    assert_eq!(frames.iter().map(|s| value(s)).sum::<f64>(), valid as f64);
    let mut by_reason: BTreeMap<String, f64> = BTreeMap::new();
    for sample in series("kafka_actors_invalid_frames_total") {
        *by_reason
            .entry(sample.labels.get("reason").unwrap().to_owned())
            .or_default() += value(sample);
    }
    let expected: BTreeMap<String, f64> = report
        .truth
        .invalid
        .iter()
        .map(|(reason, n)| (reason.as_str().to_owned(), *n as f64))
        .collect();
    assert_eq!(by_reason, expected);
    for sample in series("kafka_actors_lag") {
        assert_eq!(value(sample), 0.0, "{sample:?}");
    }
    assert_eq!(series("kafka_actors_lag").len(), partitions as usize);
    assert_eq!(value(series("kafka_actors_rebalances_total")[0]), 1.0);
    let failures = series("kafka_actors_commit_failures_total");
    assert_eq!(failures.len(), 3, "one series per kind: {failures:?}");
    assert!(failures.iter().all(|s| value(s) == 0.0));
    let event_times = series("kafka_actors_event_time_seconds");
    assert_eq!(event_times.len(), partitions as usize);
    let watermark = value(series("kafka_actors_watermark_seconds")[0]);
    assert!(event_times.iter().all(|s| value(s) >= watermark));
    assert!(series("kafka_actors_open_window_uids")
        .iter()
        .any(|s| value(s) > 0.0));
    let histogram = series("kafka_actors_process_frame_seconds");
    let [sample] = histogram.as_slice() else {
        panic!("one process_frame_seconds histogram: {histogram:?}");
    };
    let prometheus_parse::Value::Histogram(buckets) = &sample.value else {
        panic!("{sample:?} is not a histogram");
    };
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite());
    assert_eq!(
        last.count, report.delivered as f64,
        "one sample per record read"
    );
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));

    stop.send(()).unwrap();
    let run = service.await.unwrap().unwrap();
    assert_eq!(run.summary.metrics.frames, valid);
    // The endpoint stops with the service.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port, "/healthz").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the endpoint outlived the service"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix::test]
async fn a_port_already_taken_stops_the_start_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (cluster, topic) = cluster(1);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &dir.path().join("w"));
    settings.admin.port = taken.local_addr().unwrap().port();
    let error = kafka_actors::run(settings, std::future::pending())
        .await
        .expect_err("the port is taken");
    let text = kafka_actors::error_chain(&error);
    assert!(text.contains("admin.port"), "{text}");
    assert!(text.contains("in use"), "{text}");
}

/// A sink that hangs: a flush running past `admin.flush_ttl_ms` fails liveness (a restart
/// would cure it), while the process stays healthy.
#[actix::test]
async fn a_flush_that_runs_past_its_limit_fails_liveness() {
    let (cluster, topic) = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &dir.path().join("w"));
    let port = free_port();
    settings.admin.port = port;
    settings.admin.flush_ttl_ms = 1_000;
    settings.sink.write_delay_ms = 30_000;
    produce(&settings, &data(2_000, 100.0, 0.0), 2);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = actix_rt::spawn(kafka_actors::run(settings, async move {
        let _ = stopped.await;
    }));
    let (_, why) = until(port, "/livez", |code, _| code == 503).await;
    assert!(why.contains("admin.flush_ttl_ms"), "{why}");
    assert_eq!(get(port, "/healthz").await.map(|r| r.0), Some(200));
    stop.send(()).unwrap();
    let _ = service.await;
}

/// A group member's status names its generation and member id, and it is ready once the
/// coordinator assigned it partitions and they are read.
#[actix::test]
async fn a_group_members_status_names_its_generation_and_member_id() {
    let (cluster, topic) = cluster(2);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(cluster.bootstrap_servers(), &topic, &dir.path().join("w"));
    settings.model = kafka_actors::settings::Model::Group;
    settings.group.session_timeout_ms = 3_000;
    settings.group.revoke_timeout_ms = 2_000;
    let port = free_port();
    settings.admin.port = port;
    produce(&settings, &data(2_000, 100.0, 0.0), 2);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = actix_rt::spawn(kafka_actors::run(settings, async move {
        let _ = stopped.await;
    }));
    until(port, "/readyz", |code, _| code == 200).await;
    let (_, status) = until(port, "/status", |_, body| body.contains("member_id")).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["model"], "group");
    assert!(
        status["group"]["generation"].as_i64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        !status["group"]["member_id"].as_str().unwrap().is_empty(),
        "{status}"
    );
    assert_eq!(
        status["partitions"].as_object().unwrap().len(),
        2,
        "{status}"
    );
    stop.send(()).unwrap();
    let _ = service.await;
}
