//! [`KafkaCommitter`]: commits offsets of the input topics for the group from a consumer that
//! assigns nothing and subscribes to nothing, so it never joins the group. Commits are
//! synchronous: the batch actor must know a commit succeeded (librdkafka reports the outcome
//! of manual asynchronous commits only in its logs).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client::consumer_config;
use super::error::AdapterError;
use super::lookup::{read_committed, read_partitions, Committed};
use crate::config::KafkaConfig;
use crate::ports::{CommitError, CommitErrorKind, CommitPosition, OffsetCommitter};
use crate::topic::PartitionId;

/// Commits offsets for `kafka.group`.
pub struct KafkaCommitter {
    consumer: BaseConsumer,
    kafka: KafkaConfig,
}

impl KafkaCommitter {
    /// Creates the committing client.
    ///
    /// # Errors
    /// If the client cannot be created.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, AdapterError> {
        let consumer = consumer_config(kafka, "kafka-actors-committer", &[])
            .create()
            .map_err(|e| AdapterError::create_client("committer", &e))?;
        Ok(KafkaCommitter {
            consumer,
            kafka: kafka.clone(),
        })
    }
}

impl KafkaCommitter {
    /// Every partition of the input topics, through this client (saves a client at start).
    ///
    /// # Errors
    /// As [`partition_ids`](super::lookup::partition_ids).
    pub fn partition_ids(&self) -> Result<Vec<PartitionId>, AdapterError> {
        read_partitions(&self.consumer, &self.kafka.input_topics())
    }

    /// The group's committed offsets, through this client.
    ///
    /// # Errors
    /// As [`committed_offsets`](super::lookup::committed_offsets).
    pub fn committed(&self, partitions: &[PartitionId]) -> Result<Vec<Committed>, AdapterError> {
        read_committed(&self.consumer, &self.kafka, partitions)
    }
}

/// What trying `error` again can do.
fn commit_error_kind(error: &KafkaError) -> CommitErrorKind {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::IllegalGeneration) => CommitErrorKind::StaleGeneration,
        Some(
            RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::OffsetMetadataTooLarge
            | RDKafkaErrorCode::InvalidCommitOffsetSize
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::Fatal,
        ) => CommitErrorKind::Permanent,
        _ => CommitErrorKind::Transient,
    }
}

impl OffsetCommitter for KafkaCommitter {
    fn commit(&mut self, positions: &[CommitPosition]) -> Result<Vec<CommitPosition>, CommitError> {
        // This client is never polled for messages; serve its event queue (logs, errors) here
        // so it does not grow.
        let _ = self.consumer.poll(Duration::ZERO);
        commit_positions(&self.consumer, positions)?;
        Ok(positions.to_vec())
    }
}

/// Commits `positions` synchronously through `consumer`.
pub(super) fn commit_positions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    positions: &[CommitPosition],
) -> Result<(), CommitError> {
    let mut tpl = TopicPartitionList::with_capacity(positions.len());
    for position in positions {
        let mut element =
            tpl.add_partition(position.partition.topic.name(), position.partition.index);
        element
            .set_offset(Offset::Offset(position.offset))
            .map_err(|e| CommitError {
                kind: CommitErrorKind::Permanent,
                message: e.to_string(),
            })?;
        element.set_metadata(&position.metadata);
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(|e| CommitError {
            kind: commit_error_kind(&e),
            message: e.to_string(),
        })?;
    if tracing::enabled!(tracing::Level::DEBUG) {
        let offsets: Vec<String> = positions
            .iter()
            .map(|p| format!("{}:{}", p.partition, p.offset))
            .collect();
        tracing::debug!(offsets = %offsets.join(" "), "Committed.");
    }
    Ok(())
}
