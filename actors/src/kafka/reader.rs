//! [`PartitionReader`]: reads one partition. In the partition model it is a consumer of its
//! own that assigns exactly one partition to itself (no group subscription) and reads it from a
//! given offset, like the old SimpleConsumer with seek. In the group model it is the partition's
//! own queue split off the group member's consumer. A partition actor owns one.

use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::group::GroupContext;
use super::{consumer_config, observe_leaders, AdapterError, LeaderStats};
use crate::config::{KafkaConfig, OffsetReset};
use crate::ports::{FailureKind, FrameSource, PollStatus, SourceError, StartOffset};

/// The librdkafka settings a partition reader starts from (before `kafka.properties`).
pub(super) fn reader_defaults(prefetch: u64) -> [(&'static str, String); 3] {
    [
        ("queued.min.messages", prefetch.to_string()),
        // A fetch that finds nothing new comes back after at most this long, which bounds how
        // late the partition notices it has caught up.
        ("fetch.wait.max.ms", "100".to_owned()),
        // When the prefetch queue is full the fetcher pauses this long (default 1 s, a visible
        // stall per partition); the reader drains the queue in milliseconds.
        ("fetch.queue.backoff.ms", "10".to_owned()),
    ]
}

/// Where `kafka.auto_offset_reset` starts a partition without a position. With `error` there is
/// no position, and librdkafka (whose own policy is `error`) reports it.
pub(super) fn reset_offset(reset: OffsetReset) -> Offset {
    match reset {
        OffsetReset::Earliest => Offset::Beginning,
        OffsetReset::Latest => Offset::End,
        OffsetReset::Error => Offset::Invalid,
    }
}

/// Client callbacks of a reader. librdkafka reports consume errors twice: as a client error and
/// through `poll`. The partition actor handles (and rate-limits) the second, so the first is
/// only traced at debug level; partition EOF, which is not an error here, not at all.
/// Statistics, when on, feed the leader board (and are not logged).
struct ReaderContext {
    leaders: Option<LeaderStats>,
}

impl ClientContext for ReaderContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(stats) = &self.leaders {
            observe_leaders(&stats.board, statistics);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%error, reason, "librdkafka consumer error.");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// Where a reader's records come from.
enum Records {
    /// A consumer of its own with one assigned partition.
    Own(BaseConsumer<ReaderContext>),
    /// The partition's queue, split off a group member's consumer.
    Split {
        queue: PartitionQueue<GroupContext>,
        consumer: Arc<BaseConsumer<GroupContext>>,
    },
}

impl Records {
    fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        match self {
            Records::Own(consumer) => consumer.poll(timeout),
            Records::Split { queue, .. } => queue.poll(timeout),
        }
    }

    /// Where this client's statistics report leaders, when they are on.
    fn leaders(&self) -> Option<&LeaderStats> {
        match self {
            Records::Own(consumer) => consumer.context().leaders.as_ref(),
            Records::Split { consumer, .. } => consumer.context().leaders.as_ref(),
        }
    }

    fn watermarks(&self, topic: &str, partition: i32) -> KafkaResult<(i64, i64)> {
        match self {
            Records::Own(consumer) => {
                consumer.fetch_watermarks(topic, partition, super::LOOKUP_TIMEOUT)
            }
            Records::Split { consumer, .. } => {
                consumer.fetch_watermarks(topic, partition, super::LOOKUP_TIMEOUT)
            }
        }
    }

    /// Reads on from `offset` after the position left the log. librdkafka has stopped
    /// fetching the partition then (a seek is refused), so a reader of its own assigns it
    /// again. A split queue belongs to the group member's assignment, which only a rebalance
    /// changes: `None`.
    fn reassign(&self, topic: &str, partition: i32, offset: i64) -> Option<KafkaResult<()>> {
        match self {
            Records::Own(consumer) => {
                let mut tpl = TopicPartitionList::with_capacity(1);
                Some(
                    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                        .and_then(|()| consumer.assign(&tpl)),
                )
            }
            Records::Split { .. } => None,
        }
    }

    fn native_ptr(&self) -> *mut rdkafka::bindings::rd_kafka_t {
        match self {
            Records::Own(consumer) => consumer.client().native_ptr(),
            Records::Split { consumer, .. } => consumer.client().native_ptr(),
        }
    }
}

