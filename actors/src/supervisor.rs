//! [`RootSupervisor`]: owns the actor tree, starts it, reports how it ends, and shuts it down
//! in order.
//!
//! Tree: an [`IntakeActor`] that starts one [`PartitionActor`] per assigned partition (the
//! partition model assigns every partition at start, the group model follows the
//! coordinator), the partition actors spread over `partition.threads` arbiter threads
//! (reading never blocks, whatever the number of partitions); one [`BatchActor`] on its own
//! arbiter (it does the counting); one [`MetricsActor`] on the supervisor's arbiter.
//!
//! [`PartitionActor`]: crate::partition::PartitionActor
//!
//! Supervision: a partition actor that fails (panics, or meets a fatal read error) reports it
//! as it stops ([`PartitionExited`]; actix's own supervisor does not restart panicked actors).
//! Its pipeline is restarted through the intake actor after an exponential backoff from the
//! partition's last commit,
//! its share of open windows rebuilt by reading again, while the other partitions go on. More
//! than `supervisor.max_restarts` failures of one partition within
//! `supervisor.restart_window_secs` stop the service with an error naming the partition and
//! the cause. A watchdog restarts a partition that has frames waiting but has not moved for
//! `supervisor.stall_timeout_ms`. Every restart is logged with its cause and counted.
//!
//! Shutdown is drain, then commit, then stop: every partition actor stops reading and answers
//! once its last chunk is taken (in the group model, by leaving the group, which revokes and
//! commits every partition); then the batch actor flushes what is closed (or, when the input
//! is exhausted, closes everything first), commits and answers; then the final figures are
//! read and the arbiters stop.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::batch::{BatchActor, BatchEvent, BatchLinks, BatchSpec, Closing, Drain, DrainReport};
use crate::config::{MetricsConfig, SupervisorConfig};
use crate::failure::{PartitionFailure, StopCause};
use crate::intake::{
    GetIntakeStatus, GroupRecord, IntakeActor, IntakeLinks, IntakeListener, Leave, OwnedPartitions,
    PartitionEnds, ReaderThreads, ReadingSpec, RestartAssigned,
};
use crate::leaders::LeaderBoard;
use crate::metrics::{FinalMetrics, GetMetrics, MetricsActor, MetricsSnapshot, Restarted};
use crate::outlet::Outlet;
use crate::panics::Panicked;
use crate::partition::{PartitionExited, PartitionOutputs};
use crate::ports::{AssignmentSource, EndOffsetProbe, FailureKind, StartOffset};
use crate::topic::PartitionId;

/// Where frames come from: an assignment source and the listener it tells.
pub struct Intake {
    /// The partition model's static assignment or a group membership, not yet started.
    pub assignments: Box<dyn AssignmentSource>,
    /// The listener the source was given.
    pub listener: Arc<IntakeListener>,
}

/// Everything needed to start the tree.
pub struct PipelineSpec {
    /// Where frames come from.
    pub intake: Intake,
    /// Where flushes go: windows, dead letters, offsets.
    pub outlet: Outlet,
    /// How partitions are read, and when they are done.
    pub reading: ReadingSpec,
    /// What the batch actor counts, how its windows close and what a run to the end covers.
    pub batch: BatchSpec,
    /// How often the metrics actor logs.
    pub metrics: MetricsConfig,
    /// Restarts and the watchdog.
    pub supervisor: SupervisorConfig,
    /// End offsets for the stall watchdog (without it the watchdog uses the high watermarks
    /// the partitions last reported).
    pub probe: Option<EndOffsetProbe>,
    /// Partition leaders, as the clients report them.
    pub leaders: Option<Arc<LeaderBoard>>,
}

/// How the tree ended on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every partition reached its end and every window is written and committed.
    Completed,
    /// A part failed and the service must stop.
    Failed(StopCause),
}

/// Stops the tree in order and returns the final state.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "RunSummary")]
pub struct Shutdown;

/// The end of a partition for every partition that waits for one; partitions not listed end at
/// their current end.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EndOffsets(pub BTreeMap<PartitionId, i64>);

/// The final state of a run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Every figure.
    pub metrics: MetricsSnapshot,
    /// The batch actor's final state.
    pub drain: DrainReport,
    /// Group model: every ownership change, in order.
    pub group_history: Vec<GroupRecord>,
}

/// Asks where the service stands (for `/status` and `/readyz`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ServiceStatus")]
pub struct GetStatus;

