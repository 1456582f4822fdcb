//! [`PartitionReader`]: reads one partition: its queue, split off the process's intake
//! consumer ([`IntakeClient`](super::intake::IntakeClient)). A partition actor owns one.
//! Reading never blocks; the queue's non-empty callback wakes the actor.

use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::intake::{IntakeClient, IntakeConsumer, IntakeContext, Ownership};
use super::AdapterError;
use crate::config::OffsetReset;
use crate::ports::{
    FailureKind, FrameSource, PollStatus, SourceError, SourceFactory, StartOffset, Wake,
};

/// Opens partition sources on `intake`'s consumer: the partition's queue (split off again: a
/// dropped handle strands it), positioned at the start offset. A start from a commit seeks
/// there, which also discards what was fetched for a previous reader; a start without one
/// reads from where the assignment put the partition.
pub(super) fn sources(intake: &IntakeClient) -> SourceFactory {
    let (consumer, topic) = (intake.consumer().clone(), intake.topic().to_owned());
    let (reset, ownership) = (intake.reset(), intake.ownership());
    Arc::new(move |partition, start| {
        let reader = PartitionReader::split(&consumer, &topic, partition, start, reset, ownership)
            .map_err(|e| SourceError {
                kind: FailureKind::Fatal,
                message: e.to_string(),
            })?;
        if let StartOffset::At(offset) = start {
            consumer
                .seek(&topic, partition, Offset::Offset(offset), Duration::ZERO)
                .map_err(|e| SourceError {
                    kind: FailureKind::Fatal,
                    message: format!("partition {partition}: seek to {offset}: {e}"),
                })?;
        }
        Ok(Box::new(reader) as Box<dyn FrameSource>)
    })
}

/// Reads one partition of the input topic.
pub struct PartitionReader {
    ownership: Ownership,
    queue: PartitionQueue<IntakeContext>,
    consumer: Arc<IntakeConsumer>,
    topic: CString,
    partition: i32,
    next_offset: Option<i64>,
    /// An error met after some records of a poll were read: reported by the next poll.
    pending_error: Option<SourceError>,
    /// Where to go when the position has left the log.
    reset: OffsetReset,
}

impl PartitionReader {
    /// The queue of `partition` split off the intake consumer (which must have it assigned, or
    /// be about to), read from wherever the assignment (or a seek) put it.
    ///
    /// # Errors
    /// If the queue cannot be split off.
    pub(super) fn split(
        consumer: &Arc<IntakeConsumer>,
        topic: &str,
        partition: i32,
        start: StartOffset,
        reset: OffsetReset,
        ownership: Ownership,
    ) -> Result<Self, AdapterError> {
        let queue = consumer
            .split_partition_queue(topic, partition)
            .ok_or_else(|| AdapterError::TopicMissing(topic.to_owned()))?;
        let topic =
            CString::new(topic).map_err(|_| AdapterError::TopicMissing(topic.to_owned()))?;
        Ok(PartitionReader {
            ownership,
            queue,
            consumer: consumer.clone(),
            topic,
            partition,
            next_offset: start.offset(),
            pending_error: None,
            reset,
        })
    }

    /// The position left the log before it was read (retention deleted it): go where
    /// `kafka.auto_offset_reset` says and return the range passed over, `[from, to)`. With
    /// `error`, or when the partition's bounds cannot be read, reading cannot go on.
    fn reset_out_of_range(&mut self, error: &KafkaError) -> Result<(i64, i64), SourceError> {
        let partition = self.partition;
        let permanent = |message: String| SourceError {
            kind: FailureKind::Permanent,
            message,
        };
        let topic = self.topic.to_string_lossy().into_owned();
        let (low, high) = self
            .consumer
            .fetch_watermarks(&topic, partition, super::LOOKUP_TIMEOUT)
            .map_err(|e| SourceError {
            kind: FailureKind::Fatal,
            message: format!("partition {partition}: the position left the log ({error}) and its bounds cannot be read: {e}"),
        })?;
        let from = self.next_offset.unwrap_or(low);
        let to = match self.reset {
            OffsetReset::Earliest => low,
            OffsetReset::Latest => high,
            OffsetReset::Error => {
                return Err(permanent(format!(
                    "partition {partition}: offset {from} is no longer in the log (it starts at {low}) and kafka.auto_offset_reset = error"
                )))
            }
        };
        // librdkafka has stopped fetching the partition (a seek is refused); only assigning
        // it again resumes it, and a group member's assignment is the coordinator's.
        match self.ownership {
            Ownership::Assigned => {
                let mut tpl = TopicPartitionList::with_capacity(1);
                tpl.add_partition(&topic, partition);
                let moved = self.consumer.incremental_unassign(&tpl).and_then(|()| {
                    tpl.set_partition_offset(&topic, partition, Offset::Offset(to))?;
                    self.consumer.incremental_assign(&tpl)
                });
                if let Err(e) = moved {
                    return Err(SourceError {
                        kind: FailureKind::Fatal,
                        message: format!("partition {partition}: cannot move to offset {to}: {e}"),
                    });
                }
            }
            Ownership::Group => {
                return Err(permanent(format!(
                    "partition {partition}: records from offset {from} were deleted before they were read (the log now starts at {low}); a group member applies kafka.auto_offset_reset when the partition is assigned, so restart the service to read on"
                )))
            }
        }
        self.next_offset = Some(to);
        Ok((from, to.max(from)))
    }

