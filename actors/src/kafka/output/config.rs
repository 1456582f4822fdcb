//! The output producer's settings and the output topics: which of the input's properties
//! apply, what the guarantee fixes, and whether the topics exist (created when allowed).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::ClientConfig;

use super::OutletError;
use crate::config::{KafkaConfig, SinkConfig};
use crate::kafka::client::RECONNECT_BACKOFF_MAX;
use crate::kafka::error::AdapterError;
use crate::kafka::lookup::LOOKUP_TIMEOUT;

/// Hears delivery reports: which records (by index in the batch being delivered) failed.
#[derive(Default)]
pub(crate) struct Acks {
    pub(super) failed: Mutex<Vec<(usize, String)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((error, _)) = result {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((index, error.to_string()));
        }
    }
}

/// Properties of `kafka.properties` that say how to reach and authenticate to the cluster:
/// they apply to the output producer when it writes to the input's cluster.
fn is_connection_property(key: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "security.protocol",
        "ssl.",
        "sasl.",
        "socket.",
        "broker.",
        "reconnect.",
        "client.dns.lookup",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || key == "enable.ssl.certificate.verification"
}

/// The output producer's configuration; `extra` comes last (the transactional settings).
pub(super) fn producer_config(
    kafka: &KafkaConfig,
    sink: &SinkConfig,
    client_id: &str,
    extra: &[(&str, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    let same_cluster = sink.brokers.trim().is_empty();
    let brokers = match same_cluster {
        true => kafka.brokers.trim(),
        false => sink.brokers.trim(),
    };
    config.set("bootstrap.servers", brokers);
    config.set("client.id", client_id);
    config.set(RECONNECT_BACKOFF_MAX.0, RECONNECT_BACKOFF_MAX.1);
    config.set("linger.ms", "5");
    config.set("message.timeout.ms", sink.delivery_timeout_ms.to_string());
    // The output topics are checked (or created) at start; a record must never create one.
    config.set("allow.auto.create.topics", "false");
    if same_cluster {
        for (key, value) in kafka
            .properties
            .iter()
            .filter(|(k, _)| is_connection_property(k))
        {
            config.set(key, value);
        }
    }
    for (key, value) in &sink.properties {
        config.set(key, value);
    }
    config.set("acks", "all");
    config.set("enable.idempotence", "true");
    for (key, value) in extra {
        config.set(*key, value);
    }
    config
}

/// The input's connection settings pointed at the output cluster, for the admin client that
/// creates output topics.
pub(super) fn output_cluster(kafka: &KafkaConfig, sink: &SinkConfig) -> KafkaConfig {
    let mut properties: std::collections::BTreeMap<String, String> = match sink.brokers.trim() {
        "" => kafka
            .properties
            .iter()
            .filter(|(k, _)| is_connection_property(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Default::default(),
    };
    properties.extend(
        sink.properties
            .iter()
            .filter(|(k, _)| is_connection_property(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    KafkaConfig {
        brokers: match sink.brokers.trim() {
            "" => kafka.brokers.clone(),
            other => other.to_owned(),
        },
        properties,
        ..KafkaConfig::default()
    }
}

/// Checks that `topic` exists on the output cluster, creating it when `sink.create_topic`
/// says so.
pub(super) fn ensure_topic(
    producer: &BaseProducer<Acks>,
    kafka: &KafkaConfig,
    sink: &SinkConfig,
    topic: &str,
    key: &'static str,
) -> Result<(), OutletError> {
    let exists = |producer: &BaseProducer<Acks>| -> Result<bool, OutletError> {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
            .map_err(|source| AdapterError::Metadata {
                topic: topic.to_owned(),
                source,
            })?;
        Ok(metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    };
    if exists(producer)? {
        return Ok(());
    }
    if !sink.create_topic {
        return Err(OutletError::TopicMissing {
            topic: topic.to_owned(),
            key,
        });
    }
    crate::kafka::admin::create_topic(
        &output_cluster(kafka, sink),
        topic,
        sink.topic_partitions,
        -1,
    )?;
    tracing::info!(
        topic,
        partitions = sink.topic_partitions,
        "Created the output topic."
    );
    // The new topic's metadata reaches every broker within moments.
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    while !exists(producer)? {
        if Instant::now() > deadline {
            return Err(OutletError::TopicMissing {
                topic: topic.to_owned(),
                key,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_takes_connection_properties_from_the_input_only_for_the_same_cluster() {
        let mut kafka = KafkaConfig {
            brokers: "in:9092".into(),
            ..KafkaConfig::default()
        };
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "pw"),
            ("fetch.wait.max.ms", "50"),
        ] {
            kafka.properties.insert(k.into(), v.into());
        }
        let mut sink = SinkConfig::default();
        sink.properties.insert("linger.ms".into(), "20".into());
        let same = producer_config(&kafka, &sink, "c", &[]);
        assert_eq!(same.get("bootstrap.servers"), Some("in:9092"));
        assert_eq!(same.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(same.get("sasl.password"), Some("pw"));
        assert_eq!(same.get("fetch.wait.max.ms"), None, "consumer-only");
        assert_eq!(same.get("linger.ms"), Some("20"));
        assert_eq!(same.get("acks"), Some("all"));
        assert_eq!(same.get("enable.idempotence"), Some("true"));
        assert_eq!(same.get("allow.auto.create.topics"), Some("false"));
        sink.brokers = "out:9092".into();
        let other = producer_config(&kafka, &sink, "c", &[]);
        assert_eq!(other.get("bootstrap.servers"), Some("out:9092"));
        assert_eq!(other.get("security.protocol"), None);
        assert_eq!(output_cluster(&kafka, &sink).brokers, "out:9092");
    }
}
