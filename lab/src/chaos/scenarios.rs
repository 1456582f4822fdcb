//! The fault scenarios, one `impl Scenario` each: its name and description, the models and
//! clusters it applies to, its settings and data, the fault it drives and what its run must
//! show. The harness and the oracle (the parent module) treat every scenario alike.
//!
//! Adding a scenario: a unit struct with its `impl Scenario` here, and its place in
//! [`SCENARIOS`].

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::LabError;
use actix::Addr;
use actors::config::{GeneratorConfig, SinkKind};
use actors::failure::{PartitionFailure, StopCause};
use actors::faults::{PartitionFault, Times};
use actors::intake::GroupEvent;
use actors::kafka::{BrokerError, BrokerRequest};
use actors::metrics::GetMetrics;
use actors::supervisor::RootSupervisor;
use futures::future::LocalBoxFuture;
use kafka_actors::settings::{Model, Settings};
use kafka_actors::{blocking, run_with, Failure};

use super::{
    committed_sum, other_broker, Fault, Needs, Outcome, Scenario, Served, Service, Watch, FAULT_AT,
    TARGET,
};

/// Every scenario, in the order `--scenario all` runs them.
pub static SCENARIOS: &[&dyn Scenario] = &[
    &PartitionPanic,
    &RestartBudget,
    &Stall,
    &LeaderMove,
    &LeaderFlap,
    &BrokerDown,
    &LeaderHangs,
    &MemoryBudget,
    &AllBrokersDown,
    &FetchErrors,
    &CommitErrors,
    &CommitErrorsFatal,
    &Latency,
    &PoisonFrames,
    &SlowSink,
    &OutputRefused,
    &MemberChurn,
    &Sigkill,
    &LeaderCutOff,
    &CoordinatorCutOff,
    &AnswersDropped,
    &SlowLeader,
    &EveryAnswerDropped,
];

/// `partition-panic`.
#[derive(Debug)]
pub struct PartitionPanic;

impl Scenario for PartitionPanic {
    fn name(&self) -> &'static str {
        "partition-panic"
    }

    fn about(&self) -> &'static str {
        "A partition actor panics; it is restarted from its last commit."
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            fault.inject(PartitionFault::Panic, Times::Once);
            fault
                .recovery(Watch::Restart(fault.target()), fault.started)
                .await
        })
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        if run.live.restarts == 0 {
            problems.push("no restart after the panic".into());
        } else if !run.live.restart_log.iter().any(|r| {
            r.partition.index == TARGET && matches!(r.cause, PartitionFailure::Panicked { .. })
        }) {
            problems.push("the restart does not name the panic".into());
        }
    }
}

/// `restart-budget`.
#[derive(Debug)]
pub struct RestartBudget;

impl Scenario for RestartBudget {
    fn name(&self) -> &'static str {
        "restart-budget"
    }

    fn about(&self) -> &'static str {
        "A partition fails at every start; the restart budget runs out and the service stops \
         with an error naming it."
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            fault.inject(PartitionFault::Fail, Times::EveryOpen);
            None
        })
    }

    /// Three restarts (`supervisor.max_restarts`), then the fourth failure stops the service.
    fn check_stop(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        match &run.result.stop_cause {
            Some(Failure::Stopped(StopCause::RestartBudget {
                partition,
                failures: 4,
                last: PartitionFailure::Source { message, .. },
                ..
            })) if partition.index == TARGET && message.ends_with("injected failure") => {}
            other => problems.push(format!(
                "expected the service to stop naming partition {TARGET}, 4 failures and the cause, got {other:?}"
            )),
        }
        // The figures of the stopped run come with its error.
        if run.live.restarts != 3 {
            problems.push(format!(
                "expected 3 restarts before the stop, the stopped run reports {}",
                run.live.restarts
            ));
        }
    }
}

/// `stall`.
#[derive(Debug)]
pub struct Stall;

