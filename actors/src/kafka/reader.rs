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

use super::error::AdapterError;
use super::intake::{IntakeClient, IntakeConsumer, IntakeContext, Ownership};
use crate::config::{OffsetReset, OutOfRange};
use crate::ports::{
    FailureKind, FrameSource, PollStatus, RecordRest, SourceError, SourceFactory, SourceRecord,
    StartOffset, Wake,
};
use crate::topic::PartitionId;

/// A fetched message's key and headers, read when a dead letter needs them.
struct MessageRest<'a, M: Message>(&'a M);

impl<M: Message> RecordRest for MessageRest<'_, M> {
    fn key(&self) -> Option<&[u8]> {
        self.0.key()
    }

    fn headers(&self) -> Vec<(String, Option<Vec<u8>>)> {
        use rdkafka::message::Headers;
        self.0.headers().map_or_else(Vec::new, |headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
    }
}

/// Opens partition sources on `intake`'s consumer: the partition's queue (split off again: a
/// dropped handle strands it), positioned at the start offset. A start from a commit seeks
/// there, which also discards what was fetched for a previous reader; a start without one
/// reads from where the assignment put the partition.
pub(super) fn sources(intake: &IntakeClient) -> SourceFactory {
    let consumer = intake.consumer().clone();
    let (reset, out_of_range, ownership) =
        (intake.reset(), intake.out_of_range(), intake.ownership());
    Arc::new(move |partition: PartitionId, start| {
        let places = Placing {
            reset,
            out_of_range,
            ownership,
        };
        let reader = PartitionReader::split(&consumer, partition, start, places).map_err(|e| {
            SourceError {
                kind: FailureKind::Fatal,
                message: e.to_string(),
            }
        })?;
        if let StartOffset::At(offset) = start {
            consumer
                .seek(
                    partition.topic.name(),
                    partition.index,
                    Offset::Offset(offset),
                    Duration::ZERO,
                )
                .map_err(|e| SourceError {
                    kind: FailureKind::Fatal,
                    message: format!("partition {partition}: seek to {offset}: {e}"),
                })?;
        }
        Ok(Box::new(reader) as Box<dyn FrameSource>)
    })
}

/// How a reader places its partition: who owns it, and where it goes without a position or
/// with one that left the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placing {
    /// `kafka.auto_offset_reset`.
    pub(super) reset: OffsetReset,
    /// `kafka.out_of_range`.
    pub(super) out_of_range: OutOfRange,
    /// Who assigns the partition.
    pub(super) ownership: Ownership,
}

/// Reads one partition of an input topic.
pub struct PartitionReader {
    ownership: Ownership,
    queue: PartitionQueue<IntakeContext>,
    consumer: Arc<IntakeConsumer>,
    /// The partition's topic, for librdkafka's C calls.
    topic: CString,
    partition: PartitionId,
    next_offset: Option<i64>,
    /// Where a partition without a position starts.
    reset: OffsetReset,
    /// Where to go when the position has left the log.
    out_of_range: OutOfRange,
    /// What the next poll must settle before it reads.
    owed: Owed,
    /// Wakes the partition's actor (records arrived, or a move ended).
    wake: Option<Wake>,
    /// librdkafka was told to stop fetching the partition ([`FrameSource::pause`]).
    paused: bool,
    /// Breaks in the link to the partition's leader ([`LeaderBoard`](crate::leaders::LeaderBoard))
    /// this reader has answered: it ends its fetch and starts a new one at its position
    /// once the leader is in reach again, and reports the end only from that fetch on.
    breaks_seen: u64,
    /// Where it is in finding the end again after a break.
    earning: Earning,
}

/// Where a [`PartitionReader`] is in finding its partition's end again after a break in the
/// link to its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Earning {
    /// Nothing owed: what it says of the end comes from fetches made since the last break.
    Settled,
    /// librdkafka signalled the end while it could not count (the leader out of reach, as
    /// when the first statistics come before the first fetch answers), and will not signal it
    /// again for that offset: the reader seeks once the leader is in reach.
    Owed,
    /// It sought to its position at this moment, and no record or end has come since.
    Sought(std::time::Instant),
}

