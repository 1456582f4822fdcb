//! [`BatchActor`]: counts chunks of frames from every partition into event-time windows (see
//! [`Windows`]), writes each closed window to the sink and commits offsets, in flushes.
//!
//! A flush takes every window closed so far together with the offsets that are safe to commit
//! at that moment, writes the windows, waits until they are durable, and then commits those
//! offsets once. Flushes run one at a time on a blocking thread, in order, so a commit never
//! covers output that is not durable; counting goes on while a flush runs. A flush starts when
//! `flush.max_frames` frames were processed since the last one, or every `flush.interval_ms`
//! when there is something to write or commit.
//!
//! Each commit carries its partition's `closed_below` (the event time below which that
//! partition's windows are written) as metadata ([`crate::commit_meta`]). A restarted service
//! reads it back so frames of windows that were already written count as late instead of
//! forming partial windows.
//!
//! This file holds the actor, its messages and its handlers; the rest is by concern:
//! [`flush`] (a flush's job, its thread and its outcome), [`release`] (letting partitions go:
//! revoked, lost, or read again after a dropped flush) and [`budget`] (pausing partitions
//! while open windows are over their memory budget).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::budget::OpenBudget;
use crate::commit_meta::encode_closed_below;
use crate::config::{FlushConfig, WindowConfig};
use crate::failure::OutputFailure;
use crate::frame::{DeadLetter, FrameChunk};
use crate::metrics::{EventTimeLead, FramesLate, MetricsActor};
use crate::outlet::Outlet;
use crate::panics::Panicked;
use crate::ports::{CommitPosition, GroupCoverage};
use crate::topic::PartitionId;
use crate::window::{ClosedWindow, PartitionStart, Windows};

mod budget;
mod flush;
mod release;
#[cfg(test)]
mod tests;

use flush::{FlushCount, Output};
use release::ReleaseWaiter;

/// The positions to commit now, each with its partition's `closed_below` as metadata.
fn positions(windows: &Windows) -> Vec<CommitPosition> {
    windows
        .commit_points()
        .into_iter()
        .map(|point| position(point.partition, point.offset, point.closed_below))
        .collect()
}

/// A position to commit (or resume from), with `closed_below` as its metadata.
fn position(partition: PartitionId, offset: i64, closed_below: Option<f64>) -> CommitPosition {
    CommitPosition {
        partition,
        offset,
        metadata: encode_closed_below(closed_below),
    }
}

/// Parsed frames of one partition, in offset order. The answer says whether the partition
/// reads on.
#[derive(Debug, Message)]
#[rtype(result = "Flow")]
pub struct Chunk {
    /// The partition.
    pub partition: PartitionId,
    /// Valid frames.
    pub frames: FrameChunk,
    /// Its invalid records, for the dead-letter topic (empty without one).
    pub dead_letters: Vec<DeadLetter>,
    /// The partition's position after the chunk, invalid records included.
    pub next_offset: Option<i64>,
    /// Where its reader began: its start offset or, started without one (from
    /// `auto.offset.reset`), the first record it handed out (else its first position).
    pub read_from: Option<i64>,
    /// The partition has caught up to its end.
    pub at_end: bool,
    /// The partition is done for good (`--until-end`): no chunk follows.
    pub finished: bool,
}

/// Asks for the windows' state, for status reports.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "WindowsStatus")]
pub struct GetWindowsStatus;

/// The windows' state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WindowsStatus {
    /// The watermark (event time, epoch seconds), once every partition has spoken.
    pub watermark: Option<f64>,
    /// Windows with at least one open part.
    pub open_windows: usize,
    /// Bytes the open windows hold.
    pub open_bytes: u64,
    /// How long the flush under way has run, in milliseconds.
    pub flush_running_ms: Option<u64>,
    /// Per partition: its event-time standing and its last committed offset.
    pub partitions: std::collections::BTreeMap<PartitionId, PartitionWindows>,
}

/// One partition's windows and commit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartitionWindows {
    /// Its event-time standing.
    #[serde(flatten)]
    pub standing: crate::window::Standing,
    /// The last offset committed for it by this process.
    pub committed: Option<i64>,
}

/// Whether a partition reads on after a chunk.
#[derive(Debug)]
pub enum Flow {
    /// Read on.
    Go,
    /// The open windows are over their memory budget and this partition is ahead of the
    /// watermark: read nothing more until the receiver completes (or is dropped: the batch
    /// actor let the partition go, or stopped).
    Pause(tokio::sync::oneshot::Receiver<()>),
}

