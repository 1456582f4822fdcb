//! [`FrameProducer`]: writes frames to the input topics for the generator, and reports where
//! each one landed so the generator's ground truth covers exactly what Kafka holds.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;

use super::client::client_config;
use super::error::AdapterError;
use crate::config::KafkaConfig;
use crate::topic::PartitionId;

/// Where a produced frame landed, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Stored at `(partition, offset)`.
    Stored {
        /// The index the frame was sent with.
        index: u64,
        /// Partition.
        partition: PartitionId,
        /// Offset.
        offset: i64,
    },
    /// Not stored.
    Failed {
        /// The index the frame was sent with.
        index: u64,
        /// Why.
        reason: String,
    },
}

#[derive(Default)]
struct Collector {
    deliveries: Mutex<Vec<Delivery>>,
}

impl ClientContext for Collector {}

impl ProducerContext for Collector {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let delivery = match result {
            Ok(message) => Delivery::Stored {
                index: index as u64,
                partition: PartitionId::of(message.topic(), message.partition()),
                offset: message.offset(),
            },
            Err((error, _)) => Delivery::Failed {
                index: index as u64,
                reason: error.to_string(),
            },
        };
        // Poisoned only if a previous delivery callback panicked; the data is still usable.
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(delivery);
    }
}

/// Produces frames to the input topics.
pub struct FrameProducer {
    producer: BaseProducer<Collector>,
}

impl FrameProducer {
    /// Creates an idempotent producer (no duplicates, order kept per partition).
    ///
    /// # Errors
    /// If the client cannot be created.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, AdapterError> {
        let mut config = client_config(kafka, "kafka-actors-generator");
        for (key, value) in [
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "200000"),
            super::client::RECONNECT_BACKOFF_MAX,
        ] {
            if !kafka.properties.contains_key(key) {
                config.set(key, value);
            }
        }
        let producer = config
            .create_with_context(Collector::default())
            .map_err(|e| AdapterError::create_client("producer", &e))?;
        Ok(FrameProducer { producer })
    }

    /// Queues one frame for `partition`, waiting for room in the local queue if it is full.
    ///
    /// # Errors
    /// If librdkafka rejects the record for another reason than a full queue.
    pub fn send(
        &self,
        index: u64,
        partition: PartitionId,
        key: &[u8],
        payload: &[u8],
    ) -> Result<(), KafkaError> {
        self.send_record(index, partition, Some(key), Some(payload))
    }

    /// [`send`](Self::send) for any record: without a key, or without a value (a tombstone).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_record(
        &self,
        index: u64,
        partition: PartitionId,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(partition.topic.name(), index as usize)
                .partition(partition.index);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Serves delivery reports, waiting up to `timeout` for one.
    pub fn poll(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    /// Delivery reports received since the last call.
    pub fn take_deliveries(&self) -> Vec<Delivery> {
        std::mem::take(
            &mut *self
                .producer
                .context()
                .deliveries
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Waits until every queued frame is delivered or failed.
    ///
    /// # Errors
    /// If frames are still queued after `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