/// How long a reader waits after seeking for a record or the end before it seeks again: a
/// fetch at the end answers within `fetch.wait.max.ms`, so this long without either means the
/// seek was lost (the partition moving between brokers as it was made, say), and the end
/// would never be signalled.
const SEEK_AGAIN_AFTER: Duration = Duration::from_secs(10);

/// What a [`PartitionReader`]'s next poll must settle before it reads.
enum Owed {
    /// Nothing: read.
    Nothing,
    /// An error met after some records of a poll were handed out: the next poll reports it.
    Error(SourceError),
    /// A move past deleted records under way on a thread of its own (it asks the broker and
    /// reassigns, which blocks; the reader's thread serves other partitions meanwhile).
    Moving {
        /// Its outcome: the range passed over, or why reading cannot go on.
        outcome: std::sync::mpsc::Receiver<Result<(i64, i64), SourceError>>,
        /// Set when the reader is dropped: a move nobody waits for must not reassign the
        /// partition under a newer reader.
        cancelled: Arc<std::sync::atomic::AtomicBool>,
    },
}

impl Drop for PartitionReader {
    fn drop(&mut self) {
        if let Owed::Moving { cancelled, .. } = &self.owed {
            cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        // librdkafka keeps a partition paused across unassign and assign: the next reader of
        // this partition (a restart, or the partition assigned here again) must find it
        // fetching.
        if self.paused {
            if let Err(error) = self.pause_fetch(false) {
                tracing::warn!(partition = %self.partition, %error, "Resuming the fetch of a dropped reader failed.");
            }
        }
    }
}

impl PartitionReader {
    /// The queue of `partition` split off the intake consumer (which must have it assigned, or
    /// be about to), read from wherever the assignment (or a seek) put it.
    ///
    /// # Errors
    /// If the queue cannot be split off.
    pub(super) fn split(
        consumer: &Arc<IntakeConsumer>,
        partition: PartitionId,
        start: StartOffset,
        places: Placing,
    ) -> Result<Self, AdapterError> {
        let Placing {
            reset,
            out_of_range,
            ownership,
        } = places;
        let topic = partition.topic.name();
        let queue = consumer
            .split_partition_queue(topic, partition.index)
            .ok_or_else(|| AdapterError::TopicMissing(topic.to_owned()))?;
        let topic =
            CString::new(topic).map_err(|_| AdapterError::TopicMissing(topic.to_owned()))?;
        // A new reader's end comes from fetches made for it: breaks before it are answered.
        let breaks_seen = consumer
            .context()
            .leaders
            .as_ref()
            .map_or(0, |stats| stats.board.link_state(partition).1);
        Ok(PartitionReader {
            ownership,
            queue,
            consumer: consumer.clone(),
            topic,
            partition,
            next_offset: start.offset(),
            reset,
            out_of_range,
            owed: Owed::Nothing,
            wake: None,
            paused: false,
            breaks_seen,
            earning: Earning::Settled,
        })
    }

    /// Whether what this reader knew of the partition's end still holds: not while the
    /// leader is out of reach, nor after a break in the link to it (an outage, a reconnect, a
    /// new leader or leader epoch) until a fetch made after it answers. librdkafka signals the
    /// end once per end offset, so a partition that was at its end before the break and gets
    /// nothing new would never be signalled again: once the leader is in reach, the reader
    /// seeks to its own position, which ends the fetch under way (what it queued is dropped
    /// and fetched again) and makes librdkafka signal the end anew from the next answer.
    /// Without statistics (`supervisor.stats_interval_ms = 0`) nothing is known: it holds.
    fn end_holds(&mut self) -> bool {
        let Some(stats) = self.consumer.context().leaders.as_ref() else {
            return true;
        };
        let (reachable, breaks) = stats.board.link_state(self.partition);
        if !reachable {
            return false;
        }
        if breaks == self.breaks_seen && self.earning != Earning::Owed {
            if let Earning::Sought(at) = self.earning {
                if at.elapsed() >= SEEK_AGAIN_AFTER {
                    tracing::info!(partition = %self.partition, waited = ?at.elapsed(), "No record or end came since the reader fetched again after a break; fetching once more.");
                    self.seek_to_position();
                }
            }
            // Whatever comes now comes from fetches made after the break.
            return true;
        }
        if self.next_offset.is_none() {
            // No position yet: nothing was read, so no end was known before the break.
            self.breaks_seen = breaks;
            self.earning = Earning::Settled;
            return false;
        }
        if self.seek_to_position() {
            self.breaks_seen = breaks;
        }
        // A failed seek is asked again at the next poll: without it a partition that gets
        // nothing new would never be signalled at its end again.
        false
    }