/// Where the service stands.
#[derive(Debug, Clone, Default)]
pub struct ServiceStatus {
    /// The actor tree: `starting`, `running` or `draining`.
    pub tree: &'static str,
    /// The intake and each owned partition's actor state.
    pub intake: crate::intake::IntakeStatus,
    /// The windows and commits.
    pub windows: crate::batch::WindowsStatus,
    /// Every figure.
    pub metrics: MetricsSnapshot,
    /// The timings and counts in buckets.
    pub distributions: crate::metrics::Distributions,
    /// Partitions with a restart scheduled or under way.
    pub restarting: Vec<PartitionId>,
    /// Partitions the stall watchdog restarted twice or more in a row without their position
    /// moving in between: stuck past what a restart of the partition cures.
    pub stuck: Vec<PartitionId>,
    /// Each owned partition's log end as the broker last answered it (the watchdog asks every
    /// quarter of `supervisor.stall_timeout_ms`), which moves on while a partition is paused
    /// or its fetches are slow.
    pub log_ends: BTreeMap<PartitionId, i64>,
}

/// Owns the actor tree; see the module documentation.
pub struct RootSupervisor {
    /// Where the tree is in its life, with what each stage holds.
    tree: Tree,
    /// Whether the tree ended on its own yet, and how.
    ending: Ending,
    /// A completed run writes the windows still open as it drains (not when they are kept
    /// open for a later run).
    close_at_end: bool,
    config: SupervisorConfig,
    probe: Option<EndOffsetProbe>,
    /// Recent failure restarts per partition, for the budget.
    failures: BTreeMap<PartitionId, VecDeque<Instant>>,
    /// Partitions with a restart scheduled or under way.
    restarting: BTreeSet<PartitionId>,
    /// Watchdog: each partition's last seen position and since when it has not moved.
    positions: BTreeMap<PartitionId, (Option<i64>, Instant)>,
    /// Whether the watchdog is looking (its look-ups take time).
    watch: Watch,
    /// Watchdog: owned partitions whose reader has not reported yet, and since when they
    /// were seen so (restarted once this reaches the stall timeout).
    unheard: BTreeMap<PartitionId, Instant>,
    /// Watchdog: restarts of each partition in a row without its position moving.
    strikes: BTreeMap<PartitionId, u32>,
    /// The owned partitions' log ends from the watchdog's last look.
    log_ends: BTreeMap<PartitionId, i64>,
}

/// Where the actor tree is in its life (what an operator sees for the service).
enum Tree {
    /// Not started yet: what it is built from.
    Starting(Box<PipelineSpec>),
    /// Running.
    Running(Parts),
    /// Shutting down (or shut down): the parts are being stopped in order; figures can still
    /// be read until the metrics actor stops.
    Draining {
        /// The metrics actor.
        metrics: Option<Addr<MetricsActor>>,
    },
}

impl Tree {
    fn name(&self) -> &'static str {
        match self {
            Tree::Starting(_) => "starting",
            Tree::Running(_) => "running",
            Tree::Draining { .. } => "draining",
        }
    }
}

/// The running tree's parts.
struct Parts {
    intake: Addr<IntakeActor>,
    batch: (Arbiter, Addr<BatchActor>),
    metrics: Addr<MetricsActor>,
    /// The threads the partition actors run on.
    readers: Vec<Arbiter>,
}

/// Whether the tree ended on its own.
enum Ending {
    /// Not yet; the receiver of [`RootSupervisor::launch`] waits.
    Open(tokio::sync::oneshot::Sender<Outcome>),
    /// Every partition reached its end and everything is written and committed.
    Completed,
    /// A part failed (the outcome was sent).
    Failed,
}

/// Whether the watchdog is looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Between looks.
    Idle,
    /// A look (positions, end offsets) is under way.
    Looking,
}

/// Stops arbiter threads and waits for them.
async fn stop_arbiters(arbiters: Vec<Arbiter>) {
    for arbiter in arbiters {
        arbiter.stop();
        let _ = actix_rt::task::spawn_blocking(move || arbiter.join()).await;
    }
}

/// Stops a partition's actor and starts a new one from the partition's last commit, as after a
/// failure: the partition's share of open windows is written off and rebuilt by reading again
/// from the commit, so nothing is lost or counted twice. Answers once the new actor runs.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<StartOffset, String>")]
pub struct RestartPartition(pub PartitionId);

impl RootSupervisor {
    /// Starts the supervisor, which starts the tree. The receiver resolves when the tree ends
    /// on its own (completed or failed).
    pub fn launch(
        spec: PipelineSpec,
    ) -> (
        Addr<RootSupervisor>,
        tokio::sync::oneshot::Receiver<Outcome>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let addr = RootSupervisor {
            close_at_end: spec.batch.closing != Closing::ClosedAtEnd,
            tree: Tree::Starting(Box::new(spec)),
            ending: Ending::Open(tx),
            config: SupervisorConfig::default(),
            probe: None,
            failures: BTreeMap::new(),
            restarting: BTreeSet::new(),
            positions: BTreeMap::new(),
            watch: Watch::Idle,
            unheard: BTreeMap::new(),
            strikes: BTreeMap::new(),
            log_ends: BTreeMap::new(),
        }
        .start();
        (addr, rx)
    }