impl Scenario for Stall {
    fn name(&self) -> &'static str {
        "stall"
    }

    fn about(&self) -> &'static str {
        "A partition stops reading without failing; the watchdog restarts it."
    }

    fn settings(&self, settings: &mut Settings) {
        settings.supervisor.stall_timeout_ms = 2_000;
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            fault.inject(PartitionFault::StallMs(120_000), Times::Once);
            fault
                .recovery(Watch::Restart(fault.target()), fault.started)
                .await
        })
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        if run.live.watchdog_recoveries == 0 {
            problems.push("the watchdog did not recover the stalled partition".into());
        }
    }
}

/// `leader-move`.
#[derive(Debug)]
pub struct LeaderMove;

impl Scenario for LeaderMove {
    fn name(&self) -> &'static str {
        "leader-move"
    }

    fn about(&self) -> &'static str {
        "The leader of a partition moves to another broker."
    }

    fn needs(&self) -> Needs {
        Needs::BrokerControl
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let leader = fault.leader_of(fault.target()).await;
            fault
                .cluster
                .move_leader(fault.target(), other_broker(leader))
                .await;
            // From the move itself: on a real cluster the reassignment tools take seconds
            // before the election that moves the leader.
            fault
                .recovery(Watch::Partition(fault.target()), Instant::now())
                .await
        })
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        expect_leader_change(run, problems);
    }
}

/// `leader-flap`.
#[derive(Debug)]
pub struct LeaderFlap;

impl Scenario for LeaderFlap {
    fn name(&self) -> &'static str {
        "leader-flap"
    }

    fn about(&self) -> &'static str {
        "Leaders flap back and forth between brokers."
    }

    fn needs(&self) -> Needs {
        Needs::EmbeddedCluster
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let first = fault.leader_of(fault.target()).await;
            let second = other_broker(first);
            fault.cluster.move_leader(fault.target(), second).await;
            // Recovery from the first move; then it flaps back and forth.
            let recovery = fault
                .recovery(Watch::Partition(fault.target()), fault.started)
                .await;
            for to in [first, second, first] {
                actix_rt::time::sleep(Duration::from_millis(1_200)).await;
                fault.cluster.move_leader(fault.target(), to).await;
            }
            recovery
        })
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        expect_leader_change(run, problems);
    }
}

/// `broker-down`.
#[derive(Debug)]
pub struct BrokerDown;

impl Scenario for BrokerDown {
    fn name(&self) -> &'static str {
        "broker-down"
    }

    fn about(&self) -> &'static str {
        "The broker leading a partition goes down for 3 s; its partitions' leaders are moved \
         away (the embedded cluster does not move them itself); then it comes back."
    }

    fn needs(&self) -> Needs {
        Needs::BrokerControl
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let leader = fault.leader_of(fault.target()).await;
            let leaders = fault.supervisor.send(GetMetrics).await.ok()?.partitions;
            fault.cluster.broker_down(Some(leader)).await;
            // The embedded cluster does not move leaders itself; Kafka elects new ones from
            // the in-sync replicas once the broker's session ends.
            if let Some(embedded) = fault.cluster.embedded() {
                for (partition, metrics) in &leaders {
                    if metrics.leader == Some(leader) || *partition == fault.target() {
                        let _ = embedded.move_leader(
                            partition.topic.name(),
                            partition.index,
                            other_broker(leader),
                        );
                    }
                }
            }
            let recovery = fault
                .recovery(Watch::Partition(fault.target()), fault.started)
                .await;
            let down_for = if fault.cluster.embedded().is_some() {
                3
            } else {
                10
            };
            actix_rt::time::sleep(
                Duration::from_secs(down_for).saturating_sub(fault.started.elapsed()),
            )
            .await;
            fault.cluster.broker_up(Some(leader)).await;
            recovery
        })
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        expect_leader_change(run, problems);
    }
}

/// `leader-hangs`.
#[derive(Debug)]
pub struct LeaderHangs;

