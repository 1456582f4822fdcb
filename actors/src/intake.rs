//! [`IntakeActor`]: owns the running partition actors, in both models. Its input is a stream
//! of assignment events from an [`AssignmentSource`]: the partition model assigns every
//! partition once at start; the group model's coordinator assigns and revokes partitions in
//! rebalances. For each assigned partition it starts a [`PartitionActor`] reading that
//! partition's queue, feeding the batch and metrics actors. The model is a choice of event
//! source, not a second pipeline.
//!
//! Events arrive from the consumer's driver thread through [`IntakeListener`]:
//! - assigned: the batch actor learns the partitions (where they start, and up to where their
//!   windows were already written) before their partition actors start;
//! - revoked: the partitions' actors stop (what they prefetched is dropped unread), the batch
//!   actor writes what is closed and commits, then lets the partitions go; only then does the
//!   listener return and the rebalance go on, within `group.revoke_timeout_ms`;
//! - lost: as revoked, but nothing is committed; and the listener waits until the partitions
//!   are let go, however long that takes (see [`IntakeListener`]).
//!
//! `Leave` (at shutdown) stops every partition actor; where leaving hands the partitions to
//! others ([`OnLeave::Release`], the group model) it first writes, commits and releases them,
//! then closes the member, which leaves the group.
//!
//! A failed partition actor is restarted here when the supervisor says so
//! ([`RestartAssigned`]): from the partition's last commit (or where it was assigned, before
//! any commit), on its queue split off again and positioned there, while the partition stays
//! assigned.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use futures::future::join_all;

use crate::batch::{AddPartitions, BatchActor, ReleaseOutput, ReleasePartitions};
use crate::commit_meta::{closed_below_from_commit, decode_closed_below};
use crate::config::PartitionConfig;
use crate::frame::FrameLimits;
use crate::metrics::RecordsSkipped;
use crate::partition::{EndAt, EndPolicy, PartitionActor, PartitionOutputs, StopIntake};
use crate::ports::{
    AssignedPartition, AssignmentListener, AssignmentSource, CoverageProbe, OnLeave, Revocation,
    SourceFactory, StartOffset,
};
use crate::topic::PartitionId;
use crate::window::PartitionStart;

/// The arbiter threads the partition actors share.
#[derive(Clone)]
pub struct ReaderThreads {
    handles: Arc<Vec<ArbiterHandle>>,
}

impl ReaderThreads {
    /// Starts `threads` arbiters; the caller stops and joins them.
    pub fn start(threads: usize) -> (Self, Vec<Arbiter>) {
        let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        let handles = arbiters.iter().map(Arbiter::handle).collect();
        (
            ReaderThreads {
                handles: Arc::new(handles),
            },
            arbiters,
        )
    }

    /// The thread of `partition`'s actor: consecutive partitions of a topic on consecutive
    /// threads, each topic starting at a thread of its own.
    fn of(&self, partition: PartitionId) -> &ArbiterHandle {
        let topic_start = partition.topic.name().bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let slot = topic_start.wrapping_add(partition.index.unsigned_abs() as usize);
        &self.handles[slot % self.handles.len()]
    }
}

/// A running partition actor (both models).
struct RunningPartition {
    pub(crate) addr: Addr<PartitionActor>,
    pub(crate) incarnation: u64,
}

impl RunningPartition {
    /// Starts `actor` on its partition's reader thread.
    pub(crate) fn start(actor: PartitionActor, threads: &ReaderThreads) -> Self {
        let incarnation = actor.incarnation_id();
        let thread = threads.of(actor.partition_id());
        let addr = PartitionActor::start_in_arbiter(thread, move |_| actor);
        RunningPartition { addr, incarnation }
    }

    /// Takes `partition`'s actor out of `running` if it is incarnation `incarnation` (any, when
    /// `None`); a restart for an actor already replaced or let go finds nothing.
    pub(crate) fn take(
        running: &mut BTreeMap<PartitionId, RunningPartition>,
        partition: PartitionId,
        incarnation: Option<u64>,
    ) -> Option<RunningPartition> {
        let current = running.get(&partition)?.incarnation;
        if incarnation.is_some_and(|g| g != current) {
            return None;
        }
        running.remove(&partition)
    }
}

/// The latest `closed_below` a commit can plausibly record: no frame is later than
/// `frames.max_ts` or than the clock allows (`frames.max_future_secs`), and no window ends more
/// than two days (its length and its lateness, a day each at most) after its frames.
fn latest_closed_below(limits: &FrameLimits) -> f64 {
    let latest_frame = limits
        .max_ts
        .min(limits.at(crate::clock::now_epoch_secs()).future_after);
    latest_frame + 2.0 * 86_400.0
}

/// Stops a partition actor (if it still runs).
async fn stop_partition_actor(addr: Addr<PartitionActor>) {
    // A dead actor answers with an error, which is fine: it sends nothing more either way.
    let _ = addr.send(StopIntake).await;
}

