//! The Kafka adapter: the only module that names rdkafka types. Everything else sees the
//! project's own [`FrameSource`](crate::ports::FrameSource),
//! [`OffsetCommitter`](crate::ports::OffsetCommitter), partitions as
//! [`PartitionId`] (topic and index) and offsets as `i64`.
//!
//! Threading: apart from reading a partition (which never waits), every call here may block
//! (librdkafka round trips), so callers run them on threads that may block: `spawn_blocking`,
//! the batch actor's commits, or the generator's thread.
//!
//! Client settings: the service's defaults first, then `kafka.properties` (the raw librdkafka
//! passthrough), then the properties the delivery guarantee depends on (auto-commit off,
//! offsets stored by the service, partition EOF on), which configuration may not override.

mod admin;
mod assigned;
mod client;
mod committer;
mod coordinator;
mod embedded;
mod error;
mod group;
#[cfg(feature = "inspect")]
mod inspect;
mod intake;
mod lookup;
mod output;
mod producer;
mod reader;
mod stats;

pub use admin::create_topic;
pub use assigned::{AssignedIntake, AssigningConsumer};
pub use committer::KafkaCommitter;
pub use coordinator::{create_topic_on, group_coordinator};
pub use embedded::{BrokerError, BrokerRequest, EmbeddedCluster};
pub use error::{AdapterError, Assigning, OutOfRangeError};
pub use group::GroupConsumer;
#[cfg(feature = "inspect")]
pub use inspect::{
    count_to_end, delete_records, follow_topic, group_state, read_topic, read_topic_settled,
    stored_records, StableWait, StoredRecord,
};
pub use intake::GroupCommits;
pub use lookup::{
    committed_offsets, committed_positions, end_offset_probe, partition_ids, Committed,
};
pub use output::{
    headers, KafkaDeadLetters, KafkaSink, OutletError, TransactionalOutput, Transactions,
};
pub use producer::{Delivery, FrameProducer};
pub use reader::PartitionReader;
pub use stats::LeaderStats;