impl Scenario for LeaderHangs {
    fn name(&self) -> &'static str {
        "leader-hangs"
    }

    fn about(&self) -> &'static str {
        "The broker leading a partition (of a topic with one replica) stops answering without \
         closing its sockets (SIGSTOP on a real cluster, a 30 s round trip on the embedded one) \
         for 10 s, longer than window.idle_after_ms, while frames keep coming to the other \
         partitions; then it answers again. Its partitions must not count as idle meanwhile."
    }

    fn needs(&self) -> Needs {
        Needs::BrokerControl
    }

    /// One replica: the hung broker's partitions keep their leader (nothing moves them
    /// elsewhere) and the other partitions do not wait for it as a follower, so frames keep
    /// coming to them while the hung ones must not count as idle.
    fn replication(&self) -> i32 {
        1
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let leader = fault.leader_of(fault.target()).await;
            // Longer than the 5 s idle_after_ms of the scenarios.
            let hang_for = Duration::from_secs(10);
            fault.cluster.hang(leader, true).await;
            let resume = async {
                actix_rt::time::sleep(hang_for).await;
                fault.cluster.hang(leader, false).await;
            };
            let (recovery, ()) = futures::join!(
                fault.recovery(Watch::Partition(fault.target()), fault.started),
                resume
            );
            recovery
        })
    }
}

/// `memory-budget`.
#[derive(Debug)]
pub struct MemoryBudget;

/// The memory budget of open windows in `memory-budget`, in MiB.
const SMALL_BUDGET_MIB: f64 = 0.0625;

impl Scenario for MemoryBudget {
    fn name(&self) -> &'static str {
        "memory-budget"
    }

    fn about(&self) -> &'static str {
        "Open windows get a memory budget of 64 KiB and nearly every frame a new user; the \
         broker leading a partition (of a topic with one replica) stops answering for 10 s, so \
         no window can close while the other partitions read on. They must be paused at the \
         budget (the open windows stay within 1.5 times it, where without a budget they grow \
         with everything read meanwhile) and resumed once the hung partition moves the watermark \
         again."
    }

    fn needs(&self) -> Needs {
        Needs::BrokerControl
    }

    fn replication(&self) -> i32 {
        1
    }

    fn settings(&self, settings: &mut Settings) {
        settings.window.open_budget_mib = SMALL_BUDGET_MIB;
        // Small chunks: a partition learns that it is paused at its next chunk.
        settings.partition.chunk_max_frames = 100;
    }

    fn data(&self, data: &mut GeneratorConfig) {
        // Nearly every frame a new user; 100 frames per event second (1 000 per 10 s window).
        data.users = 10_000_000;
        data.event_rate = 100.0;
    }

    /// The hang; then, before the service is stopped, the wait until the paused partitions
    /// have resumed and caught up.
    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let recovery = LeaderHangs.drive(fault).await;
            let until = Instant::now() + Duration::from_secs(60);
            while Instant::now() < until {
                let Ok(figures) = fault.supervisor.send(GetMetrics).await else {
                    break;
                };
                let through = figures.partitions.len() == super::PARTITIONS as usize
                    && figures
                        .partitions
                        .values()
                        .all(|p| !p.paused && p.lag == Some(0));
                if through {
                    break;
                }
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
            recovery
        })
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        let budget = (SMALL_BUDGET_MIB * f64::from(1 << 20)) as u64;
        if run.live.budget_pauses == 0 {
            problems.push("no partition was paused at the budget".into());
        }
        // Past the budget, each paused partition adds at most one chunk, and a uid table that
        // grows doubles at once.
        if run.live.peak_open_window_bytes > budget + budget / 2 {
            problems.push(format!(
                "the open windows held {} bytes at most, more than 1.5 times the budget of {budget}",
                run.live.peak_open_window_bytes
            ));
        }
        // Every paused partition resumed: the live run read each to its end.
        for (partition, figures) in &run.live.partitions {
            if figures.paused || figures.lag != Some(0) {
                problems.push(format!(
                    "{partition} was not read to its end by the live run (paused: {}, lag: {:?})",
                    figures.paused, figures.lag
                ));
            }
        }
    }
}

/// `all-brokers-down`.
#[derive(Debug)]
pub struct AllBrokersDown;