    /// Seeks to the reader's position (see [`Self::end_holds`]); answers whether librdkafka
    /// took the seek.
    fn seek_to_position(&mut self) -> bool {
        let Some(position) = self.next_offset else {
            return false;
        };
        let sought = self.consumer.seek(
            self.partition.topic.name(),
            self.partition.index,
            Offset::Offset(position),
            Duration::ZERO,
        );
        match sought {
            Ok(()) => {
                tracing::debug!(partition = %self.partition, position, "Fetching again after a break in the link to the leader.");
                self.earning = Earning::Sought(std::time::Instant::now());
                true
            }
            Err(error) => {
                tracing::debug!(partition = %self.partition, position, %error, "Fetching again after a break in the link to the leader failed.");
                false
            }
        }
    }

    /// The position left the log before it was read (retention deleted it): starts the move
    /// to where `kafka.out_of_range` says, on a thread of its own; [`Self::moved`] picks
    /// up the outcome.
    fn start_moving(&mut self, error: &KafkaError) {
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = self.consumer.clone();
        let partition = self.partition;
        let wanted = Move {
            partition,
            from: self.next_offset,
            reset: self.reset,
            out_of_range: self.out_of_range,
            ownership: self.ownership,
            error: error.to_string(),
        };
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, wake) = (cancelled.clone(), self.wake.clone());
        let spawned = std::thread::Builder::new()
            .name("kafka-reset".into())
            .spawn(move || {
                let outcome = move_past_deleted(&consumer, &wanted, &stop);
                let _ = tx.send(outcome);
                if let Some(wake) = wake {
                    wake();
                }
            });
        self.owed = match spawned {
            Ok(_) => Owed::Moving {
                outcome: rx,
                cancelled,
            },
            Err(e) => Owed::Error(SourceError {
                kind: FailureKind::Fatal,
                message: format!(
                    "partition {partition}: no thread to move past deleted records: {e}"
                ),
            }),
        };
    }

    /// The outcome of a move past deleted records, once it has one: the range passed over,
    /// `[from, to)`, or why reading cannot go on. `None` while it is under way.
    fn moved(&mut self) -> Option<Result<(i64, i64), SourceError>> {
        let Owed::Moving { outcome, .. } = &self.owed else {
            return None;
        };
        let outcome = match outcome.try_recv() {
            Ok(outcome) => outcome,
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(SourceError {
                kind: FailureKind::Fatal,
                message: format!(
                    "partition {}: the move past deleted records ended without an answer",
                    self.partition
                ),
            }),
        };
        self.owed = Owed::Nothing;
        if let Ok((_, to)) = &outcome {
            self.next_offset = Some(*to);
        }
        Some(outcome)
    }

    /// A poll while a move past deleted records is under way: nothing to read until it ends
    /// (and not at the end); then the range it passed over, or why reading cannot go on.
    fn poll_moving(&mut self, mut status: PollStatus) -> Result<PollStatus, SourceError> {
        match self.moved() {
            None => {}
            Some(Ok(skipped)) => status.skipped = Some(skipped),
            Some(Err(error)) => return Err(error),
        }
        status.next_offset = self.next_offset;
        Ok(status)
    }

