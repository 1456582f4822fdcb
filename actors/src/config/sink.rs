//! `[sink]` and `[sink.dead_letter]`: where closed windows and invalid records go, and how.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};
use super::secrets::redacted;

/// Where closed windows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// One JSON line per window on standard output.
    Stdout,
    /// Appended to `sink.path`, flushed and fsynced before the offsets it covers are committed.
    File,
    /// Produced to the topic `sink.topic` (`acks=all`, idempotent), acknowledged before the
    /// offsets it covers are committed; with `sink.exactly_once`, in one transaction with them.
    Kafka,
}

/// The output of closed windows.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `stdout`, `file` or `kafka`.
    pub kind: SinkKind,
    /// File to append to when `kind = "file"`.
    pub path: String,
    /// Write the partitions each line accounts for. Without this label a line that does not
    /// cover every partition of the topic (one of several instances of the group model) would
    /// pass for a total, so the service refuses to write one and stops with an error instead.
    pub label_partitions: bool,
    /// Fault injection: wait this long (milliseconds) before every write, as a slow output
    /// would. 0 (the default) writes at once.
    pub write_delay_ms: u64,
    /// `kind = "kafka"`: the topic each closed window is produced to, as the same JSON line
    /// the other sinks write, keyed by its window start and the partitions it covers (so a
    /// compacted topic keeps the latest line of each).
    pub topic: String,
    /// Kafka sink and dead letters: bootstrap brokers of the output cluster. Empty: the
    /// input's (`kafka.brokers`); the connection and security properties of
    /// `kafka.properties` (`security.protocol`, `ssl.*`, `sasl.*`, `socket.*`, `broker.*`,
    /// `reconnect.*`, `client.dns.lookup`) then apply to the producer too.
    pub brokers: String,
    /// Kafka sink and dead letters: raw librdkafka producer properties, applied after the
    /// service's defaults and the inherited connection properties. `acks`,
    /// `enable.idempotence`, `transactional.id` and `bootstrap.servers` are the service's own
    /// and rejected here. Values of keys that look like secrets are never logged.
    pub properties: BTreeMap<String, String>,
    /// Create `topic` and `dead_letter.topic` at start when they are missing (with
    /// `topic_partitions` partitions and the brokers' default replication). Off: a missing
    /// topic stops the start with an error naming it.
    pub create_topic: bool,
    /// Partitions of a topic `create_topic` creates.
    pub topic_partitions: i32,
    /// Kafka sink and dead letters: how long one attempt at delivering a flush's records may
    /// take until every in-sync replica has acknowledged them (librdkafka
    /// `message.timeout.ms`).
    pub delivery_timeout_ms: u64,
    /// Kafka sink and dead letters: how long a flush whose records were not acknowledged (or,
    /// exactly once, whose transaction was aborted) is tried again, in milliseconds. Nothing
    /// is committed meanwhile; past it, output stops with an error naming the topic and the
    /// broker's reason.
    pub retry_timeout_ms: u64,
    /// `kind = "kafka"`: each flush produces its windows and dead letters and commits the
    /// input offsets in one Kafka transaction, so a reader with `isolation.level =
    /// read_committed` sees every window exactly once, also after a crash. Needs Apache Kafka
    /// (or a broker that keeps transactional offsets): the embedded cluster does not.
    pub exactly_once: bool,
    /// Exactly once: the producer's transactional id. Empty: derived from the model. The
    /// partition model uses `<group>.<partitions read>`, so a second instance started on the
    /// same partitions fences the first; the group model uses `<group>.<group.instance_id>`
    /// for a static member, else `<group>.<host>.<pid>.<start ms>.<n>` (the group's
    /// generation fences a member that lost its partitions). See the README.
    pub transactional_id: String,
    /// Exactly once: how long the broker lets a transaction stay open before it aborts it
    /// (librdkafka `transaction.timeout.ms`). After a crash, readers with `read_committed`
    /// and the next owner of the partitions wait up to this long for the crashed process's
    /// open transaction, unless a restart with the same transactional id aborts it first.
    /// At least `delivery_timeout_ms`.
    pub transaction_timeout_ms: u64,
    /// Dead letters: where invalid frames go.
    pub dead_letter: DeadLetterConfig,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            kind: SinkKind::Stdout,
            path: String::new(),
            label_partitions: true,
            write_delay_ms: 0,
            topic: String::new(),
            brokers: String::new(),
            properties: BTreeMap::new(),
            create_topic: false,
            topic_partitions: 1,
            delivery_timeout_ms: 10_000,
            retry_timeout_ms: 120_000,
            exactly_once: false,
            transactional_id: String::new(),
            transaction_timeout_ms: 10_000,
            dead_letter: DeadLetterConfig::default(),
        }
    }
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("label_partitions", &self.label_partitions)
            .field("write_delay_ms", &self.write_delay_ms)
            .field("topic", &self.topic)
            .field("brokers", &self.brokers)
            .field("properties", &redacted(&self.properties))
            .field("create_topic", &self.create_topic)
            .field("topic_partitions", &self.topic_partitions)
            .field("delivery_timeout_ms", &self.delivery_timeout_ms)
            .field("retry_timeout_ms", &self.retry_timeout_ms)
            .field("exactly_once", &self.exactly_once)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout_ms", &self.transaction_timeout_ms)
            .field("dead_letter", &self.dead_letter)
            .finish()
    }
}