/// Makes the batch actor write what is closed and commit, forget `partition`'s share of open
/// windows, and take the partition back from where its last durable flush left it (committed
/// or not; or from `fallback`, where it was assigned, when nothing of it was read). Answers
/// where the partition must be read from.
async fn rewind_partition(
    batch: &Addr<BatchActor>,
    partition: PartitionId,
    fallback: (StartOffset, Option<f64>),
) -> Result<StartOffset, String> {
    let released = batch
        .send(ReleasePartitions {
            partitions: vec![partition],
            // A restart reads again from the last durable flush, committed or not.
            output: ReleaseOutput::Commit {
                retry_until: Instant::now(),
            },
        })
        .await
        .map_err(|e| format!("batch actor: {e}"))?;
    // Where the last durable flush left it (committed or not), else where it was assigned.
    let (start, closed_below) = match released.first().and_then(|r| r.resume.as_ref()) {
        Some(c) => (StartOffset::At(c.offset), decode_closed_below(&c.metadata)),
        None => fallback,
    };
    let next_offset = start.offset();
    batch
        .send(AddPartitions(vec![PartitionStart {
            partition,
            next_offset,
            closed_below,
        }]))
        .await
        .map_err(|e| format!("batch actor: {e}"))?;
    Ok(start)
}

/// The coordinator assigned partitions.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PartitionsAssigned(pub Vec<AssignedPartition>);

/// The coordinator is taking partitions away; `done` is answered once they are released.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PartitionsRevoked {
    /// The partitions.
    pub partitions: Vec<PartitionId>,
    /// Revoked in a rebalance, or lost (release without committing).
    pub how: Revocation,
    /// Answered when released.
    pub done: std::sync::mpsc::Sender<()>,
}

/// A change of ownership seen by this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// The partition was assigned here, starting at `start`.
    Assigned {
        /// The partition.
        partition: PartitionId,
        /// Where reading started.
        start: StartOffset,
    },
    /// The partition was let go, with the last offset this member committed for it.
    Released {
        /// The partition.
        partition: PartitionId,
        /// The last offset committed here, if any.
        committed: Option<i64>,
        /// The assignment was lost (nothing committed at the release).
        lost: bool,
    },
}

/// A [`GroupEvent`] and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Wall-clock time.
    pub at: SystemTime,
    /// What happened.
    pub event: GroupEvent,
}

/// Leave the group: revoke everything (committing), close the member, stop; answers with
/// every ownership change this member saw.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<GroupRecord>")]
pub struct Leave;

/// How long the consumer's rebalance callback waits for revoked partitions to be let go
/// (their closed windows written and their offsets committed) before the member goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeWait {
    /// At most `group.revoke_timeout_ms` (at least once): a member that goes on without the
    /// release may still commit those partitions after their next owner read its start, which
    /// at least once allows (the next owner writes the same windows again).
    AtMost,
    /// Until they are let go (exactly once). A member that went on would commit them later in
    /// the generation it joins next, which the broker takes as current (a transactional offset
    /// commit is checked against the member's generation, not against who owns the partition),
    /// after their next owner read its start from the commit before: what the release writes,
    /// the next owner writes again. The wait holds the rebalance, at most for the member's
    /// rebalance timeout (`max.poll.interval.ms`), past which the coordinator removes the
    /// member and refuses its commits.
    UntilReleased,
}

/// Carries assignments from the consumer's driver thread to the intake actor and waits for
/// revocations to finish.
pub struct IntakeListener {
    actor: OnceLock<Addr<IntakeActor>>,
    revoke_timeout: Duration,
    wait: RevokeWait,
}

impl IntakeListener {
    /// A listener that waits for a revocation as `wait` says (`revoke_timeout` at most, or
    /// until its partitions are let go), and for a lost assignment until its partitions are
    /// let go.
    pub fn new(revoke_timeout: Duration, wait: RevokeWait) -> Arc<Self> {
        Arc::new(IntakeListener {
            actor: OnceLock::new(),
            revoke_timeout,
            wait,
        })
    }
}

impl AssignmentListener for IntakeListener {
    fn assigned(&self, partitions: Vec<AssignedPartition>) {
        match self.actor.get() {
            Some(actor) => actor.do_send(PartitionsAssigned(partitions)),
            None => tracing::error!("Partitions assigned before the intake actor started."),
        }
    }