/// Flush what is closed (and with `close_all`, close every window first), commit, and answer
/// once it is durable. Sent at shutdown after intake has stopped.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "DrainReport")]
pub struct Drain {
    /// Close every open window: the input is exhausted.
    pub close_all: bool,
}

/// State after a drain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainReport {
    /// The offset this run committed last, per partition (revoked ones included).
    pub committed: Vec<(PartitionId, i64)>,
    /// Windows still open (not written; rebuilt from the committed offsets on restart).
    pub open_windows: usize,
    /// The last flush failed to commit with this error.
    pub commit_error: Option<String>,
}

/// Starts counting partitions (assigned to this group member). Answered once they are known,
/// so their chunks are never ignored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AddPartitions(pub Vec<PartitionStart>);

/// Stops counting partitions (revoked, or restarted) after their intake has stopped. With
/// [`ReleaseOutput::Commit`], closed windows are written and offsets committed first, and the
/// answer comes only then; with [`ReleaseOutput::Drop`] (the assignment was lost), their share
/// is dropped at once. The answer says,
/// for each of them, what was committed and where reading must start again.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Released>")]
pub struct ReleasePartitions {
    /// The partitions.
    pub partitions: Vec<PartitionId>,
    /// What happens to their output before they are let go.
    pub output: ReleaseOutput,
}

/// What a [`ReleasePartitions`] does with the partitions' output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutput {
    /// Their share of open windows is dropped at once, nothing is committed: the assignment
    /// was lost, another member may own them already.
    Drop,
    /// Closed windows are written and offsets committed first. A commit that fails with an
    /// error other than [`CommitErrorKind::Permanent`] is tried again every
    /// [`RELEASE_COMMIT_RETRY`] while another attempt can start before `retry_until`: a group
    /// that is rebalancing refuses commits for a moment, and a partition handed over without
    /// its last commit has its next owner write the same windows again.
    Commit {
        /// No attempt starts after this (the time the releasing side waits for, from when it
        /// started waiting).
        retry_until: Instant,
    },
}

/// How often a release's failed commit is tried again.
pub const RELEASE_COMMIT_RETRY: Duration = Duration::from_millis(100);

/// A partition let go by [`ReleasePartitions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The partition.
    pub partition: PartitionId,
    /// The last position committed for it since it was added, if any.
    pub committed: Option<CommitPosition>,
    /// Where reading it again must start: every frame below was written by the last flush
    /// whose output is durable, whether or not that flush's commit succeeded. `None` when
    /// nothing of it was read since it was added.
    pub resume: Option<CommitPosition>,
}

/// What the batch actor tells its supervisor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum BatchEvent {
    /// Every partition finished and everything is written and committed.
    Completed,
    /// Output cannot go on: the service cannot make progress.
    Failed(OutputFailure),
    /// A flush was dropped (exactly once: the member lost some of its partitions while the
    /// transaction was open) and these partitions, still held, were forgotten back to their
    /// last commit: their readers must start again from it.
    ReadAgain(Vec<PartitionId>),
}

/// Which partitions a run to the end must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cover {
    /// The partitions this actor was given (the partition model assigns them all itself).
    Given,
    /// Group model: every partition of the topic, each consumed to its end here or by another
    /// member (committed at its end offset). A member that owns only some partitions (another
    /// member, or a former member whose session has not yet ended, holds the others) is not
    /// done until the rest are accounted for.
    Group,
}

/// What the actor knows of the partitions a run to the end must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Coverage {
    /// [`Cover::Given`].
    Given,
    /// [`Cover::Group`]: the group's last report, unknown until the first.
    Group(Option<GroupCoverage>),
}

/// What a batch actor counts, when its windows close and what a run to the end must cover:
/// everything the settings decide.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    /// Window length, lateness, idleness and the memory budget of open windows.
    pub window: WindowConfig,
    /// When flushes start, and how long commits may fail before the output stops.
    pub flush: FlushConfig,
    /// Partitions counted from the start, each with the offset it starts from and the
    /// `closed_below` of its last commit (in the service none: partitions are added as they
    /// are assigned, with [`AddPartitions`]).
    pub partitions: Vec<PartitionStart>,
    /// How windows close.
    pub closing: Closing,
    /// Which partitions a run to the end must cover.
    pub cover: Cover,
    /// Every partition of the topic, when every line written must cover them all (unlabelled
    /// output, where a partial line would pass for a total): the actor stops with an error
    /// rather than write one. `None` when lines name their partitions.
    pub require_full_cover: Option<Vec<PartitionId>>,
}

