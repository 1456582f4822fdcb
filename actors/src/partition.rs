//! [`PartitionActor`]: reads one partition (the partition model: it assigns its partition to
//! itself and starts from an offset it is given) and sends parsed frames onward in chunks.
//!
//! Partition actors share a few arbiter threads (`partition.threads`), because reading never
//! blocks: one `Poll` takes what is already buffered, up to `partition.chunk_max_frames`;
//! when nothing is, the actor waits until its source wakes it (records arrived) or
//! `partition.poll_timeout_ms` passes, handling other messages meanwhile. The chunk goes to
//! the batch actor with
//! `send().await` inside `ctx.wait`, so a partition never runs ahead of the batch actor's
//! mailbox (backpressure) and no other message is handled before the chunk is acknowledged.
//! The metrics actor gets one summary per chunk.
//!
//! Invalid frames are counted by reason, logged at most once per
//! `partition.invalid_log_interval_ms` with partition and offset, and skipped; their offsets
//! count as processed.
//!
//! A partition actor that fails (a fatal read error, a panic in one of its handlers) tells its
//! supervisor with [`PartitionExited`] as it stops, naming its incarnation and the cause: actix
//! runs `stopped` while a panic unwinds, and the panic's message is taken from a panic hook.
//! Fault-injection runs wrap its source ([`crate::faults`]); the actor knows nothing of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::Notify;

use crate::batch::{Chunk, Flow};
use crate::config::PartitionConfig;
use crate::failure::PartitionFailure;
use crate::frame::{
    parse_frame, DeadLetter, FrameChunk, FrameLimits, InvalidCounts, InvalidFlood, InvalidReason,
    InvalidTally,
};
use crate::metrics::{ChunkProcessed, RecordsSkipped};
use crate::ports::{FailureKind, FrameSource, PollStatus, SourceFactory, StartOffset};
use crate::topic::PartitionId;
use crate::window::AT_END_HEARTBEAT;

/// When a partition is done for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPolicy {
    /// Never: a service reads until it is stopped.
    Never,
    /// At the first time it catches up with its end.
    FirstEnd,
    /// Once it has caught up with its end at or past an offset that is not known yet
    /// ([`EndAt`] sets it): used while the embedded generator is still producing.
    AwaitOffset,
    /// Once it has caught up with its end at or past this offset.
    Offset(i64),
}

/// Sets the end of a partition that waits for one ([`EndPolicy::AwaitOffset`]); `None` means
/// its current end.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct EndAt(pub Option<i64>);

/// Asks a partition actor for the name of its state (`opening`, `reading`, `paused`,
/// `finished`, `failed`, `stopped`), as an operator sees it, and how long ago it last polled.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "(&'static str, Duration)")]
pub struct GetReaderState;

/// Stops reading; answers once the last chunk has been acknowledged by the batch actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopIntake;

/// A partition actor stopped because it failed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PartitionExited {
    /// The partition.
    pub partition: PartitionId,
    /// Which incarnation of the partition's actor (a restart starts the next one), so a late
    /// report about an actor already replaced is recognised.
    pub incarnation: u64,
    /// Why it stopped (and whether a restart may cure it).
    pub cause: PartitionFailure,
}

/// Incarnation numbers, unique in the process.
static NEXT_INCARNATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Where a partition actor sends what it reads.
#[derive(Clone)]
pub struct PartitionOutputs {
    /// The batch actor.
    pub batch: Recipient<Chunk>,
    /// The metrics actor.
    pub metrics: Recipient<ChunkProcessed>,
    /// The metrics actor, for ranges passed over unread.
    pub skipped: Recipient<RecordsSkipped>,
    /// Told when the partition fails.
    pub supervisor: Recipient<PartitionExited>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

/// Logs invalid frames at most once per interval, saying how many were not logged.
struct InvalidLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl InvalidLog {
    fn note(
        &mut self,
        partition: PartitionId,
        offset: i64,
        reason: InvalidReason,
        dead_letter: bool,
    ) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return;
        }
        match dead_letter {
            true => {
                tracing::warn!(%partition, offset, %reason, suppressed = self.suppressed, "Invalid frame; dead-lettered.")
            }
            false => {
                tracing::warn!(%partition, offset, %reason, suppressed = self.suppressed, "Skipped invalid frame.")
            }
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Where a partition actor is in its life: what an operator sees for the partition.
enum ReaderState {
    /// Its source is not open yet.
    Opening,
    /// Reading its source, or waiting for records.
    Reading(Box<dyn FrameSource>),
    /// Told to read nothing more for now (the open windows are over their memory budget and
    /// this partition is ahead of the watermark): fetches nothing, polls nothing, and does not
    /// say it is at its end.
    Paused(Box<dyn FrameSource>),
    /// Consumed to its end (`--until-end`): reads nothing more.
    Finished,
    /// Stopping after a failure, which is reported to the supervisor as it stops.
    Failed(PartitionFailure),
    /// Told to stop, or its batch actor is gone.
    Stopped,
}

impl ReaderState {
    fn name(&self) -> &'static str {
        match self {
            ReaderState::Opening => "opening",
            ReaderState::Reading(_) => "reading",
            ReaderState::Paused(_) => "paused",
            ReaderState::Finished => "finished",
            ReaderState::Failed(_) => "failed",
            ReaderState::Stopped => "stopped",
        }
    }
}

/// What happens to a partition actor's life.
enum ReaderEvent {
    /// Its source is open.
    Opened(Box<dyn FrameSource>),
    /// Opening or reading failed beyond a retry, or too many invalid frames came.
    Failed(PartitionFailure),
    /// It reached the end it was to read to.
    Finished,
    /// The batch actor said to pause until the receiver completes.
    Pause(tokio::sync::oneshot::Receiver<()>),
    /// The pause is over.
    Resume,
    /// It is told to stop (or cannot go on: the batch actor is gone).
    Stop,
}

impl ReaderEvent {
    fn name(&self) -> &'static str {
        match self {
            ReaderEvent::Opened(_) => "opened",
            ReaderEvent::Failed(_) => "failed",
            ReaderEvent::Finished => "finished",
            ReaderEvent::Pause(_) => "pause",
            ReaderEvent::Resume => "resume",
            ReaderEvent::Stop => "stop",
        }
    }
}