impl Scenario for AllBrokersDown {
    fn name(&self) -> &'static str {
        "all-brokers-down"
    }

    fn about(&self) -> &'static str {
        "Every broker goes down for 2 s; they come back one at a time, 1.5 s apart, so the \
         partitions led by the last one stay out of reach for 5 s while the others resume."
    }

    fn needs(&self) -> Needs {
        Needs::BrokerControl
    }

    fn settings(&self, settings: &mut Settings) {
        // The last broker's partitions are out of reach for 5 s, longer than their idle time
        // here: quiet time while a partition's leader is out of reach must not count.
        settings.window.idle_after_ms = 3_000;
        // Statistics tell when a partition's leader is out of reach; they must come well
        // within the idle time.
        settings.supervisor.stats_interval_ms = 250;
    }

    /// On the embedded cluster the recovery counts from the fault (the brokers are back
    /// within 5 s); on a real one from the moment every broker is running again: three
    /// brokers starting at once take 20–40 s here, all of it before the service can do
    /// anything, and the service's own time is what is measured (as from the heal of a link
    /// fault).
    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let cluster = fault.cluster;
            cluster.broker_down(None).await;
            actix_rt::time::sleep(Duration::from_secs(2)).await;
            if cluster.embedded().is_none() {
                // The whole cluster starts again (all nodes at once; the control command
                // returns once each has started).
                cluster.broker_up(None).await;
                return fault.recovery(Watch::Any, Instant::now()).await;
            }
            cluster.broker_up(Some(1)).await;
            let rest = async {
                for broker in 2..=3 {
                    actix_rt::time::sleep(Duration::from_millis(1_500)).await;
                    cluster.broker_up(Some(broker)).await;
                }
            };
            let (recovery, ()) = tokio::join!(fault.recovery(Watch::Any, fault.started), rest);
            recovery
        })
    }
}

/// `fetch-errors`.
#[derive(Debug)]
pub struct FetchErrors;

impl Scenario for FetchErrors {
    fn name(&self) -> &'static str {
        "fetch-errors"
    }

    fn about(&self) -> &'static str {
        "Fetch requests fail (not leader, unknown partition, timeouts, disconnects)."
    }

    fn needs(&self) -> Needs {
        Needs::EmbeddedCluster
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let _ = fault.cluster.embedded()?.fail_next(
                BrokerRequest::Fetch,
                &[
                    BrokerError::NotLeaderForPartition,
                    BrokerError::UnknownTopicOrPartition,
                    BrokerError::RequestTimedOut,
                    BrokerError::Disconnect,
                    BrokerError::NotLeaderForPartition,
                    BrokerError::RequestTimedOut,
                ],
            );
            None
        })
    }
}

/// `commit-errors`.
#[derive(Debug)]
pub struct CommitErrors;

impl Scenario for CommitErrors {
    fn name(&self) -> &'static str {
        "commit-errors"
    }

    fn about(&self) -> &'static str {
        "Offset commits fail with retriable errors."
    }

    fn needs(&self) -> Needs {
        Needs::EmbeddedCluster
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let _ = fault.cluster.embedded()?.fail_next(
                BrokerRequest::OffsetCommit,
                &[
                    BrokerError::RequestTimedOut,
                    BrokerError::CoordinatorLoadInProgress,
                    BrokerError::NotCoordinator,
                    BrokerError::RequestTimedOut,
                ],
            );
            None
        })
    }
}

/// `commit-errors-fatal`.
#[derive(Debug)]
pub struct CommitErrorsFatal;

impl Scenario for CommitErrorsFatal {
    fn name(&self) -> &'static str {
        "commit-errors-fatal"
    }

    fn about(&self) -> &'static str {
        "Offset commits fail with an error that is not retriable (authorization)."
    }

    fn needs(&self) -> Needs {
        Needs::EmbeddedCluster
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let _ = fault.cluster.embedded()?.fail_next(
                BrokerRequest::OffsetCommit,
                &[BrokerError::GroupAuthorizationFailed; 3],
            );
            None
        })
    }

    /// Retriable commit errors are retried inside librdkafka and never reach the service; an
    /// authorization error does.
    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        if run.live.commit_failures == 0 {
            problems.push("no commit failed: the fault did not reach the service".into());
        }
    }
}