/// Where a batch actor sends what it learns.
pub struct BatchLinks {
    /// Flushes, late frames, the memory budget.
    pub metrics: Addr<MetricsActor>,
    /// Completion, output failures and partitions to read again; none in some tests.
    pub supervisor: Option<Recipient<BatchEvent>>,
    /// Told if the actor stops because of a panic.
    pub panics: Option<Recipient<Panicked>>,
}

/// How windows close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// When the watermark passes them (a service that runs until stopped).
    ByWatermark,
    /// Also, all at once, when every partition has finished (`--until-end`).
    AllAtEnd,
    /// By the watermark only; the run completes when every partition has finished, leaving
    /// the windows still open unwritten and their frames uncommitted for a later run
    /// (`--until-end` with `run.keep_open_windows`).
    ClosedAtEnd,
}

/// Where a run to the end (`--until-end`) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Partitions are still being read (or the run has no end).
    Reading,
    /// Every partition finished and every window is closed; complete once they are written.
    Closing,
    /// Completion was reported to the supervisor.
    Reported,
}

/// Windows, flushes and commits; see the module documentation.
pub struct BatchActor {
    windows: Windows,
    /// How many times partitions were let go as lost ([`ReleaseOutput::Drop`]): a flush made
    /// before a loss may hold what was read under the lost assignment.
    losses: Arc<AtomicU64>,
    /// Closed windows not yet handed to a flush.
    pending: Vec<ClosedWindow>,
    /// Invalid records not yet handed to a flush (with a dead-letter topic).
    pending_dead: Vec<DeadLetter>,
    /// Whether a flush holds the sink and committer.
    output: Output,
    config: FlushConfig,
    frames_since_flush: u64,
    last_flush: Instant,
    /// Positions of the last successful commit.
    last_commit: Vec<CommitPosition>,
    /// The last offset committed for every partition ever counted here.
    committed: std::collections::BTreeMap<PartitionId, CommitPosition>,
    last_commit_error: Option<String>,
    /// Everything must be flushed regardless of the size and time limits.
    force: bool,
    /// How windows close.
    closing: Closing,
    /// Where a run to the end stands.
    completion: Completion,
    drain_waiters: Vec<tokio::sync::oneshot::Sender<DrainReport>>,
    /// Releases waiting for a flush to finish.
    release_waiters: Vec<ReleaseWaiter>,
    /// How many flushes started and finished.
    flushes: FlushCount,
    metrics: Addr<MetricsActor>,
    supervisor: Option<Recipient<BatchEvent>>,
    /// Told if this actor stops because of a panic.
    panics: Option<Recipient<Panicked>>,
    /// Every partition of the topic, when a line must cover them all (unlabelled output).
    require_full_cover: Option<Vec<PartitionId>>,
    /// Which partitions must be consumed to their end before the run is complete.
    coverage: Coverage,
    /// Per partition, the position of the last flush whose output is durable: every frame
    /// below it is in written windows, committed or not.
    written: std::collections::BTreeMap<PartitionId, CommitPosition>,
    /// Since when commits have failed with errors no retry cures, without a success since.
    commits_failing_since: Option<Instant>,
    /// The memory budget of open windows.
    budget: OpenBudget,
    /// Paused partitions that were told so, with what resumes them.
    resumes: std::collections::BTreeMap<PartitionId, tokio::sync::oneshot::Sender<()>>,
    /// The most the open windows have held, in bytes.
    peak_open_bytes: usize,
}

impl BatchActor {
    /// How many times partitions were let go as lost, as counted so far and from now on.
    #[cfg(test)]
    pub(crate) fn losses(&self) -> Arc<AtomicU64> {
        self.losses.clone()
    }