    /// The high watermark from the last fetch response, without a broker round trip. (Some
    /// brokers answer ListOffsets with a stale end; the fetch response is always current.)
    fn cached_high_watermark(&self) -> Option<i64> {
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the native handle is valid while `self.records` lives, `topic` is a
        // NUL-terminated string owned by `self`, and `low`/`high` are valid out-pointers.
        // rd_kafka_get_watermark_offsets only reads librdkafka's cached values.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                self.topic.as_ptr(),
                self.partition,
                &mut low,
                &mut high,
            )
        };
        (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }
}

/// Turns a consume error into a [`SourceError`]: permanent when no new reader could do
/// better (this build cannot decode the records, access is denied), fatal when this reader
/// cannot resume at its position by waiting (the position left the log), transient otherwise.
fn source_error(partition: i32, error: &KafkaError) -> SourceError {
    let kind = match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::NotImplemented
            | RDKafkaErrorCode::UnsupportedCompressionType
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::Fatal,
        ) => FailureKind::Permanent,
        Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange) => {
            FailureKind::Fatal
        }
        _ => FailureKind::Transient,
    };
    SourceError {
        kind,
        message: format!("partition {partition}: {error}"),
    }
}

impl FrameSource for PartitionReader {
    fn poll(
        &mut self,
        max: usize,
        on_record: &mut dyn FnMut(i64, Option<&[u8]>),
    ) -> Result<PollStatus, SourceError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        let mut status = PollStatus::default();
        while status.records < max {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => {
                    on_record(message.offset(), message.payload());
                    self.next_offset = Some(message.offset() + 1);
                    status.records += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    status.at_end = true;
                    break;
                }
                Some(Err(error))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) =>
                {
                    match self.reset_out_of_range(&error) {
                        Ok(skipped) => {
                            status.skipped = Some(skipped);
                            break;
                        }
                        Err(error) if status.records == 0 => return Err(error),
                        Err(error) => {
                            self.pending_error = Some(error);
                            break;
                        }
                    }
                }
                Some(Err(error)) => {
                    let error = source_error(self.partition, &error);
                    if status.records == 0 {
                        return Err(error);
                    }
                    self.pending_error = Some(error);
                    break;
                }
            }
        }
        // The position only ever comes from records actually handed out: the cached high
        // watermark may already count records that are fetched but still queued, and using it
        // as a position would commit past them.
        status.high_watermark = self.cached_high_watermark();
        status.next_offset = self.next_offset;
        status.leader_unreachable = self
            .consumer
            .context()
            .leaders
            .as_ref()
            .is_some_and(|stats| !stats.board.reachable(self.partition));
        Ok(status)
    }

    fn wake_on_records(&mut self, wake: Wake) {
        self.queue.set_nonempty_callback(move || wake());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: RDKafkaErrorCode) -> FailureKind {
        source_error(3, &KafkaError::MessageConsumption(code)).kind
    }

    #[test]
    fn read_errors_are_sorted_by_what_a_restart_could_cure() {
        // A codec this build lacks answers NotImplemented on every fetch, forever.
        for (code, expected) in [
            (RDKafkaErrorCode::NotImplemented, FailureKind::Permanent),
            (
                RDKafkaErrorCode::UnsupportedCompressionType,
                FailureKind::Permanent,
            ),
            (
                RDKafkaErrorCode::TopicAuthorizationFailed,
                FailureKind::Permanent,
            ),
            (RDKafkaErrorCode::OffsetOutOfRange, FailureKind::Fatal),
            (RDKafkaErrorCode::AutoOffsetReset, FailureKind::Fatal),
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                FailureKind::Transient,
            ),
            (
                RDKafkaErrorCode::NotLeaderForPartition,
                FailureKind::Transient,
            ),
        ] {
            assert_eq!(kind(code), expected, "{code:?}");
        }
        let error = source_error(
            3,
            &KafkaError::MessageConsumption(RDKafkaErrorCode::NotImplemented),
        );
        assert!(
            error.message.starts_with("partition 3: "),
            "{}",
            error.message
        );
    }
}