/// What a partition actor knows of its partition's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndKnown {
    /// Not caught up: records were read since the end was last found, or it never was.
    Reading,
    /// A poll found the partition caught up with its end, and nothing was read since.
    AtEnd,
    /// The end was found, but a poll since said that no longer holds
    /// ([`PollStatus::end_void`]: the link to the leader broke). Until a fresh poll finds it
    /// again the batch actor hears "not at the end", which restarts its idle clock.
    Void,
}

impl EndKnown {
    /// After a poll that read `records`, found the end or not (`at_end`) and said whether
    /// what was known of it still holds (`void`).
    fn after(self, records: usize, at_end: bool, void: bool) -> EndKnown {
        match (self, records > 0, at_end, void) {
            (_, _, true, _) => EndKnown::AtEnd,
            (_, true, false, _) => EndKnown::Reading,
            (EndKnown::AtEnd | EndKnown::Void, false, false, true) => EndKnown::Void,
            (known, false, false, _) => known,
        }
    }
}

/// Reads one partition; see the module documentation.
pub struct PartitionActor {
    partition: PartitionId,
    start: StartOffset,
    factory: SourceFactory,
    state: ReaderState,
    outputs: PartitionOutputs,
    config: PartitionConfig,
    limits: FrameLimits,
    end: EndPolicy,
    /// What it knows of its partition's end.
    known_end: EndKnown,
    next_offset: Option<i64>,
    /// Where this reader began: its start offset or, started without one (from
    /// `auto.offset.reset`), the first record it handed out.
    read_from: Option<i64>,
    invalid_log: InvalidLog,
    /// Invalid frames against the dead-letter limits.
    invalid_tally: InvalidTally,
    last_error_log: Option<Instant>,
    incarnation: u64,
    /// When the last chunk went to the batch actor.
    last_sent: Instant,
    /// Signalled by the source when records arrive.
    records_arrived: Arc<Notify>,
    /// The wait for records under way, if any.
    waiting: Option<SpawnHandle>,
    /// When it last polled its source (for liveness).
    last_poll: Instant,
    /// The metrics actor has heard from this reader (a chunk with records, or its first
    /// report of being at the end): until then the watchdog sees no first chunk.
    reported: bool,
}

impl PartitionActor {
    /// A partition actor that opens its source from `factory` when it starts.
    pub fn new(
        partition: PartitionId,
        start: StartOffset,
        factory: SourceFactory,
        outputs: PartitionOutputs,
        config: PartitionConfig,
        limits: FrameLimits,
        end: EndPolicy,
    ) -> Self {
        let invalid_log = InvalidLog {
            interval: Duration::from_millis(config.invalid_log_interval_ms),
            last: None,
            suppressed: 0,
        };
        PartitionActor {
            partition,
            start,
            factory,
            state: ReaderState::Opening,
            outputs,
            config,
            limits,
            end,
            known_end: EndKnown::Reading,
            next_offset: start.offset(),
            read_from: start.offset(),
            invalid_log,
            invalid_tally: InvalidTally::default(),
            last_error_log: None,
            incarnation: NEXT_INCARNATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            last_sent: Instant::now(),
            records_arrived: Arc::new(Notify::new()),
            waiting: None,
            last_poll: Instant::now(),
            reported: false,
        }
    }

    /// Overrides the incarnation number (unique in the process by default).
    #[must_use]
    pub fn incarnation(mut self, incarnation: u64) -> Self {
        self.incarnation = incarnation;
        self
    }

    /// The partition this actor reads.
    pub fn partition_id(&self) -> PartitionId {
        self.partition
    }

    /// Which incarnation of the partition's actor this is (reported when it fails).
    pub fn incarnation_id(&self) -> u64 {
        self.incarnation
    }

    fn end_reached(&self) -> bool {
        self.known_end == EndKnown::AtEnd
            && match self.end {
                EndPolicy::Never | EndPolicy::AwaitOffset => false,
                EndPolicy::FirstEnd => true,
                EndPolicy::Offset(end) => self.next_offset.unwrap_or(0) >= end,
            }
    }