/// `latency`.
#[derive(Debug)]
pub struct Latency;

impl Scenario for Latency {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn about(&self) -> &'static str {
        "300 ms added to every broker round trip for 3 s."
    }

    fn needs(&self) -> Needs {
        Needs::EmbeddedCluster
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let cluster = fault.cluster.embedded()?;
            for broker in 1..=3 {
                let _ = cluster.broker_latency(broker, Duration::from_millis(300));
            }
            actix_rt::time::sleep(Duration::from_secs(3)).await;
            for broker in 1..=3 {
                let _ = cluster.broker_latency(broker, Duration::ZERO);
            }
            None
        })
    }
}

/// `poison-frames`.
#[derive(Debug)]
pub struct PoisonFrames;

impl Scenario for PoisonFrames {
    fn name(&self) -> &'static str {
        "poison-frames"
    }

    fn about(&self) -> &'static str {
        "Invalid frames of every kind in the stream, and as the very last frame of each \
         partition."
    }

    fn data(&self, data: &mut GeneratorConfig) {
        data.bad_ratio = 0.05;
    }

    fn tail(&self) -> &'static [&'static [u8]] {
        &[
            b"{not json",
            b"[1, 2, 3]",
            br#"{"ts": 1790000000}"#,
            br#"{"ts": "soon", "uid": "u"}"#,
        ]
    }

    /// Every invalid frame was counted (replays may count some twice). That the poison tail
    /// was passed shows in the commits reaching the end offsets, checked for all.
    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        let invalid: u64 =
            run.live.invalid.values().sum::<u64>() + run.drained.invalid.values().sum::<u64>();
        if invalid < run.produced_invalid {
            problems.push(format!(
                "{invalid} invalid frames counted, {} produced",
                run.produced_invalid
            ));
        }
    }
}

/// `slow-sink`.
#[derive(Debug)]
pub struct SlowSink;

impl Scenario for SlowSink {
    fn name(&self) -> &'static str {
        "slow-sink"
    }

    fn about(&self) -> &'static str {
        "The output takes 400 ms per write."
    }

    fn settings(&self, settings: &mut Settings) {
        settings.sink.write_delay_ms = 400;
    }
}

/// `output-refused`.
#[derive(Debug)]
pub struct OutputRefused;

impl Scenario for OutputRefused {
    fn name(&self) -> &'static str {
        "output-refused"
    }

    fn about(&self) -> &'static str {
        "The output refuses every write mid-stream (an I/O error; exactly once, a fatal \
         transaction error). The service stops with an error naming the output, having \
         committed nothing it did not write; a restart reads on from the commits."
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            if !fault.reading().await {
                fault.problem("the service read nothing within 30 s of the fault's moment");
            }
            fault.plan.refuse_output(true);
            None
        })
    }

    fn check_stop(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        match &run.result.stop_cause {
            Some(Failure::Stopped(StopCause::Output(failure)))
                if failure.to_string().contains(actors::faults::OUTPUT_REFUSED) => {}
            other => problems.push(format!(
                "expected the service to stop naming the refused output, got {other:?}"
            )),
        }
    }
}

/// `member-churn`.
#[derive(Debug)]
pub struct MemberChurn;

impl Scenario for MemberChurn {
    fn name(&self) -> &'static str {
        "member-churn"
    }

    fn about(&self) -> &'static str {
        "A second group member joins mid-stream and leaves again (group model only)."
    }

    fn applies_to(&self, model: Model) -> bool {
        model == Model::Group
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            // The second member stays until its client reports leaders for partitions it was
            // assigned (on the embedded cluster a join can take most of 5 s), then 3 s more;
            // 20 s at most.
            let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Addr<RootSupervisor>>();
            let leave = async move {
                if let Ok(member) = started_rx.await {
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while Instant::now() < deadline {
                        let assigned = member
                            .send(GetMetrics)
                            .await
                            .is_ok_and(|m| m.partitions.values().any(|p| p.leader.is_some()));
                        if assigned {
                            break;
                        }
                        actix_rt::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                actix_rt::time::sleep(Duration::from_secs(3)).await;
            };
            let run = run_with(fault.second_member.clone(), leave, move |member| {
                let _ = started_tx.send(member);
            });
            let assigned = run.await.map_or(0, |report| {
                report
                    .summary
                    .group_history
                    .iter()
                    .filter(|r| matches!(r.event, GroupEvent::Assigned { .. }))
                    .count()
            });
            if assigned == 0 {
                fault.problem("the second member was never assigned a partition");
            }
            None
        })
    }
}