/// Reads one partition of the input topic.
pub struct PartitionReader {
    records: Records,
    topic: CString,
    partition: i32,
    next_offset: Option<i64>,
    /// An error met after some records of a poll were read: reported by the next poll.
    pending_error: Option<SourceError>,
    /// Where to go when the position has left the log.
    reset: OffsetReset,
}

impl PartitionReader {
    /// Creates the consumer and assigns `partition` of `kafka.topic` at `start`.
    /// `prefetch` bounds the records librdkafka buffers ahead of the reader.
    ///
    /// # Errors
    /// If the client cannot be created or the partition cannot be assigned.
    pub fn open(
        kafka: &KafkaConfig,
        partition: i32,
        start: StartOffset,
        prefetch: u64,
        leaders: Option<&LeaderStats>,
    ) -> Result<Self, AdapterError> {
        let client_id = format!("kafka-actors-{}-p{partition}", kafka.topic);
        let mut defaults: Vec<(&str, String)> = reader_defaults(prefetch).into_iter().collect();
        defaults.extend(leaders.map(LeaderStats::setting));
        let context = ReaderContext {
            leaders: leaders.cloned(),
        };
        let consumer: BaseConsumer<ReaderContext> = consumer_config(kafka, &client_id, &defaults)
            .create_with_context(context)
            .map_err(|source| AdapterError::CreateClient {
                role: "consumer",
                source,
            })?;
        let offset = match start {
            StartOffset::At(offset) => Offset::Offset(offset),
            StartOffset::Reset => reset_offset(kafka.auto_offset_reset),
        };
        // Learn the partition's leader first: an offset query (earliest/latest) that finds no
        // leader is retried only after a fixed 500 ms in librdkafka.
        if let Err(error) = consumer.fetch_metadata(Some(&kafka.topic), super::LOOKUP_TIMEOUT) {
            tracing::debug!(partition, %error, "Metadata before assigning failed; assigning anyway.");
        }
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition_offset(&kafka.topic, partition, offset)
            .and_then(|()| consumer.assign(&tpl))
            .map_err(|source| AdapterError::Assign {
                topic: kafka.topic.clone(),
                partition,
                source,
            })?;
        // Topic names are validated to be ASCII without NUL, so this cannot fail.
        let topic = CString::new(kafka.topic.as_str())
            .map_err(|_| AdapterError::TopicMissing(kafka.topic.clone()))?;
        Ok(PartitionReader {
            records: Records::Own(consumer),
            topic,
            partition,
            next_offset: match start {
                StartOffset::At(offset) => Some(offset),
                StartOffset::Reset => None,
            },
            pending_error: None,
            reset: kafka.auto_offset_reset,
        })
    }

    /// The queue of `partition` split off a group member's consumer (which must have it
    /// assigned, or be about to), read from wherever the member's assignment put it.
    ///
    /// # Errors
    /// If the queue cannot be split off.
    pub(super) fn split(
        consumer: &Arc<BaseConsumer<GroupContext>>,
        topic: &str,
        partition: i32,
        reset: OffsetReset,
    ) -> Result<Self, AdapterError> {
        let queue = consumer
            .split_partition_queue(topic, partition)
            .ok_or_else(|| AdapterError::TopicMissing(topic.to_owned()))?;
        let topic =
            CString::new(topic).map_err(|_| AdapterError::TopicMissing(topic.to_owned()))?;
        Ok(PartitionReader {
            records: Records::Split {
                queue,
                consumer: consumer.clone(),
            },
            topic,
            partition,
            next_offset: None,
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
        let (low, high) = self.records.watermarks(&topic, partition).map_err(|e| SourceError {
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
        match self.records.reassign(&topic, partition, to) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(SourceError {
                    kind: FailureKind::Fatal,
                    message: format!("partition {partition}: cannot move to offset {to}: {e}"),
                })
            }
            None => {
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
                self.records.native_ptr(),
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
        timeout: Duration,
        on_record: &mut dyn FnMut(i64, Option<&[u8]>),
    ) -> Result<PollStatus, SourceError> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        let mut status = PollStatus::default();
        let mut wait = timeout;
        while status.records < max {
            match self.records.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    on_record(message.offset(), message.payload());
                    self.next_offset = Some(message.offset() + 1);
                    status.records += 1;
                    wait = Duration::ZERO;
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
            .records
            .leaders()
            .is_some_and(|stats| !stats.board.reachable(self.partition));
        Ok(status)
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