    /// The one place the actor's life changes: `match (state, event)`, each change logged.
    fn on(&mut self, event: ReaderEvent, ctx: &mut Context<Self>) {
        let partition = self.partition;
        let state = std::mem::replace(&mut self.state, ReaderState::Stopped);
        self.state = match (state, event) {
            (ReaderState::Opening, ReaderEvent::Opened(source)) => {
                tracing::debug!(%partition, start = ?self.start, "Partition assigned.");
                ctx.notify(Poll);
                ReaderState::Reading(source)
            }
            (ReaderState::Reading(mut source), ReaderEvent::Pause(resumed)) => {
                if let Err(error) = source.pause() {
                    tracing::warn!(%partition, %error, "Pausing the fetch failed; not polling meanwhile.");
                }
                tracing::debug!(%partition, next_offset = ?self.next_offset, "Intake paused.");
                ctx.spawn(resumed.into_actor(self).map(|_, act, ctx| {
                    // Resumed, or the batch actor let the partition go (dropped the sender):
                    // either way reading goes on, or stops at the next chunk.
                    act.on(ReaderEvent::Resume, ctx);
                }));
                ReaderState::Paused(source)
            }
            (ReaderState::Paused(mut source), ReaderEvent::Resume) => match source.resume() {
                Ok(()) => {
                    tracing::debug!(%partition, next_offset = ?self.next_offset, "Intake resumed.");
                    // What was fetched before the pause is fetched again; the end is not known
                    // until a poll says so.
                    self.known_end = EndKnown::Reading;
                    ctx.notify(Poll);
                    ReaderState::Reading(source)
                }
                Err(error) => {
                    tracing::error!(%partition, %error, "Partition failed.");
                    ctx.stop();
                    ReaderState::Failed(error.into())
                }
            },
            (
                ReaderState::Opening | ReaderState::Reading(_) | ReaderState::Paused(_),
                ReaderEvent::Failed(error),
            ) => {
                tracing::error!(%partition, %error, "Partition failed.");
                ctx.stop();
                ReaderState::Failed(error)
            }
            (ReaderState::Reading(_), ReaderEvent::Finished) => {
                tracing::info!(%partition, next_offset = ?self.next_offset, "Partition consumed to its end.");
                ReaderState::Finished
            }
            // Already stopping after a failure: the failure is still to be reported.
            (ReaderState::Failed(error), ReaderEvent::Stop) => ReaderState::Failed(error),
            (_, ReaderEvent::Stop) => {
                ctx.stop();
                ReaderState::Stopped
            }
            (state, event) => {
                tracing::error!(
                    %partition,
                    state = state.name(),
                    event = event.name(),
                    "A partition actor cannot take this turn; ignored."
                );
                state
            }
        };
    }

    fn fail(&mut self, error: impl Into<PartitionFailure>, ctx: &mut Context<Self>) {
        self.on(ReaderEvent::Failed(error.into()), ctx);
    }