/// Producer properties the service sets itself (the delivery guarantee depends on them).
const RESERVED_PRODUCER_PROPERTIES: [&str; 4] = [
    "acks",
    "enable.idempotence",
    "transactional.id",
    "bootstrap.servers",
];

impl SinkConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.kind != SinkKind::File || !self.path.trim().is_empty(),
            "sink.path",
            "must be set when sink.kind = \"file\"",
        )?;
        check(
            self.kind != SinkKind::Kafka || !self.topic.trim().is_empty(),
            "sink.topic",
            "must be set when sink.kind = \"kafka\"",
        )?;
        check(
            !self.exactly_once || self.kind == SinkKind::Kafka,
            "sink.exactly_once",
            "needs sink.kind = \"kafka\": only a Kafka transaction writes results and commits \
             offsets as one",
        )?;
        check(
            self.write_delay_ms <= 600_000,
            "sink.write_delay_ms",
            "must be at most 600000",
        )?;
        check(
            (1..=10_000).contains(&self.topic_partitions),
            "sink.topic_partitions",
            "must be between 1 and 10000",
        )?;
        check(
            (1_000..=900_000).contains(&self.delivery_timeout_ms),
            "sink.delivery_timeout_ms",
            "must be between 1000 and 900000",
        )?;
        check(
            (0..=86_400_000).contains(&self.retry_timeout_ms),
            "sink.retry_timeout_ms",
            "must be between 0 and 86400000",
        )?;
        check(
            (1_000..=900_000).contains(&self.transaction_timeout_ms),
            "sink.transaction_timeout_ms",
            "must be between 1000 and 900000",
        )?;
        check(
            !self.exactly_once || self.delivery_timeout_ms <= self.transaction_timeout_ms,
            "sink.delivery_timeout_ms",
            "must not exceed sink.transaction_timeout_ms with sink.exactly_once (a record may \
             not outlive its transaction)",
        )?;
        for key in self.properties.keys() {
            if RESERVED_PRODUCER_PROPERTIES.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    format!("sink.properties.{key}"),
                    "is set by the service (acks=all, idempotence, transactions and brokers \
                     follow from the sink's settings)",
                ));
            }
        }
        check(
            self.transactional_id.len() <= 200,
            "sink.transactional_id",
            "must be at most 200 bytes",
        )?;
        self.dead_letter.validate()
    }

    /// Whether a producer is needed: the Kafka sink, or dead letters.
    pub fn produces(&self) -> bool {
        self.kind == SinkKind::Kafka || self.dead_letter.enabled()
    }
}

/// Dead letters: invalid frames produced unchanged to a topic of their own, with headers
/// naming where they came from and why they are invalid, instead of only being counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// The dead-letter topic (on the output cluster: `sink.brokers`, or the input's). Empty:
    /// invalid frames are counted and skipped. With `sink.exactly_once` they go in the same
    /// transaction as the windows.
    pub topic: String,
    /// With a dead-letter topic: a partition that delivers this many invalid frames in a row
    /// stops the service with an error naming it (a producer writing another format should
    /// page someone, not fill a topic). 0: no limit.
    pub max_consecutive: u64,
    /// With a dead-letter topic: a partition where more than this share (0 to 1) of
    /// `share_of` consecutive records is invalid stops the service with an error naming it.
    /// 1: no limit.
    pub max_share: f64,
    /// The number of records `max_share` is taken over, counted in blocks per partition.
    pub share_of: u64,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            topic: String::new(),
            max_consecutive: 1_000,
            max_share: 0.5,
            share_of: 10_000,
        }
    }
}

impl DeadLetterConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (0.0..=1.0).contains(&self.max_share),
            "sink.dead_letter.max_share",
            "must be between 0 and 1",
        )?;
        check(
            (1..=100_000_000).contains(&self.share_of),
            "sink.dead_letter.share_of",
            "must be between 1 and 100000000",
        )
    }

    /// Whether invalid frames are dead-lettered.
    pub fn enabled(&self) -> bool {
        !self.topic.trim().is_empty()
    }

    /// What a partition does with invalid frames.
    pub fn policy(&self) -> crate::frame::InvalidPolicy {
        match self.enabled() {
            true => crate::frame::InvalidPolicy {
                dead_letter: true,
                max_consecutive: self.max_consecutive,
                max_share: self.max_share,
                share_of: self.share_of,
            },
            false => crate::frame::InvalidPolicy::default(),
        }
    }
}