    fn revoking(&self, partitions: Vec<PartitionId>, how: Revocation) {
        let Some(actor) = self.actor.get() else {
            return;
        };
        let (done, wait) = std::sync::mpsc::channel();
        actor.do_send(PartitionsRevoked {
            partitions: partitions.clone(),
            how,
            done,
        });
        match (wait.recv_timeout(self.revoke_timeout), how, self.wait) {
            (Ok(()), _, _) => {}
            // Lost partitions are waited for until they are let go: the member cannot join the
            // group again while this callback runs, and a flush made from what was read under
            // the lost assignment is refused once the batch actor has let them go, but only
            // then. Returning earlier, the member could join again and be given them back
            // before that, and such a flush could commit in the new generation what the
            // partitions' new reading writes again. (Nothing needs the wait to be short: the
            // partitions are someone else's already, and nothing is committed for them.)
            (Err(std::sync::mpsc::RecvTimeoutError::Timeout), Revocation::Lost, _) => {
                tracing::warn!(
                    ?partitions,
                    waited = ?self.revoke_timeout,
                    "Lost partitions are not let go yet; the member joins the group again once \
                     they are."
                );
                let started = Instant::now();
                let _ = wait.recv();
                tracing::info!(
                    ?partitions,
                    took = ?(self.revoke_timeout + started.elapsed()),
                    "Lost partitions let go."
                );
            }
            // Exactly once: see `RevokeWait::UntilReleased`.
            (
                Err(std::sync::mpsc::RecvTimeoutError::Timeout),
                Revocation::Revoked,
                RevokeWait::UntilReleased,
            ) => {
                tracing::warn!(
                    ?partitions,
                    waited = ?self.revoke_timeout,
                    "Revoked partitions are not let go yet; exactly once, the member waits until \
                     they are written and committed."
                );
                let started = Instant::now();
                let _ = wait.recv();
                tracing::info!(
                    ?partitions,
                    took = ?(self.revoke_timeout + started.elapsed()),
                    "Revoked partitions let go."
                );
            }
            (
                Err(std::sync::mpsc::RecvTimeoutError::Timeout),
                Revocation::Revoked,
                RevokeWait::AtMost,
            ) => {
                tracing::error!(
                    ?partitions,
                    timeout = ?self.revoke_timeout,
                    "Revocation did not finish in time; the next owner may reprocess frames."
                );
            }
            // The intake actor is gone (the service is stopping): nothing left to release.
            (Err(std::sync::mpsc::RecvTimeoutError::Disconnected), _, _) => {}
        }
    }
}

/// The group model's intake; see the module documentation.
pub struct IntakeActor {
    /// Where the intake is in its life, with what each stage holds.
    state: Lifecycle,
    /// The threads partition actors run on.
    threads: ReaderThreads,
    listener: Arc<IntakeListener>,
    batch: Addr<BatchActor>,
    outputs: PartitionOutputs,
    /// How partitions are read.
    reading: ReadingSpec,
    end_offsets: Option<BTreeMap<PartitionId, i64>>,
    partitions: BTreeMap<PartitionId, RunningPartition>,
    /// Where each owned partition started at its assignment (and its `closed_below`), for a
    /// restart before anything was committed.
    assigned_at: BTreeMap<PartitionId, (StartOffset, Option<f64>)>,
    history: Arc<std::sync::Mutex<Vec<GroupRecord>>>,
    /// An assignment has arrived (possibly empty).
    assigned: bool,
    /// Assignments and revocations handled, and how long each revocation took (ms).
    rebalances: Rebalances,
}

/// Assignments and revocations an intake handled.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rebalances {
    /// Assignments received (the partition model's one at start included).
    pub assignments: u64,
    /// Revocations (and lost assignments) handled.
    pub revocations: u64,
    /// How long each revocation took to release its partitions (write, commit, stop), in
    /// milliseconds, oldest first (the last 1 000).
    pub revoke_ms: Vec<u64>,
}

/// Where an [`IntakeActor`] is in its life.
enum Lifecycle {
    /// Created; the source starts with the actor.
    Starting(Box<dyn AssignmentSource>),
    /// Partition actors start for what the source assigns.
    Running {
        /// The assignment source.
        source: Box<dyn AssignmentSource>,
        /// Opens the assigned partitions' sources.
        sources: SourceFactory,
    },
    /// Shutting down: partitions are stopped (and released, where leaving hands them over);
    /// nothing starts any more, whatever is assigned or restarted meanwhile.
    Leaving,
}

impl Lifecycle {
    /// The name an operator sees.
    fn name(&self) -> &'static str {
        match self {
            Lifecycle::Starting(_) => "starting",
            Lifecycle::Running { .. } => "running",
            Lifecycle::Leaving => "leaving",
        }
    }
}

/// Restart the actor of an owned partition from its last commit, if its current incarnation is
/// `incarnation` (any, when `None`); answers where it resumed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StartOffset, String>")]
pub struct RestartAssigned {
    /// The partition.
    pub partition: PartitionId,
    /// The incarnation that failed.
    pub incarnation: Option<u64>,
}

/// The partitions this member owns now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<PartitionId>")]
pub struct OwnedPartitions;

/// Asks where the intake stands: its own state and each owned partition's actor state.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "IntakeStatus")]
pub struct GetIntakeStatus;

/// Where the intake stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntakeStatus {
    /// `starting`, `running` or `leaving`.
    pub state: &'static str,
    /// Whether an assignment has arrived yet (the partition model's comes at start; a group
    /// member's once it has joined).
    pub assigned: bool,
    /// Each owned partition's actor state (`opening`, `reading`, `paused`, `finished`, ...;
    /// `gone` when its actor no longer answers).
    pub partitions: BTreeMap<PartitionId, &'static str>,
    /// Milliseconds since each owned partition's actor last polled its source.
    pub since_poll_ms: BTreeMap<PartitionId, u64>,
    /// Assignments and revocations so far.
    pub rebalances: Rebalances,
    /// The group membership (group model, once joined).
    pub member: Option<crate::ports::GroupMember>,
}