    /// Pauses (or resumes) librdkafka's fetching of this partition. Pausing drops what was
    /// fetched and not handed out, and the fetch starts again at the position on resume.
    fn pause_fetch(&self, pause: bool) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition(self.partition.topic.name(), self.partition.index);
        let done = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        done.map_err(|e| SourceError {
            kind: FailureKind::Fatal,
            message: format!(
                "partition {}: {} the fetch: {e}",
                self.partition,
                if pause { "pausing" } else { "resuming" }
            ),
        })
    }

    /// The client's position for this partition: the offset after the last record it handed
    /// out or passed over (transaction markers, aborted records). No broker round trip.
    fn client_position(&self) -> Option<i64> {
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition(self.partition.topic.name(), self.partition.index);
        // SAFETY: the native handle is valid while `self.consumer` lives, and `tpl` is a valid
        // list owned here; rd_kafka_position only fills in the offsets of the listed partition.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_position(self.consumer.client().native_ptr(), tpl.ptr())
        };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        match tpl
            .find_partition(self.partition.topic.name(), self.partition.index)?
            .offset()
        {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
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
                self.partition.index,
                &mut low,
                &mut high,
            )
        };
        (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }
}

/// What [`move_past_deleted`] moves.
struct Move {
    partition: PartitionId,
    /// The position that left the log (`None`: the partition had none yet).
    from: Option<i64>,
    reset: OffsetReset,
    out_of_range: OutOfRange,
    ownership: Ownership,
    /// librdkafka's error, for the messages.
    error: String,
}

/// Moves `partition`, whose position `from` left the log (`error`), to where `reset` says and
/// returns the range passed over, `[from, to)`. With [`OffsetReset::Error`], when the
/// partition's bounds cannot be read, or for a group member (whose assignment is the
/// coordinator's), reading cannot go on. Blocks: asks the broker and reassigns.
fn move_past_deleted(
    consumer: &IntakeConsumer,
    wanted: &Move,
    cancelled: &std::sync::atomic::AtomicBool,
) -> Result<(i64, i64), SourceError> {
    let Move {
        partition,
        from,
        reset,
        out_of_range,
        ownership,
        error,
    } = wanted;
    let (partition, reset, out_of_range, ownership) =
        (*partition, *reset, *out_of_range, *ownership);
    let (topic, index) = (partition.topic.name(), partition.index);
    let permanent = |message: String| SourceError {
        kind: FailureKind::Permanent,
        message,
    };
    let (low, high) = consumer
        .fetch_watermarks(topic, index, super::lookup::LOOKUP_TIMEOUT)
        .map_err(|e| SourceError {
            kind: FailureKind::Fatal,
            message: format!("partition {partition}: the position left the log ({error}) and its bounds cannot be read: {e}"),
        })?;
    let (from, to) = match *from {
        // No position yet: where a partition without a commit starts.
        None => match reset {
            OffsetReset::Earliest => (low, low),
            OffsetReset::Latest => (low, high),
            OffsetReset::Error => {
                return Err(permanent(format!(
                    "partition {partition}: it has no position in the log ({low} to {high}) and kafka.auto_offset_reset = error"
                )))
            }
        },
        Some(from) if from > high => {
            return Err(permanent(format!(
                "partition {partition}: its position {from} lies past the end of the log (offsets {low} to {high}): the topic was recreated or truncated while it was read; a restart places it as kafka.out_of_range says"
            )))
        }
        Some(from) => match out_of_range {
            OutOfRange::Earliest => (from, low),
            OutOfRange::Latest => (from, high),
            OutOfRange::Stop => {
                return Err(permanent(format!(
                    "partition {partition}: records from offset {from} to {low} were deleted before they were read (retention or truncation) and kafka.out_of_range = stop"
                )))
            }
        },
    };
    if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
        // The reader is gone (restarted or stopped); a newer one has placed the partition.
        return Err(SourceError {
            kind: FailureKind::Fatal,
            message: format!("partition {partition}: its reader stopped during the move"),
        });
    }
    // librdkafka has stopped fetching the partition (a seek is refused); only assigning it
    // again resumes it, and a group member's assignment is the coordinator's.
    match ownership {
        Ownership::Assigned => {
            let mut tpl = TopicPartitionList::with_capacity(1);
            tpl.add_partition(topic, index);
            let moved = consumer.incremental_unassign(&tpl).and_then(|()| {
                tpl.set_partition_offset(topic, index, Offset::Offset(to))?;
                consumer.incremental_assign(&tpl)
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
                "partition {partition}: records from offset {from} were deleted before they were read (the log now starts at {low}); a group member applies kafka.out_of_range when the partition is assigned, so restart the service to read on"
            )))
        }
    }
    Ok((from, to.max(from)))
}