    /// Reports how the tree ended, once: the first ending counts.
    fn report(&mut self, outcome: Outcome) {
        let ending = match &outcome {
            Outcome::Completed => Ending::Completed,
            Outcome::Failed(_) => Ending::Failed,
        };
        match std::mem::replace(&mut self.ending, ending) {
            Ending::Open(tx) => {
                let _ = tx.send(outcome);
            }
            earlier => {
                tracing::debug!(?outcome, "The tree had ended already; not reported again.");
                self.ending = earlier;
            }
        }
    }

    /// The running tree's parts, if it runs.
    fn parts(&self) -> Option<&Parts> {
        match &self.tree {
            Tree::Running(parts) => Some(parts),
            Tree::Starting(_) | Tree::Draining { .. } => None,
        }
    }

    /// Shutting down: nothing is restarted any more.
    fn draining(&self) -> bool {
        matches!(self.tree, Tree::Draining { .. })
    }
}

impl Actor for RootSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let spec = match std::mem::replace(&mut self.tree, Tree::Draining { metrics: None }) {
            Tree::Starting(spec) => *spec,
            tree => {
                tracing::error!(state = tree.name(), "The supervisor started twice.");
                self.tree = tree;
                return;
            }
        };
        self.config = spec.supervisor.clone();
        self.probe = spec.probe.clone();
        if self.config.stall_timeout_ms > 0 {
            let tick = Duration::from_millis((self.config.stall_timeout_ms / 4).max(250));
            ctx.run_interval(tick, |act, ctx| act.watchdog(ctx));
        }
        let mut metrics =
            MetricsActor::new(spec.metrics.clone()).report_panics(ctx.address().recipient());
        if let Some(board) = spec.leaders.clone() {
            metrics = metrics.with_leaders(board);
        }
        let metrics = metrics.start();
        let batch_arbiter = Arbiter::new();
        let batch = {
            let (batch_spec, outlet) = (spec.batch, spec.outlet);
            let links = BatchLinks {
                metrics: metrics.clone(),
                supervisor: Some(ctx.address().recipient()),
                panics: Some(ctx.address().recipient()),
            };
            BatchActor::start_in_arbiter(&batch_arbiter.handle(), move |_| {
                BatchActor::new(batch_spec, outlet, links)
            })
        };
        let (threads, readers) = ReaderThreads::start(spec.reading.partition.threads);
        let outputs = PartitionOutputs {
            batch: batch.clone().recipient(),
            metrics: metrics.clone().recipient(),
            skipped: metrics.clone().recipient(),
            supervisor: ctx.address().recipient(),
        };
        let intake = IntakeActor::new(
            spec.intake.assignments,
            spec.intake.listener,
            spec.reading,
            IntakeLinks {
                batch: batch.clone(),
                outputs,
                threads,
            },
        );
        self.tree = Tree::Running(Parts {
            intake: intake.start(),
            batch: (batch_arbiter, batch),
            metrics,
            readers,
        });
    }
}

impl RootSupervisor {
    /// Restarts `partition`'s pipeline from its last commit (only its incarnation
    /// `incarnation`, when given) and counts the restart.
    fn restart(
        &mut self,
        partition: PartitionId,
        incarnation: Option<u64>,
        cause: PartitionFailure,
    ) -> ResponseActFuture<Self, Result<StartOffset, String>> {
        self.restarting.insert(partition);
        self.positions.remove(&partition);
        let intake = self.parts().map(|p| p.intake.clone());
        let work = async move {
            let intake = intake.ok_or("the pipeline is not running")?;
            intake
                .send(RestartAssigned {
                    partition,
                    incarnation,
                })
                .await
                .map_err(|e| format!("intake actor: {e}"))?
        };
        Box::pin(
            work.into_actor(self)
                .map(move |result: Result<StartOffset, String>, act, _| {
                    act.restarting.remove(&partition);
                    let start = result?;
                    // The metrics actor logs and counts it.
                    if let Some(parts) = act.parts() {
                        parts.metrics.do_send(Restarted {
                            partition,
                            start,
                            cause: cause.clone(),
                        });
                    }
                    Ok(start)
                }),
        )
    }