/// How an intake's partitions are read: everything the settings decide for it.
#[derive(Debug, Clone)]
pub struct ReadingSpec {
    /// Partition actors: threads, prefetch, restarts of a reader.
    pub partition: PartitionConfig,
    /// Which frames are valid.
    pub limits: FrameLimits,
    /// When partitions are done.
    pub end: EndPolicy,
}

/// Where an intake's partition actors send what they read, and the threads they run on.
pub struct IntakeLinks {
    /// The batch actor, told of partitions as they are assigned and let go.
    pub batch: Addr<BatchActor>,
    /// Where each partition actor sends chunks, metrics and its exit.
    pub outputs: PartitionOutputs,
    /// The threads partition actors run on.
    pub threads: ReaderThreads,
}

impl IntakeActor {
    /// An intake actor for `membership`, whose assignments reach it through `listener`.
    pub fn new(
        membership: Box<dyn AssignmentSource>,
        listener: Arc<IntakeListener>,
        reading: ReadingSpec,
        links: IntakeLinks,
    ) -> Self {
        IntakeActor {
            state: Lifecycle::Starting(membership),
            threads: links.threads,
            listener,
            batch: links.batch,
            outputs: links.outputs,
            reading,
            end_offsets: None,
            partitions: BTreeMap::new(),
            assigned_at: BTreeMap::new(),
            history: Arc::default(),
            assigned: false,
            rebalances: Rebalances::default(),
        }
    }

    fn end_policy(&self, partition: PartitionId) -> EndPolicy {
        match (self.reading.end, &self.end_offsets) {
            (EndPolicy::AwaitOffset, Some(ends)) => ends
                .get(&partition)
                .map_or(EndPolicy::FirstEnd, |e| EndPolicy::Offset(*e)),
            (end, _) => end,
        }
    }

    /// Starts `partition`'s actor, unless the intake no longer runs (then nothing starts and
    /// the partition is forgotten: nobody would stop its actor).
    fn start_partition(&mut self, partition: PartitionId, start: StartOffset) {
        let sources = match &self.state {
            Lifecycle::Running { sources, .. } => sources.clone(),
            state @ (Lifecycle::Starting(_) | Lifecycle::Leaving) => {
                tracing::info!(
                    %partition,
                    state = state.name(),
                    "Partition not started: the intake is not running."
                );
                self.assigned_at.remove(&partition);
                return;
            }
        };
        let running = RunningPartition::start(
            PartitionActor::new(
                partition,
                start,
                sources,
                self.outputs.clone(),
                self.reading.partition.clone(),
                self.reading.limits,
                self.end_policy(partition),
            ),
            &self.threads,
        );
        if let Some(old) = self.partitions.insert(partition, running) {
            // Assigned twice without a revocation in between: the old reader must not go on.
            old.addr.do_send(StopIntake);
        }
    }
}

impl Actor for IntakeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Rebalances are served only once the listener knows where to send them.
        let _ = self.listener.actor.set(ctx.address());
        match std::mem::replace(&mut self.state, Lifecycle::Leaving) {
            Lifecycle::Starting(mut source) => {
                let sources = source.sources();
                source.start();
                if let (true, Some(probe)) =
                    (self.reading.end != EndPolicy::Never, source.coverage())
                {
                    ctx.run_interval(COVERAGE_INTERVAL, move |act, ctx| {
                        act.report_coverage(probe.clone(), ctx);
                    });
                }
                self.state = Lifecycle::Running { source, sources };
            }
            state @ (Lifecycle::Running { .. } | Lifecycle::Leaving) => {
                tracing::error!(state = state.name(), "The intake actor started twice.");
                self.state = state;
            }
        }
    }
}

/// How often a member running to the end asks what the group has consumed.
const COVERAGE_INTERVAL: Duration = Duration::from_millis(500);

