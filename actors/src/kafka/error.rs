//! The adapter's errors: what failed, with librdkafka's error as the source. Messages never
//! contain configuration values.

use rdkafka::error::KafkaError;

use crate::topic::{PartitionId, Topic};

impl AdapterError {
    /// librdkafka could not create a client. Its configuration errors carry the refused
    /// property's value (a password, for a misspelt or unsupported `sasl.password`): only
    /// the property's name and librdkafka's description are kept.
    pub(crate) fn create_client(role: &'static str, error: &KafkaError) -> Self {
        let reason = match error {
            KafkaError::ClientConfig(_, description, property, _value) => {
                format!("the property `{property}` was refused: {description}")
            }
            other => other.to_string(),
        };
        AdapterError::CreateClient { role, reason }
    }
}

/// A Kafka operation that failed. Messages never contain configuration values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// librdkafka refused the client configuration or could not start the client.
    #[error("cannot create the Kafka {role} client: {reason}")]
    CreateClient {
        /// Which client: consumer, producer, committer.
        role: &'static str,
        /// Why, naming a refused property but never its value.
        reason: String,
    },
    /// Topic metadata could not be read.
    #[error("cannot read the metadata of topic `{topic}`")]
    Metadata {
        /// The topic.
        topic: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The brokers could not be used at start: what they last said (which broker, and why:
    /// a refused connection, a failed TLS handshake, an authentication failure naming the SASL
    /// mechanism).
    #[error("cannot read the metadata of topic `{topic}`: {said}")]
    Refused {
        /// The topic.
        topic: String,
        /// The brokers' last error, as librdkafka reported it (it carries no secret).
        said: String,
    },
    /// The topic does not exist or has no partitions.
    #[error("topic `{0}` does not exist on the cluster")]
    TopicMissing(String),
    /// Committed offsets could not be read.
    #[error("cannot read the committed offsets of group `{group}`")]
    Committed {
        /// The consumer group.
        group: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The group coordinator could not be asked about the group.
    #[error("cannot ask the coordinator about group `{group}`")]
    GroupState {
        /// The consumer group.
        group: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// Partitions could not be assigned.
    #[error("cannot assign {partitions}")]
    Assign {
        /// Which.
        partitions: Assigning,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The subscription was refused.
    #[error("cannot subscribe to {topics}")]
    Subscribe {
        /// The topics.
        topics: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// Reading the topic failed.
    #[error("cannot read topic `{topic}`")]
    Read {
        /// The topic.
        topic: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// A committed position lies outside its partition's log and `kafka.out_of_range` is
    /// `stop`.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRangeError),
    /// The embedded cluster could not be started or changed.
    #[error("embedded cluster: {what}")]
    Embedded {
        /// The operation.
        what: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
}

/// A committed position outside its partition's log, with `kafka.out_of_range = stop`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "partition {partition}: the committed position {committed} lies {} (the log holds offsets \
     {log_start} to {log_end}); kafka.out_of_range = stop. Set it to earliest or latest to read \
     on, counting what is passed over",
    if committed < log_start { "before the log: records were deleted before they were read" } else { "past the end of the log: the topic was recreated or truncated" }
)]
pub struct OutOfRangeError {
    /// The partition.
    pub partition: PartitionId,
    /// Its committed position.
    pub committed: i64,
    /// The first offset in the log.
    pub log_start: i64,
    /// The offset after the last record.
    pub log_end: i64,
}

/// What an assignment that failed was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigning {
    /// One partition.
    Partition(PartitionId),
    /// Every partition of one topic.
    Topic(Topic),
    /// A set of this many partitions, as a whole.
    Set(usize),
}

impl std::fmt::Display for Assigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Assigning::Partition(partition) => write!(f, "partition {partition}"),
            Assigning::Topic(topic) => write!(f, "the partitions of `{topic}`"),
            Assigning::Set(count) => write!(f, "{count} partitions"),
        }
    }
}