    /// Restart after a failure, within the budget; beyond it, stop the service.
    fn on_failure(
        &mut self,
        partition: PartitionId,
        incarnation: u64,
        cause: PartitionFailure,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let window = Duration::from_secs(self.config.restart_window_secs);
        let recent = self.failures.entry(partition).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            recent.pop_front();
        }
        if recent.len() >= self.config.max_restarts as usize {
            let failures = recent.len() + 1;
            tracing::error!(%partition, %cause, "Restart budget spent; stopping the service.");
            self.report(Outcome::Failed(StopCause::RestartBudget {
                partition,
                failures,
                window_secs: self.config.restart_window_secs,
                max_restarts: self.config.max_restarts,
                last: cause,
            }));
            return;
        }
        recent.push_back(now);
        let attempt = recent.len() as u32;
        let backoff = self.config.backoff(attempt);
        tracing::warn!(%partition, %cause, attempt, ?backoff, "Partition failed; restarting it.");
        self.restarting.insert(partition);
        ctx.run_later(backoff, move |act, ctx| {
            if act.draining() {
                return;
            }
            let restart = act.restart(partition, Some(incarnation), cause);
            ctx.spawn(restart.map(move |result, _, _| {
                if let Err(error) = result {
                    tracing::warn!(%partition, %error, "Partition not restarted.");
                }
            }));
        });
    }

    /// Finds partitions with frames waiting whose position has not moved for the stall
    /// timeout, and restarts them.
    fn watchdog(&mut self, ctx: &mut Context<Self>) {
        if self.watch == Watch::Looking {
            return;
        }
        let Some(parts) = self.parts() else {
            return;
        };
        let (intake, metrics) = (parts.intake.clone(), parts.metrics.clone());
        self.watch = Watch::Looking;
        let probe = self.probe.clone();
        let look = async move {
            let owned = intake.send(OwnedPartitions).await.unwrap_or_default();
            let snapshot = metrics.send(GetMetrics).await.unwrap_or_default();
            let ends = match probe {
                Some(probe) => {
                    let asked = owned.clone();
                    actix_rt::task::spawn_blocking(move || probe(&asked))
                        .await
                        .unwrap_or_default()
                }
                None => BTreeMap::new(),
            };
            (owned, snapshot, ends)
        };
        ctx.spawn(
            look.into_actor(self)
                .map(|(owned, snapshot, ends), act, ctx| {
                    act.watch = Watch::Idle;
                    if act.draining() {
                        return;
                    }
                    let stall = Duration::from_millis(act.config.stall_timeout_ms);
                    let now = Instant::now();
                    act.positions.retain(|p, _| owned.contains(p));
                    act.unheard.retain(|p, _| owned.contains(p));
                    act.strikes.retain(|p, _| owned.contains(p));
                    act.log_ends = ends
                        .iter()
                        .filter(|(p, _)| owned.contains(p))
                        .map(|(p, end)| (*p, *end))
                        .collect();
                    for partition in owned {
                        if act.restarting.contains(&partition) {
                            continue;
                        }
                        let metrics = snapshot.partitions.get(&partition);
                        if metrics.is_some_and(|m| m.paused) {
                            // Paused by the memory budget: not moving is what it was told.
                            act.positions.remove(&partition);
                            act.unheard.remove(&partition);
                            continue;
                        }
                        if !metrics.is_some_and(|m| m.heard) {
                            // No first chunk: the partition holds the watermark back without
                            // ever having reported (its leader may be out of reach).
                            let since = act.unheard.entry(partition).or_insert(now);
                            let unheard = now.duration_since(*since);
                            if unheard >= stall {
                                act.unheard.remove(&partition);
                                let cause = PartitionFailure::Unheard {
                                    for_ms: unheard.as_millis(),
                                };
                                let restart = act.restart(partition, None, cause);
                                ctx.spawn(restart.map(move |result, _, _| {
                                    if let Err(error) = result {
                                        tracing::warn!(%partition, %error, "Unheard partition not restarted.");
                                    }
                                }));
                            }
                            continue;
                        }
                        act.unheard.remove(&partition);
                        let Some(metrics) = metrics else {
                            continue;
                        };
                        let position = metrics.position;
                        let end = ends
                            .get(&partition)
                            .copied()
                            .or(metrics.lag.zip(position).map(|(lag, pos)| pos + lag));
                        let waiting = match (end, position) {
                            (Some(end), Some(pos)) => end - pos,
                            _ => 0,
                        };
                        let entry = act.positions.entry(partition).or_insert((position, now));
                        if entry.0 != position || waiting <= 0 {
                            if entry.0 != position {
                                act.strikes.remove(&partition);
                            }
                            *entry = (position, now);
                            continue;
                        }
                        let still = now.duration_since(entry.1);
                        if still < stall {
                            continue;
                        }
                        let cause = PartitionFailure::Stalled {
                            waiting,
                            still_ms: still.as_millis(),
                        };
                        *act.strikes.entry(partition).or_default() += 1;
                        let restart = act.restart(partition, None, cause);
                        ctx.spawn(restart.map(move |result, _, _| {
                    if let Err(error) = result {
                        tracing::warn!(%partition, %error, "Stalled partition not restarted.");
                    }
                }));
                    }
                }),
        );
    }
}