/// Turns a consume error into a [`SourceError`]: permanent when no new reader could do
/// better (this build cannot decode the records, access is denied), fatal when this reader
/// cannot resume at its position by waiting (the position left the log), transient otherwise.
fn source_error(partition: PartitionId, error: &KafkaError) -> SourceError {
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
        on_record: &mut dyn FnMut(&SourceRecord<'_>),
    ) -> Result<PollStatus, SourceError> {
        let mut status = PollStatus::default();
        match std::mem::replace(&mut self.owed, Owed::Nothing) {
            Owed::Nothing => {}
            Owed::Error(error) => return Err(error),
            moving @ Owed::Moving { .. } => {
                self.owed = moving;
                return self.poll_moving(status);
            }
        }
        // Settled before the queue is read: a seek drops the end signals queued before it.
        let end_holds = self.end_holds();
        status.end_void = !end_holds;
        while status.records < max {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => {
                    on_record(&SourceRecord {
                        offset: message.offset(),
                        payload: message.payload(),
                        rest: &MessageRest(&message),
                    });
                    self.next_offset = Some(message.offset() + 1);
                    status.records += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // From a fetch before the last break, or while the leader is out of
                    // reach: not the end as it is now.
                    status.at_end = end_holds;
                    if !end_holds {
                        self.earning = Earning::Owed;
                    }
                    // At the end the client's position also counts what it read and passed
                    // over without handing out: transaction markers and records of aborted
                    // transactions. Every record below it has been handed out (the end event
                    // comes after them), so it is the position; without it a partition whose
                    // log ends in a marker would show one record waiting forever.
                    if let Some(position) = self.client_position() {
                        self.next_offset =
                            Some(self.next_offset.map_or(position, |n| n.max(position)));
                    }
                    break;
                }
                Some(Err(error))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) =>
                {
                    self.start_moving(&error);
                    break;
                }
                Some(Err(error)) => {
                    let error = source_error(self.partition, &error);
                    if status.records == 0 {
                        return Err(error);
                    }
                    self.owed = Owed::Error(error);
                    break;
                }
            }
        }
        if status.at_end || (status.records > 0 && self.earning != Earning::Owed) {
            self.earning = Earning::Settled;
        }
        // The position only ever comes from records actually handed out: the cached high
        // watermark may already count records that are fetched but still queued, and using it
        // as a position would commit past them.
        status.high_watermark = self.cached_high_watermark();
        status.next_offset = self.next_offset;
        Ok(status)
    }

    fn wake_on_records(&mut self, wake: Wake) {
        self.wake = Some(wake.clone());
        self.queue.set_nonempty_callback(move || wake());
    }

    fn pause(&mut self) -> Result<(), SourceError> {
        // Only a partition this reader paused is ever resumed: librdkafka drops what was
        // fetched on a resume too, and only after a pause does it fetch that again.
        self.pause_fetch(true)?;
        self.paused = true;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), SourceError> {
        if !self.paused {
            return Ok(());
        }
        self.pause_fetch(false)?;
        self.paused = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    fn kind(code: RDKafkaErrorCode) -> FailureKind {
        source_error(p(3), &KafkaError::MessageConsumption(code)).kind
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
            PartitionId::of("t", 3),
            &KafkaError::MessageConsumption(RDKafkaErrorCode::NotImplemented),
        );
        assert!(
            error.message.starts_with("partition t-3: "),
            "{}",
            error.message
        );
    }
}
