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
//! partition's windows are written) as metadata. A restarted service reads it back so frames
//! of windows that were already written count as late instead of forming partial windows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::budget::OpenBudget;
use crate::config::{FlushConfig, WindowConfig};
use crate::failure::OutputFailure;
use crate::frame::{DeadLetter, FrameChunk};
use crate::metrics::{EventTimeLead, Flushed, FramesLate, IntakeBudget, MetricsActor};
use crate::outlet::{Outlet, TransactionFailure};
use crate::panics::Panicked;
use crate::ports::{CommitError, CommitErrorKind, CommitPosition, GroupCoverage};
use crate::topic::PartitionId;
use crate::window::{ClosedWindow, PartitionStart, Windows};

/// Prefix of the commit metadata written by this service.
/// Commit metadata written by this version: `kafka-actors:v1:wm=<closed_below>`, about 35
/// bytes (Kafka keeps up to `offset.metadata.max.bytes`, 4 096 by default). `wm` is the name
/// `closed_below` had when the format was first written.
const METADATA_V1: &str = "kafka-actors:v1:wm=";
/// The same, as written before the format had a version; still read.
const METADATA_UNVERSIONED: &str = "kafka-actors:wm=";
/// What every version of our metadata starts with.
const METADATA_OURS: &str = "kafka-actors:";

/// The commit metadata that records `closed_below`.
pub fn encode_closed_below(closed_below: Option<f64>) -> String {
    closed_below.map_or_else(String::new, |at| format!("{METADATA_V1}{at}"))
}

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

/// What a commit's metadata says.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitMetadata {
    /// Ours: windows ending (plus lateness) at or below this event time were written.
    ClosedBelow(f64),
    /// None, or another tool's.
    Foreign,
    /// Ours, but of a version this build does not know (written by a newer one).
    UnknownVersion,
    /// Ours, but not a number this build could have written.
    Unreadable,
}

/// Reads commit metadata.
pub fn decode_commit_metadata(metadata: &str) -> CommitMetadata {
    let value = if let Some(value) = metadata.strip_prefix(METADATA_V1) {
        value
    } else if let Some(value) = metadata.strip_prefix(METADATA_UNVERSIONED) {
        value
    } else if metadata.starts_with(METADATA_OURS) {
        return CommitMetadata::UnknownVersion;
    } else {
        return CommitMetadata::Foreign;
    };
    match value.parse::<f64>() {
        Ok(at) if at.is_finite() => CommitMetadata::ClosedBelow(at),
        _ => CommitMetadata::Unreadable,
    }
}

/// The `closed_below` to resume `partition` with, from the metadata of its commit at `offset`,
/// if it can be trusted: ours, of a known version, and no later than `latest` (the latest
/// event time any frame could have; a later one would close windows that have not been
/// written). Anything else is resumed as if new, which can write windows open before the
/// commit again, as partial lines: that is logged.
pub fn closed_below_from_commit(
    partition: PartitionId,
    offset: Option<i64>,
    metadata: &str,
    latest: f64,
) -> Option<f64> {
    let why = match decode_commit_metadata(metadata) {
        CommitMetadata::ClosedBelow(at) if (0.0..=latest).contains(&at) => return Some(at),
        CommitMetadata::ClosedBelow(at) => {
            format!("it claims event time {at}, beyond any frame (latest {latest}); ignored")
        }
        _ if offset.is_none() => return None,
        CommitMetadata::Foreign => "it carries no window metadata (the broker may not keep \
                                    commit metadata, or another tool committed)"
            .to_owned(),
        CommitMetadata::UnknownVersion => {
            "its window metadata is of a version this build does not know; ignored".to_owned()
        }
        CommitMetadata::Unreadable => "its window metadata cannot be read; ignored".to_owned(),
    };
    tracing::warn!(
        %partition,
        ?offset,
        metadata = %metadata.chars().take(64).collect::<String>(),
        "The committed offset's metadata is not trusted: {why}. Windows open at that commit may \
         be written again as partial lines."
    );
    None
}