impl Handler<PartitionExited> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PartitionExited, ctx: &mut Self::Context) {
        if self.draining() {
            return;
        }
        if msg.cause.reach() == FailureKind::Permanent {
            tracing::error!(partition = %msg.partition, cause = %msg.cause, "Permanent read error; stopping the service.");
            self.report(Outcome::Failed(StopCause::Unreadable {
                partition: msg.partition,
                cause: msg.cause,
            }));
            return;
        }
        self.on_failure(msg.partition, msg.incarnation, msg.cause, ctx);
    }
}

impl Handler<Panicked> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Panicked, _: &mut Self::Context) {
        // Without the batch actor nothing is written or committed any more, and without the
        // metrics actor partitions cannot report: the service stops, committing nothing
        // further.
        self.report(Outcome::Failed(StopCause::Panicked {
            actor: msg.actor,
            message: msg.message,
        }));
    }
}

impl Handler<BatchEvent> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: BatchEvent, ctx: &mut Self::Context) {
        match msg {
            BatchEvent::Completed => self.report(Outcome::Completed),
            BatchEvent::Failed(error) => self.report(Outcome::Failed(StopCause::Output(error))),
            BatchEvent::ReadAgain(partitions) => {
                for partition in partitions {
                    let restart = self.restart(partition, None, PartitionFailure::FlushDropped);
                    ctx.spawn(restart.map(move |result, _, _| {
                        // A partition revoked meanwhile is read again by its next owner.
                        if let Err(error) = result {
                            tracing::info!(%partition, %error, "Not read again here.");
                        }
                    }));
                }
            }
        }
    }
}

impl Handler<EndOffsets> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: EndOffsets, _: &mut Self::Context) {
        if let Some(parts) = self.parts() {
            parts.intake.do_send(PartitionEnds(msg.0));
        }
    }
}

impl Handler<RestartPartition> for RootSupervisor {
    type Result = ResponseActFuture<Self, Result<StartOffset, String>>;

    fn handle(&mut self, msg: RestartPartition, _: &mut Self::Context) -> Self::Result {
        self.restart(msg.0, None, PartitionFailure::Requested)
    }
}