/// `sigkill`.
#[derive(Debug)]
pub struct Sigkill;

impl Scenario for Sigkill {
    fn name(&self) -> &'static str {
        "sigkill"
    }

    fn about(&self) -> &'static str {
        "The service process is killed with SIGKILL mid-stream and started again."
    }

    /// The service runs as a child process (the executable's `run`), is killed mid-stream,
    /// started again, and stopped with SIGTERM once the data is in. The recovery is the time
    /// from the kill to the new process's first committed progress.
    fn serve<'a>(&'a self, service: Service<'a>) -> LocalBoxFuture<'a, Result<Served, LabError>> {
        Box::pin(async move {
            let executable = service.executable.ok_or_else(|| {
                LabError::Task("the SIGKILL scenario needs the executable".into())
            })?;
            let (recovery_ms, stopped_with) =
                run_killed_and_restarted(executable, service.settings, service.data_in).await?;
            Ok(Served {
                recovery_ms,
                stopped_with,
                ..Served::default()
            })
        })
    }
}

/// Answers the time from the kill to the new process's first committed progress, and the
/// error if the second process failed.
async fn run_killed_and_restarted(
    executable: &Path,
    settings: &Settings,
    data_in: tokio::sync::oneshot::Receiver<()>,
) -> Result<(Option<f64>, Option<String>), LabError> {
    let spawn = || spawn_service(executable, settings);
    let mut first = spawn()?;
    actix_rt::time::sleep(FAULT_AT + Duration::from_millis(500)).await;
    let before = committed_sum(&settings.kafka).await;
    // Child::kill sends SIGKILL on Unix.
    let _ = first.kill();
    let _ = first.wait();
    let killed = Instant::now();
    let mut second = spawn()?;
    let mut recovery = None;
    while killed.elapsed() < Duration::from_secs(30) {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        if committed_sum(&settings.kafka).await > before {
            recovery = Some(killed.elapsed().as_secs_f64() * 1e3);
            break;
        }
    }
    let _ = data_in.await;
    // SIGTERM: the service stops gracefully (writes what is closed, commits).
    // SAFETY: `kill` only sends a signal to the child's pid, which we own and have not reaped.
    unsafe {
        libc::kill(second.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = blocking(move || second.wait())
        .await?
        .map_err(|e| LabError::Task(format!("waiting for the service: {e}")))?;
    let error = (!status.success()).then(|| format!("the restarted service exited with {status}"));
    Ok((recovery, error))
}

/// Starts the service with `settings` in a child process (the executable's `run`), its
/// output discarded.
pub(super) fn spawn_service(
    executable: &Path,
    settings: &Settings,
) -> Result<std::process::Child, LabError> {
    std::process::Command::new(executable)
        .args(["run", "--model", settings.model.as_str()])
        .args(["--brokers", &settings.kafka.brokers])
        .args(["--topic", &settings.kafka.topic_names()[0]])
        .args(["--group", &settings.kafka.group])
        .envs(child_env(settings))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| LabError::Task(format!("cannot start {}: {e}", executable.display())))
}

/// Settings a child service gets through the environment.
fn child_env(settings: &Settings) -> Vec<(String, String)> {
    let pairs = [
        (
            "WINDOW__LENGTH_SECS",
            settings.window.length_secs.to_string(),
        ),
        (
            "WINDOW__LATENESS_SECS",
            settings.window.lateness_secs.to_string(),
        ),
        (
            "WINDOW__IDLE_AFTER_MS",
            settings.window.idle_after_ms.to_string(),
        ),
        ("FLUSH__INTERVAL_MS", settings.flush.interval_ms.to_string()),
        (
            "PARTITION__POLL_TIMEOUT_MS",
            settings.partition.poll_timeout_ms.to_string(),
        ),
        ("METRICS__LOG_INTERVAL_MS", "0".to_owned()),
        ("ADMIN__PORT", settings.admin.port.to_string()),
        (
            "SINK__KIND",
            match settings.sink.kind {
                SinkKind::Kafka => "kafka",
                SinkKind::File | SinkKind::Stdout => "file",
            }
            .to_owned(),
        ),
        ("SINK__PATH", settings.sink.path.clone()),
        ("SINK__TOPIC", settings.sink.topic.clone()),
        ("SINK__CREATE_TOPIC", settings.sink.create_topic.to_string()),
        (
            "SINK__TOPIC_PARTITIONS",
            settings.sink.topic_partitions.to_string(),
        ),
        ("SINK__EXACTLY_ONCE", settings.sink.exactly_once.to_string()),
        (
            "SINK__DEAD_LETTER__TOPIC",
            settings.sink.dead_letter.topic.clone(),
        ),
        (
            "GROUP__SESSION_TIMEOUT_MS",
            settings.group.session_timeout_ms.to_string(),
        ),
        (
            "GROUP__REVOKE_TIMEOUT_MS",
            settings.group.revoke_timeout_ms.to_string(),
        ),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (format!("KAFKA_ACTORS__{k}"), v))
        .collect()
}

/// A leader change must have been recorded.
fn expect_leader_change(run: &Outcome<'_>, problems: &mut Vec<String>) {
    if run.live.leader_changes.is_empty() {
        problems.push("no leader change recorded".into());
    }
}

/// A link fault on the service's link to one broker for `hold`, then healed: answers the
/// milliseconds from the heal until `watch` sees frames again.
async fn link_fault_then_heal(
    fault: &Fault<'_>,
    broker: i32,
    what: &[&str],
    hold: Duration,
    watch: Watch,
) -> Option<f64> {
    fault.link(Some(broker), what).await;
    actix_rt::time::sleep(hold).await;
    fault.link(Some(broker), &["heal"]).await;
    fault.recovery(watch, Instant::now()).await
}

/// `leader-cut-off`.
#[derive(Debug)]
pub struct LeaderCutOff;

impl Scenario for LeaderCutOff {
    fn name(&self) -> &'static str {
        "leader-cut-off"
    }

    fn about(&self) -> &'static str {
        "Nothing passes either way between the service and the broker leading a partition for \
         12 s (its connections stay open); the other brokers and the producers still reach it. \
         Then the link heals. Its partitions must hold the watermark meanwhile and be read on."
    }

    fn needs(&self) -> Needs {
        Needs::Links
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let leader = fault.leader_of(fault.target()).await;
            let watch = Watch::Partition(fault.target());
            link_fault_then_heal(fault, leader, &["cut"], Duration::from_secs(12), watch).await
        })
    }
}