    fn read(&mut self, ctx: &mut Context<Self>) {
        let ReaderState::Reading(source) = &mut self.state else {
            return;
        };
        self.last_poll = Instant::now();
        let mut frames = FrameChunk::with_capacity(self.config.chunk_max_frames.min(4_096));
        let mut invalid = InvalidCounts::default();
        let mut first_record: Option<Instant> = None;
        let limits = self.limits.at(crate::clock::now_epoch_secs());
        let partition = self.partition;
        let log = &mut self.invalid_log;
        let read_from = &mut self.read_from;
        // Offsets only grow within one reader; a record below the position was handed out
        // before and is counted already.
        let mut expected = self.next_offset;
        let mut again: Option<(i64, u64)> = None;
        let mut dead_letters = Vec::new();
        let (tally, policy) = (&mut self.invalid_tally, limits.invalid);
        let mut flood: Option<InvalidFlood> = None;
        let result = source.poll(self.config.chunk_max_frames, &mut |record| {
            let (offset, payload) = (record.offset, record.payload);
            first_record.get_or_insert_with(Instant::now);
            if flood.is_some() {
                // Past the limit: the rest of the chunk is neither counted nor passed on.
                return;
            }
            if expected.is_some_and(|e| offset < e) {
                again.get_or_insert((offset, 0)).1 += 1;
                return;
            }
            expected = Some(offset + 1);
            read_from.get_or_insert(offset);
            let parsed = parse_frame(payload, &limits);
            // The limits apply with a dead-letter topic only; without one nothing is counted.
            if policy.dead_letter {
                if let Err(over) = tally.record(&policy, offset, parsed.as_ref().err().copied()) {
                    flood = Some(over);
                    return;
                }
            }
            match parsed {
                Ok(frame) => frames.push(offset, frame.ts, &frame.uid),
                Err(reason) => {
                    invalid.add(reason);
                    log.note(partition, offset, reason, policy.dead_letter);
                    if policy.dead_letter {
                        dead_letters.push(DeadLetter {
                            partition,
                            offset,
                            reason,
                            payload: payload.map(<[u8]>::to_vec),
                            key: record.rest.key().map(<[u8]>::to_vec),
                            headers: record.rest.headers(),
                        });
                    }
                }
            }
        });
        if let Some(flood) = flood {
            return self.fail(PartitionFailure::InvalidFlood(flood), ctx);
        }
        let process = first_record.map_or(Duration::ZERO, |t| t.elapsed());
        if let Some((first, records)) = again {
            tracing::warn!(
                %partition,
                first,
                records,
                position = ?self.next_offset,
                "Records below the position were delivered again; skipped."
            );
        }
        let status = match result {
            Ok(status) => status,
            Err(error) if error.kind != FailureKind::Transient => return self.fail(error, ctx),
            Err(error) => {
                let now = Instant::now();
                if self
                    .last_error_log
                    .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(5))
                {
                    tracing::warn!(%partition, %error, "Reading the partition failed; retrying.");
                    self.last_error_log = Some(now);
                }
                self.wait_for_records(ctx);
                return;
            }
        };
        self.deliver(frames, dead_letters, invalid, process, status, ctx);
    }

    fn deliver(
        &mut self,
        frames: FrameChunk,
        dead_letters: Vec<DeadLetter>,
        invalid: InvalidCounts,
        process: Duration,
        status: PollStatus,
        ctx: &mut Context<Self>,
    ) {
        self.known_end = self
            .known_end
            .after(status.records, status.at_end, status.end_void);
        // The position can move without a record handed out: past transaction markers and
        // aborted records, once the reader reaches the end.
        let moved_past_unread = status.records == 0 && status.next_offset > self.next_offset;
        self.next_offset = status.next_offset.max(self.next_offset);
        if let Some((from, to)) = status.skipped {
            self.outputs.skipped.do_send(RecordsSkipped {
                partition: self.partition,
                from,
                to,
            });
        }
        if status.records > 0 || moved_past_unread || (status.at_end && !self.reported) {
            self.reported = true;
            self.outputs.metrics.do_send(ChunkProcessed {
                partition: self.partition,
                frames: frames.len() as u64,
                invalid,
                process,
                next_offset: self.next_offset,
                high_watermark: status.high_watermark,
            });
        }
        if status.records == 0 && !status.at_end {
            // Still caught up (or no longer known to be): say so now and then, or the batch
            // actor cannot tell a quiet partition from a stalled reader (and must not treat
            // the latter as idle).
            if self.known_end != EndKnown::Reading && self.last_sent.elapsed() >= AT_END_HEARTBEAT {
                self.send_chunk(FrameChunk::default(), Vec::new(), ctx);
                return;
            }
            // Nothing new: wait for the source to say records arrived (or for the poll
            // timeout), handling messages to this actor meanwhile.
            self.wait_for_records(ctx);
            return;
        }
        self.send_chunk(frames, dead_letters, ctx);
    }

    /// Polls again once the source signals records or `partition.poll_timeout_ms` passes.
    fn wait_for_records(&mut self, ctx: &mut Context<Self>) {
        let arrived = self.records_arrived.clone();
        let timeout = Duration::from_millis(self.config.poll_timeout_ms);
        let wait = async move {
            let _ = tokio::time::timeout(timeout, arrived.notified()).await;
        };
        self.waiting = Some(ctx.spawn(wait.into_actor(self).map(|(), act, ctx| {
            act.waiting = None;
            ctx.notify(Poll);
        })));
    }

    /// Sends a chunk (possibly empty, to report the end) and polls again once it is taken.
    fn send_chunk(
        &mut self,
        frames: FrameChunk,
        dead_letters: Vec<DeadLetter>,
        ctx: &mut Context<Self>,
    ) {
        // One poll chain per actor: a chunk sent from elsewhere (the end became known)
        // replaces the wait under way, and the poll after it takes the wait's place.
        if let Some(waiting) = self.waiting.take() {
            ctx.cancel_future(waiting);
        }
        self.last_sent = Instant::now();
        let finished = self.end_reached();
        let chunk = Chunk {
            partition: self.partition,
            frames,
            dead_letters,
            next_offset: self.next_offset,
            read_from: self.read_from.or(self.next_offset),
            at_end: self.known_end == EndKnown::AtEnd,
            finished,
        };
        if finished {
            self.on(ReaderEvent::Finished, ctx);
        }
        let send = self.outputs.batch.send(chunk);
        ctx.wait(send.into_actor(self).map(move |result, act, ctx| match result {
            Ok(Flow::Go) if matches!(act.state, ReaderState::Reading(_)) => ctx.notify(Poll),
            Ok(Flow::Pause(resumed)) if matches!(act.state, ReaderState::Reading(_)) => {
                act.on(ReaderEvent::Pause(resumed), ctx);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(partition = %act.partition, %error, "The batch actor is gone; stopping.");
                act.on(ReaderEvent::Stop, ctx);
            }
        }));
    }
}

