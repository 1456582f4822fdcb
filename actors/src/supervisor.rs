//! [`RootSupervisor`]: owns the actor tree, starts it, reports how it ends, and shuts it down
//! in order.
//!
//! Tree: the intake, either one [`PartitionActor`] per partition (partition model) or a
//! [`GroupActor`] that starts one per assigned partition (group model), each partition actor on
//! its own arbiter thread (reading blocks); one [`BatchActor`] on its own arbiter (it does the
//! counting); one [`MetricsActor`] on the supervisor's arbiter.
//!
//! Shutdown is drain, then commit, then stop: every partition actor stops reading and answers
//! once its last chunk is taken (in the group model, by leaving the group, which revokes and
//! commits every partition); then the batch actor flushes what is closed (or, when the input
//! is exhausted, closes everything first), commits and answers; then the final figures are
//! read and the arbiters stop.

use std::collections::BTreeMap;

use actix::prelude::*;
use futures::future::join_all;

use std::sync::Arc;

use crate::batch::{
    decode_watermark, AddPartitions, BatchActor, BatchEvent, Drain, DrainReport, ReleasePartitions,
};
use crate::config::{FlushConfig, MetricsConfig, PartitionConfig, WindowConfig};
use crate::frame::FrameLimits;
use crate::group::{GroupActor, GroupEndOffsets, GroupListener, GroupRecord, Leave};
use crate::metrics::{FinalMetrics, GetMetrics, MetricsActor, MetricsSnapshot};
use crate::partition::{
    EndAt, EndPolicy, PartitionActor, PartitionFailed, PartitionOutputs, StopIntake,
};
use crate::ports::{GroupMembership, OffsetCommitter, SourceFactory, StartOffset};
use crate::sink::Sink;
use crate::window::PartitionStart;

/// Where one partition starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionPlan {
    /// The partition.
    pub partition: i32,
    /// The offset it is read from.
    pub start: StartOffset,
    /// Its closing point from the last commit's metadata.
    pub closed_below: Option<f64>,
}

/// Where frames come from.
pub enum Intake {
    /// The partition model: these partitions, read through `sources`.
    Partitions {
        /// The partitions and where each starts.
        plans: Vec<PartitionPlan>,
        /// Opens partition sources.
        sources: SourceFactory,
    },
    /// The group model: a membership whose rebalances reach the group actor via `listener`.
    Group {
        /// The subscribed member, not yet started.
        membership: Box<dyn GroupMembership>,
        /// Its listener.
        listener: Arc<GroupListener>,
    },
}

/// Everything needed to start the tree.
pub struct PipelineSpec {
    /// Where frames come from.
    pub intake: Intake,
    /// Where windows go.
    pub sink: Box<dyn Sink>,
    /// Commits offsets.
    pub committer: Box<dyn OffsetCommitter>,
    /// Intake settings.
    pub partition: PartitionConfig,
    /// Frame validity.
    pub limits: FrameLimits,
    /// Windows.
    pub window: WindowConfig,
    /// Flushes.
    pub flush: FlushConfig,
    /// Metrics.
    pub metrics: MetricsConfig,
    /// When partitions are done.
    pub end: EndPolicy,
    /// Every partition of the topic, when output lines must cover them all.
    pub complete_only: Option<Vec<i32>>,
}

/// How the tree ended on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every partition reached its end and every window is written and committed.
    Completed,
    /// A part failed and the service must stop.
    Failed(String),
}

/// Stops the tree in order and returns the final state.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "RunSummary")]
pub struct Shutdown;

/// The end of a partition for every partition that waits for one; partitions not listed end at
/// their current end.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EndOffsets(pub BTreeMap<i32, i64>);

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

/// Owns the actor tree; see the module documentation.
pub struct RootSupervisor {
    spec: Option<PipelineSpec>,
    group: Option<Addr<GroupActor>>,
    partitions: BTreeMap<i32, (Arbiter, Addr<PartitionActor>)>,
    batch: Option<(Arbiter, Addr<BatchActor>)>,
    metrics: Option<Addr<MetricsActor>>,
    outcome: Option<tokio::sync::oneshot::Sender<Outcome>>,
    completed: bool,
    /// What a partition actor of the partition model is built from (to restart one).
    intake: Option<PartitionIntake>,
}

