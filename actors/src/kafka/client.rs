//! Client configuration: the service's defaults first, then `kafka.properties` (the raw
//! librdkafka passthrough), then the properties the delivery guarantee depends on, which
//! configuration may not override.

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// A broker that comes back is tried again within a second (librdkafka's default backs off up
/// to 10 s), so partitions resume soon after an outage. `kafka.properties` may override it.
pub(crate) const RECONNECT_BACKOFF_MAX: (&str, &str) = ("reconnect.backoff.max.ms", "1000");

/// The configuration shared by every client: brokers, then the user's properties.
pub(super) fn client_config(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.brokers.trim());
    config.set("client.id", client_id);
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// A consumer configuration for `group` that never commits or stores offsets on its own.
pub(super) fn consumer_config(
    kafka: &KafkaConfig,
    client_id: &str,
    defaults: &[(&str, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka.brokers.trim());
    config.set("client.id", client_id);
    config.set(RECONNECT_BACKOFF_MAX.0, RECONNECT_BACKOFF_MAX.1);
    // Records of aborted (and still open) transactions are never read (librdkafka's default,
    // set so that it shows); `kafka.properties` may choose read_uncommitted.
    config.set("isolation.level", "read_committed");
    for (key, value) in defaults {
        config.set(*key, value);
    }
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config.set("group.id", &kafka.group);
    config.set("enable.auto.commit", "false");
    config.set("enable.auto.offset.store", "false");
    config.set("enable.partition.eof", "true");
    // Positions are always explicit; a position that left the log (retention deleted it
    // before it was read) comes back as an error, and the reader applies
    // `kafka.auto_offset_reset` itself, so the skipped range is reported and counted rather
    // than only logged by librdkafka.
    config.set("auto.offset.reset", "error");
    config
}

/// The librdkafka settings the intake consumer starts from (before `kafka.properties`):
/// prefetch shared among `partitions`.
pub(super) fn intake_defaults(
    prefetch_frames: u64,
    prefetch_mib: u64,
    partitions: usize,
) -> Vec<(&'static str, String)> {
    let partitions = partitions.max(1) as u64;
    let kib = prefetch_mib * 1024;
    // librdkafka stops fetching a partition once its queue holds either limit.
    let per_partition_kib = (kib / partitions).clamp(64, 65_536);
    vec![
        (
            "queued.min.messages",
            (prefetch_frames / partitions).max(100).to_string(),
        ),
        ("queued.max.messages.kbytes", per_partition_kib.to_string()),
        // One fetch response may carry this much per partition and this much in all; it must
        // not be below `message.max.bytes` (1 000 000 by default).
        (
            "max.partition.fetch.bytes",
            (per_partition_kib * 1024).min(1_048_576).to_string(),
        ),
        (
            "fetch.max.bytes",
            (kib * 1024 / 4).clamp(1_048_576, 52_428_800).to_string(),
        ),
        // A fetch that finds nothing new comes back after at most this long, which bounds how
        // late a partition notices it has caught up.
        ("fetch.wait.max.ms", "100".to_owned()),
        // When a prefetch queue is full the fetcher pauses this long (default 1 s, a visible
        // stall); the readers drain their queues in milliseconds.
        ("fetch.queue.backoff.ms", "10".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarantee_properties_cannot_be_overridden_by_passthrough() {
        let mut kafka = KafkaConfig {
            group: "kafka-actors-partition".into(),
            ..KafkaConfig::default()
        };
        kafka
            .properties
            .insert("fetch.wait.max.ms".into(), "50".into());
        let config = consumer_config(&kafka, "t", &[("fetch.wait.max.ms", "500".into())]);
        assert_eq!(
            config.get("fetch.wait.max.ms"),
            Some("50"),
            "passthrough wins over service defaults"
        );
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("kafka-actors-partition"));
        let plain = client_config(&kafka, "p");
        assert_eq!(plain.get("fetch.wait.max.ms"), Some("50"));
    }

    fn setting(defaults: &[(&str, String)], key: &str) -> u64 {
        defaults
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.parse().unwrap())
            .unwrap()
    }

    #[test]
    fn prefetch_is_shared_among_partitions() {
        let few = intake_defaults(20_000, 64, 4);
        assert_eq!(setting(&few, "queued.min.messages"), 5_000);
        assert_eq!(setting(&few, "queued.max.messages.kbytes"), 16_384);
        assert_eq!(setting(&few, "max.partition.fetch.bytes"), 1_048_576);
        let many = intake_defaults(20_000, 64, 1_024);
        assert_eq!(setting(&many, "queued.min.messages"), 100);
        assert_eq!(setting(&many, "queued.max.messages.kbytes"), 64);
        assert_eq!(setting(&many, "max.partition.fetch.bytes"), 65_536);
        // Whole process: at most the budget, plus a floor per partition.
        for partitions in [1usize, 4, 256, 1_024] {
            let d = intake_defaults(20_000, 64, partitions);
            let total_kib = setting(&d, "queued.max.messages.kbytes") * partitions as u64;
            assert!(
                total_kib <= (64 * 1024).max(64 * partitions as u64),
                "{partitions}"
            );
            assert!(setting(&d, "fetch.max.bytes") >= 1_000_000);
        }
    }
}
