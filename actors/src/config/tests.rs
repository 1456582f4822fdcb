use super::*;

/// Kafka settings reading `topics`, with `partitions` and `instance` selecting among them.
fn kafka(topics: &[&str], partitions: &[(&str, &str)], instance: &str) -> KafkaConfig {
    KafkaConfig {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        partitions: partitions
            .iter()
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect(),
        instance: instance.into(),
        ..KafkaConfig::default()
    }
}

#[test]
fn config_keys_are_named_when_wrong() {
    let err = |k: KafkaConfig| k.validate().unwrap_err().key;
    assert_eq!(
        err(kafka(&["a"], &[("a", "0-x")], "")),
        "kafka.partitions.a"
    );
    assert_eq!(err(kafka(&["a"], &[("b", "0")], "")), "kafka.partitions.b");
    assert_eq!(err(kafka(&["a"], &[("a", "0")], "0/2")), "kafka.instance");
    for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
        assert_eq!(err(kafka(&["a"], &[], bad)), "kafka.instance", "{bad}");
    }
    assert_eq!(
        kafka(&["a"], &[], " 1/3 ").selection().unwrap(),
        crate::layout::Selection::Instance { index: 1, count: 3 }
    );
}

#[test]
fn defaults_are_valid() {
    KafkaConfig::default().validate().unwrap();
    EmbeddedConfig::default().validate().unwrap();
    GeneratorConfig::default().validate().unwrap();
    PartitionConfig::default().validate().unwrap();
    FrameConfig::default().validate().unwrap();
    WindowConfig::default().validate().unwrap();
    FlushConfig::default().validate().unwrap();
    SinkConfig::default().validate().unwrap();
    SupervisorConfig::default().validate().unwrap();
}

#[test]
fn restart_backoff_doubles_up_to_its_cap() {
    let config = SupervisorConfig {
        backoff_initial_ms: 100,
        backoff_max_ms: 1_000,
        ..SupervisorConfig::default()
    };
    let waits: Vec<u64> = (1..=6)
        .map(|attempt| config.backoff(attempt).as_millis() as u64)
        .collect();
    assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
    assert_eq!(config.backoff(500).as_millis(), 1_000, "no overflow");
}

#[test]
fn supervisor_values_name_their_key() {
    let stall = SupervisorConfig {
        stall_timeout_ms: 500,
        ..SupervisorConfig::default()
    };
    assert_eq!(
        stall.validate().unwrap_err().key,
        "supervisor.stall_timeout_ms"
    );
    let backoff = SupervisorConfig {
        backoff_initial_ms: 5_000,
        backoff_max_ms: 1_000,
        ..SupervisorConfig::default()
    };
    assert_eq!(
        backoff.validate().unwrap_err().key,
        "supervisor.backoff_max_ms"
    );
    let sink = SinkConfig {
        write_delay_ms: 700_000,
        ..SinkConfig::default()
    };
    assert_eq!(sink.validate().unwrap_err().key, "sink.write_delay_ms");
}

#[test]
fn invalid_values_name_their_key() {
    let kafka = KafkaConfig {
        brokers: "localhost:9092,nohost".into(),
        ..KafkaConfig::default()
    };
    assert_eq!(kafka.validate().unwrap_err().key, "kafka.brokers");
    let kafka = KafkaConfig {
        topic: "bad topic".into(),
        ..KafkaConfig::default()
    };
    assert_eq!(kafka.validate().unwrap_err().key, "kafka.topic");
    let mut kafka = KafkaConfig::default();
    kafka
        .properties
        .insert("enable.auto.commit".into(), "true".into());
    assert_eq!(
        kafka.validate().unwrap_err().key,
        "kafka.properties.enable.auto.commit"
    );
    let window = WindowConfig {
        length_secs: 0,
        ..WindowConfig::default()
    };
    assert_eq!(window.validate().unwrap_err().key, "window.length_secs");
    let sink = SinkConfig {
        kind: SinkKind::File,
        path: String::new(),
        ..SinkConfig::default()
    };
    assert_eq!(sink.validate().unwrap_err().key, "sink.path");
    let generator = GeneratorConfig {
        bad_ratio: 1.5,
        ..GeneratorConfig::default()
    };
    assert_eq!(generator.validate().unwrap_err().key, "generator.bad_ratio");
}

#[test]
fn frame_times_are_bounded_so_every_window_can_be_written() {
    let frames = FrameConfig {
        max_ts: 1e15,
        ..FrameConfig::default()
    };
    let error = frames.validate().unwrap_err();
    assert_eq!(error.key, "frames.max_ts");
    assert!(error.reason.contains("9999"), "{}", error.reason);
    let latest = FrameConfig {
        max_ts: MAX_TS_LIMIT,
        ..FrameConfig::default()
    };
    assert!(latest.validate().is_ok());
    // The latest window start and end that a frame at max_ts gives still format.
    let start = crate::frame::window_start(MAX_TS_LIMIT, 86_400);
    assert!(crate::line::rfc3339(start + 86_400).starts_with("9999-12-31"));
    // With no limit on the future, only the plausibility range applies.
    let open = FrameConfig {
        max_future_secs: 0,
        ..FrameConfig::default()
    };
    assert!(open.limits().future_after.is_infinite());
}

#[test]
fn debug_output_redacts_secret_properties() {
    let mut kafka = KafkaConfig::default();
    kafka
        .properties
        .insert("sasl.password".into(), "hunter2".into());
    kafka
        .properties
        .insert("ssl.key.password".into(), "swordfish".into());
    kafka
        .properties
        .insert("fetch.wait.max.ms".into(), "50".into());
    let shown = format!("{kafka:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("swordfish"),
        "{shown}"
    );
    assert!(
        shown.contains("fetch.wait.max.ms") && shown.contains("50"),
        "{shown}"
    );
}