/// The parts a partition actor is built from.
struct PartitionIntake {
    plans: BTreeMap<i32, PartitionPlan>,
    sources: SourceFactory,
    outputs: PartitionOutputs,
    config: PartitionConfig,
    limits: FrameLimits,
    end: EndPolicy,
}

impl PartitionIntake {
    fn start(&self, partition: i32, start: StartOffset) -> (Arbiter, Addr<PartitionActor>) {
        let arbiter = Arbiter::new();
        let actor = PartitionActor::new(
            partition,
            start,
            self.sources.clone(),
            self.outputs.clone(),
            self.config.clone(),
            self.limits,
            self.end,
        );
        let addr = PartitionActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        (arbiter, addr)
    }
}

/// Stops a partition's actor and starts a new one from the partition's last commit, as after a
/// failure: the partition's share of open windows is written off and rebuilt by reading again
/// from the commit, so nothing is lost or counted twice. Answers once the new actor runs.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<StartOffset, String>")]
pub struct RestartPartition(pub i32);

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
            spec: Some(spec),
            group: None,
            partitions: BTreeMap::new(),
            batch: None,
            metrics: None,
            outcome: Some(tx),
            completed: false,
            intake: None,
        }
        .start();
        (addr, rx)
    }

    fn report(&mut self, outcome: Outcome) {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(outcome);
        }
    }
}

impl Actor for RootSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(spec) = self.spec.take() else { return };
        let metrics = MetricsActor::new(spec.metrics.clone()).start();
        let batch_arbiter = Arbiter::new();
        let plans = match &spec.intake {
            Intake::Partitions { plans, .. } => plans.clone(),
            Intake::Group { .. } => Vec::new(),
        };
        let known: Vec<PartitionStart> = plans
            .iter()
            .map(|plan| PartitionStart {
                partition: plan.partition,
                next_offset: match plan.start {
                    StartOffset::At(o) => Some(o),
                    StartOffset::Reset => None,
                },
                closed_below: plan.closed_below,
            })
            .collect();
        let close_at_end = spec.end != EndPolicy::Never;
        let batch = {
            let (window, flush, sink, committer) = (
                spec.window.clone(),
                spec.flush.clone(),
                spec.sink,
                spec.committer,
            );
            let (metrics, supervisor) = (metrics.clone(), ctx.address().recipient());
            let complete_only = spec.complete_only.clone();
            BatchActor::start_in_arbiter(&batch_arbiter.handle(), move |_| {
                let actor = BatchActor::new(
                    &window,
                    flush,
                    &known,
                    sink,
                    committer,
                    close_at_end,
                    metrics,
                    Some(supervisor),
                );
                match complete_only {
                    Some(all) => actor.complete_only(all),
                    None => actor,
                }
            })
        };
        let outputs = PartitionOutputs {
            batch: batch.clone().recipient(),
            metrics: metrics.clone().recipient(),
            supervisor: ctx.address().recipient(),
        };
        match spec.intake {
            Intake::Partitions { plans, sources } => {
                let intake = PartitionIntake {
                    plans: plans.iter().map(|p| (p.partition, *p)).collect(),
                    sources,
                    outputs,
                    config: spec.partition.clone(),
                    limits: spec.limits,
                    end: spec.end,
                };
                for plan in plans {
                    self.partitions
                        .insert(plan.partition, intake.start(plan.partition, plan.start));
                }
                self.intake = Some(intake);
            }
            Intake::Group {
                membership,
                listener,
            } => {
                let group = GroupActor::new(
                    membership,
                    listener,
                    batch.clone(),
                    outputs,
                    spec.partition.clone(),
                    spec.limits,
                    spec.end,
                );
                self.group = Some(group.start());
            }
        }
        self.batch = Some((batch_arbiter, batch));
        self.metrics = Some(metrics);
    }
}

impl Handler<PartitionFailed> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PartitionFailed, _: &mut Self::Context) {
        self.report(Outcome::Failed(format!(
            "partition {} failed: {}",
            msg.partition, msg.error
        )));
    }
}

impl Handler<BatchEvent> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: BatchEvent, _: &mut Self::Context) {
        match msg {
            BatchEvent::Completed => {
                self.completed = true;
                self.report(Outcome::Completed);
            }
            BatchEvent::SinkFailed(error) => self.report(Outcome::Failed(error)),
        }
    }
}