impl Handler<GetMetrics> for RootSupervisor {
    type Result = ResponseActFuture<Self, MetricsSnapshot>;

    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        let metrics = match &self.tree {
            Tree::Running(parts) => Some(parts.metrics.clone()),
            Tree::Draining { metrics } => metrics.clone(),
            Tree::Starting(_) => None,
        };
        Box::pin(
            async move {
                match metrics {
                    Some(m) => m.send(GetMetrics).await.unwrap_or_default(),
                    None => MetricsSnapshot::default(),
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<GetStatus> for RootSupervisor {
    type Result = ResponseActFuture<Self, ServiceStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        let tree = self.tree.name();
        let restarting: Vec<PartitionId> = self.restarting.iter().copied().collect();
        let stuck: Vec<PartitionId> = self
            .strikes
            .iter()
            .filter(|(_, strikes)| **strikes >= 2)
            .map(|(p, _)| *p)
            .collect();
        let log_ends = self.log_ends.clone();
        let parts = self
            .parts()
            .map(|p| (p.intake.clone(), p.batch.1.clone(), p.metrics.clone()));
        Box::pin(
            async move {
                let mut status = ServiceStatus {
                    tree,
                    restarting,
                    stuck,
                    log_ends,
                    ..ServiceStatus::default()
                };
                if let Some((intake, batch, metrics)) = parts {
                    status.intake = intake.send(GetIntakeStatus).await.unwrap_or_default();
                    status.windows = batch
                        .send(crate::batch::GetWindowsStatus)
                        .await
                        .unwrap_or_default();
                    status.metrics = metrics.send(GetMetrics).await.unwrap_or_default();
                    status.distributions = metrics
                        .send(crate::metrics::GetDistributions)
                        .await
                        .unwrap_or_default();
                }
                status
            }
            .into_actor(self),
        )
    }
}

impl Handler<Shutdown> for RootSupervisor {
    type Result = ResponseActFuture<Self, RunSummary>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let close_all = self.close_at_end && matches!(self.ending, Ending::Completed);
        let draining = Tree::Draining { metrics: None };
        let (intake, batch, metrics, readers) = match std::mem::replace(&mut self.tree, draining) {
            Tree::Running(parts) => {
                self.tree = Tree::Draining {
                    metrics: Some(parts.metrics.clone()),
                };
                (
                    Some(parts.intake),
                    Some(parts.batch),
                    Some(parts.metrics),
                    parts.readers,
                )
            }
            Tree::Starting(_) => (None, None, None, Vec::new()),
            Tree::Draining { metrics } => {
                tracing::warn!("Shutdown asked for twice; the first one drains the tree.");
                self.tree = Tree::Draining { metrics };
                (None, None, None, Vec::new())
            }
        };
        Box::pin(
            async move {
                // 1. Stop intake. In the group model leaving revokes every partition: results
                //    are written and offsets committed through the member before it leaves.
                let mut group_history = Vec::new();
                if let Some(intake) = intake {
                    group_history = intake.send(Leave).await.unwrap_or_default();
                }
                // 2. Flush and commit.
                let mut summary = RunSummary {
                    group_history,
                    ..RunSummary::default()
                };
                if let Some((arbiter, batch)) = batch {
                    summary.drain = batch.send(Drain { close_all }).await.unwrap_or_default();
                    stop_arbiters(vec![arbiter]).await;
                }
                // 3. Final figures, then the reader threads.
                if let Some(metrics) = metrics {
                    summary.metrics = metrics.send(FinalMetrics).await.unwrap_or_default();
                }
                stop_arbiters(readers).await;
                summary
            }
            .into_actor(self)
            .map(|summary, _, ctx| {
                ctx.stop();
                summary
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::batch::Cover;
    use crate::config::{FlushConfig, PartitionConfig, WindowConfig};
    use crate::frame::FrameLimits;
    use crate::partition::EndPolicy;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }
    use crate::fakes::{empty_sources, quiet_sources, Commits, CountingSource, NullSink};
    use crate::faults::{FaultPlan, PartitionFault, Times};
    use crate::ports::{
        AssignedPartition, FixedAssignment, FrameSource, PollStatus, SourceError, SourceFactory,
        SourceRecord,
    };

    fn spec(
        sources: SourceFactory,
        supervisor: SupervisorConfig,
        probe: Option<EndOffsetProbe>,
    ) -> PipelineSpec {
        let listener =
            IntakeListener::new(Duration::from_secs(5), crate::intake::RevokeWait::AtMost);
        let assignments = FixedAssignment::new(
            vec![AssignedPartition {
                partition: p(0),
                start: StartOffset::At(0),
                metadata: String::new(),
                skipped: None,
            }],
            sources,
            listener.clone(),
        );
        PipelineSpec {
            intake: Intake {
                assignments: Box::new(assignments),
                listener,
            },
            outlet: Outlet::at_least_once(Box::new(NullSink), Box::new(Commits::default())),
            reading: ReadingSpec {
                partition: PartitionConfig {
                    poll_timeout_ms: 5,
                    ..PartitionConfig::default()
                },
                limits: FrameLimits {
                    max_bytes: 128,
                    min_ts: 946_684_800.0,
                    max_ts: 4_102_444_800.0,
                    max_future_secs: f64::INFINITY,
                    future_after: f64::INFINITY,
                    invalid: crate::frame::InvalidPolicy::NONE,
                },
                end: EndPolicy::Never,
            },
            batch: BatchSpec {
                window: WindowConfig::default(),
                flush: FlushConfig {
                    interval_ms: 20,
                    ..FlushConfig::default()
                },
                partitions: Vec::new(),
                closing: Closing::ByWatermark,
                cover: Cover::Given,
                require_full_cover: None,
            },
            metrics: MetricsConfig { log_interval_ms: 0 },
            supervisor,
            probe,
            leaders: None,
        }
    }

    /// Every open fails, counted, with the time of each.
    fn failing_sources(opens: Arc<Mutex<Vec<Instant>>>) -> SourceFactory {
        Arc::new(move |_, _| {
            opens.lock().unwrap().push(Instant::now());
            Err(SourceError {
                kind: FailureKind::Fatal,
                message: "partition t-0: broker says no".into(),
            })
        })
    }

    #[actix::test]
    async fn a_failing_partition_is_restarted_with_backoff_then_escalates() {
        let opens = Arc::new(Mutex::new(Vec::new()));
        let config = SupervisorConfig {
            backoff_initial_ms: 40,
            backoff_max_ms: 1_000,
            max_restarts: 3,
            stall_timeout_ms: 0,
            ..SupervisorConfig::default()
        };
        let (addr, outcome) =
            RootSupervisor::launch(spec(failing_sources(opens.clone()), config, None));
        let outcome = tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("escalates in time")
            .unwrap();
        let Outcome::Failed(error) = outcome else {
            panic!("{outcome:?}")
        };
        let broker_says_no = PartitionFailure::Source {
            reach: FailureKind::Fatal,
            message: "partition t-0: broker says no".into(),
        };
        assert_eq!(
            error,
            StopCause::RestartBudget {
                partition: p(0),
                failures: 4,
                window_secs: 60,
                max_restarts: 3,
                last: broker_says_no.clone(),
            }
        );
        assert_eq!(
            error.to_string(),
            "partition t-0 failed 4 times within 60 s (supervisor.max_restarts = 3); last cause: partition t-0: broker says no"
        );
        let opens = opens.lock().unwrap().clone();
        assert_eq!(opens.len(), 4, "the first start and three restarts");
        // Waits of 40, 80 and 160 ms (plus the time to stop and rewind).
        for (gap, backoff) in opens.windows(2).zip([40u64, 80, 160]) {
            let waited = gap[1].duration_since(gap[0]);
            assert!(
                waited >= Duration::from_millis(backoff),
                "{waited:?} < {backoff} ms"
            );
        }
        let summary = addr.send(Shutdown).await.unwrap();
        assert_eq!(summary.metrics.restarts, 3);
        assert!(summary
            .metrics
            .restart_log
            .iter()
            .all(|r| r.partition == p(0) && r.cause == broker_says_no && !r.watchdog));
    }

    /// Reads nothing and fails every poll with a permanent error.
    struct UndecodableSource;
    impl FrameSource for UndecodableSource {
        fn poll(
            &mut self,
            _: usize,
            _: &mut dyn FnMut(&SourceRecord<'_>),
        ) -> Result<PollStatus, SourceError> {
            Err(SourceError {
                kind: FailureKind::Permanent,
                message: "partition t-0: Local: Not implemented".into(),
            })
        }
    }

    #[actix::test]
    async fn a_panic_in_the_batch_actor_stops_the_service_naming_it() {
        // Windows so long that closing one overflows: the batch actor panics on the first
        // frames it counts (settings validation rejects such windows; a bug would do the same).
        let sources: SourceFactory = Arc::new(|_, start| {
            let next = match start {
                StartOffset::At(offset) => offset,
                StartOffset::Reset => 0,
            };
            Ok(Box::new(CountingSource::new(next, 10)) as Box<dyn FrameSource>)
        });
        let config = SupervisorConfig {
            stall_timeout_ms: 0,
            ..SupervisorConfig::default()
        };
        let mut spec = spec(sources, config, None);
        spec.batch.window = WindowConfig {
            length_secs: i64::MAX,
            lateness_secs: 5,
            ..WindowConfig::default()
        };
        let (addr, outcome) = RootSupervisor::launch(spec);
        let outcome = tokio::time::timeout(Duration::from_secs(5), outcome)
            .await
            .expect("stops in time, not hanging")
            .unwrap();
        let Outcome::Failed(error) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            matches!(
                &error,
                StopCause::Panicked { actor: "batch", message }
                    if message.starts_with("attempt to add with overflow at ")
            ),
            "{error}"
        );
        let summary = addr.send(Shutdown).await.unwrap();
        assert!(
            summary.drain.committed.is_empty(),
            "nothing committed after the panic"
        );
    }

    #[actix::test]
    async fn a_permanent_read_error_stops_the_service_without_restarts() {
        let opens = Arc::new(AtomicU32::new(0));
        let counted = opens.clone();
        let sources: SourceFactory = Arc::new(move |_, _| {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(UndecodableSource) as Box<dyn FrameSource>)
        });
        let config = SupervisorConfig {
            backoff_initial_ms: 10,
            stall_timeout_ms: 0,
            ..SupervisorConfig::default()
        };
        let (addr, outcome) = RootSupervisor::launch(spec(sources, config, None));
        let outcome = tokio::time::timeout(Duration::from_secs(5), outcome)
            .await
            .expect("stops in time")
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Failed(StopCause::Unreadable {
                partition: p(0),
                cause: PartitionFailure::Source {
                    reach: FailureKind::Permanent,
                    message: "partition t-0: Local: Not implemented".into()
                }
            })
        );
        let Outcome::Failed(error) = outcome else {
            unreachable!()
        };
        assert_eq!(
            error.to_string(),
            "partition t-0 cannot be read and a restart would not help: partition t-0: Local: Not implemented"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(opens.load(Ordering::Relaxed), 1, "never restarted");
        let summary = addr.send(Shutdown).await.unwrap();
        assert_eq!(summary.metrics.restarts, 0);
    }

    #[actix::test]
    async fn a_panicking_partition_is_restarted_from_its_commit() {
        let opens = Arc::new(AtomicUsize::new(0));
        let counted = opens.clone();
        let sources: SourceFactory = Arc::new(move |_, start| {
            counted.fetch_add(1, Ordering::Relaxed);
            let StartOffset::At(next) = start else {
                panic!("restarts resume from a commit")
            };
            Ok(Box::new(CountingSource::new(next, 50)) as Box<dyn FrameSource>)
        });
        let config = SupervisorConfig {
            backoff_initial_ms: 10,
            stall_timeout_ms: 0,
            ..SupervisorConfig::default()
        };
        let faults = FaultPlan::default();
        let mut spec = spec(sources, config, None);
        spec.intake.assignments = faults.wrap(spec.intake.assignments);
        let (addr, _outcome) = RootSupervisor::launch(spec);
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        faults.inject(p(0), PartitionFault::Panic, Times::Once);
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let metrics = addr.send(GetMetrics).await.unwrap();
        assert_eq!(
            opens.load(Ordering::Relaxed),
            2,
            "started once, restarted once"
        );
        assert_eq!(metrics.restarts, 1);
        assert!(matches!(
            &metrics.restart_log[0].cause,
            PartitionFailure::Panicked { message } if message.starts_with("injected panic")
        ));
        assert_eq!(
            metrics.partitions[&p(0)].position,
            Some(50),
            "read to its end again"
        );
        let summary = addr.send(Shutdown).await.unwrap();
        // Frames 40.. (event time 1_700_000_040 on) are in a window still open: the commit
        // stops at its first frame.
        assert_eq!(summary.drain.committed.first().map(|c| c.1), Some(40));
    }

    #[actix::test]
    async fn the_watchdog_restarts_a_partition_that_has_frames_waiting_but_does_not_move() {
        let opens = Arc::new(AtomicU32::new(0));
        let counted = opens.clone();
        // The source stops after 10 frames, but the end offset says 100 are there.
        let sources: SourceFactory = Arc::new(move |_, start| {
            counted.fetch_add(1, Ordering::Relaxed);
            let next = match start {
                StartOffset::At(o) => o,
                StartOffset::Reset => 0,
            };
            Ok(Box::new(CountingSource::new(next, 10)) as Box<dyn FrameSource>)
        });
        let probe: EndOffsetProbe =
            Arc::new(|partitions| partitions.iter().map(|p| (*p, 100)).collect());
        let config = SupervisorConfig {
            stall_timeout_ms: 1_000,
            ..SupervisorConfig::default()
        };
        let (addr, _outcome) = RootSupervisor::launch(spec(sources, config, Some(probe)));
        actix_rt::time::sleep(Duration::from_millis(2_200)).await;
        let metrics = addr.send(GetMetrics).await.unwrap();
        assert!(
            metrics.watchdog_recoveries >= 1,
            "{:?}",
            metrics.restart_log
        );
        assert!(opens.load(Ordering::Relaxed) >= 2);
        assert!(
            matches!(
                metrics.restart_log[0].cause,
                PartitionFailure::Stalled { waiting: 90, .. }
            ),
            "{}",
            metrics.restart_log[0].cause
        );
        addr.send(Shutdown).await.unwrap();
    }

    #[actix::test]
    async fn the_watchdog_restarts_a_partition_that_never_reports_but_not_an_empty_one() {
        let config = SupervisorConfig {
            stall_timeout_ms: 1_000,
            ..SupervisorConfig::default()
        };
        // Never a chunk: no records, never at its end (its leader is out of reach).
        let opens = Arc::new(AtomicU32::new(0));
        let (addr, _outcome) =
            RootSupervisor::launch(spec(quiet_sources(opens.clone()), config.clone(), None));
        actix_rt::time::sleep(Duration::from_millis(2_400)).await;
        let metrics = addr.send(GetMetrics).await.unwrap();
        assert!(opens.load(Ordering::Relaxed) >= 2, "restarted");
        assert!(
            matches!(
                metrics.restart_log.first().map(|r| &r.cause),
                Some(PartitionFailure::Unheard { for_ms }) if *for_ms >= 1_000
            ),
            "{:?}",
            metrics.restart_log
        );
        assert!(metrics.restart_log[0].watchdog);
        addr.send(Shutdown).await.unwrap();
        // An empty partition says it is at its end: heard, never restarted.
        let opens = Arc::new(AtomicU32::new(0));
        let (addr, _outcome) =
            RootSupervisor::launch(spec(empty_sources(opens.clone()), config, None));
        actix_rt::time::sleep(Duration::from_millis(2_400)).await;
        let metrics = addr.send(GetMetrics).await.unwrap();
        assert_eq!(metrics.restarts, 0, "{:?}", metrics.restart_log);
        assert_eq!(opens.load(Ordering::Relaxed), 1);
        assert!(metrics.partitions[&p(0)].heard);
        addr.send(Shutdown).await.unwrap();
    }
}