impl Actor for PartitionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::panics::install_hook();
        // Opening splits the partition's queue off the consumer (and seeks): no waiting.
        match (self.factory)(self.partition, self.start) {
            Ok(mut source) => {
                let arrived = self.records_arrived.clone();
                source.wake_on_records(Arc::new(move || arrived.notify_one()));
                self.on(ReaderEvent::Opened(source), ctx);
            }
            Err(error) => self.fail(error, ctx),
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Runs on a normal stop and while a panic in a handler unwinds.
        let cause = match crate::panics::unwinding() {
            Some(message) => Some(PartitionFailure::Panicked { message }),
            None => match std::mem::replace(&mut self.state, ReaderState::Stopped) {
                ReaderState::Failed(failure) => Some(failure.clone()),
                _ => None,
            },
        };
        if let Some(cause) = cause {
            self.outputs.supervisor.do_send(PartitionExited {
                partition: self.partition,
                incarnation: self.incarnation,
                cause,
            });
        }
    }
}

impl Handler<Poll> for PartitionActor {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        self.read(ctx);
    }
}

impl Handler<EndAt> for PartitionActor {
    type Result = ();

    fn handle(&mut self, msg: EndAt, ctx: &mut Self::Context) {
        if self.end != EndPolicy::AwaitOffset {
            return;
        }
        self.end = match msg.0 {
            Some(offset) => EndPolicy::Offset(offset),
            None => EndPolicy::FirstEnd,
        };
        // Already at the end: no further poll would report it again, so report it now.
        if matches!(self.state, ReaderState::Reading(_)) && self.end_reached() {
            self.send_chunk(FrameChunk::default(), Vec::new(), ctx);
        }
    }
}

impl Handler<GetReaderState> for PartitionActor {
    type Result = MessageResult<GetReaderState>;

    fn handle(&mut self, _: GetReaderState, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.state.name(), self.last_poll.elapsed()))
    }
}

impl Handler<StopIntake> for PartitionActor {
    type Result = ();