impl Handler<EndOffsets> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: EndOffsets, _: &mut Self::Context) {
        for (partition, (_, addr)) in &self.partitions {
            addr.do_send(EndAt(msg.0.get(partition).copied()));
        }
        if let Some(group) = &self.group {
            group.do_send(GroupEndOffsets(msg.0));
        }
    }
}

impl Handler<RestartPartition> for RootSupervisor {
    type Result = ResponseActFuture<Self, Result<StartOffset, String>>;

    fn handle(&mut self, msg: RestartPartition, _: &mut Self::Context) -> Self::Result {
        let partition = msg.0;
        let (Some(intake), Some((_, batch))) = (&self.intake, &self.batch) else {
            return Box::pin(fut::ready(Err(
                "only the partition model restarts partitions".to_owned(),
            )));
        };
        let Some((arbiter, addr)) = self.partitions.remove(&partition) else {
            return Box::pin(fut::ready(Err(format!(
                "partition {partition} is not running"
            ))));
        };
        let fallback = intake.plans.get(&partition).copied();
        let batch = batch.clone();
        Box::pin(
            async move {
                let _ = addr.send(StopIntake).await;
                arbiter.stop();
                let _ = actix_rt::task::spawn_blocking(move || arbiter.join()).await;
                let released = batch
                    .send(ReleasePartitions {
                        partitions: vec![partition],
                        commit: true,
                    })
                    .await
                    .map_err(|e| format!("batch actor: {e}"))?;
                let (start, closed_below) = match released.first() {
                    Some(c) => (StartOffset::At(c.offset), decode_watermark(&c.metadata)),
                    None => {
                        fallback.map_or((StartOffset::Reset, None), |p| (p.start, p.closed_below))
                    }
                };
                let next_offset = match start {
                    StartOffset::At(o) => Some(o),
                    StartOffset::Reset => None,
                };
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
            .into_actor(self)
            .map(move |result: Result<StartOffset, String>, act, _| {
                let start = result?;
                let intake = act.intake.as_ref().ok_or("the intake is gone")?;
                let restarted = intake.start(partition, start);
                act.partitions.insert(partition, restarted);
                tracing::info!(partition, ?start, "Partition restarted.");
                Ok(start)
            }),
        )
    }
}

impl Handler<GetMetrics> for RootSupervisor {
    type Result = ResponseActFuture<Self, MetricsSnapshot>;

    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        let metrics = self.metrics.clone();
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

impl Handler<Shutdown> for RootSupervisor {
    type Result = ResponseActFuture<Self, RunSummary>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let partitions = std::mem::take(&mut self.partitions);
        let group = self.group.take();
        let batch = self.batch.take();
        let metrics = self.metrics.clone();
        let close_all = self.completed;
        Box::pin(
            async move {
                // 1. Stop intake; a partition actor that already stopped answers with an error,
                //    which is fine: it sends nothing more either way.
                let (arbiters, addrs): (Vec<Arbiter>, Vec<Addr<PartitionActor>>) =
                    partitions.into_values().unzip();
                join_all(addrs.iter().map(|a| a.send(StopIntake))).await;
                let mut group_history = Vec::new();
                if let Some(group) = group {
                    // Leaving revokes every partition: intake stops, results are written and
                    // offsets committed through the member before it leaves.
                    group_history = group.send(Leave).await.unwrap_or_default();
                }
                // 2. Flush and commit.
                let mut summary = RunSummary {
                    group_history,
                    ..RunSummary::default()
                };
                if let Some((arbiter, batch)) = batch {
                    summary.drain = batch.send(Drain { close_all }).await.unwrap_or_default();
                    arbiter.stop();
                    let _ = actix_rt::task::spawn_blocking(move || arbiter.join()).await;
                }
                // 3. Final figures, then the partition threads (their consumers close there).
                if let Some(metrics) = metrics {
                    summary.metrics = metrics.send(FinalMetrics).await.unwrap_or_default();
                }
                for arbiter in arbiters {
                    arbiter.stop();
                    let _ = actix_rt::task::spawn_blocking(move || arbiter.join()).await;
                }
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