/// `coordinator-cut-off`.
#[derive(Debug)]
pub struct CoordinatorCutOff;

impl Scenario for CoordinatorCutOff {
    fn name(&self) -> &'static str {
        "coordinator-cut-off"
    }

    fn about(&self) -> &'static str {
        "Nothing passes either way between the service and its group coordinator's broker for \
         15 s (longer than the 6 s session) while every partition leader stays in reach (the \
         topic is led by the other brokers). Commits fail meanwhile; a group member loses its \
         assignment, commits nothing it no longer owns, and joins again once the link heals."
    }

    fn needs(&self) -> Needs {
        Needs::Links
    }

    fn away_from_coordinator(&self) -> bool {
        true
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            // A member cut off while it joins has nothing to lose: the cut must come once it
            // owns its partitions (a join can take longer than the 2.5 s before the fault).
            if !fault.reading().await {
                fault.problem("the service read nothing within 30 s of the fault's moment");
                return None;
            }
            let Some(coordinator) = fault.coordinator().await else {
                fault.problem("the group's coordinator is not known");
                return None;
            };
            let target_leader = fault.leader_of(fault.target()).await;
            if target_leader == coordinator {
                fault.problem(format!(
                    "the coordinator {coordinator} also leads {}",
                    fault.target()
                ));
            }
            link_fault_then_heal(
                fault,
                coordinator,
                &["cut"],
                Duration::from_secs(15),
                Watch::Any,
            )
            .await
        })
    }

    /// A group member's session ends while its coordinator is out of reach: it must let its
    /// partitions go as lost and take them again after the heal. (The partition model's
    /// commits wait for the coordinator meanwhile: the common checks judge them.)
    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        if run.result.model != Model::Group {
            return;
        }
        let lost_at = run
            .history
            .iter()
            .position(|r| matches!(r.event, GroupEvent::Released { lost: true, .. }));
        match lost_at {
            None => problems.push(
                "the member did not let its partitions go as lost while its coordinator was cut off"
                    .into(),
            ),
            Some(at) => {
                if !run.history[at..]
                    .iter()
                    .any(|r| matches!(r.event, GroupEvent::Assigned { .. }))
                {
                    problems.push("the member did not take its partitions again after the heal".into());
                }
            }
        }
    }
}