    /// A batch actor as `spec` says, writing to `outlet`.
    pub fn new(spec: BatchSpec, outlet: Outlet, links: BatchLinks) -> Self {
        let windows = Windows::new(&spec.window, &spec.partitions);
        let budget = OpenBudget::new(spec.window.open_budget_bytes());
        // What the group has already committed needs no commit again.
        let last_commit = positions(&windows);
        BatchActor {
            windows,
            losses: Arc::default(),
            pending: Vec::new(),
            pending_dead: Vec::new(),
            output: Output::Idle(outlet),
            config: spec.flush,
            frames_since_flush: 0,
            last_flush: Instant::now(),
            last_commit,
            committed: std::collections::BTreeMap::new(),
            last_commit_error: None,
            force: false,
            closing: spec.closing,
            completion: Completion::Reading,
            drain_waiters: Vec::new(),
            release_waiters: Vec::new(),
            flushes: FlushCount::default(),
            metrics: links.metrics,
            supervisor: links.supervisor,
            panics: links.panics,
            require_full_cover: spec.require_full_cover,
            coverage: match spec.cover {
                Cover::Given => Coverage::Given,
                Cover::Group => Coverage::Group(None),
            },
            written: std::collections::BTreeMap::new(),
            commits_failing_since: None,
            budget,
            resumes: std::collections::BTreeMap::new(),
            peak_open_bytes: 0,
        }
    }

    /// Every partition that must be consumed is: by this actor, or (group model) elsewhere.
    fn covered(&self) -> bool {
        match &self.coverage {
            Coverage::Given => self.windows.partitions().next().is_some(),
            Coverage::Group(None) => false,
            Coverage::Group(Some(coverage)) => coverage
                .all
                .iter()
                .all(|p| self.windows.is_finished(*p) || coverage.done_elsewhere.contains(p)),
        }
    }

    /// Takes the windows the watermark closed and, at the end of a run, closes the rest as the
    /// run's [`Closing`] says.
    fn collect_closed(&mut self) {
        let now = Instant::now();
        let closed = self.windows.advance(now);
        if !closed.is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                windows = ?closed.iter().map(|w| (w.start, w.partitions.iter().map(ToString::to_string).collect::<Vec<_>>())).collect::<Vec<_>>(),
                watermark = ?self.windows.watermark(),
                standings = ?self.windows.standings(now),
                "Windows closed."
            );
        }
        self.pending.extend(closed);
        if self.closing == Closing::ByWatermark
            || self.completion != Completion::Reading
            || !self.windows.all_finished()
        {
            return;
        }
        if self.covered() {
            if self.closing == Closing::AllAtEnd {
                let rest = self.windows.close_all();
                self.pending.extend(rest);
            }
            self.completion = Completion::Closing;
            self.force = true;
        } else if self.closing == Closing::AllAtEnd
            && matches!(self.coverage, Coverage::Group(_))
            && self.require_full_cover.is_none()
            && self.windows.open_windows() > 0
        {
            // Group model: every partition read here is at its end, and others are still read
            // elsewhere. This member's share is written now (its lines name its partitions) and
            // committed at the ends, which is what the other members wait for before they
            // finish: waiting for them first would leave every member waiting for the others.
            // (Unlabelled output takes only lines that cover every partition, so a member
            // writing it waits for the whole group as before.)
            let own = self.windows.close_all();
            self.pending.extend(own);
            self.force = true;
        }
    }

    /// Stops the output for good: the one place that logs and reports an output failure.
    fn fail(&mut self, error: OutputFailure, ctx: &mut Context<Self>) {
        tracing::error!(%error, "Output failed; stopping.");
        self.output = Output::Failed;
        if let Some(supervisor) = &self.supervisor {
            supervisor.do_send(BatchEvent::Failed(error));
        }
        ctx.stop();
    }
}

impl Actor for BatchActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        crate::panics::report_if_unwinding("batch", self.panics.as_ref());
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::panics::install_hook();
        // One slot per partition is guaranteed anyway; room for a few chunks each keeps the
        // partitions busy while this actor counts.
        ctx.set_mailbox_capacity(64);
        // Idle partitions and the flush interval need the clock, not only incoming chunks.
        let tick = Duration::from_millis(self.config.interval_ms.clamp(10, 100));
        ctx.run_interval(tick, |act, ctx| {
            // Paused partitions send nothing: the clock reviews the budget for them.
            act.review_budget();
            if matches!(act.output, Output::Idle(_)) {
                act.collect_closed();
                if act.force
                    || !act.pending.is_empty()
                    || !act.pending_dead.is_empty()
                    || act.frames_since_flush > 0
                {
                    act.maybe_flush(ctx);
                } else if act.last_flush.elapsed() >= Duration::from_millis(act.config.interval_ms)
                {
                    // Nothing new, but an earlier failed commit may still need to go out.
                    if act.last_commit_error.is_some() {
                        act.flush(ctx);
                    }
                }
            }
        });
    }
}