impl IntakeActor {
    /// Asks the group which partitions it owns elsewhere at their end and tells the batch
    /// actor, which completes only once every partition is accounted for.
    fn report_coverage(&mut self, probe: CoverageProbe, ctx: &mut Context<Self>) {
        if !matches!(self.state, Lifecycle::Running { .. }) {
            return;
        }
        let owned: Vec<PartitionId> = self.partitions.keys().copied().collect();
        let batch = self.batch.clone();
        let ask = actix_rt::task::spawn_blocking(move || probe(&owned));
        ctx.spawn(
            async move {
                if let Ok(Some(coverage)) = ask.await {
                    batch.do_send(coverage);
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<PartitionsAssigned> for IntakeActor {
    type Result = ();

    fn handle(&mut self, msg: PartitionsAssigned, ctx: &mut Self::Context) {
        if matches!(self.state, Lifecycle::Running { .. }) {
            self.assigned = true;
            self.rebalances.assignments += 1;
        }
        if !matches!(self.state, Lifecycle::Running { .. }) {
            // Assigned while leaving (a rebalance that crossed the shutdown): nothing may start
            // that nobody would stop. The coordinator revokes them as the member leaves.
            tracing::info!(
                partitions = ?msg.0.iter().map(|a| a.partition).collect::<Vec<_>>(),
                state = self.state.name(),
                "Assignment ignored: the intake is not running."
            );
            return;
        }
        let starts: Vec<PartitionStart> = msg
            .0
            .iter()
            .map(|a| PartitionStart {
                partition: a.partition,
                next_offset: a.start.offset(),
                closed_below: closed_below_from_commit(
                    a.partition,
                    a.start.offset(),
                    &a.metadata,
                    latest_closed_below(&self.reading.limits),
                ),
            })
            .collect();
        // The batch actor must know the partitions before their first chunk arrives; nothing
        // else is handled here meanwhile, so a revocation cannot overtake the assignment.
        let assigned = msg.0;
        for a in &assigned {
            if let Some((from, to)) = a.skipped {
                self.outputs.skipped.do_send(RecordsSkipped {
                    partition: a.partition,
                    from,
                    to,
                });
            }
        }
        for (a, start) in assigned.iter().zip(&starts) {
            self.assigned_at
                .insert(a.partition, (a.start, start.closed_below));
        }
        record(
            &self.history,
            assigned.iter().map(|a| GroupEvent::Assigned {
                partition: a.partition,
                start: a.start,
            }),
        );
        ctx.wait(self.batch.send(AddPartitions(starts)).into_actor(self).map(
            move |result, act, _| {
                if result.is_err() {
                    tracing::error!(
                        "The batch actor is gone; not reading the assigned partitions."
                    );
                    return;
                }
                for a in &assigned {
                    act.start_partition(a.partition, a.start);
                }
            },
        ));
    }
}

impl IntakeActor {
    /// Stops the partitions' actors, has the batch actor write and (unless the assignment was
    /// lost) commit, then forgets the partitions. Records the releases. Needs nothing from the
    /// actor once built, so it can run while the actor handles other messages.
    fn release(
        &mut self,
        partitions: Vec<PartitionId>,
        how: Revocation,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let lost = how == Revocation::Lost;
        let output = match how {
            Revocation::Lost => ReleaseOutput::Drop,
            // A rebalance under way refuses commits for a moment; the listener stops waiting
            // for the release `revoke_timeout` after it asked for it (just now), so no
            // attempt starts after two thirds of that.
            Revocation::Revoked => ReleaseOutput::Commit {
                retry_until: Instant::now() + self.listener.revoke_timeout * 2 / 3,
            },
        };
        // Only partitions still owned here are released (and recorded): leaving releases
        // everything first, and the revocation that leaving then causes names them again.
        let released: Vec<PartitionId> = partitions
            .iter()
            .copied()
            .filter(|p| self.assigned_at.remove(p).is_some())
            .collect();
        let stopping: Vec<Addr<PartitionActor>> = partitions
            .iter()
            .filter_map(|p| self.partitions.remove(p).map(|r| r.addr))
            .collect();
        let batch = self.batch.clone();
        let history = self.history.clone();
        async move {
            // Stopped actors send nothing more; what their queues still hold is dropped.
            join_all(stopping.iter().map(|addr| addr.send(StopIntake))).await;
            let let_go = match batch.send(ReleasePartitions { partitions, output }).await {
                Ok(let_go) => let_go,
                Err(_) => {
                    tracing::warn!(
                        "The batch actor is gone; revoked partitions released without a commit."
                    );
                    Vec::new()
                }
            };
            record(
                &history,
                released.iter().map(|p| GroupEvent::Released {
                    partition: *p,
                    committed: let_go
                        .iter()
                        .find(|r| r.partition == *p)
                        .and_then(|r| r.committed.as_ref())
                        .map(|c| c.offset),
                    lost,
                }),
            );
        }
    }
}

impl Handler<PartitionsRevoked> for IntakeActor {
    type Result = ();

    fn handle(&mut self, msg: PartitionsRevoked, ctx: &mut Self::Context) {
        let PartitionsRevoked {
            partitions,
            how,
            done,
        } = msg;
        let release = self.release(partitions, how);
        let started = Instant::now();
        ctx.wait(release.into_actor(self).map(move |(), act, _| {
            let rebalances = &mut act.rebalances;
            rebalances.revocations += 1;
            rebalances
                .revoke_ms
                .push(started.elapsed().as_millis() as u64);
            if rebalances.revoke_ms.len() > 1_000 {
                rebalances.revoke_ms.remove(0);
            }
            let _ = done.send(());
        }));
    }
}

/// The end offset of every partition, for partitions assigned now or later.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PartitionEnds(pub BTreeMap<PartitionId, i64>);

impl Handler<PartitionEnds> for IntakeActor {
    type Result = ();

    fn handle(&mut self, msg: PartitionEnds, _: &mut Self::Context) {
        for (partition, running) in &self.partitions {
            running.addr.do_send(EndAt(msg.0.get(partition).copied()));
        }
        self.end_offsets = Some(msg.0);
    }
}

impl Handler<RestartAssigned> for IntakeActor {
    type Result = ResponseFuture<Result<StartOffset, String>>;

    fn handle(&mut self, msg: RestartAssigned, ctx: &mut Self::Context) -> Self::Result {
        let partition = msg.partition;
        let Some(running) =
            RunningPartition::take(&mut self.partitions, partition, msg.incarnation)
        else {
            return Box::pin(futures::future::ready(Err(format!(
                "partition {partition} is no longer owned by that actor"
            ))));
        };
        let fallback = self
            .assigned_at
            .get(&partition)
            .copied()
            .unwrap_or((StartOffset::Reset, None));
        let batch = self.batch.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // `ctx.wait`: a revocation must not interleave with the restart, or the partition could
        // be started again after it was let go.
        ctx.wait(
            async move {
                stop_partition_actor(running.addr).await;
                rewind_partition(&batch, partition, fallback).await
            }
            .into_actor(self)
            .map(move |result, act, _| {
                let outcome = result.inspect(|start| {
                    act.start_partition(partition, *start);
                });
                let _ = tx.send(outcome);
            }),
        );
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the intake actor stopped".to_owned()))
        })
    }
}

impl Handler<GetIntakeStatus> for IntakeActor {
    type Result = ResponseFuture<IntakeStatus>;

    fn handle(&mut self, _: GetIntakeStatus, _: &mut Self::Context) -> Self::Result {
        let state = self.state.name();
        let assigned = self.assigned;
        let rebalances = self.rebalances.clone();
        let member = match &self.state {
            Lifecycle::Running { source, .. } => source.member(),
            Lifecycle::Starting(_) | Lifecycle::Leaving => None,
        };
        let asks: Vec<(PartitionId, Addr<PartitionActor>)> = self
            .partitions
            .iter()
            .map(|(p, running)| (*p, running.addr.clone()))
            .collect();
        Box::pin(async move {
            let mut partitions = BTreeMap::new();
            let mut since_poll_ms = BTreeMap::new();
            for (partition, addr) in asks {
                let (name, since) = addr
                    .send(crate::partition::GetReaderState)
                    .await
                    .unwrap_or(("gone", Duration::ZERO));
                partitions.insert(partition, name);
                since_poll_ms.insert(partition, since.as_millis() as u64);
            }
            IntakeStatus {
                state,
                assigned,
                partitions,
                since_poll_ms,
                rebalances,
                member,
            }
        })
    }
}

impl Handler<OwnedPartitions> for IntakeActor {
    type Result = Vec<PartitionId>;

    fn handle(&mut self, _: OwnedPartitions, _: &mut Self::Context) -> Vec<PartitionId> {
        self.partitions.keys().copied().collect()
    }
}

/// Keeps and logs ownership changes: the one place they are logged, one line each, so a
/// member's log (JSON with `log.format`) tells which partitions it owned when.
fn record(history: &std::sync::Mutex<Vec<GroupRecord>>, events: impl Iterator<Item = GroupEvent>) {
    let at = SystemTime::now();
    let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
    for event in events {
        match event {
            GroupEvent::Assigned {
                partition,
                start: StartOffset::At(offset),
            } => tracing::info!(%partition, start = offset, "Partition taken."),
            GroupEvent::Assigned {
                partition,
                start: StartOffset::Reset,
            } => tracing::info!(%partition, start = "reset", "Partition taken."),
            GroupEvent::Released {
                partition,
                committed: Some(offset),
                lost,
            } => tracing::info!(%partition, committed = offset, lost, "Partition released."),
            GroupEvent::Released {
                partition,
                committed: None,
                lost,
            } => tracing::info!(%partition, lost, "Partition released."),
        }
        history.push(GroupRecord { at, event });
    }
}

impl Handler<Leave> for IntakeActor {
    type Result = ResponseActFuture<Self, Vec<GroupRecord>>;

    fn handle(&mut self, _: Leave, _: &mut Self::Context) -> Self::Result {
        let source = match std::mem::replace(&mut self.state, Lifecycle::Leaving) {
            Lifecycle::Running { source, .. } | Lifecycle::Starting(source) => Some(source),
            Lifecycle::Leaving => None,
        };
        let owned: Vec<PartitionId> = self.partitions.keys().copied().collect();
        let release: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> =
            match source.as_ref().map(|m| m.on_leave()) {
                // Release everything first, committing while still a settled member (a
                // rebalance started by leaving may refuse commits); then leave. A static
                // member does not leave the group: its instance id keeps its place for a
                // quick restart.
                Some(OnLeave::Release) => Box::pin(self.release(owned, Revocation::Revoked)),
                // Nobody takes the partitions over: stop reading; the supervisor drains.
                Some(OnLeave::Keep) | None => {
                    let stopping: Vec<Addr<PartitionActor>> = std::mem::take(&mut self.partitions)
                        .into_values()
                        .map(|r| r.addr)
                        .collect();
                    Box::pin(async move {
                        join_all(stopping.iter().map(|addr| addr.send(StopIntake))).await;
                    })
                }
            };
        // Not `ctx.wait`: the revocations that leaving causes must be handled meanwhile.
        Box::pin(
            async move {
                release.await;
                if let Some(mut source) = source {
                    let _ = actix_rt::task::spawn_blocking(move || source.leave()).await;
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                // The consumer's last handles (the queue factory) go with this actor.
                ctx.stop();
                act.history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }
    use crate::config::{FlushConfig, MetricsConfig, WindowConfig};
    use crate::fakes::{quiet_sources, Commits, NullSink};
    use crate::metrics::MetricsActor;
    use crate::ports::AssignmentListener;

    /// Assigns partition 0 at start; leaving takes as long as a group member's LeaveGroup, and
    /// a rebalance that crossed it assigns partition 1 meanwhile.
    struct Crossing {
        sources: SourceFactory,
        listener: Arc<IntakeListener>,
    }

    fn assigned(partition: PartitionId) -> AssignedPartition {
        AssignedPartition {
            partition,
            start: StartOffset::At(0),
            metadata: String::new(),
            skipped: None,
        }
    }

    impl AssignmentSource for Crossing {
        fn sources(&self) -> SourceFactory {
            self.sources.clone()
        }
        fn start(&mut self) {
            self.listener.assigned(vec![assigned(p(0))]);
        }
        fn leave(&mut self) {
            self.listener.assigned(vec![assigned(p(1))]);
            std::thread::sleep(Duration::from_millis(300));
        }
        fn on_leave(&self) -> OnLeave {
            OnLeave::Release
        }
        fn coverage(&self) -> Option<CoverageProbe> {
            None
        }
    }

    /// An intake over `source` on one reader thread, feeding a batch actor that writes
    /// nothing; with the batch actor's count of partitions let go as lost, and the reader
    /// threads to stop.
    fn start_intake(
        source: Box<dyn AssignmentSource>,
        listener: Arc<IntakeListener>,
    ) -> (
        Addr<IntakeActor>,
        Arc<std::sync::atomic::AtomicU64>,
        Vec<Arbiter>,
    ) {
        let metrics = MetricsActor::new(MetricsConfig { log_interval_ms: 0 }).start();
        let batch = BatchActor::new(
            crate::batch::BatchSpec {
                window: WindowConfig::default(),
                flush: FlushConfig::default(),
                partitions: Vec::new(),
                closing: crate::batch::Closing::ByWatermark,
                cover: crate::batch::Cover::Given,
                require_full_cover: None,
            },
            crate::outlet::Outlet::at_least_once(Box::new(NullSink), Box::new(Commits::default())),
            crate::batch::BatchLinks {
                metrics: metrics.clone(),
                supervisor: None,
                panics: None,
            },
        );
        let losses = batch.losses();
        let batch = batch.start();
        let outputs = PartitionOutputs {
            batch: batch.clone().recipient(),
            metrics: metrics.clone().recipient(),
            skipped: metrics.recipient(),
            supervisor: Exits.start().recipient(),
        };
        let (threads, arbiters) = ReaderThreads::start(1);
        let intake = IntakeActor::new(
            source,
            listener,
            ReadingSpec {
                partition: PartitionConfig::default(),
                limits: FrameLimits {
                    max_bytes: 128,
                    min_ts: 0.0,
                    max_ts: 1e10,
                    max_future_secs: f64::INFINITY,
                    future_after: f64::INFINITY,
                    invalid: crate::frame::InvalidPolicy::NONE,
                },
                end: EndPolicy::Never,
            },
            IntakeLinks {
                batch,
                outputs,
                threads,
            },
        )
        .start();
        (intake, losses, arbiters)
    }

    #[actix::test]
    async fn nothing_assigned_while_leaving_starts_a_partition_actor() {
        let opens = Arc::new(AtomicU32::new(0));
        let listener = IntakeListener::new(Duration::from_secs(5), RevokeWait::AtMost);
        let source = Crossing {
            sources: quiet_sources(opens.clone()),
            listener: listener.clone(),
        };
        let (intake, _, arbiters) = start_intake(Box::new(source), listener);
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(intake.send(OwnedPartitions).await.unwrap(), vec![p(0)]);
        let history = intake.send(Leave).await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            opens.load(Ordering::Relaxed),
            1,
            "only partition 0 was ever opened"
        );
        assert!(
            !history.iter().any(
                |r| matches!(r.event, GroupEvent::Assigned { partition, .. } if partition == p(1))
            ),
            "{history:?}"
        );
        for arbiter in arbiters {
            arbiter.stop();
        }
    }

    /// Assigns partition 0 at start, read by `sources`.
    struct AtStart {
        sources: SourceFactory,
        listener: Arc<IntakeListener>,
    }

    impl AssignmentSource for AtStart {
        fn sources(&self) -> SourceFactory {
            self.sources.clone()
        }
        fn start(&mut self) {
            self.listener.assigned(vec![assigned(p(0))]);
        }
        fn leave(&mut self) {}
        fn on_leave(&self) -> OnLeave {
            OnLeave::Release
        }
        fn coverage(&self) -> Option<CoverageProbe> {
            None
        }
    }

    /// How long each poll of a [`SlowSource`] takes.
    const SLOW_POLL: Duration = Duration::from_millis(800);

    /// A partition with nothing to read whose every poll takes [`SLOW_POLL`] (its reader waits
    /// on the broker): its actor stops only between polls.
    struct SlowSource;

    impl crate::ports::FrameSource for SlowSource {
        fn poll(
            &mut self,
            _: usize,
            _: &mut dyn FnMut(&crate::ports::SourceRecord<'_>),
        ) -> Result<crate::ports::PollStatus, crate::ports::SourceError> {
            std::thread::sleep(SLOW_POLL);
            Ok(crate::ports::PollStatus {
                next_offset: Some(0),
                ..crate::ports::PollStatus::default()
            })
        }
    }

    /// A lost assignment's partitions are let go (the batch actor has dropped what was read
    /// under it) before the listener returns, even when that takes longer than the revoke
    /// timeout: until then the member must not join the group again (see
    /// [`IntakeListener::revoking`]).
    #[actix::test]
    async fn a_lost_assignment_is_waited_for_until_its_partitions_are_let_go() {
        let revoke_timeout = Duration::from_millis(100);
        let listener = IntakeListener::new(revoke_timeout, RevokeWait::AtMost);
        let sources: SourceFactory =
            Arc::new(|_, _| Ok(Box::new(SlowSource) as Box<dyn crate::ports::FrameSource>));
        let source = AtStart {
            sources,
            listener: listener.clone(),
        };
        let (intake, losses, arbiters) = start_intake(Box::new(source), listener.clone());
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(intake.send(OwnedPartitions).await.unwrap(), vec![p(0)]);
        // The consumer's driver thread reports the loss while the partition's reader is in a
        // poll.
        let seen = losses.clone();
        let revoking = std::thread::spawn(move || {
            let started = Instant::now();
            listener.revoking(vec![p(0)], Revocation::Lost);
            (
                started.elapsed(),
                seen.load(std::sync::atomic::Ordering::SeqCst),
            )
        });
        while !revoking.is_finished() {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        let (took, losses_at_return) = revoking.join().unwrap();
        assert_eq!(
            losses_at_return, 1,
            "the listener returned after {took:?} before the batch actor let the partition go"
        );
        assert!(
            took > revoke_timeout,
            "the release was slower than the timeout: {took:?}"
        );
        assert_eq!(
            intake.send(OwnedPartitions).await.unwrap(),
            Vec::<PartitionId>::new()
        );
        for arbiter in arbiters {
            arbiter.stop();
        }
    }

    /// Exactly once, revoked partitions are let go (written and committed) before the listener
    /// returns, even when that takes longer than the revoke timeout: a member that went on
    /// would commit them after their next owner read its start (seed 220 run 53 of the
    /// campaign: a revocation that waited 3 s for a flush held up by a broker whose answers
    /// were dropped, then committed the windows the next owner wrote again).
    #[actix::test]
    async fn exactly_once_a_revocation_is_waited_for_until_its_partitions_are_let_go() {
        let revoke_timeout = Duration::from_millis(100);
        let listener = IntakeListener::new(revoke_timeout, RevokeWait::UntilReleased);
        let sources: SourceFactory =
            Arc::new(|_, _| Ok(Box::new(SlowSource) as Box<dyn crate::ports::FrameSource>));
        let source = AtStart {
            sources,
            listener: listener.clone(),
        };
        let (intake, _, arbiters) = start_intake(Box::new(source), listener.clone());
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(intake.send(OwnedPartitions).await.unwrap(), vec![p(0)]);
        // The rebalance revokes the partition while its reader is in a poll: stopping it, and
        // so the release, takes longer than the revoke timeout.
        let revoking = std::thread::spawn(move || {
            let started = Instant::now();
            listener.revoking(vec![p(0)], Revocation::Revoked);
            started.elapsed()
        });
        while !revoking.is_finished() {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        let took = revoking.join().unwrap();
        let released = loop {
            let status = intake.send(GetIntakeStatus).await.unwrap();
            if let Some(ms) = status.rebalances.revoke_ms.first() {
                break Duration::from_millis(*ms);
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            released > revoke_timeout,
            "the release was slower than the timeout: {released:?}"
        );
        assert!(
            took >= released,
            "the listener returned after {took:?}, before the release ended ({released:?})"
        );
        for arbiter in arbiters {
            arbiter.stop();
        }
    }

    /// Hears partition exits, and drops them.
    struct Exits;
    impl Actor for Exits {
        type Context = Context<Self>;
    }
    impl Handler<crate::partition::PartitionExited> for Exits {
        type Result = ();
        fn handle(&mut self, _: crate::partition::PartitionExited, _: &mut Self::Context) {}
    }
}