/// The `closed_below` recorded in commit metadata, if the metadata is ours.
pub fn decode_closed_below(metadata: &str) -> Option<f64> {
    match decode_commit_metadata(metadata) {
        CommitMetadata::ClosedBelow(at) => Some(at),
        _ => None,
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
#[derive(Debug, Clone, PartialEq, Eq)]
enum Coverage {
    /// The partitions this actor was given (the partition model assigns them all itself).
    Known,
    /// Group model: every partition of the topic, each consumed to its end here or by another
    /// member (committed at its end offset). A member that owns only some partitions (another
    /// member, or a former member whose session has not yet ended, holds the others) is not
    /// done until the rest are accounted for; unknown until the first report.
    Group(Option<GroupCoverage>),
}

/// Partitions to let go once flush number `needed` has finished, and where to answer.
struct ReleaseWaiter {
    partitions: Vec<PartitionId>,
    needed: u64,
    /// Until when that flush tries a failed commit again.
    retry_until: Instant,
    reply: tokio::sync::oneshot::Sender<Vec<Released>>,
}

struct FlushJob {
    seq: u64,
    /// Says whether no partition was let go as lost since the job was made.
    owned: OwnedSince,
    windows: Vec<ClosedWindow>,
    /// Invalid records for the dead-letter topic.
    dead_letters: Vec<DeadLetter>,
    positions: Vec<CommitPosition>,
    commit: bool,
    /// Until when a failed commit is tried again (partitions are being released); `None`
    /// for a single attempt.
    retry_commit_until: Option<Instant>,
    frames: u64,
}

/// Whether partitions were let go as lost since a flush was made (see
/// [`TransactionalSink::write_and_commit`](crate::outlet::TransactionalSink::write_and_commit)).
struct OwnedSince {
    losses: Arc<AtomicU64>,
    at: u64,
}

impl OwnedSince {
    fn still(&self) -> bool {
        self.losses.load(Ordering::SeqCst) == self.at
    }
}

struct FlushDone {
    target: Outlet,
    job: FlushJob,
    duration: Duration,
    sink_error: Option<OutputFailure>,
    /// What the commit did, when one was made.
    commit: Option<Result<Vec<CommitPosition>, CommitError>>,
    /// Exactly once: the member lost some or all partitions of the flush while its
    /// transaction was open; nothing of it was written or committed, and it is dropped.
    dropped: Option<String>,
}

/// Where output stands (what an operator sees for it).
enum Output {
    /// No flush is running; the outlet is here.
    Idle(Outlet),
    /// Flush number `seq` has the sink and committer on the flush thread; with `again`,
    /// another flush is due as soon as it returns.
    Flushing {
        /// The flush's number.
        seq: u64,
        /// Another flush is wanted right after it.
        again: bool,
    },
    /// Output failed: nothing more is written or committed.
    Failed,
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
    /// Releases waiting for the flush numbered `.1` to finish.
    release_waiters: Vec<ReleaseWaiter>,
    /// Number of the last flush started, and of the last one finished.
    flush_seq: (u64, u64),
    metrics: Addr<MetricsActor>,
    supervisor: Option<Recipient<BatchEvent>>,
    /// Told if this actor stops because of a panic.
    panics: Option<Recipient<Panicked>>,
    /// Every partition of the topic, when a line must cover them all (unlabelled output).
    complete_only: Option<Vec<PartitionId>>,
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
    /// When the flush under way started.
    flushing_since: Option<Instant>,
}

impl BatchActor {
    /// How many times partitions were let go as lost, as counted so far and from now on.
    #[cfg(test)]
    pub(crate) fn losses(&self) -> Arc<AtomicU64> {
        self.losses.clone()
    }

    /// A batch actor over `partitions` (with the offsets they start from and their closing
    /// points from the last commit's metadata). With [`Closing::AllAtEnd`], all windows close once
    /// every partition has finished.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        window: &WindowConfig,
        flush: FlushConfig,
        partitions: &[PartitionStart],
        outlet: Outlet,
        closing: Closing,
        metrics: Addr<MetricsActor>,
        supervisor: Option<Recipient<BatchEvent>>,
    ) -> Self {
        let windows = Windows::new(window, partitions);
        let budget = OpenBudget::new(window.open_budget_bytes());
        // What the group has already committed needs no commit again.
        let last_commit = positions(&windows);
        BatchActor {
            windows,
            losses: Arc::default(),
            pending: Vec::new(),
            pending_dead: Vec::new(),
            output: Output::Idle(outlet),
            config: flush,
            frames_since_flush: 0,
            last_flush: Instant::now(),
            last_commit,
            committed: std::collections::BTreeMap::new(),
            last_commit_error: None,
            force: false,
            closing,
            completion: Completion::Reading,
            drain_waiters: Vec::new(),
            release_waiters: Vec::new(),
            flush_seq: (0, 0),
            metrics,
            supervisor,
            panics: None,
            complete_only: None,
            coverage: Coverage::Known,
            written: std::collections::BTreeMap::new(),
            commits_failing_since: None,
            budget,
            resumes: std::collections::BTreeMap::new(),
            peak_open_bytes: 0,
            flushing_since: None,
        }
    }

    /// Tells `to` when this actor stops because of a panic.
    #[must_use]
    pub fn report_panics(mut self, to: Recipient<Panicked>) -> Self {
        self.panics = Some(to);
        self
    }

    /// Refuses to write a line that does not cover all of `partitions` (the whole topic): with
    /// unlabelled output it would pass for a total. The actor stops with an error instead.
    pub fn complete_only(mut self, partitions: Vec<PartitionId>) -> Self {
        self.complete_only = Some(partitions);
        self
    }

    /// Completes only once every partition of the topic is finished here or, as the group's
    /// commits show, by another member (group model; see [`Coverage::Group`]).
    #[must_use]
    pub fn cover_group(mut self) -> Self {
        self.coverage = Coverage::Group(None);
        self
    }

    /// Every partition that must be consumed is: by this actor, or (group model) elsewhere.
    fn covered(&self) -> bool {
        match &self.coverage {
            Coverage::Known => self.windows.partitions().next().is_some(),
            Coverage::Group(None) => false,
            Coverage::Group(Some(coverage)) => coverage
                .all
                .iter()
                .all(|p| self.windows.is_finished(*p) || coverage.done_elsewhere.contains(p)),
        }
    }

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
            && self.complete_only.is_none()
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

    /// Pauses the partitions ahead of the watermark while the open windows are over their
    /// memory budget, and resumes them once windows close (see [`OpenBudget`]); the one place
    /// that logs and counts it.
    fn review_budget(&mut self) {
        let open = self.windows.open_bytes();
        self.peak_open_bytes = self.peak_open_bytes.max(open);
        if !self.budget.wants_review(open) {
            return;
        }
        let view = self.windows.intake_view(Instant::now());
        let change = self.budget.review(open, &view);
        if change.is_empty() {
            return;
        }
        for partition in &change.pause {
            self.windows.set_paused(*partition, true);
        }
        for partition in &change.resume {
            self.windows.set_paused(*partition, false);
            if let Some(resume) = self.resumes.remove(partition) {
                let _ = resume.send(());
            }
        }
        let open_mib = format_args!("{:.1}", open as f64 / f64::from(1 << 20));
        let budget_mib = self.budget.limit() >> 20;
        let (holder, why) = match view.holder {
            Some((partition, reason)) => (Some(partition), Some(reason)),
            None => (None, None),
        };
        let holder_text = holder.map(|p| p.to_string()).unwrap_or_default();
        let why_text = why.map(|r| r.to_string()).unwrap_or_default();
        if !change.pause.is_empty() {
            tracing::warn!(
                open_mib = %open_mib,
                budget_mib,
                paused = ?change.pause.iter().map(ToString::to_string).collect::<Vec<_>>(),
                holder = %holder_text,
                why = %why_text,
                "Open windows are over window.open_budget_mib: pausing the partitions ahead of \
                 the one that holds the watermark back until windows close."
            );
        }
        if change.exceeded_by_holder {
            tracing::warn!(
                open_mib = %open_mib,
                budget_mib,
                holder = %holder_text,
                why = %why_text,
                "Open windows are over window.open_budget_mib, and no partition is ahead of the \
                 one that holds the watermark back: it reads on, and its windows stay exact."
            );
        }
        if !change.resume.is_empty() {
            tracing::info!(
                open_mib = %open_mib,
                budget_mib,
                resumed = ?change.resume.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "Resuming paused partitions."
            );
        }
        self.metrics.do_send(IntakeBudget {
            paused: self.budget.paused(),
            newly_paused: change.pause.len() as u64,
            holder,
            open_bytes: open as u64,
        });
    }

    /// What a partition that sent a chunk does next: read on, or wait while paused.
    fn flow(&mut self, partition: PartitionId) -> Flow {
        if !self.budget.is_paused(partition) {
            return Flow::Go;
        }
        let (resume, resumed) = tokio::sync::oneshot::channel();
        self.resumes.insert(partition, resume);
        Flow::Pause(resumed)
    }

    fn commit_wanted(&self, positions: &[CommitPosition]) -> bool {
        !positions.is_empty() && positions != self.last_commit.as_slice()
    }

    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        let due = self.force
            || self.frames_since_flush >= self.config.max_frames
            || self.last_flush.elapsed() >= Duration::from_millis(self.config.interval_ms);
        if due {
            self.flush(ctx);
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(all) = &self.complete_only {
            if let Some(partial) = self.pending.iter().find(|w| &w.partitions != all) {
                let error = OutputFailure::PartialLine {
                    start: partial.start,
                    partitions: partial.partitions.clone(),
                    all: all.clone(),
                };
                self.pending.clear();
                return self.fail(error, ctx);
            }
        }
        let target = match std::mem::replace(&mut self.output, Output::Failed) {
            Output::Idle(target) => target,
            Output::Flushing { seq, .. } => {
                self.output = Output::Flushing { seq, again: true };
                return;
            }
            Output::Failed => return,
        };
        // Windows and offsets are taken at the same instant: every window still open bounds
        // the offsets, every window closed before is in this flush or an earlier one.
        let positions = positions(&self.windows);
        let commit = self.commit_wanted(&positions);
        // A dead letter goes out with the commit that passes it, never before: written ahead
        // of its commit, it would be read and written again after a restart from that commit.
        let passed: std::collections::BTreeMap<PartitionId, i64> =
            positions.iter().map(|p| (p.partition, p.offset)).collect();
        let (dead_letters, later): (Vec<DeadLetter>, Vec<DeadLetter>) =
            std::mem::take(&mut self.pending_dead)
                .into_iter()
                .partition(|d| passed.get(&d.partition).is_some_and(|at| d.offset < *at));
        self.pending_dead = later;
        self.flush_seq.0 += 1;
        let seq = self.flush_seq.0;
        // The earliest deadline: no releasing side may wait longer than it said.
        let retry_commit_until = self
            .release_waiters
            .iter()
            .filter(|w| w.needed == seq)
            .map(|w| w.retry_until)
            .min();
        let job = FlushJob {
            seq,
            owned: OwnedSince {
                losses: self.losses.clone(),
                at: self.losses.load(Ordering::SeqCst),
            },
            windows: std::mem::take(&mut self.pending),
            dead_letters,
            positions,
            commit,
            retry_commit_until,
            frames: std::mem::take(&mut self.frames_since_flush),
        };
        self.last_flush = Instant::now();
        self.force = false;
        if job.windows.is_empty() && job.dead_letters.is_empty() && !job.commit {
            // Nothing to write: these positions are the last commit's, durable already.
            self.written
                .extend(job.positions.iter().map(|p| (p.partition, p.clone())));
            self.output = Output::Idle(target);
            self.flush_seq.1 = job.seq;
            self.flush_finished(ctx);
            return;
        }
        self.output = Output::Flushing {
            seq: job.seq,
            again: false,
        };
        self.flushing_since = Some(Instant::now());
        let work = actix_rt::task::spawn_blocking(move || run_flush(target, job));
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok(done) => {
                act.flushing_since = None;
                act.on_flush_done(done, ctx);
            }
            Err(join_error) => {
                // The flush thread panicked: the sink and committer are gone.
                act.fail(OutputFailure::FlushThread(join_error.to_string()), ctx);
            }
        }));
    }

    fn on_flush_done(&mut self, done: FlushDone, ctx: &mut Context<Self>) {
        let FlushDone {
            target,
            job,
            duration,
            sink_error,
            commit,
            dropped,
        } = done;
        let commit_error = match &commit {
            Some(Err(error)) => Some(error.to_string()),
            _ => None,
        };
        match std::mem::replace(&mut self.output, Output::Idle(target)) {
            // Another flush was asked for meanwhile: it goes out as soon as this one is done.
            Output::Flushing { seq, again } if seq == job.seq => self.force |= again,
            Output::Flushing { seq, .. } => {
                tracing::error!(
                    seq,
                    done = job.seq,
                    "A flush returned that was not running."
                );
            }
            Output::Idle(_) | Output::Failed => {
                tracing::error!(done = job.seq, "A flush returned while none was running.");
            }
        }
        self.flush_seq.1 = job.seq;
        if let Some(reason) = dropped {
            // A dropped flush is a commit that did not happen: flushes dropped for longer than
            // `flush.commit_failure_timeout_ms` (a member that never gets into a stable
            // generation) stop the output rather than read the same frames again for ever.
            let since = *self.commits_failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(self.config.commit_failure_timeout_ms) {
                let reason = format!(
                    "flushes dropped for {} ms (flush.commit_failure_timeout_ms): {reason}",
                    since.elapsed().as_millis()
                );
                self.fail(
                    OutputFailure::Transaction(TransactionFailure::NotInGroup { reason }),
                    ctx,
                );
                return;
            }
            // The lost partitions' next owner reads them from the last committed transaction.
            // The dropped windows also held the shares of partitions still held here (a
            // revocation that took only some): those are read again from there as well.
            let held = self.forget_since_commit();
            tracing::warn!(
                %reason,
                windows = job.windows.len(),
                dead_letters = job.dead_letters.len(),
                read_again = ?held.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "The member lost partitions of the flush while its transaction was open; the \
                 transaction was aborted and the flush dropped, and the partitions still held \
                 are read again from their last commit."
            );
            if let (false, Some(supervisor)) = (held.is_empty(), &self.supervisor) {
                supervisor.do_send(BatchEvent::ReadAgain(held));
            }
            self.flush_finished(ctx);
            return;
        }
        self.metrics.do_send(Flushed {
            duration,
            frames: job.frames,
            unique_users: job.windows.iter().map(|w| w.unique_users).collect(),
            commit_attempted: job.commit && sink_error.is_none(),
            dead_letters: match sink_error {
                None => job.dead_letters.len() as u64,
                Some(_) => 0,
            },
            commit_error: commit_error.clone(),
            commit_failure: match &commit {
                Some(Err(error)) => Some(error.kind),
                _ => None,
            },
            open_bytes: self.windows.open_bytes() as u64,
            peak_open_bytes: self.peak_open_bytes as u64,
        });
        if let Some(error) = sink_error {
            self.fail(error, ctx);
            return;
        }
        self.written
            .extend(job.positions.iter().map(|p| (p.partition, p.clone())));
        match commit {
            Some(Err(error)) => {
                tracing::warn!(%error, "Offset commit failed; the next flush commits again.");
                self.last_commit_error = Some(error.to_string());
                // A passing fault never stops the output; anything else does once commits have
                // failed for `flush.commit_failure_timeout_ms`.
                if error.kind != CommitErrorKind::Transient {
                    let since = *self.commits_failing_since.get_or_insert_with(Instant::now);
                    let limit = Duration::from_millis(self.config.commit_failure_timeout_ms);
                    if since.elapsed() >= limit {
                        let error = OutputFailure::CommitsRefused {
                            error: error.to_string(),
                            for_ms: since.elapsed().as_millis(),
                            timeout_ms: self.config.commit_failure_timeout_ms,
                        };
                        return self.fail(error, ctx);
                    }
                }
            }
            Some(Ok(committed)) => {
                // Only what was committed counts: positions of partitions no longer read
                // here were left out.
                self.committed
                    .extend(committed.into_iter().map(|p| (p.partition, p)));
                self.last_commit = job.positions;
                self.last_commit_error = None;
                self.commits_failing_since = None;
            }
            None => {}
        }
        self.flush_finished(ctx);
    }

    fn flush_finished(&mut self, ctx: &mut Context<Self>) {
        let done = self.flush_seq.1;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.release_waiters)
            .into_iter()
            .partition(|w| w.needed <= done);
        self.release_waiters = waiting;
        for waiter in ready {
            let _ = waiter.reply.send(self.release(&waiter.partitions));
        }
        if self.force {
            self.flush(ctx);
            return;
        }
        if self.completion == Completion::Closing && self.pending.is_empty() {
            self.completion = Completion::Reported;
            if let Some(supervisor) = &self.supervisor {
                supervisor.do_send(BatchEvent::Completed);
            }
        }
        if !self.drain_waiters.is_empty() && self.pending.is_empty() {
            let report = DrainReport {
                committed: self
                    .committed
                    .values()
                    .map(|p| (p.partition, p.offset))
                    .collect(),
                open_windows: self.windows.open_windows(),
                commit_error: self.last_commit_error.clone(),
            };
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(report.clone());
            }
        }
    }

    /// Forgets `partitions`: their open windows, what was committed and written for them (a
    /// partition that comes back starts from its new assignment, never from a position of an
    /// earlier ownership).
    /// Forgets the closed windows not yet written that hold a share of `partitions`, whose
    /// assignment was lost: their next owner (perhaps this member, once it has joined again)
    /// reads them from the last commit and writes those windows itself. Written later, by the
    /// next flush (whose transaction commits no offset of them, so the group cannot refuse
    /// it), they would be written twice. A window that also holds a share of a partition kept
    /// here is written all the same, or that share would be lost (a lost assignment takes
    /// every partition of the member, so this is not expected).
    fn drop_pending_of(&mut self, partitions: &[PartitionId]) {
        let before = self.pending.len();
        let mut mixed = 0;
        self.pending.retain(|w| {
            let lost = w
                .partitions
                .iter()
                .filter(|p| partitions.contains(p))
                .count();
            if lost > 0 && lost < w.partitions.len() {
                mixed += 1;
            }
            lost == 0 || lost < w.partitions.len()
        });
        let dropped = before - self.pending.len();
        if dropped > 0 {
            tracing::info!(
                windows = dropped,
                "Closed windows of partitions whose assignment was lost are not written; their \
                 next owner writes them."
            );
        }
        if mixed > 0 {
            tracing::warn!(
                windows = mixed,
                "Closed windows hold shares of both lost and kept partitions: written, so the \
                 lost partitions' shares may be written again by their next owner."
            );
        }
    }

    /// Forgets everything read since the last committed flush of every partition held here:
    /// their shares of open windows, the closed windows not yet written (each holds shares of
    /// held or lost partitions only) and their dead letters. What was written and committed
    /// for them stays, so a restart of their readers ([`BatchEvent::ReadAgain`]) resumes at
    /// the last durable flush (before any, where their reading began); until then their
    /// chunks are not counted. Returns the partitions.
    fn forget_since_commit(&mut self) -> Vec<PartitionId> {
        let held: Vec<PartitionId> = self.windows.partitions().collect();
        self.pending.clear();
        self.pending_dead.clear();
        self.frames_since_flush = 0;
        let mut unpaused = false;
        for partition in &held {
            // Before any durable flush, read again from where this reading began: a reader
            // restarted without a position (one started from `auto.offset.reset`) would go on
            // from wherever the client's fetch stands, past what is forgotten here.
            if let Some(PartitionStart {
                next_offset: Some(offset),
                closed_below,
                ..
            }) = self.windows.start_of(*partition)
            {
                self.written
                    .entry(*partition)
                    .or_insert_with(|| position(*partition, offset, closed_below));
            }
            self.windows.remove_partition(*partition);
            unpaused |= self.budget.forget(*partition);
            self.resumes.remove(partition);
        }
        if unpaused {
            self.report_unpaused();
        }
        held
    }

    /// The metrics must not keep showing a partition paused that is no longer read here.
    fn report_unpaused(&self) {
        self.metrics.do_send(IntakeBudget {
            paused: self.budget.paused(),
            newly_paused: 0,
            holder: self
                .windows
                .intake_view(Instant::now())
                .holder
                .map(|(p, _)| p),
            open_bytes: self.windows.open_bytes() as u64,
        });
    }

    fn release(&mut self, partitions: &[PartitionId]) -> Vec<Released> {
        let mut unpaused = false;
        // Their dead letters past the last commit are read again by the next owner.
        self.pending_dead
            .retain(|d| !partitions.contains(&d.partition));
        for partition in partitions {
            self.windows.remove_partition(*partition);
            unpaused |= self.budget.forget(*partition);
            self.resumes.remove(partition);
        }
        if unpaused {
            self.report_unpaused();
        }
        self.last_commit
            .retain(|p| !partitions.contains(&p.partition));
        partitions
            .iter()
            .map(|p| {
                let released = Released {
                    partition: *p,
                    committed: self.committed.remove(p),
                    resume: self.written.remove(p),
                };
                let committed = released.committed.as_ref().map(|c| c.offset);
                let written = released.resume.as_ref().map(|w| w.offset);
                if let (Some(error), true) = (&self.last_commit_error, written > committed) {
                    tracing::warn!(
                        partition = %p,
                        ?committed,
                        ?written,
                        %error,
                        "Released with output written past its last commit; reading from the \
                         commit writes those windows again."
                    );
                }
                released
            })
            .collect()
    }

    fn fail(&mut self, error: OutputFailure, ctx: &mut Context<Self>) {
        tracing::error!(%error, "Output failed; stopping.");
        self.output = Output::Failed;
        if let Some(supervisor) = &self.supervisor {
            supervisor.do_send(BatchEvent::Failed(error));
        }
        ctx.stop();
    }
}

