//! The Kafka output: closed windows ([`KafkaSink`]) and invalid records ([`KafkaDeadLetters`])
//! produced to topics with `acks=all` and idempotence, each flush acknowledged by every in-sync
//! replica before the offsets it covers are committed; and, for exactly once
//! ([`GroupCommits::exactly_once`]), one transaction per flush that also carries the input
//! offsets (`send_offsets_to_transaction`) with the consumer group's metadata.
//!
//! Producer settings: the service's defaults, then (when the output is the input's cluster)
//! the connection and security properties of `kafka.properties`, then `sink.properties`, then
//! what the guarantee depends on (`acks=all`, idempotence, the transactional id).
//!
//! [`config`]: the producer's settings and the output topics; [`sink`]: at-least-once delivery
//! and the window records; [`dead_letters`]: invalid records; [`transactions`]: exactly once.

use super::error::AdapterError;

/// Why the Kafka output cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OutletError {
    /// The producer could not be created or the cluster could not be asked.
    #[error(transparent)]
    Client(#[from] AdapterError),
    /// An output topic does not exist.
    #[error("the output topic `{topic}` ({key}) does not exist on the cluster: create it, or set sink.create_topic = true")]
    TopicMissing {
        /// The topic.
        topic: String,
        /// The setting that names it.
        key: &'static str,
    },
    /// The transactional producer could not start (`init_transactions`).
    #[error("cannot start transactions with transactional id `{transactional_id}`: {reason}")]
    InitTransactions {
        /// The transactional id.
        transactional_id: String,
        /// What the broker or client said.
        reason: String,
    },
}

mod config;
mod dead_letters;
mod sink;
mod transactions;

pub use dead_letters::{headers, KafkaDeadLetters};
pub use sink::KafkaSink;
pub use transactions::{TransactionalOutput, Transactions};