/// `answers-dropped`.
#[derive(Debug)]
pub struct AnswersDropped;

impl Scenario for AnswersDropped {
    fn name(&self) -> &'static str {
        "answers-dropped"
    }

    fn about(&self) -> &'static str {
        "The broker leading a partition gets the service's requests but its answers are dropped \
         for 20 s; then they pass again. The requests already sent are never answered: the \
         service must give them up and read on."
    }

    fn needs(&self) -> Needs {
        Needs::Links
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let leader = fault.leader_of(fault.target()).await;
            let watch = Watch::Partition(fault.target());
            link_fault_then_heal(
                fault,
                leader,
                &["drop-answers"],
                Duration::from_secs(20),
                watch,
            )
            .await
        })
    }
}

/// `slow-leader`.
#[derive(Debug)]
pub struct SlowLeader;

impl Scenario for SlowLeader {
    fn name(&self) -> &'static str {
        "slow-leader"
    }

    fn about(&self) -> &'static str {
        "Every answer from the broker leading a partition to the service is 200 ms late (50 ms \
         of jitter) for 20 s; then the link is fast again."
    }

    fn needs(&self) -> Needs {
        Needs::Links
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            let leader = fault.leader_of(fault.target()).await;
            let slow = Instant::now();
            fault.link(Some(leader), &["latency", "200", "50"]).await;
            // Frames still flow over the slow link: the partition delivers within it.
            let flowing = fault.recovery(Watch::Partition(fault.target()), slow).await;
            let rest = Duration::from_secs(20).saturating_sub(slow.elapsed());
            actix_rt::time::sleep(rest).await;
            fault.link(Some(leader), &["heal"]).await;
            if flowing.is_none() {
                fault.problem("no frames over the slow link");
            }
            flowing
        })
    }
}

/// `every-answer-dropped`.
#[derive(Debug)]
pub struct EveryAnswerDropped;

impl Scenario for EveryAnswerDropped {
    fn name(&self) -> &'static str {
        "every-answer-dropped"
    }

    fn about(&self) -> &'static str {
        "Every broker's answers to the service are dropped for 15 s (its requests still \
         arrive), with a 2 s transaction timeout: with exactly-once output the open \
         transaction outlives its timeout and the broker aborts it; the flush must be written \
         again, once, and the service go on."
    }

    fn needs(&self) -> Needs {
        Needs::Links
    }

    fn settings(&self, settings: &mut Settings) {
        settings.sink.transaction_timeout_ms = 2_000;
        settings.sink.delivery_timeout_ms = 2_000;
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            fault.link(None, &["drop-answers"]).await;
            // The broker aborts a transaction older than its timeout at its next sweep
            // (transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s).
            actix_rt::time::sleep(Duration::from_secs(15)).await;
            fault.link(None, &["heal"]).await;
            fault.recovery(Watch::Any, Instant::now()).await
        })
    }
}