    fn handle(&mut self, _: StopIntake, ctx: &mut Self::Context) {
        // Chunks are sent inside `ctx.wait`, so by the time this runs the last one is taken.
        self.on(ReaderEvent::Stop, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::ports::{SourceError, SourceRecord};

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }
    use crate::faults::{FaultPlan, PartitionFault, Times};

    /// The records of one scripted poll, and whether it ends at the partition's end.
    type ScriptedPoll = (Vec<(i64, Vec<u8>)>, bool);

    /// What a [`FakeSource`] says of the partition's end besides its script.
    #[derive(Default)]
    struct EndNews {
        /// Every poll says the end is void (the link to the leader is broken).
        void: AtomicBool,
        /// The next poll finds the end (a fetch made after the break answered).
        found: AtomicBool,
    }

    impl EndNews {
        fn status(&self, at_end: bool) -> (bool, bool) {
            let void = self.void.load(Ordering::Relaxed);
            let found = !void && self.found.swap(false, Ordering::Relaxed);
            (at_end || found, void)
        }
    }

    /// Serves scripted polls.
    struct FakeSource {
        script: VecDeque<ScriptedPoll>,
        next: Option<i64>,
        /// What the source says of the partition's end besides its script.
        news: Arc<EndNews>,
        /// Where polls, pauses and resumes are recorded.
        collected: Arc<Mutex<Collected>>,
    }

    impl FrameSource for FakeSource {
        fn poll(
            &mut self,
            max: usize,
            on_record: &mut dyn FnMut(&SourceRecord<'_>),
        ) -> Result<PollStatus, SourceError> {
            self.collected.lock().unwrap().calls.push("poll");
            let Some((records, at_end)) = self.script.pop_front() else {
                let (at_end, end_void) = self.news.status(false);
                return Ok(PollStatus {
                    next_offset: self.next,
                    at_end,
                    end_void,
                    ..PollStatus::default()
                });
            };
            let (at_end, end_void) = self.news.status(at_end);
            assert!(records.len() <= max);
            for (offset, payload) in &records {
                on_record(&SourceRecord::plain(*offset, Some(payload)));
                self.next = Some(offset + 1);
            }
            Ok(PollStatus {
                records: records.len(),
                at_end,
                next_offset: self.next,
                high_watermark: self.next,
                end_void,
                ..PollStatus::default()
            })
        }

        fn pause(&mut self) -> Result<(), SourceError> {
            self.collected.lock().unwrap().calls.push("pause");
            Ok(())
        }

        fn resume(&mut self) -> Result<(), SourceError> {
            self.collected.lock().unwrap().calls.push("resume");
            Ok(())
        }
    }

    #[derive(Default)]
    struct Collected {
        chunks: Vec<Chunk>,
        metrics: Vec<ChunkProcessed>,
        skipped: Vec<RecordsSkipped>,
        failures: Vec<PartitionExited>,
        /// The source's polls, pauses and resumes, in order.
        calls: Vec<&'static str>,
        /// Answer the chunk numbered this (from 1) with a pause.
        pause_at_chunk: Option<usize>,
        /// What ends that pause.
        resume: Option<tokio::sync::oneshot::Sender<()>>,
        /// What the actor does with invalid frames.
        invalid: crate::frame::InvalidPolicy,
    }

    struct Collector(Arc<Mutex<Collected>>);
    impl Actor for Collector {
        type Context = Context<Self>;
    }
    impl Handler<Chunk> for Collector {
        type Result = MessageResult<Chunk>;
        fn handle(&mut self, msg: Chunk, _: &mut Self::Context) -> Self::Result {
            let mut collected = self.0.lock().unwrap();
            collected.chunks.push(msg);
            if collected.pause_at_chunk == Some(collected.chunks.len()) {
                let (resume, resumed) = tokio::sync::oneshot::channel();
                collected.resume = Some(resume);
                return MessageResult(Flow::Pause(resumed));
            }
            MessageResult(Flow::Go)
        }
    }
    impl Handler<ChunkProcessed> for Collector {
        type Result = ();
        fn handle(&mut self, msg: ChunkProcessed, _: &mut Self::Context) {
            self.0.lock().unwrap().metrics.push(msg);
        }
    }
    impl Handler<RecordsSkipped> for Collector {
        type Result = ();
        fn handle(&mut self, msg: RecordsSkipped, _: &mut Self::Context) {
            self.0.lock().unwrap().skipped.push(msg);
        }
    }
    impl Handler<PartitionExited> for Collector {
        type Result = ();
        fn handle(&mut self, msg: PartitionExited, _: &mut Self::Context) {
            self.0.lock().unwrap().failures.push(msg);
        }
    }

    fn start(
        script: Vec<ScriptedPoll>,
        end: EndPolicy,
    ) -> (Addr<PartitionActor>, Arc<Mutex<Collected>>) {
        start_with(script, end, Arc::new(EndNews::default()), None)
    }

    /// Starts the actor with `faults` armed in its source before it polls.
    fn start_faulty(
        script: Vec<ScriptedPoll>,
        fault: PartitionFault,
    ) -> (Addr<PartitionActor>, Arc<Mutex<Collected>>) {
        let plan = FaultPlan::default();
        plan.inject(p(3), fault, Times::Once);
        start_with(
            script,
            EndPolicy::Never,
            Arc::new(EndNews::default()),
            Some(plan),
        )
    }

    fn start_with_news(
        script: Vec<ScriptedPoll>,
        end: EndPolicy,
        news: Arc<EndNews>,
    ) -> (Addr<PartitionActor>, Arc<Mutex<Collected>>) {
        start_with(script, end, news, None)
    }

    fn start_with(
        script: Vec<ScriptedPoll>,
        end: EndPolicy,
        news: Arc<EndNews>,
        faults: Option<FaultPlan>,
    ) -> (Addr<PartitionActor>, Arc<Mutex<Collected>>) {
        start_collecting(script, end, news, faults, Collected::default())
    }

    fn start_collecting(
        script: Vec<ScriptedPoll>,
        end: EndPolicy,
        news: Arc<EndNews>,
        faults: Option<FaultPlan>,
        collected: Collected,
    ) -> (Addr<PartitionActor>, Arc<Mutex<Collected>>) {
        let invalid = collected.invalid;
        let collected = Arc::new(Mutex::new(collected));
        let collector = Collector(collected.clone()).start();
        let script = Arc::new(Mutex::new(Some(script)));
        let records = collected.clone();
        let factory: SourceFactory = Arc::new(move |_, _| {
            let script = script.lock().unwrap().take().unwrap_or_default();
            Ok(Box::new(FakeSource {
                script: script.into(),
                next: None,
                news: news.clone(),
                collected: records.clone(),
            }) as Box<dyn FrameSource>)
        });
        let factory = match faults {
            Some(plan) => plan.wrap_sources(factory),
            None => factory,
        };
        let outputs = PartitionOutputs {
            batch: collector.clone().recipient(),
            metrics: collector.clone().recipient(),
            skipped: collector.clone().recipient(),
            supervisor: collector.recipient(),
        };
        let limits = FrameLimits {
            max_bytes: 128,
            min_ts: 946_684_800.0,
            max_ts: 4_102_444_800.0,
            max_future_secs: f64::INFINITY,
            future_after: f64::INFINITY,
            invalid,
        };
        let actor = PartitionActor::new(
            p(3),
            StartOffset::Reset,
            factory,
            outputs,
            PartitionConfig::default(),
            limits,
            end,
        )
        .incarnation(7);
        (actor.start(), collected)
    }

    /// Ten polls of one frame each, then nothing.
    fn steady_script() -> Vec<ScriptedPoll> {
        (0..10)
            .map(|i| (vec![(i, frame(1_700_000_000 + i, "a"))], false))
            .collect()
    }

    #[actix::test]
    async fn a_paused_partition_stops_fetching_and_polling_until_it_is_resumed() {
        let collected = Collected {
            pause_at_chunk: Some(3),
            ..Collected::default()
        };
        let (_addr, collected) = start_collecting(
            steady_script(),
            EndPolicy::Never,
            Arc::new(EndNews::default()),
            None,
            collected,
        );
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        {
            let c = collected.lock().unwrap();
            assert_eq!(c.chunks.len(), 3, "nothing read while paused");
            assert_eq!(c.calls, ["poll", "poll", "poll", "pause"]);
        }
        let resume = collected.lock().unwrap().resume.take().unwrap();
        resume.send(()).unwrap();
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let c = collected.lock().unwrap();
        assert_eq!(c.calls[4], "resume");
        assert_eq!(c.chunks.len(), 10, "reads on after the resume");
        let offsets: Vec<i64> = c
            .chunks
            .iter()
            .flat_map(|c| c.frames.iter().map(|f| f.0))
            .collect();
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    }

    #[actix::test]
    async fn a_panic_is_reported_with_its_message_and_incarnation() {
        let (actor, collected) = start_faulty(steady_script(), PartitionFault::Panic);
        actix_rt::time::sleep(Duration::from_millis(150)).await;
        assert!(!actor.connected(), "the panicked actor is gone");
        let c = collected.lock().unwrap();
        assert_eq!(c.failures.len(), 1);
        assert_eq!(c.failures[0].partition, p(3));
        assert_eq!(c.failures[0].incarnation, 7);
        assert!(
            matches!(
                &c.failures[0].cause,
                PartitionFailure::Panicked { message }
                    if message.starts_with("injected panic in partition t-3 at ")
            ),
            "{}",
            c.failures[0].cause
        );
    }

    #[actix::test]
    async fn a_fatal_failure_is_reported_and_a_plain_stop_is_not() {
        let (_actor, collected) = start_faulty(steady_script(), PartitionFault::Fail);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        {
            let c = collected.lock().unwrap();
            assert_eq!(c.failures.len(), 1);
            assert_eq!(
                c.failures[0].cause,
                PartitionFailure::Source {
                    reach: FailureKind::Fatal,
                    message: "partition t-3: injected failure".into()
                }
            );
        }
        let (actor, collected) = start(steady_script(), EndPolicy::Never);
        actor.send(StopIntake).await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        assert!(collected.lock().unwrap().failures.is_empty());
    }

    #[actix::test]
    async fn a_stall_pauses_reading_for_its_duration() {
        let (_actor, collected) = start_faulty(steady_script(), PartitionFault::StallMs(300));
        actix_rt::time::sleep(Duration::from_millis(150)).await;
        let during = collected.lock().unwrap().chunks.len();
        assert!(during < 10, "reading paused: {during} chunks");
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(collected.lock().unwrap().chunks.len(), 10, "and resumed");
        assert!(collected.lock().unwrap().failures.is_empty());
    }

    #[actix::test]
    async fn after_a_break_in_the_link_the_end_is_claimed_only_when_a_fresh_poll_finds_it() {
        let news = Arc::new(EndNews::default());
        let script = vec![(vec![(0, frame(1_700_000_000, "a"))], true)];
        let (_actor, collected) = start_with_news(script, EndPolicy::Never, news.clone());
        // What the heartbeats (every 250 ms) of the next 700 ms say about the end.
        async fn phase(collected: &Arc<Mutex<Collected>>) -> Vec<bool> {
            let from = collected.lock().unwrap().chunks.len();
            actix_rt::time::sleep(Duration::from_millis(700)).await;
            let c = collected.lock().unwrap();
            c.chunks[from..].iter().map(|c| c.at_end).collect()
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let caught_up = phase(&collected).await;
        // The leader goes out of reach: the end is not known.
        news.void.store(true, Ordering::Relaxed);
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let cut_off = phase(&collected).await;
        // In reach again, but no fetch since has answered: the end known before the break
        // is not the end now (the records produced meanwhile may not be fetched yet).
        news.void.store(false, Ordering::Relaxed);
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let unanswered = phase(&collected).await;
        // A fetch made after the break finds the end.
        news.found.store(true, Ordering::Relaxed);
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let answered = phase(&collected).await;
        assert!(
            caught_up.len() >= 2 && caught_up.iter().all(|e| *e),
            "{caught_up:?}"
        );
        assert!(
            cut_off.len() >= 2 && cut_off.iter().all(|e| !*e),
            "{cut_off:?}"
        );
        assert!(
            unanswered.len() >= 2 && unanswered.iter().all(|e| !*e),
            "the end before the break was claimed again: {unanswered:?}"
        );
        assert!(
            answered.len() >= 2 && answered.iter().all(|e| *e),
            "{answered:?}"
        );
        assert!(collected.lock().unwrap().chunks.iter().all(|c| !c.finished));
    }

    fn frame(ts: i64, uid: &str) -> Vec<u8> {
        format!(r#"{{"ts":{ts},"uid":"{uid}"}}"#).into_bytes()
    }

    /// Starts the actor with dead letters on and the given limits.
    fn start_dead_lettering(
        script: Vec<ScriptedPoll>,
        max_consecutive: u64,
        max_share: f64,
        share_of: u64,
    ) -> Arc<Mutex<Collected>> {
        let collected = Collected {
            invalid: crate::frame::InvalidPolicy {
                dead_letter: true,
                max_consecutive,
                max_share,
                share_of,
            },
            ..Collected::default()
        };
        let (_addr, collected) = start_collecting(
            script,
            EndPolicy::FirstEnd,
            Arc::new(EndNews::default()),
            None,
            collected,
        );
        collected
    }

    #[actix::test]
    async fn invalid_records_travel_with_their_chunk_as_dead_letters() {
        let script = vec![
            (
                vec![
                    (0, frame(1_700_000_000, "a")),
                    (1, b"{oops".to_vec()),
                    (2, frame(1_700_000_001, "b")),
                ],
                false,
            ),
            (
                vec![(3, b"[1]".to_vec()), (4, frame(1_700_000_002, "c"))],
                true,
            ),
        ];
        let collected = start_dead_lettering(script, 3, 0.5, 100);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let c = collected.lock().unwrap();
        assert!(c.failures.is_empty());
        let letters: Vec<(i64, InvalidReason, Vec<u8>)> = c
            .chunks
            .iter()
            .flat_map(|chunk| &chunk.dead_letters)
            .map(|d| (d.offset, d.reason, d.payload.clone().unwrap()))
            .collect();
        assert_eq!(
            letters,
            vec![
                (1, InvalidReason::NotJson, b"{oops".to_vec()),
                (3, InvalidReason::NotObject, b"[1]".to_vec()),
            ]
        );
        assert!(c.chunks[0].dead_letters.iter().all(|d| d.partition == p(3)));
    }

    #[actix::test]
    async fn too_many_invalid_frames_in_a_row_stop_the_partition_for_good() {
        let bad: Vec<(i64, Vec<u8>)> = (1..11).map(|o| (o, b"nope".to_vec())).collect();
        let script = vec![(vec![(0, frame(1_700_000_000, "a"))], false), (bad, false)];
        let collected = start_dead_lettering(script, 4, 1.0, 100);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let c = collected.lock().unwrap();
        assert_eq!(c.failures.len(), 1);
        let cause = &c.failures[0].cause;
        assert_eq!(cause.reach(), FailureKind::Permanent);
        assert_eq!(
            *cause,
            PartitionFailure::InvalidFlood(InvalidFlood::Consecutive {
                count: 4,
                offset: 4,
                reason: "not_json".into(),
            })
        );
        // Nothing of the flood's chunk goes on: its offsets are not passed as processed.
        assert_eq!(c.chunks.len(), 1);
        assert_eq!(c.chunks[0].next_offset, Some(1));
    }

    #[actix::test]
    async fn sends_chunks_skips_bad_frames_and_finishes_at_the_end() {
        let script = vec![
            (
                vec![
                    (0, frame(1_700_000_000, "a")),
                    (1, b"{oops".to_vec()),
                    (2, frame(1_700_000_001, "b")),
                ],
                false,
            ),
            (vec![(3, b"[1]".to_vec()), (4, frame(12, "c"))], true),
        ];
        let (_actor, collected) = start(script, EndPolicy::FirstEnd);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let c = collected.lock().unwrap();
        assert_eq!(c.chunks.len(), 2, "one message per poll, not per frame");
        let offsets: Vec<i64> = c.chunks[0].frames.iter().map(|f| f.0).collect();
        assert_eq!(offsets, vec![0, 2]);
        assert_eq!(c.chunks[0].next_offset, Some(3));
        assert!(c.chunks[1].frames.is_empty());
        assert_eq!(
            c.chunks[1].next_offset,
            Some(5),
            "bad frames' offsets count as processed"
        );
        assert!(c.chunks[1].at_end && c.chunks[1].finished);
        let invalid = c
            .metrics
            .iter()
            .fold(InvalidCounts::default(), |mut acc, m| {
                acc.merge(&m.invalid);
                acc
            });
        assert_eq!(invalid.get(InvalidReason::NotJson), 1);
        assert_eq!(invalid.get(InvalidReason::NotObject), 1);
        assert_eq!(invalid.get(InvalidReason::ImplausibleTs), 1);
        assert!(c.failures.is_empty());
    }

    #[actix::test]
    async fn records_delivered_again_are_skipped() {
        let script = vec![
            (
                vec![
                    (0, frame(1_700_000_000, "a")),
                    (1, frame(1_700_000_001, "b")),
                ],
                false,
            ),
            (
                vec![
                    (1, frame(1_700_000_001, "b")),
                    (2, frame(1_700_000_002, "c")),
                ],
                true,
            ),
        ];
        let (_actor, collected) = start(script, EndPolicy::FirstEnd);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let c = collected.lock().unwrap();
        let offsets: Vec<Vec<i64>> = c
            .chunks
            .iter()
            .map(|chunk| chunk.frames.iter().map(|f| f.0).collect())
            .collect();
        assert_eq!(offsets, vec![vec![0, 1], vec![2]]);
        assert_eq!(c.chunks[1].next_offset, Some(3));
    }

    #[actix::test]
    async fn waits_for_its_end_offset_when_told_later() {
        let script = vec![(vec![(0, frame(1_700_000_000, "a"))], true)];
        let (actor, collected) = start(script, EndPolicy::AwaitOffset);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert!(!collected.lock().unwrap().chunks.iter().any(|c| c.finished));
        actor.send(EndAt(Some(1))).await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let c = collected.lock().unwrap();
        assert!(c
            .chunks
            .last()
            .is_some_and(|c| c.finished && c.next_offset == Some(1)));
    }
}