impl Handler<Chunk> for BatchActor {
    type Result = MessageResult<Chunk>;

    fn handle(&mut self, chunk: Chunk, ctx: &mut Self::Context) -> Self::Result {
        self.windows
            .note_read_from(chunk.partition, chunk.read_from);
        let ingested = self.windows.ingest(
            chunk.partition,
            &chunk.frames,
            chunk.next_offset,
            chunk.at_end,
            Instant::now(),
        );
        if chunk.finished {
            self.windows.finish_partition(chunk.partition);
        }
        if let Some(lead) = ingested.lead {
            tracing::warn!(
                partition = %chunk.partition,
                event_time = lead.ts,
                slowest_other = lead.others_ts,
                "A partition's event time runs further ahead of the others than \
                 window.max_lead_secs: a clock or producer may be wrong, or a partition far \
                 behind."
            );
            self.metrics.do_send(EventTimeLead {
                partition: chunk.partition,
            });
        }
        if ingested.late > 0 {
            tracing::debug!(
                partition = %chunk.partition,
                late = ingested.late,
                "Frames arrived after their window was written; counted as late."
            );
            self.metrics.do_send(FramesLate {
                partition: chunk.partition,
                late: ingested.late,
            });
        }
        self.frames_since_flush += chunk.frames.len() as u64;
        self.pending_dead.extend(chunk.dead_letters);
        self.collect_closed();
        self.review_budget();
        self.maybe_flush(ctx);
        MessageResult(self.flow(chunk.partition))
    }
}

impl Handler<GetWindowsStatus> for BatchActor {
    type Result = MessageResult<GetWindowsStatus>;

    fn handle(&mut self, _: GetWindowsStatus, _: &mut Self::Context) -> Self::Result {
        let partitions = self
            .windows
            .standings(Instant::now())
            .into_iter()
            .map(|(partition, standing)| {
                let committed = self.committed.get(&partition).map(|c| c.offset);
                (
                    partition,
                    PartitionWindows {
                        standing,
                        committed,
                    },
                )
            })
            .collect();
        MessageResult(WindowsStatus {
            watermark: self.windows.watermark(),
            open_windows: self.windows.open_windows(),
            open_bytes: self.windows.open_bytes() as u64,
            flush_running_ms: self
                .output
                .flushing_since()
                .map(|since| since.elapsed().as_millis() as u64),
            partitions,
        })
    }
}

impl Handler<GroupCoverage> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: GroupCoverage, ctx: &mut Self::Context) {
        if let Coverage::Group(coverage) = &mut self.coverage {
            *coverage = Some(msg);
            self.collect_closed();
            self.maybe_flush(ctx);
        }
    }
}

impl Handler<AddPartitions> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: AddPartitions, _: &mut Self::Context) {
        for start in msg.0 {
            self.windows.add_partition(start);
        }
    }
}

impl Handler<ReleasePartitions> for BatchActor {
    type Result = ResponseActFuture<Self, Vec<Released>>;

    fn handle(&mut self, msg: ReleasePartitions, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match msg.output {
            ReleaseOutput::Commit { retry_until } => {
                // The next flush to start writes what is closed and commits every partition,
                // these included; they are let go once it has finished.
                self.collect_closed();
                self.release_waiters.push(ReleaseWaiter {
                    partitions: msg.partitions,
                    needed: self.flushes.started + 1,
                    retry_until,
                    reply: tx,
                });
                self.force = true;
                self.flush(ctx);
            }
            ReleaseOutput::Drop => {
                self.losses.fetch_add(1, Ordering::SeqCst);
                self.drop_pending_of(&msg.partitions);
                let _ = tx.send(self.release(&msg.partitions));
            }
        }
        Box::pin(async move { rx.await.unwrap_or_default() }.into_actor(self))
    }
}

impl Handler<Drain> for BatchActor {
    type Result = ResponseActFuture<Self, DrainReport>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.collect_closed();
        if msg.close_all {
            let rest = self.windows.close_all();
            self.pending.extend(rest);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push(tx);
        self.force = true;
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or_default() }.into_actor(self))
    }
}
