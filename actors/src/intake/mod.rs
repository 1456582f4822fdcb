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
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;

mod handover;
mod listener;
#[cfg(test)]
mod tests;
mod threads;

pub use handover::{GroupEvent, GroupRecord};
pub use listener::{IntakeListener, PartitionsAssigned, PartitionsRevoked, RevokeWait};
pub use threads::ReaderThreads;

use handover::{record, rewind_partition, stop_partition_actor};
use threads::RunningPartition;

use crate::batch::{AddPartitions, BatchActor};
use crate::commit_meta::closed_below_from_commit;
use crate::config::PartitionConfig;
use crate::frame::FrameLimits;
use crate::metrics::RecordsSkipped;
use crate::partition::{EndAt, EndPolicy, PartitionActor, PartitionOutputs, StopIntake};
use crate::ports::{
    AssignmentSource, CoverageProbe, OnLeave, Revocation, SourceFactory, StartOffset,
};
use crate::topic::PartitionId;
use crate::window::PartitionStart;

/// The latest `closed_below` a commit can plausibly record: no frame is later than
/// `frames.max_ts` or than the clock allows (`frames.max_future_secs`), and no window ends more
/// than two days (its length and its lateness, a day each at most) after its frames.
fn latest_closed_below(limits: &FrameLimits) -> f64 {
    let latest_frame = limits
        .max_ts
        .min(limits.at(crate::clock::now_epoch_secs()).future_after);
    latest_frame + 2.0 * 86_400.0
}

/// Leave the group: revoke everything (committing), close the member, stop; answers with
/// every ownership change this member saw.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<GroupRecord>")]
pub struct Leave;

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
