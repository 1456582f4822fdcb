//! `[kafka]`: the input cluster, topics, group, which partitions this instance reads, and the
//! client properties passed through to librdkafka.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};
use super::secrets::redacted;

/// Where a partition starts when its group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest retained record.
    Earliest,
    /// The end of the partition: only records produced from now on.
    Latest,
    /// Fail the partition instead of guessing.
    Error,
}

impl OffsetReset {
    /// The librdkafka spelling of this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::Error => "error",
        }
    }
}

/// What happens to a committed position that lies outside its partition's log: records were
/// deleted before they were read (retention, truncation), or the position lies past the end
/// (the topic was recreated, or an unclean election lost records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfRange {
    /// Stop with an error naming the partition, the position and the log's bounds.
    Stop,
    /// Read on from the first offset still in the log, counting the records passed over.
    Earliest,
    /// Read on from the end of the log, counting the records passed over.
    Latest,
}

impl OutOfRange {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OutOfRange::Stop => "stop",
            OutOfRange::Earliest => "earliest",
            OutOfRange::Latest => "latest",
        }
    }
}

/// How to reach Kafka and what to consume.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `HOST:PORT[,HOST:PORT..]`. Empty: start the embedded cluster and the
    /// frame generator in-process.
    pub brokers: String,
    /// The input topic: shorthand for `topics = [topic]`. Setting both is an error; with
    /// neither set the input is the topic `frames`.
    pub topic: String,
    /// The input topics. Their frames go into the same windows; partitions are named by topic
    /// and index everywhere.
    pub topics: Vec<String>,
    /// Partition model only: the partitions of each topic this instance reads, as a list of
    /// indices and ranges (`frames = "0-3,8"`). A topic not listed is not read. Empty: every
    /// partition (or those `instance` picks).
    pub partitions: BTreeMap<String, String>,
    /// Partition model only: `i/N` reads every partition whose index is `i` modulo `N`, of
    /// every input topic, so `N` instances numbered `0..N` read each partition once. Empty:
    /// every partition (or those `partitions` lists).
    pub instance: String,
    /// Consumer group that holds the committed offsets. Empty: `kafka-actors-partition` for the
    /// partition model, `kafka-actors-group` for the group model (a group with subscribed
    /// members refuses commits from a consumer that only assigns, so the two never share one).
    pub group: String,
    /// Start position for partitions without a committed offset: earliest, latest or error.
    pub auto_offset_reset: OffsetReset,
    /// A committed position outside its partition's log (records deleted before they were
    /// read; a position past the end of a recreated or truncated topic): `stop` with an error
    /// naming the partition and the gap, or read on from the `earliest` or `latest` offset,
    /// counting and logging the records passed over. Never skipped silently.
    pub out_of_range: OutOfRange,
    /// Raw librdkafka properties passed to every client, applied after the service's own
    /// settings (for example `"fetch.wait.max.ms" = "100"` or SASL settings). Values of keys
    /// that look like secrets are never logged.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic: String::new(),
            topics: Vec::new(),
            partitions: BTreeMap::new(),
            instance: String::new(),
            group: String::new(),
            auto_offset_reset: OffsetReset::Earliest,
            out_of_range: OutOfRange::Stop,
            properties: BTreeMap::new(),
        }
    }
}

/// The input topic when none is configured.
pub const DEFAULT_TOPIC: &str = "frames";

/// librdkafka properties the service sets itself: overriding them would break the delivery
/// guarantee, so they are rejected in `kafka.properties`.
const RESERVED_PROPERTIES: [&str; 5] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "group.id",
    "bootstrap.servers",
];

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties = redacted(&self.properties);
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("topics", &self.topics)
            .field("partitions", &self.partitions)
            .field("instance", &self.instance)
            .field("group", &self.group)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("out_of_range", &self.out_of_range)
            .field("properties", &properties)
            .finish()
    }
}

impl KafkaConfig {
    /// The input topics: `topics`, or `topic`, or `frames`.
    pub fn topic_names(&self) -> Vec<String> {
        if !self.topics.is_empty() {
            self.topics.iter().map(|t| t.trim().to_owned()).collect()
        } else if !self.topic.trim().is_empty() {
            vec![self.topic.trim().to_owned()]
        } else {
            vec![DEFAULT_TOPIC.to_owned()]
        }
    }

    /// The input topics, interned.
    pub fn input_topics(&self) -> Vec<crate::topic::Topic> {
        self.topic_names()
            .iter()
            .map(|t| crate::topic::Topic::new(t))
            .collect()
    }

    /// Which partitions of the input topics this instance reads, from `partitions` and
    /// `instance`.
    ///
    /// # Errors
    /// A range that does not parse, a topic listed that is not an input topic, an instance
    /// that is not `i/N` with `i < N`, or both keys set.
    pub fn selection(&self) -> Result<crate::layout::Selection, ConfigError> {
        crate::layout::Selection::parse(&self.partitions, &self.instance, &self.topic_names())
            .map_err(|e| ConfigError::new(e.key, e.reason))
    }

    /// True when no brokers are configured and the embedded cluster is used.
    pub fn embedded(&self) -> bool {
        self.brokers.trim().is_empty()
    }

    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.embedded() {
            for broker in self.brokers.split(',') {
                let broker = broker.trim();
                let valid = broker.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                check(
                    valid,
                    "kafka.brokers",
                    &format!("`{broker}` is not HOST:PORT"),
                )?;
            }
        }
        check(
            self.topic.trim().is_empty() || self.topics.is_empty(),
            "kafka.topics",
            "set kafka.topic or kafka.topics, not both",
        )?;
        let key = if self.topics.is_empty() {
            "kafka.topic"
        } else {
            "kafka.topics"
        };
        let topics = self.topic_names();
        for topic in &topics {
            check_topic_name(topic, key)?;
        }
        for (i, topic) in topics.iter().enumerate() {
            check(
                !topics[..i].contains(topic),
                key,
                &format!("topic `{topic}` is listed twice"),
            )?;
        }
        self.selection()?;
        for name in self.properties.keys() {
            if RESERVED_PROPERTIES.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    format!("kafka.properties.{name}"),
                    "is set by the service (use kafka.brokers / kafka.group, commits are managed)",
                ));
            }
        }
        Ok(())
    }
}

/// Kafka's rule for topic names: ASCII letters, digits, `.`, `_` and `-`, at most 249.
fn check_topic_name(topic: &str, key: &str) -> Result<(), ConfigError> {
    check(!topic.is_empty(), key, "a topic name must not be empty")?;
    check(
        topic.len() <= 249
            && topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        key,
        &format!(
            "`{topic}`: Kafka topic names use only ASCII letters, digits, '.', '_' and '-' (at most 249)"
        ),
    )
}