fn run_flush(mut target: Outlet, job: FlushJob) -> FlushDone {
    let started = Instant::now();
    let mut sink_error = None;
    let mut commit = None;
    let mut dropped = None;
    match &mut target {
        Outlet::AtLeastOnce {
            sink,
            dead_letters,
            committer,
        } => {
            let written = sink.write(&job.windows).and_then(|()| match dead_letters {
                Some(dead) if !job.dead_letters.is_empty() => dead.write(&job.dead_letters),
                _ => Ok(()),
            });
            if let Err(error) = written {
                sink_error = Some(OutputFailure::Write(error.to_string()));
            } else if job.commit {
                let mut result = committer.commit(&job.positions);
                while let (Err(error), Some(until)) = (&result, job.retry_commit_until) {
                    if error.kind == CommitErrorKind::Permanent
                        || Instant::now() + RELEASE_COMMIT_RETRY > until
                    {
                        break;
                    }
                    tracing::debug!(%error, "Commit before a release failed; trying again.");
                    std::thread::sleep(RELEASE_COMMIT_RETRY);
                    result = committer.commit(&job.positions);
                }
                commit = Some(result);
            }
        }
        Outlet::ExactlyOnce(transactions) => {
            let positions: &[CommitPosition] = if job.commit { &job.positions } else { &[] };
            match transactions.write_and_commit(
                &job.windows,
                &job.dead_letters,
                positions,
                job.retry_commit_until,
                &|| job.owned.still(),
            ) {
                Ok(committed) => commit = job.commit.then_some(Ok(committed)),
                Err(TransactionFailure::MembershipLost { reason }) => dropped = Some(reason),
                Err(failure) => sink_error = Some(OutputFailure::Transaction(failure)),
            }
        }
    }
    FlushDone {
        target,
        job,
        duration: started.elapsed(),
        sink_error,
        commit,
        dropped,
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
                .flushing_since
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
                    needed: self.flush_seq.0 + 1,
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::MetricsConfig;
    use crate::metrics::GetMetrics;
    use crate::ports::OffsetCommitter;
    use crate::sink::Sink;

    /// Everything the fakes saw, in order: `Write(window starts)` and `Commit(offsets)`.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        Write(Vec<i64>),
        Commit(Vec<(i32, i64, String)>),
        /// Dead letters written, by partition and offset.
        Dead(Vec<(i32, i64)>),
        /// One transaction: window starts, dead letters, offsets.
        Transaction(Vec<i64>, Vec<(i32, i64)>, Vec<(i32, i64)>),
    }

    struct FakeDeadLetters(Log);
    impl crate::outlet::DeadLetterSink for FakeDeadLetters {
        fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
            self.0 .0.lock().unwrap().push(Event::Dead(
                letters
                    .iter()
                    .map(|d| (d.partition.index, d.offset))
                    .collect(),
            ));
            Ok(())
        }
    }

    /// Commits transactions, or refuses them all with `failure`.
    struct FakeTransactions(Log, Option<crate::outlet::TransactionFailure>);
    impl crate::outlet::TransactionalSink for FakeTransactions {
        fn write_and_commit(
            &mut self,
            windows: &[ClosedWindow],
            letters: &[DeadLetter],
            positions: &[CommitPosition],
            _: Option<Instant>,
            _: &dyn Fn() -> bool,
        ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
            if let Some(failure) = &self.1 {
                return Err(failure.clone());
            }
            self.0 .0.lock().unwrap().push(Event::Transaction(
                windows.iter().map(|w| w.start).collect(),
                letters
                    .iter()
                    .map(|d| (d.partition.index, d.offset))
                    .collect(),
                positions
                    .iter()
                    .map(|p| (p.partition.index, p.offset))
                    .collect(),
            ));
            Ok(positions.to_vec())
        }
    }

    /// A chunk whose records at `invalid` offsets were invalid (dead letters).
    fn with_dead_letters(mut chunk: Chunk, invalid: &[i64]) -> Chunk {
        chunk.dead_letters = invalid
            .iter()
            .map(|offset| DeadLetter {
                partition: chunk.partition,
                offset: *offset,
                reason: crate::frame::InvalidReason::NotJson,
                payload: Some(b"{".to_vec()),
                key: None,
                headers: Vec::new(),
            })
            .collect();
        chunk
    }

    #[actix::test]
    async fn dead_letters_are_durable_before_the_offsets_past_them_are_committed() {
        let log = Log::default();
        let mut actor = unstarted(&log, 0, 10, &[0, 1], Closing::ByWatermark, None);
        actor.output = Output::Idle(Outlet::AtLeastOnce {
            sink: Box::new(FakeSink(log.clone())),
            dead_letters: Some(Box::new(FakeDeadLetters(log.clone()))),
            committer: Box::new(FakeCommitter(log.clone(), 0)),
        });
        let batch = actor.start();
        // Offsets 1 and 3 of partition 0 are invalid.
        let first = chunk(0, &[(0, 100.0, "a"), (2, 112.0, "b")], 4);
        batch.send(with_dead_letters(first, &[1, 3])).await.unwrap();
        batch
            .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        // Window 110 holds partition 0's commit at offset 2: the dead letter at 3 waits for
        // the commit that passes it.
        let events = log.events();
        assert_eq!(events[0], Event::Write(vec![100]));
        assert_eq!(events[1], Event::Dead(vec![(0, 1)]));
        assert_eq!(
            events[2],
            commit(&[(0, 2), (1, 1)], "kafka-actors:v1:wm=112")
        );
        assert_eq!(events.len(), 3, "{events:?}");
        let report = batch.send(Drain { close_all: true }).await.unwrap();
        assert_eq!(indexed(&report.committed), vec![(0, 4), (1, 2)]);
        assert_eq!(
            log.events()[3..],
            [
                Event::Write(vec![110, 120]),
                Event::Dead(vec![(0, 3)]),
                commit(&[(0, 4), (1, 2)], "kafka-actors:v1:wm=130"),
            ]
        );
    }

    #[actix::test]
    async fn exactly_once_writes_windows_dead_letters_and_offsets_in_one_transaction() {
        let log = Log::default();
        let mut actor = unstarted(&log, 0, 10, &[0, 1], Closing::ByWatermark, None);
        actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(FakeTransactions(
            log.clone(),
            None,
        ))));
        let batch = actor.start();
        let first = chunk(0, &[(0, 100.0, "a"), (2, 112.0, "b")], 4);
        batch.send(with_dead_letters(first, &[1, 3])).await.unwrap();
        batch
            .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let report = batch.send(Drain { close_all: true }).await.unwrap();
        let events = log.events();
        assert_eq!(
            events[0],
            Event::Transaction(vec![100], vec![(0, 1)], vec![(0, 2), (1, 1)])
        );
        assert_eq!(
            events[1],
            Event::Transaction(vec![110, 120], vec![(0, 3)], vec![(0, 4), (1, 2)])
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(indexed(&report.committed), vec![(0, 4), (1, 2)]);
    }

    /// Loses part of the membership in its first transaction, then commits, keeping every
    /// window it commits.
    struct LosingOnce(Log, bool, Arc<Mutex<Vec<ClosedWindow>>>);
    impl crate::outlet::TransactionalSink for LosingOnce {
        fn write_and_commit(
            &mut self,
            windows: &[ClosedWindow],
            letters: &[DeadLetter],
            positions: &[CommitPosition],
            until: Option<Instant>,
            owned: &dyn Fn() -> bool,
        ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
            if !std::mem::replace(&mut self.1, true) {
                return Err(crate::outlet::TransactionFailure::MembershipLost {
                    reason: "partitions no longer assigned here: t-2".into(),
                });
            }
            self.2.lock().unwrap().extend_from_slice(windows);
            FakeTransactions(self.0.clone(), None)
                .write_and_commit(windows, letters, positions, until, owned)
        }
    }

    /// A flush dropped because the member lost some of its partitions (say a third, t-2,
    /// revoked while the transaction waited) held the kept partitions' shares too: the batch
    /// forgets everything read since their last commit and asks for them to be read again
    /// from it (before any, from where their reading began: a partition started from
    /// `auto.offset.reset` from its first record); output goes on, and every window is
    /// written once, exact.
    #[actix::test]
    async fn a_flush_dropped_with_part_of_its_partitions_has_the_rest_read_again() {
        let log = Log::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor(events.clone()).start();
        let mut actor = unstarted(
            &log,
            0,
            10,
            &[0, 1],
            Closing::ByWatermark,
            Some(supervisor.recipient()),
        );
        // Partition 0 had no commit: its reader starts where `auto.offset.reset` puts it
        // (offset 5 here) and says so with its first record.
        actor.windows.add_partition(PartitionStart {
            partition: p(0),
            next_offset: None,
            closed_below: None,
        });
        actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(LosingOnce(
            log.clone(),
            false,
            written.clone(),
        ))));
        let batch = actor.start();
        let first = [
            chunk(0, &[(5, 100.0, "a"), (6, 112.0, "b")], 7),
            chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2),
        ];
        for c in first {
            batch.send(c).await.unwrap();
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        // The first flush (window 100) was dropped: nothing written or committed, the output
        // did not stop, and both partitions are to be read again.
        assert!(log.events().is_empty(), "{:?}", log.events());
        let asked: Vec<_> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                BatchEvent::ReadAgain(partitions) => partitions.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(asked, vec![vec![p(0), p(1)]]);
        // Read on by the old readers before their restart: not counted.
        batch.send(chunk(0, &[(7, 125.0, "e")], 8)).await.unwrap();
        // The restart (as the intake does it): let go with a commit, start again where the
        // last durable flush left them; nothing was written, so where their reading began.
        for (partition, from) in [(0, 5), (1, 0)] {
            let released = batch
                .send(ReleasePartitions {
                    partitions: vec![p(partition)],
                    output: ReleaseOutput::Commit {
                        retry_until: Instant::now(),
                    },
                })
                .await
                .unwrap();
            assert_eq!(
                released[0]
                    .resume
                    .as_ref()
                    .map(|r| (r.offset, r.metadata.as_str())),
                Some((from, "")),
                "{released:?}"
            );
            batch
                .send(AddPartitions(vec![PartitionStart {
                    partition: p(partition),
                    next_offset: Some(from),
                    closed_below: None,
                }]))
                .await
                .unwrap();
        }
        batch
            .send(chunk(
                0,
                &[(5, 100.0, "a"), (6, 112.0, "b"), (7, 125.0, "e")],
                8,
            ))
            .await
            .unwrap();
        batch
            .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
            .await
            .unwrap();
        let report = batch.send(Drain { close_all: true }).await.unwrap();
        assert_eq!(events.lock().unwrap().len(), 1, "no failure reported");
        assert_eq!(indexed(&report.committed), vec![(0, 8), (1, 2)]);
        let lines: Vec<(i64, u64, u64)> = written
            .lock()
            .unwrap()
            .iter()
            .map(|w| (w.start, w.unique_users, w.frames))
            .collect();
        assert_eq!(lines, vec![(100, 2, 2), (110, 1, 1), (120, 2, 2)]);
    }

    /// Drops every flush, as a member that never gets into a stable generation sees it.
    struct LosingAlways;
    impl crate::outlet::TransactionalSink for LosingAlways {
        fn write_and_commit(
            &mut self,
            _: &[ClosedWindow],
            _: &[DeadLetter],
            _: &[CommitPosition],
            _: Option<Instant>,
            _: &dyn Fn() -> bool,
        ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
            Err(crate::outlet::TransactionFailure::MembershipLost {
                reason: "generation still changing".into(),
            })
        }
    }

    /// Flushes dropped for longer than `flush.commit_failure_timeout_ms` (200 ms here) stop
    /// the output instead of reading the same frames again for ever.
    #[actix::test]
    async fn flushes_dropped_for_longer_than_the_commit_failure_timeout_stop_the_output() {
        let log = Log::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor(events.clone()).start();
        let mut actor = unstarted(
            &log,
            0,
            10,
            &[0, 1],
            Closing::ByWatermark,
            Some(supervisor.recipient()),
        );
        actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(LosingAlways)));
        let batch = actor.start();
        for _ in 0..5 {
            // Read again from the start, as the restart after each drop does.
            let starts = [0, 1].map(|i| PartitionStart {
                partition: p(i),
                next_offset: Some(0),
                closed_below: None,
            });
            // Once the output stopped, the actor is gone.
            let sent = async {
                batch.send(AddPartitions(starts.to_vec())).await?;
                batch
                    .send(chunk(0, &[(0, 100.0, "a"), (1, 112.0, "b")], 2))
                    .await?;
                batch
                    .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
                    .await
            };
            if sent.await.is_err() {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        let events = events.lock().unwrap().clone();
        let stop = events.iter().find_map(|e| match e {
            BatchEvent::Failed(OutputFailure::Transaction(TransactionFailure::NotInGroup {
                reason,
            })) => Some(reason.clone()),
            _ => None,
        });
        assert!(
            stop.as_deref()
                .is_some_and(|r| r.contains("flushes dropped for")),
            "{events:?}"
        );
        assert!(
            matches!(events.first(), Some(BatchEvent::ReadAgain(_))),
            "read again first: {events:?}"
        );
        assert!(log.events().is_empty(), "nothing written or committed");
    }

    /// Holds the first transaction for `.1` (a coordinator that hangs), then writes, as a
    /// group member would, unless its partitions were let go as lost meanwhile (`owned`).
    struct SlowFirst(Log, Option<Duration>);
    impl crate::outlet::TransactionalSink for SlowFirst {
        fn write_and_commit(
            &mut self,
            windows: &[ClosedWindow],
            letters: &[DeadLetter],
            positions: &[CommitPosition],
            until: Option<Instant>,
            owned: &dyn Fn() -> bool,
        ) -> Result<Vec<CommitPosition>, crate::outlet::TransactionFailure> {
            if let Some(hold) = self.1.take() {
                std::thread::sleep(hold);
            }
            if !owned() {
                return Err(crate::outlet::TransactionFailure::MembershipLost {
                    reason: "lost meanwhile".into(),
                });
            }
            FakeTransactions(self.0.clone(), None)
                .write_and_commit(windows, letters, positions, until, owned)
        }
    }

    /// The assignment is lost while a flush hangs: neither that flush nor the closed window
    /// waiting behind it is written (the partitions' next owner reads both from the last
    /// commit); what is read after they are assigned again is.
    #[actix::test]
    async fn nothing_read_under_a_lost_assignment_is_written_after_the_loss() {
        let log = Log::default();
        let mut actor = unstarted(&log, 0, 10, &[0, 1], Closing::ByWatermark, None);
        actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(SlowFirst(
            log.clone(),
            Some(Duration::from_millis(400)),
        ))));
        let batch = actor.start();
        // Window 100 closes and its flush hangs; window 110 closes meanwhile and waits.
        batch
            .send(chunk(0, &[(0, 100.0, "a"), (1, 112.0, "b")], 2))
            .await
            .unwrap();
        batch
            .send(chunk(1, &[(0, 101.0, "c"), (1, 113.0, "d")], 2))
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        batch.send(chunk(0, &[(2, 121.0, "e")], 3)).await.unwrap();
        batch.send(chunk(1, &[(2, 122.0, "f")], 3)).await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        batch
            .send(ReleasePartitions {
                partitions: vec![p(0), p(1)],
                output: ReleaseOutput::Drop,
            })
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(log.events(), vec![], "nothing written after the loss");
        // Assigned again, from the last commit (none): read again and written once.
        let starts = [0, 1].map(|i| PartitionStart {
            partition: p(i),
            next_offset: Some(0),
            closed_below: None,
        });
        batch.send(AddPartitions(starts.to_vec())).await.unwrap();
        batch
            .send(chunk(
                0,
                &[(0, 100.0, "a"), (1, 112.0, "b"), (2, 121.0, "e")],
                3,
            ))
            .await
            .unwrap();
        batch
            .send(chunk(
                1,
                &[(0, 101.0, "c"), (1, 113.0, "d"), (2, 122.0, "f")],
                3,
            ))
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let written: Vec<i64> = log
            .events()
            .iter()
            .flat_map(|e| match e {
                Event::Transaction(windows, ..) => windows.clone(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(written, vec![100, 110], "{:?}", log.events());
    }

    #[actix::test]
    async fn a_transaction_that_cannot_commit_stops_the_output_with_nothing_committed() {
        let log = Log::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor(events.clone()).start();
        let mut actor = unstarted(
            &log,
            0,
            10,
            &[0, 1],
            Closing::ByWatermark,
            Some(supervisor.recipient()),
        );
        let fenced = crate::outlet::TransactionFailure::Fenced {
            transactional_id: "g.all".into(),
            reason: "producer fenced".into(),
        };
        actor.output = Output::Idle(Outlet::ExactlyOnce(Box::new(FakeTransactions(
            log.clone(),
            Some(fenced.clone()),
        ))));
        let batch = actor.start();
        let _ = batch
            .send(chunk(0, &[(0, 100.0, "a"), (2, 112.0, "b")], 3))
            .await;
        let _ = batch
            .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
            .await;
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        assert!(log.events().is_empty(), "{:?}", log.events());
        let events = events.lock().unwrap();
        assert!(
            matches!(
                events.as_slice(),
                [BatchEvent::Failed(OutputFailure::Transaction(f))] if *f == fenced
            ),
            "{events:?}"
        );
    }

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    /// Offsets by partition index.
    fn indexed(offsets: &[(PartitionId, i64)]) -> Vec<(i32, i64)> {
        offsets.iter().map(|(p, o)| (p.index, *o)).collect()
    }

    /// A commit of `offsets`, every partition with the same recorded `closed_below`.
    fn commit(offsets: &[(i32, i64)], metadata: &str) -> Event {
        Event::Commit(
            offsets
                .iter()
                .map(|(p, o)| (*p, *o, metadata.to_owned()))
                .collect(),
        )
    }

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<Event>>>);

    impl Log {
        fn events(&self) -> Vec<Event> {
            self.0.lock().unwrap().clone()
        }
    }

    struct FakeSink(Log);
    impl Sink for FakeSink {
        fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
            if !windows.is_empty() {
                self.0
                     .0
                    .lock()
                    .unwrap()
                    .push(Event::Write(windows.iter().map(|w| w.start).collect()));
            }
            Ok(())
        }
    }

    struct FakeCommitter(Log, usize);
    impl OffsetCommitter for FakeCommitter {
        fn commit(
            &mut self,
            positions: &[CommitPosition],
        ) -> Result<Vec<CommitPosition>, CommitError> {
            if self.1 > 0 {
                self.1 -= 1;
                return Err(CommitError {
                    kind: CommitErrorKind::Transient,
                    message: "coordinator moving".into(),
                });
            }
            self.0 .0.lock().unwrap().push(Event::Commit(
                positions
                    .iter()
                    .map(|p| (p.partition.index, p.offset, p.metadata.clone()))
                    .collect(),
            ));
            Ok(positions.to_vec())
        }
    }

    fn chunk(partition: i32, frames: &[(i64, f64, &str)], next: i64) -> Chunk {
        let mut c = FrameChunk::with_capacity(frames.len());
        for (o, ts, uid) in frames {
            c.push(*o, *ts, uid);
        }
        Chunk {
            partition: p(partition),
            frames: c,
            dead_letters: Vec::new(),
            next_offset: Some(next),
            read_from: Some(frames.first().map_or(next, |f| f.0)),
            at_end: false,
            finished: false,
        }
    }

    fn actor(log: &Log, failing_commits: usize, interval_ms: u64) -> Addr<BatchActor> {
        unstarted(
            log,
            failing_commits,
            interval_ms,
            &[0, 1],
            Closing::AllAtEnd,
            None,
        )
        .start()
    }

    /// A batch actor over `partitions` (10 s windows, no lateness), writing to and committing
    /// into `log`.
    fn unstarted(
        log: &Log,
        failing_commits: usize,
        interval_ms: u64,
        partitions: &[i32],
        closing: Closing,
        supervisor: Option<Recipient<BatchEvent>>,
    ) -> BatchActor {
        let metrics = MetricsActor::new(MetricsConfig { log_interval_ms: 0 }).start();
        let starts: Vec<PartitionStart> = partitions
            .iter()
            .map(|partition| PartitionStart {
                partition: p(*partition),
                next_offset: Some(0),
                closed_below: None,
            })
            .collect();
        BatchActor::new(
            &WindowConfig {
                length_secs: 10,
                lateness_secs: 0,
                idle_after_ms: 60_000,
                max_lead_secs: 0,
                open_budget_mib: 0.0,
            },
            FlushConfig {
                max_frames: 1_000_000,
                interval_ms,
                commit_failure_timeout_ms: 200,
            },
            &starts,
            Outlet::at_least_once(
                Box::new(FakeSink(log.clone())),
                Box::new(FakeCommitter(log.clone(), failing_commits)),
            ),
            closing,
            metrics,
            supervisor,
        )
    }

    /// Keeps every window written.
    struct KeepingSink(Arc<Mutex<Vec<ClosedWindow>>>);
    impl Sink for KeepingSink {
        fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(windows);
            Ok(())
        }
    }

    /// A batch actor over partitions 0-2 with a memory budget of 1 MiB for open windows,
    /// keeping what it writes in `written`; and its metrics actor.
    fn budgeted(
        log: &Log,
        written: &Arc<Mutex<Vec<ClosedWindow>>>,
    ) -> (Addr<BatchActor>, Addr<MetricsActor>) {
        let metrics = MetricsActor::new(MetricsConfig { log_interval_ms: 0 }).start();
        let starts: Vec<PartitionStart> = (0..3)
            .map(|partition| PartitionStart {
                partition: p(partition),
                next_offset: Some(0),
                closed_below: None,
            })
            .collect();
        let batch = BatchActor::new(
            &WindowConfig {
                length_secs: 10,
                lateness_secs: 0,
                idle_after_ms: 60_000,
                max_lead_secs: 0,
                open_budget_mib: 1.0,
            },
            FlushConfig {
                max_frames: 1_000_000,
                interval_ms: 10,
                commit_failure_timeout_ms: 200,
            },
            &starts,
            Outlet::at_least_once(
                Box::new(KeepingSink(written.clone())),
                Box::new(FakeCommitter(log.clone(), 0)),
            ),
            Closing::ByWatermark,
            metrics.clone(),
            None,
        );
        (batch.start(), metrics)
    }

    async fn send(
        batch: &Addr<BatchActor>,
        partition: i32,
        ts: f64,
        uids: std::ops::Range<u32>,
        next: i64,
    ) -> Flow {
        let names: Vec<String> = uids.map(|i| format!("user-{i:07}")).collect();
        let frames: Vec<(i64, f64, &str)> = names.iter().map(|u| (0, ts, u.as_str())).collect();
        batch.send(chunk(partition, &frames, next)).await.unwrap()
    }

    async fn resumed(flow: Flow) -> bool {
        match flow {
            Flow::Go => panic!("the partition was not paused"),
            Flow::Pause(resumed) => tokio::time::timeout(Duration::from_secs(2), resumed)
                .await
                .is_ok_and(|r| r.is_ok()),
        }
    }

    #[actix::test]
    async fn over_the_memory_budget_partitions_ahead_of_the_watermark_pause_until_windows_close() {
        let (log, written) = (Log::default(), Arc::new(Mutex::new(Vec::new())));
        let (batch, metrics) = budgeted(&log, &written);
        let open = || async { metrics.send(GetMetrics).await.unwrap() };
        // Partition 0 holds the watermark at 101; partition 2 is a little ahead.
        assert!(matches!(send(&batch, 0, 101.0, 0..1, 1).await, Flow::Go));
        assert!(matches!(send(&batch, 2, 105.0, 0..1, 1).await, Flow::Go));
        // Partition 1 runs ahead with 100 000 users in window 200: past 1 MiB it is paused.
        let mut flows = Vec::new();
        for k in 0..10 {
            flows.push(
                send(
                    &batch,
                    1,
                    200.0,
                    k * 10_000..(k + 1) * 10_000,
                    i64::from(k + 1),
                )
                .await,
            );
        }
        let first_pause = flows.iter().position(|f| matches!(f, Flow::Pause(_)));
        assert!(
            first_pause.is_some_and(|k| k >= 2),
            "paused at chunk {first_pause:?}"
        );
        let p1 = flows.pop().unwrap();
        // Partition 2 is ahead of the holder too: paused at its next chunk. The holder reads on.
        let p2 = send(&batch, 2, 106.0, 0..1, 2).await;
        assert!(matches!(p2, Flow::Pause(_)));
        assert!(matches!(send(&batch, 0, 102.0, 1..2, 2).await, Flow::Go));
        let figures = open().await;
        assert!(
            figures.open_window_bytes > 1 << 20,
            "{} bytes open",
            figures.open_window_bytes
        );
        assert_eq!(figures.watermark_holder, Some(p(0)));
        assert!(
            figures.partitions[&p(1)].paused
                && !figures.partitions.get(&p(0)).is_some_and(|m| m.paused)
        );
        // The holder moves to 250: partition 2 (at 106) now holds the watermark and resumes at
        // once, and partition 0, now ahead, is paused in its turn.
        let p0 = send(&batch, 0, 250.0, 2..3, 3).await;
        assert!(resumed(p2).await, "the new holder resumes");
        // Partition 2 moves past partition 1 (at 200): partition 1 holds and resumes...
        let p2 = send(&batch, 2, 260.0, 1..2, 3).await;
        assert!(
            resumed(p1).await,
            "partition 1 resumes once it holds the watermark"
        );
        // ...and its move past 250 closes window 200, which frees the budget: all resume.
        assert!(matches!(send(&batch, 1, 255.0, 0..1, 12).await, Flow::Go));
        assert!(
            resumed(p0).await && resumed(p2).await,
            "everything resumes below 3/4 of the budget"
        );
        let figures = open().await;
        assert!(
            figures.open_window_bytes < 1 << 18,
            "{} bytes open",
            figures.open_window_bytes
        );
        assert!(figures.peak_open_window_bytes > 1 << 20);
        assert_eq!(
            figures.budget_pauses, 4,
            "partitions 1 and 2, then 0, then 2 again"
        );
        assert!(figures.partitions.values().all(|m| !m.paused));
        // The window of 100 000 users is exact (written by the flush thread: waited for, up to
        // 5 s on a loaded machine).
        for _ in 0..100 {
            if written.lock().unwrap().iter().any(|w| w.start == 200) {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let written = written.lock().unwrap().clone();
        let w200 = written
            .iter()
            .find(|w| w.start == 200)
            .expect("window 200 written");
        assert_eq!((w200.unique_users, w200.frames), (100_000, 100_000));
        assert_eq!(w200.partitions, vec![p(0), p(1), p(2)]);
    }

    #[actix::test]
    async fn a_released_paused_partition_no_longer_shows_as_paused() {
        let (log, written) = (Log::default(), Arc::new(Mutex::new(Vec::new())));
        let (batch, metrics) = budgeted(&log, &written);
        assert!(matches!(send(&batch, 0, 101.0, 0..1, 1).await, Flow::Go));
        let mut last = Flow::Go;
        for k in 0..10 {
            last = send(
                &batch,
                1,
                200.0,
                k * 10_000..(k + 1) * 10_000,
                i64::from(k + 1),
            )
            .await;
        }
        assert!(matches!(last, Flow::Pause(_)));
        let figures = metrics.send(GetMetrics).await.unwrap();
        assert!(figures.partitions[&p(1)].paused);
        // A rebalance takes partition 1 away.
        batch
            .send(ReleasePartitions {
                partitions: vec![p(1)],
                output: ReleaseOutput::Drop,
            })
            .await
            .unwrap();
        let figures = metrics.send(GetMetrics).await.unwrap();
        assert!(
            !figures.partitions.get(&p(1)).is_some_and(|m| m.paused),
            "{:?}",
            figures.partitions.get(&p(1))
        );
    }

    #[actix::test]
    async fn a_group_member_at_its_end_writes_its_share_but_completes_only_once_every_partition_is_accounted_for(
    ) {
        // This member owns partition 0 of a 2-partition topic; partition 1 is held elsewhere.
        let log = Log::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor(events.clone()).start();
        let batch = unstarted(
            &log,
            0,
            20,
            &[0],
            Closing::AllAtEnd,
            Some(supervisor.recipient()),
        )
        .cover_group()
        .start();
        let mut done = chunk(0, &[(0, 100.0, "a")], 1);
        done.at_end = true;
        done.finished = true;
        batch.send(done).await.unwrap();
        let settle = || actix_rt::time::sleep(Duration::from_millis(100));
        settle().await;
        // Its own share is written and committed at the end at once: the member holding
        // partition 1 waits for that commit before it finishes, as this one waits for its.
        let own_share = vec![
            Event::Write(vec![100]),
            commit(&[(0, 1)], "kafka-actors:v1:wm=110"),
        ];
        assert_eq!(log.events(), own_share);
        let completed = || {
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, BatchEvent::Completed))
        };
        assert!(!completed(), "coverage not known yet");
        batch
            .send(GroupCoverage {
                all: vec![p(0), p(1)],
                done_elsewhere: vec![],
            })
            .await
            .unwrap();
        settle().await;
        assert!(!completed(), "partition 1 not consumed");
        batch
            .send(GroupCoverage {
                all: vec![p(0), p(1)],
                done_elsewhere: vec![p(1)],
            })
            .await
            .unwrap();
        settle().await;
        assert!(completed(), "every partition accounted for");
        assert_eq!(
            log.events(),
            own_share,
            "nothing written or committed twice"
        );
    }

    #[actix::test]
    async fn commits_only_after_the_windows_they_cover_are_written() {
        let log = Log::default();
        let batch = actor(&log, 0, 20);
        batch
            .send(chunk(
                0,
                &[(0, 100.0, "a"), (1, 105.0, "b"), (2, 112.0, "a")],
                3,
            ))
            .await
            .unwrap();
        batch
            .send(chunk(1, &[(0, 101.0, "c"), (1, 121.0, "d")], 2))
            .await
            .unwrap();
        // Watermark = min(112, 121) = 112: window 100 closes; partition 0 holds at offset 2
        // (window 110), partition 1 at offset 1 (window 120).
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let report = batch.send(Drain { close_all: false }).await.unwrap();
        let events = log.events();
        assert_eq!(events[0], Event::Write(vec![100]));
        assert_eq!(
            events[1],
            commit(&[(0, 2), (1, 1)], "kafka-actors:v1:wm=112")
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(indexed(&report.committed), vec![(0, 2), (1, 1)]);
        assert_eq!(report.open_windows, 2);
        let report = batch.send(Drain { close_all: true }).await.unwrap();
        assert_eq!(log.events()[2], Event::Write(vec![110, 120]));
        assert_eq!(indexed(&report.committed), vec![(0, 3), (1, 2)]);
        assert_eq!(report.open_windows, 0);
    }

    #[actix::test]
    async fn a_failed_commit_is_retried_by_a_later_flush() {
        let log = Log::default();
        let batch = actor(&log, 1, 10);
        batch
            .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
            .await
            .unwrap();
        batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let events = log.events();
        assert_eq!(events[0], Event::Write(vec![100]));
        assert!(
            events.contains(&commit(&[(0, 1), (1, 0)], "kafka-actors:v1:wm=125")),
            "the retried commit went out: {events:?}"
        );
    }

    /// Window 100 closed on partition 0 (125 and 130 passed it), then partition 0 released
    /// with commit retries for `retry_for`: what was released, and how long it took.
    async fn release_after_a_window(
        batch: &Addr<BatchActor>,
        retry_for: Duration,
    ) -> (Vec<Released>, Duration) {
        batch
            .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
            .await
            .unwrap();
        batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
        let started = Instant::now();
        let released = batch
            .send(ReleasePartitions {
                partitions: vec![p(0)],
                output: ReleaseOutput::Commit {
                    retry_until: Instant::now() + retry_for,
                },
            })
            .await
            .unwrap();
        (released, started.elapsed())
    }

    #[actix::test]
    async fn a_release_tries_a_refused_commit_again_before_letting_the_partition_go() {
        // The group refuses the next three commits (a rebalance under way).
        let log = Log::default();
        let batch = unstarted(&log, 3, 60_000, &[0, 1], Closing::ByWatermark, None).start();
        let (released, _) = release_after_a_window(&batch, Duration::from_secs(2)).await;
        // Window 100 is written and its frames committed, at the fourth attempt.
        assert_eq!(
            released[0].committed.as_ref().map(|c| c.offset),
            Some(1),
            "{:?}",
            log.events()
        );
        assert_eq!(
            log.events(),
            vec![
                Event::Write(vec![100]),
                commit(&[(0, 1), (1, 0)], "kafka-actors:v1:wm=125")
            ]
        );
    }

    #[actix::test]
    async fn a_release_gives_up_on_a_refused_commit_after_its_retry_time() {
        let log = Log::default();
        let batch = unstarted(
            &log,
            usize::MAX,
            60_000,
            &[0, 1],
            Closing::ByWatermark,
            None,
        )
        .start();
        let (released, took) = release_after_a_window(&batch, Duration::from_millis(350)).await;
        assert_eq!(released[0].committed, None);
        assert_eq!(released[0].resume.as_ref().map(|r| r.offset), Some(1));
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[actix::test]
    async fn a_partition_released_while_commits_fail_resumes_where_its_unwritten_frames_start() {
        // Started without a committed offset (from wherever the reset policy puts it), and
        // every commit fails.
        let log = Log::default();
        let batch = unstarted(&log, usize::MAX, 60_000, &[], Closing::ByWatermark, None).start();
        let unknown = |partition| PartitionStart {
            partition,
            next_offset: None,
            closed_below: None,
        };
        batch
            .send(AddPartitions(vec![unknown(p(0)), unknown(p(1))]))
            .await
            .unwrap();
        batch
            .send(chunk(0, &[(5, 100.0, "a"), (6, 125.0, "b")], 7))
            .await
            .unwrap();
        batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
        let released = batch
            .send(ReleasePartitions {
                partitions: vec![p(0)],
                output: ReleaseOutput::Commit {
                    retry_until: Instant::now(),
                },
            })
            .await
            .unwrap();
        // Window 100 was written; offset 6 opens window 120, which is not.
        assert_eq!(log.events(), vec![Event::Write(vec![100])]);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].committed, None, "every commit failed");
        let resume = released[0]
            .resume
            .as_ref()
            .expect("a position to resume from");
        assert_eq!((resume.partition.index, resume.offset), (0, 6));
        assert_eq!(decode_closed_below(&resume.metadata), Some(125.0));
    }

    #[actix::test]
    async fn a_partition_that_comes_back_forgets_the_commits_of_its_earlier_ownership() {
        let log = Log::default();
        let batch = unstarted(&log, 0, 60_000, &[0, 1], Closing::ByWatermark, None).start();
        batch
            .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
            .await
            .unwrap();
        batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
        let first = batch
            .send(ReleasePartitions {
                partitions: vec![p(0)],
                output: ReleaseOutput::Commit {
                    retry_until: Instant::now(),
                },
            })
            .await
            .unwrap();
        assert_eq!(first[0].committed.as_ref().map(|c| c.offset), Some(1));
        // Another member read on; the partition comes back at 500 and is lost before this
        // member commits anything for it.
        batch
            .send(AddPartitions(vec![PartitionStart {
                partition: p(0),
                next_offset: Some(500),
                closed_below: None,
            }]))
            .await
            .unwrap();
        let second = batch
            .send(ReleasePartitions {
                partitions: vec![p(0)],
                output: ReleaseOutput::Drop,
            })
            .await
            .unwrap();
        assert_eq!(
            second,
            vec![Released {
                partition: p(0),
                committed: None,
                resume: None
            }],
            "nothing of the earlier ownership survives"
        );
    }

    /// Refuses every commit as a broker refuses an unauthorized group, or commits only the
    /// partitions in `.1` (the others are no longer read here).
    struct Refusing(Log, Option<Vec<PartitionId>>);
    impl OffsetCommitter for Refusing {
        fn commit(
            &mut self,
            positions: &[CommitPosition],
        ) -> Result<Vec<CommitPosition>, CommitError> {
            let Some(owned) = &self.1 else {
                return Err(CommitError {
                    kind: CommitErrorKind::Permanent,
                    message: "Broker: Group authorization failed".into(),
                });
            };
            let mine: Vec<CommitPosition> = positions
                .iter()
                .filter(|p| owned.contains(&p.partition))
                .cloned()
                .collect();
            self.0 .0.lock().unwrap().push(Event::Commit(
                mine.iter()
                    .map(|p| (p.partition.index, p.offset, p.metadata.clone()))
                    .collect(),
            ));
            Ok(mine)
        }
    }

    fn with_committer(
        log: &Log,
        committer: Refusing,
        supervisor: Option<Recipient<BatchEvent>>,
    ) -> Addr<BatchActor> {
        let mut actor = unstarted(log, 0, 10, &[0, 1], Closing::ByWatermark, supervisor);
        actor.output = Output::Idle(Outlet::at_least_once(
            Box::new(FakeSink(log.clone())),
            Box::new(committer),
        ));
        actor.start()
    }

    #[actix::test]
    async fn a_release_does_not_retry_a_commit_no_retry_cures() {
        let log = Log::default();
        let batch = with_committer(&log, Refusing(log.clone(), None), None);
        let (released, took) = release_after_a_window(&batch, Duration::from_secs(5)).await;
        assert_eq!(released[0].committed, None);
        assert!(
            took < Duration::from_secs(1),
            "an authorization failure was tried again for {took:?}"
        );
    }

    #[actix::test]
    async fn commits_that_can_never_succeed_stop_the_output_within_the_timeout() {
        let log = Log::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor(events.clone()).start();
        let batch = with_committer(
            &log,
            Refusing(log.clone(), None),
            Some(supervisor.recipient()),
        );
        // A new window every 100 ms; once the actor has stopped, nothing is taken.
        for (i, ts) in [100.0, 112.0, 124.0, 136.0, 148.0].iter().enumerate() {
            let offset = i as i64;
            let _ = batch
                .send(chunk(0, &[(offset, *ts, "a")], offset + 1))
                .await;
            let _ = batch
                .send(chunk(1, &[(offset, *ts, "b")], offset + 1))
                .await;
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        let events = events.lock().unwrap().clone();
        assert!(
            events.iter().any(|e| matches!(
                e,
                BatchEvent::Failed(failure @ OutputFailure::CommitsRefused { error, timeout_ms: 200, .. })
                    if error.contains("Group authorization failed")
                        && failure.to_string().starts_with("offsets cannot be committed")
            )),
            "{events:?}"
        );
        assert!(!batch.connected(), "the batch actor stopped");
        // Output stopped with it: windows 100 and 110 were written before the timeout ran
        // out (every flush's commit failed), the later ones never.
        let written: Vec<Event> = log.events();
        assert!(written.contains(&Event::Write(vec![100])), "{written:?}");
        assert!(!written.contains(&Event::Write(vec![130])), "{written:?}");
    }

    #[actix::test]
    async fn positions_left_out_of_a_commit_are_not_recorded_as_committed() {
        let log = Log::default();
        // Partition 1 was revoked from this member while its windows were being written.
        let batch = with_committer(&log, Refusing(log.clone(), Some(vec![p(0)])), None);
        batch
            .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
            .await
            .unwrap();
        batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
        let report = batch.send(Drain { close_all: false }).await.unwrap();
        assert_eq!(indexed(&report.committed), vec![(0, 1)]);
        assert!(log
            .events()
            .contains(&commit(&[(0, 1)], "kafka-actors:v1:wm=125")));
    }

    struct Supervisor(Arc<Mutex<Vec<BatchEvent>>>);
    impl Actor for Supervisor {
        type Context = Context<Self>;
    }
    impl Handler<BatchEvent> for Supervisor {
        type Result = ();
        fn handle(&mut self, msg: BatchEvent, _: &mut Self::Context) {
            self.0.lock().unwrap().push(msg);
        }
    }

    #[actix::test]
    async fn refuses_to_write_a_partial_window_without_partition_labels() {
        let log = Log::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor(events.clone()).start();
        // This instance owns partitions 0 and 1 of a 3-partition topic.
        let batch = unstarted(
            &log,
            0,
            10,
            &[0, 1],
            Closing::ByWatermark,
            Some(supervisor.recipient()),
        )
        .complete_only(vec![p(0), p(1), p(2)])
        .start();
        batch
            .send(chunk(0, &[(0, 100.0, "a"), (1, 125.0, "b")], 2))
            .await
            .unwrap();
        batch.send(chunk(1, &[(0, 130.0, "c")], 1)).await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert!(
            log.events().is_empty(),
            "nothing written, nothing committed: {:?}",
            log.events()
        );
        let events = events.lock().unwrap();
        assert!(
            events.iter().any(|e| matches!(
                e,
                BatchEvent::Failed(failure @ OutputFailure::PartialLine { start: 100, .. })
                    if failure.to_string().starts_with("refusing to write window 100")
            )),
            "{events:?}"
        );
        assert!(!batch.connected(), "the batch actor stopped");
    }

    #[test]
    fn closed_below_metadata_round_trips_and_ignores_foreign_metadata() {
        assert_eq!(
            decode_closed_below(&encode_closed_below(Some(1_700_000_012.25))),
            Some(1_700_000_012.25)
        );
        assert_eq!(encode_closed_below(None), "");
        assert!(
            encode_closed_below(Some(-1.234_567_890_123_456_7e11)).len() <= 64,
            "small"
        );
        assert_eq!(decode_closed_below("something else"), None);
        assert_eq!(decode_closed_below("kafka-actors:v1:wm=inf"), None);
        // Commits written before the format had a version still read.
        assert_eq!(decode_closed_below("kafka-actors:wm=125.5"), Some(125.5));
        assert_eq!(
            decode_commit_metadata("kafka-actors:v2:closed=1"),
            CommitMetadata::UnknownVersion
        );
        assert_eq!(
            decode_commit_metadata("kafka-actors:v1:wm=x"),
            CommitMetadata::Unreadable
        );
        assert_eq!(decode_commit_metadata(""), CommitMetadata::Foreign);
    }

    #[test]
    fn commit_metadata_is_trusted_only_when_plausible_and_of_a_known_version() {
        let p0 = p(0);
        let latest = 4_102_444_800.0;
        let trusted = |metadata: &str| closed_below_from_commit(p0, Some(7), metadata, latest);
        assert_eq!(
            trusted("kafka-actors:v1:wm=1790000125"),
            Some(1_790_000_125.0)
        );
        assert_eq!(trusted("kafka-actors:wm=1790000125"), Some(1_790_000_125.0));
        // Years beyond any frame: trusting it would close every window unwritten.
        assert_eq!(trusted("kafka-actors:v1:wm=9000000000"), None);
        assert_eq!(trusted("kafka-actors:v1:wm=-5"), None);
        assert_eq!(trusted("kafka-actors:v9:wm=1790000125"), None);
        assert_eq!(trusted("other-tool:42"), None);
        assert_eq!(closed_below_from_commit(p0, None, "", latest), None);
    }
}
