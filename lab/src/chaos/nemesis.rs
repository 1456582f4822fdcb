//! Randomized fault campaigns (a nemesis): each run draws, from a seed and its number, a
//! schedule of overlapping faults of every kind the lab can apply on a real cluster, drives it
//! against the service as a scenario ([`NemesisRun`] is a [`Scenario`]), and is judged by the
//! same oracle. The same seed and run number give the same schedule; a failing run is printed
//! with the command that replays it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::LabError;
use actix::Addr;
use actors::failure::StopCause;
use actors::intake::GroupEvent;
use actors::metrics::GetMetrics;
use actors::supervisor::RootSupervisor;
use futures::future::LocalBoxFuture;
use kafka_actors::settings::{Model, Settings};
use kafka_actors::{blocking, run_with, Failure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{
    run_scenario, ChaosOptions, ChaosOutput, Fault, Needs, Outcome, Power, Scenario,
    ScenarioResult, PARTITIONS, RECOVERY_WAIT,
};
use actors::topic::PartitionId;

/// A kind of fault the nemesis draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A broker is SIGKILLed; healed by starting it again.
    BrokerKill,
    /// A broker stops answering without closing its sockets (SIGSTOP); healed by SIGCONT.
    BrokerPause,
    /// A partition's leadership moves to another broker (reassignment and election).
    LeaderMove,
    /// Nothing passes either way between the service and a broker.
    LinkCut,
    /// A broker's answers to the service are dropped (its requests still arrive).
    LinkDropAnswers,
    /// A broker's answers to the service come late (`amount` ms, a quarter of it jitter).
    LinkLatency,
    /// A broker's answers to the service are throttled to `amount` KB/s.
    LinkBandwidth,
    /// A second group member joins, and leaves when healed (group model).
    MemberAdded,
    /// A second group member joins in a process of its own, which is SIGKILLed when healed:
    /// it never leaves, and its partitions come back once its session times out (group
    /// model).
    MemberKilled,
    /// The data set's producer sends nothing for a while, then goes on at its rate.
    ProducerPause,
    /// The producers of the partitions disagree on the time, for the whole run: partition
    /// `i`'s frames are stamped `amount` ms × i / 3 early; `window.lateness_secs` is raised
    /// by the skew (the data's jitter takes the lateness as it is).
    ClockSkew,
    /// Every write of the sink takes `amount` ms, for the whole run.
    SlowSink,
    /// The output refuses every write (an I/O error; a fatal transaction error exactly
    /// once) from then on, never healed: the service must stop at its next flush with an
    /// error naming the output, having committed nothing it did not write; the drain run, a
    /// restart, reads on from the commits. Drawn one run in six, after the overlapping
    /// faults.
    FailingSink,
    /// The open windows get a memory budget of `amount` KiB, for the whole run.
    TightBudget,
}

impl Kind {
    /// Faults on a broker process: at most one at a time (two of three brokers down stop the
    /// cluster's quorum, which `all-brokers-down` covers on its own).
    fn on_process(self) -> bool {
        matches!(self, Kind::BrokerKill | Kind::BrokerPause)
    }
}

/// One fault of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What.
    pub kind: Kind,
    /// When it is applied, in milliseconds from the start of the schedule (2.5 s after the
    /// service started); 0 for faults of the whole run.
    pub at_ms: u64,
    /// How long it lasts before it is healed, in milliseconds.
    pub hold_ms: u64,
    /// The broker it hits (1 to 3), or a leader move's destination.
    pub broker: i32,
    /// The partition it aims at (a leader move's).
    pub partition: i32,
    /// Its size: latency in ms, bandwidth in KB/s, sink delay in ms, budget in KiB.
    pub amount: u64,
}

/// The faults of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The campaign's seed.
    pub seed: u64,
    /// The run's number in the campaign (from 0).
    pub run: u32,
    /// Timed faults, by start.
    pub steps: Vec<Step>,
    /// Faults of the whole run ([`Kind::SlowSink`], [`Kind::TightBudget`]).
    pub whole_run: Vec<Step>,
}

/// The schedule of run `run` of the campaign `seed`, for a data set flowing for `duration`:
/// three to five timed faults, the first three starting within 5 s of each other and lasting
/// at least 6 s (so they overlap), the rest anywhere before the last 5 s; at most one fault on
/// a broker process at a time; one run in six, a refused output in the last third; and, one
/// run in four each, a slow sink, a tight memory budget or skewed producer clocks for the
/// whole run.
#[must_use]
pub fn plan(seed: u64, run: u32, model: Model, duration: Duration) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed ^ u64::from(run).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut kinds = vec![
        Kind::BrokerKill,
        Kind::BrokerPause,
        Kind::LeaderMove,
        Kind::LinkCut,
        Kind::LinkDropAnswers,
        Kind::LinkLatency,
        Kind::LinkBandwidth,
        Kind::ProducerPause,
    ];
    if model == Model::Group {
        kinds.push(Kind::MemberAdded);
        kinds.push(Kind::MemberKilled);
    }
    let span = (duration.as_millis() as u64)
        .saturating_sub(5_000)
        .max(6_000);
    let count = rng.random_range(3..=5);
    let mut steps: Vec<Step> = Vec::with_capacity(count);
    for i in 0..count {
        let (at_ms, hold_ms) = if i < 3 {
            (
                rng.random_range(0..=5_000),
                rng.random_range(6_000..=12_000),
            )
        } else {
            (rng.random_range(0..=span), rng.random_range(3_000..=10_000))
        };
        let mut kind = kinds[rng.random_range(0..kinds.len())];
        let overlaps_process = |steps: &[Step]| {
            steps.iter().any(|s| {
                s.kind.on_process() && s.at_ms < at_ms + hold_ms && at_ms < s.at_ms + s.hold_ms
            })
        };
        if kind.on_process() && overlaps_process(&steps) {
            kind = Kind::LinkCut;
        }
        let amount = match kind {
            Kind::LinkLatency => rng.random_range(100..=800),
            Kind::LinkBandwidth => rng.random_range(16..=256),
            _ => 0,
        };
        steps.push(Step {
            kind,
            at_ms,
            hold_ms,
            broker: rng.random_range(1..=3),
            partition: rng.random_range(0..PARTITIONS),
            amount,
        });
    }
    if rng.random_range(0..6) == 0 {
        // Late in the run, so that the faults before it land on a running service.
        steps.push(Step {
            kind: Kind::FailingSink,
            at_ms: rng.random_range(span * 2 / 3..=span),
            hold_ms: 0,
            broker: 0,
            partition: 0,
            amount: 0,
        });
    }
    steps.sort_by_key(|s| s.at_ms);
    let mut whole_run = Vec::new();
    let skew_ms = rng.random_range(1_000..=3_000);
    for (kind, amount) in [
        (Kind::SlowSink, 300),
        (Kind::TightBudget, 256),
        (Kind::ClockSkew, skew_ms),
    ] {
        if rng.random_range(0..4) == 0 {
            whole_run.push(Step {
                kind,
                at_ms: 0,
                hold_ms: 0,
                broker: 0,
                partition: 0,
                amount,
            });
        }
    }
    Plan {
        seed,
        run,
        steps,
        whole_run,
    }
}

/// A step as it was applied.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The step.
    pub step: Step,
    /// The fault took effect (its command succeeded).
    pub applied: bool,
    /// Frames were flowing when it was applied: the service read frames in the second
    /// before (a fault that lands on a service with nothing to read proves little).
    pub while_flowing: bool,
    /// When it was healed, in milliseconds from the start of the schedule (`None`: faults of
    /// the whole run, a refused output, members).
    pub healed_at_ms: Option<f64>,
    /// The end offset of each partition of the topic just after the heal, as a client that
    /// meets none of the link faults sees it (empty when it could not be learnt).
    #[serde(skip)]
    pub ends_at_heal: BTreeMap<PartitionId, i64>,
    /// Milliseconds from its heal until the service had caught up: it had read every
    /// partition it owned up to where that partition's log ended at the heal (other faults
    /// may still hold then). `None` when not healed, when the ends could not be learnt, or
    /// when it had not caught up [`RECOVERY_WAIT`] after the last heal.
    pub caught_up_ms: Option<f64>,
}

/// One run of a campaign as a scenario.
#[derive(Debug)]
pub struct NemesisRun {
    plan: Plan,
    applied: Mutex<Vec<Applied>>,
}

impl NemesisRun {
    /// The run of `plan`.
    #[must_use]
    pub fn new(plan: Plan) -> Self {
        NemesisRun {
            plan,
            applied: Mutex::new(Vec::new()),
        }
    }

    /// Applies `step` (number `index` of the schedule) at its moment after `start`, records
    /// it, and heals it after its hold.
    async fn run_step(
        &self,
        fault: &Fault<'_>,
        index: usize,
        step: &Step,
        samples: &std::cell::RefCell<Samples>,
        start: Instant,
    ) {
        actix_rt::time::sleep(Duration::from_millis(step.at_ms)).await;
        let at = start.elapsed();
        let (applied, child) = if step.kind == Kind::MemberKilled {
            let child = child_member(fault, index);
            (child.is_some(), child)
        } else {
            (apply(fault, step, true).await, None)
        };
        let while_flowing = flowing(&samples.borrow(), at);
        let entry = self.record(Applied {
            step: *step,
            applied,
            while_flowing,
            healed_at_ms: None,
            ends_at_heal: BTreeMap::new(),
            caught_up_ms: None,
        });
        let hold = Duration::from_millis(step.hold_ms);
        match (step.kind, child) {
            (Kind::MemberAdded, _) => member_for(fault, hold).await,
            (Kind::MemberKilled, Some(child)) => member_killed_after(fault, child, hold).await,
            (Kind::MemberKilled, None) => {}
            // A refused output stays refused: healed before the service's next flush (no
            // frames flow while a producer is paused or a broker is down), it would be no
            // fault at all.
            (Kind::FailingSink, _) => {}
            _ => {
                actix_rt::time::sleep(hold).await;
                apply(fault, step, false).await;
                let healed = start.elapsed();
                let ends = ends_now(fault).await;
                let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
                applied[entry].healed_at_ms = Some(healed.as_secs_f64() * 1e3);
                applied[entry].ends_at_heal = ends;
            }
        }
    }

    /// Fills in when each healed fault was caught up, from `samples`; answers whether every
    /// one was (or cannot be).
    fn caught_up(&self, samples: &Samples) -> bool {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = true;
        for a in applied.iter_mut() {
            let Some(healed_ms) = a.healed_at_ms else {
                continue;
            };
            if a.caught_up_ms.is_some() {
                continue;
            }
            if a.ends_at_heal.is_empty() {
                continue;
            }
            let healed = Duration::from_secs_f64(healed_ms / 1e3);
            // A partition the service does not own at that moment is another member's.
            let read_up = |t: &Tick| {
                !t.positions.is_empty()
                    && a.ends_at_heal
                        .iter()
                        .all(|(p, end)| t.positions.get(p).is_none_or(|at| at >= end))
            };
            match samples.iter().find(|t| t.at >= healed && read_up(t)) {
                Some(t) => a.caught_up_ms = Some((t.at - healed).as_secs_f64() * 1e3),
                None => all = false,
            }
        }
        all
    }

    /// Whether the run refused the output (a `FailingSink` step was applied).
    fn output_refused(&self) -> bool {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|a| a.step.kind == Kind::FailingSink && a.applied)
    }

    /// Records `applied`; answers its place in the record.
    fn record(&self, applied: Applied) -> usize {
        let mut all = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        all.push(applied);
        all.len() - 1
    }
}

/// What the service had done at a moment since the schedule started.
#[derive(Debug, Clone)]
struct Tick {
    /// The moment.
    at: Duration,
    /// Frames read.
    frames: u64,
    /// The position of each partition it owned.
    positions: BTreeMap<PartitionId, i64>,
}

/// The service's figures every 250 ms.
type Samples = Vec<Tick>;

/// Whether frames were read in the second before `at` (in the first second of the
/// schedule: since it started).
fn flowing(samples: &Samples, at: Duration) -> bool {
    let before = samples
        .iter()
        .rev()
        .find(|t| t.at + Duration::from_secs(1) <= at)
        .or_else(|| samples.first().filter(|t| t.at < at))
        .map(|t| t.frames);
    let now = samples.iter().rev().find(|t| t.at <= at).map(|t| t.frames);
    matches!((before, now), (Some(b), Some(n)) if n > b)
}

impl Scenario for NemesisRun {
    fn name(&self) -> &'static str {
        "nemesis"
    }

    fn about(&self) -> &'static str {
        "A randomized schedule of overlapping faults (chaos --nemesis random)."
    }

    fn needs(&self) -> Needs {
        Needs::Links
    }

    fn skews(&self) -> Vec<f64> {
        self.plan
            .whole_run
            .iter()
            .find(|s| s.kind == Kind::ClockSkew)
            .map_or_else(Vec::new, |s| {
                (0..PARTITIONS)
                    .map(|i| -(s.amount as f64 / 1e3) * f64::from(i) / f64::from(PARTITIONS - 1))
                    .collect()
            })
    }

    fn settings(&self, settings: &mut Settings) {
        for step in &self.plan.whole_run {
            match step.kind {
                Kind::SlowSink => settings.sink.write_delay_ms = step.amount,
                Kind::TightBudget => settings.window.open_budget_mib = step.amount as f64 / 1024.0,
                // The data is out of order by up to the lateness already (its jitter): a
                // partition whose producer runs behind the others by the skew, idle while
                // they move the watermark on, wakes with frames up to skew + jitter behind
                // it. The lateness takes the skew too, or those frames are late by the
                // service's own rules and the run proves nothing.
                Kind::ClockSkew => {
                    settings.window.lateness_secs +=
                        i64::try_from(step.amount.div_ceil(1_000)).unwrap_or(i64::MAX);
                }
                _ => {}
            }
        }
    }

    fn drive<'a>(&'a self, fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async move {
            for step in &self.plan.whole_run {
                self.record(Applied {
                    step: *step,
                    applied: true,
                    while_flowing: true,
                    healed_at_ms: None,
                    ends_at_heal: BTreeMap::new(),
                    caught_up_ms: None,
                });
            }
            let start = Instant::now();
            let samples = std::cell::RefCell::new(Samples::new());
            let done = std::cell::Cell::new(false);
            let sampler = async {
                while !done.get() {
                    if let Ok(m) = fault.supervisor.send(GetMetrics).await {
                        samples.borrow_mut().push(Tick {
                            at: start.elapsed(),
                            frames: m.frames,
                            positions: m
                                .partitions
                                .iter()
                                .filter_map(|(p, figures)| Some((*p, figures.position?)))
                                .collect(),
                        });
                    }
                    actix_rt::time::sleep(Duration::from_millis(250)).await;
                }
            };
            let steps = futures::future::join_all(
                self.plan
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(index, step)| self.run_step(fault, index, step, &samples, start)),
            );
            let all = async {
                steps.await;
                let healed = Instant::now();
                let progress = progress_after(fault.supervisor, healed).await;
                // Sampled on until every healed fault has caught up, or for as long as
                // progress is waited for after the last heal.
                while healed.elapsed() < RECOVERY_WAIT && !self.caught_up(&samples.borrow()) {
                    actix_rt::time::sleep(Duration::from_millis(250)).await;
                }
                done.set(true);
                progress
            };
            let (progress, ()) = futures::join!(all, sampler);
            // A refused output stops the service: the drain run shows the recovery.
            if progress.is_none() && !self.output_refused() {
                fault.problem(format!(
                    "no progress within {} s of the last heal",
                    RECOVERY_WAIT.as_secs()
                ));
            }
            progress
        })
    }

    /// The service may stop only on a refused output, naming it (`FailingSink`), and must
    /// then stop: a write that failed without a stop went somewhere.
    fn check_stop(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        let refused = self.output_refused();
        match (&run.result.stop_cause, refused) {
            (None, false) => {}
            (Some(Failure::Stopped(StopCause::Output(failure))), true)
                if failure.to_string().contains(actors::faults::OUTPUT_REFUSED) => {}
            (None, true) => {
                problems
                    .push("the output refused every write, yet the service did not stop".into());
            }
            (Some(_), _) => problems.push(format!(
                "the service stopped: {}",
                run.result.stopped_with.as_deref().unwrap_or("?")
            )),
        }
    }

    fn expect(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        for a in applied.iter().filter(|a| !a.applied) {
            problems.push(format!("the fault {:?} could not be applied", a.step));
        }
        // A member that joined took partitions from this one, which got them back.
        if applied
            .iter()
            .any(|a| matches!(a.step.kind, Kind::MemberAdded | Kind::MemberKilled) && a.applied)
            && !run
                .history
                .iter()
                .any(|r| matches!(r.event, GroupEvent::Released { .. }))
        {
            problems.push("a second member joined, yet no partition was handed over".into());
        }
    }
}

/// Applies `step` (`on`) or heals it; answers whether the command took effect.
async fn apply(fault: &Fault<'_>, step: &Step, on: bool) -> bool {
    let cluster = fault.cluster;
    let broker = Some(step.broker);
    match (step.kind, on) {
        (Kind::BrokerKill, true) => {
            cluster.power(Power::Down, broker).await;
            true
        }
        (Kind::BrokerKill, false) => {
            cluster.power(Power::Up, broker).await;
            true
        }
        (Kind::BrokerPause, on) => {
            cluster.hang(step.broker, on).await;
            true
        }
        (Kind::LeaderMove, true) => {
            let partition = PartitionId::of(fault.topic, step.partition);
            cluster.move_leader(partition, step.broker).await;
            true
        }
        (Kind::LinkCut, true) => cluster.link(broker, &["cut"]).await,
        (Kind::LinkDropAnswers, true) => cluster.link(broker, &["drop-answers"]).await,
        (Kind::LinkLatency, true) => {
            let (latency, jitter) = (step.amount.to_string(), (step.amount / 4).to_string());
            cluster.link(broker, &["latency", &latency, &jitter]).await
        }
        (Kind::LinkBandwidth, true) => {
            cluster
                .link(broker, &["bandwidth", &step.amount.to_string()])
                .await
        }
        (
            Kind::LinkCut | Kind::LinkDropAnswers | Kind::LinkLatency | Kind::LinkBandwidth,
            false,
        ) => cluster.link(broker, &["heal"]).await,
        (Kind::FailingSink, true) => {
            fault.plan.refuse_output(true);
            true
        }
        (Kind::ProducerPause, true) => {
            fault
                .producer
                .pause_for(Duration::from_millis(step.hold_ms));
            true
        }
        (
            Kind::LeaderMove
            | Kind::MemberAdded
            | Kind::MemberKilled
            | Kind::FailingSink
            | Kind::ProducerPause
            | Kind::SlowSink
            | Kind::TightBudget
            | Kind::ClockSkew,
            _,
        ) => true,
    }
}

/// A second member of the service's group, in this process, for `hold`.
async fn member_for(fault: &Fault<'_>, hold: Duration) {
    let leave = actix_rt::time::sleep(hold);
    if let Err(error) = run_with(fault.second_member.clone(), leave, |_| {}).await {
        fault.problem(format!("the added member failed: {error}"));
    }
}

/// Member `n` of the service's group in a child process (the service's executable); `None`
/// (a problem of the run) when it cannot be started.
fn child_member(fault: &Fault<'_>, n: usize) -> Option<std::process::Child> {
    let Some(executable) = fault.executable else {
        fault.problem("a member in a child process needs the service's executable");
        return None;
    };
    match super::scenarios::spawn_service(executable, &fault.child_member(n)) {
        Ok(child) => Some(child),
        Err(error) => {
            fault.problem(format!(
                "the member in a child process did not start: {error}"
            ));
            None
        }
    }
}

/// SIGKILLs `child` after `hold`; a member that exited before is a problem of the run.
async fn member_killed_after(fault: &Fault<'_>, mut child: std::process::Child, hold: Duration) {
    actix_rt::time::sleep(hold).await;
    if let Ok(Some(status)) = child.try_wait() {
        fault.problem(format!(
            "the member in a child process exited by itself: {status}"
        ));
        return;
    }
    // Child::kill sends SIGKILL on Unix.
    let _ = child.kill();
    let _ = blocking(move || child.wait()).await;
}

/// The end offset of every partition of the scenario's topic, learnt through the cluster's
/// own listeners (no link fault on the way); empty when they cannot be learnt.
async fn ends_now(fault: &Fault<'_>) -> BTreeMap<PartitionId, i64> {
    let mut kafka = fault.second_member.kafka.clone();
    kafka.brokers = fault.cluster.bootstrap().to_owned();
    let partitions: Vec<PartitionId> = (0..PARTITIONS)
        .map(|i| PartitionId::of(fault.topic, i))
        .collect();
    let ends =
        blocking(move || actors::kafka::end_offset_probe(&kafka).map(|probe| probe(&partitions)))
            .await;
    match ends {
        Ok(Ok(ends)) if ends.len() == PARTITIONS as usize => ends,
        _ => BTreeMap::new(),
    }
}

/// Milliseconds from `healed` until the service reads frames again or has nothing left to
/// read (its lag is 0), polled every 100 ms for up to [`RECOVERY_WAIT`].
async fn progress_after(supervisor: &Addr<RootSupervisor>, healed: Instant) -> Option<f64> {
    let first = supervisor.send(GetMetrics).await.ok()?;
    while healed.elapsed() < RECOVERY_WAIT {
        let now = supervisor.send(GetMetrics).await.ok()?;
        if now.frames > first.frames || now.lag == 0 {
            return Some(healed.elapsed().as_secs_f64() * 1e3);
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One judged run of a campaign.
#[derive(Debug, Clone, Serialize)]
pub struct NemesisResult {
    /// Its schedule.
    pub plan: Plan,
    /// Each fault as applied.
    pub applied: Vec<Applied>,
    /// The oracle's verdict.
    pub result: ScenarioResult,
    /// What went wrong, by kind (none when it passed).
    pub anomalies: Vec<&'static str>,
    /// The command that replays it.
    pub replay: String,
}

/// The anomalies of a verdict, by kind.
fn anomalies(result: &ScenarioResult) -> Vec<&'static str> {
    let mut found = Vec::new();
    if result.lost > 0 {
        found.push("lost");
    }
    if result.output == ChaosOutput::ExactlyOnce && result.duplicates > 0 {
        found.push("written-twice");
    }
    if result.late_missed > 0 {
        found.push("missed-window");
    }
    if !result.windows_correct {
        found.push("window-differs");
    }
    if result.max_committed_ahead > 0 {
        found.push("committed-ahead");
    }
    if !result.committed_to_end {
        found.push("not-committed-to-end");
    }
    let stopped = result
        .problems
        .iter()
        .any(|p| p.starts_with("the service stopped"));
    if stopped {
        found.push("stopped");
    } else if result.recovery_ms.is_none() {
        found.push("no-progress-after-heal");
    }
    if found.is_empty() && !result.passed {
        found.push("other");
    }
    found
}

/// Runs `runs` runs of the campaign `seed` (from run `first`), alternating `models`, and
/// writes `nemesis.json` into `options.out`.
///
/// # Errors
/// A run's harness failed, or the report could not be written.
pub async fn campaign(
    base: &Settings,
    seed: u64,
    first: u32,
    runs: u32,
    models: &[Model],
    options: &ChaosOptions,
    replay_base: &str,
) -> Result<Vec<NemesisResult>, LabError> {
    let duration = Duration::from_secs(options.data_secs.unwrap_or(30));
    let mut results = Vec::new();
    for run in first..first + runs {
        let model = models[run as usize % models.len()];
        let plan = plan(seed, run, model, duration);
        tracing::info!(
            seed,
            run,
            model = model.as_str(),
            ?plan,
            "Nemesis run starts."
        );
        let scenario = NemesisRun::new(plan.clone());
        let mut run_options = options.clone();
        run_options.out = options.out.join(format!("run-{run:04}"));
        let result = run_scenario(base, &scenario, model, &run_options).await?;
        let applied = scenario
            .applied
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let anomalies = if result.passed {
            Vec::new()
        } else {
            anomalies(&result)
        };
        let replay = format!(
            "{replay_base} --nemesis random --seed {seed} --first-run {run} --runs 1 --model {} --output {} --duration {}s",
            model.as_str(),
            options.output.as_str(),
            duration.as_secs()
        );
        if !result.passed {
            tracing::error!(run, %replay, problems = ?result.problems, "Nemesis run failed; replay it with the command.");
        }
        results.push(NemesisResult {
            plan,
            applied,
            result,
            anomalies,
            replay,
        });
    }
    let path = options.out.join("nemesis.json");
    let json = serde_json::to_string_pretty(&Summary::of(&results, seed))
        .map_err(|e| LabError::Task(format!("cannot encode the report: {e}")))?;
    std::fs::create_dir_all(&options.out).map_err(|source| LabError::Report {
        path: options.out.display().to_string(),
        source,
    })?;
    std::fs::write(&path, json).map_err(|source| LabError::Report {
        path: path.display().to_string(),
        source,
    })?;
    Ok(results)
}

/// Per kind of fault: runs that applied it, and of those while frames were flowing.
#[derive(Debug, Default, Clone, Serialize)]
pub struct KindCount {
    /// Runs that applied it.
    pub runs: u64,
    /// Of those, runs that applied it while frames were flowing.
    pub while_flowing: u64,
}

/// How long the service took to catch up after the heals of one kind of fault.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CatchUp {
    /// Faults of the kind healed.
    pub healed: u64,
    /// Of those, faults after which it caught up (the rest: the logs' ends could not be
    /// learnt at the heal, or not caught up within the wait after the last heal).
    pub caught_up: u64,
    /// Milliseconds from the heal: 50th and 90th percentile, and the most.
    pub ms: [Option<f64>; 3],
}

/// A campaign's figures.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// The seed.
    pub seed: u64,
    /// Runs made.
    pub runs: usize,
    /// Runs that passed.
    pub passed: usize,
    /// Per kind of fault.
    pub faults: BTreeMap<Kind, KindCount>,
    /// Runs per anomaly.
    pub anomalies: BTreeMap<&'static str, u64>,
    /// Milliseconds from the last heal to progress: 50th, 90th, 99th percentile and the most.
    pub recovery_ms: [Option<f64>; 4],
    /// Per kind of healed fault: how long the service took to catch up after its heal.
    pub caught_up: BTreeMap<Kind, CatchUp>,
    /// Every run.
    pub results: &'a [NemesisResult],
}

impl<'a> Summary<'a> {
    fn of(results: &'a [NemesisResult], seed: u64) -> Self {
        let mut faults: BTreeMap<Kind, KindCount> = BTreeMap::new();
        let mut anomalies: BTreeMap<&'static str, u64> = BTreeMap::new();
        for r in results {
            let mut kinds: BTreeMap<Kind, bool> = BTreeMap::new();
            for a in r.applied.iter().filter(|a| a.applied) {
                *kinds.entry(a.step.kind).or_default() |= a.while_flowing;
            }
            for (kind, flowing) in kinds {
                let count = faults.entry(kind).or_default();
                count.runs += 1;
                count.while_flowing += u64::from(flowing);
            }
            for anomaly in &r.anomalies {
                *anomalies.entry(anomaly).or_default() += 1;
            }
        }
        let mut catch_ups: BTreeMap<Kind, (u64, Vec<f64>)> = BTreeMap::new();
        for a in results
            .iter()
            .flat_map(|r| &r.applied)
            .filter(|a| a.applied && a.healed_at_ms.is_some())
        {
            let entry = catch_ups.entry(a.step.kind).or_default();
            entry.0 += 1;
            entry.1.extend(a.caught_up_ms);
        }
        let caught_up = catch_ups
            .into_iter()
            .map(|(kind, (healed, mut ms))| {
                ms.sort_by(f64::total_cmp);
                let pick = |q: f64| {
                    (!ms.is_empty()).then(|| ms[((ms.len() - 1) as f64 * q).round() as usize])
                };
                let figures = CatchUp {
                    healed,
                    caught_up: ms.len() as u64,
                    ms: [pick(0.5), pick(0.9), ms.last().copied()],
                };
                (kind, figures)
            })
            .collect();
        let mut recoveries: Vec<f64> = results
            .iter()
            .filter_map(|r| r.result.recovery_ms)
            .collect();
        recoveries.sort_by(f64::total_cmp);
        let pick = |q: f64| -> Option<f64> {
            (!recoveries.is_empty())
                .then(|| recoveries[((recoveries.len() - 1) as f64 * q).round() as usize])
        };
        Summary {
            seed,
            runs: results.len(),
            passed: results.iter().filter(|r| r.result.passed).count(),
            faults,
            anomalies,
            recovery_ms: [pick(0.5), pick(0.9), pick(0.99), recoveries.last().copied()],
            caught_up,
            results,
        }
    }
}

/// The campaign as a table: one line per run, then faults by kind and anomalies.
#[must_use]
pub fn table(results: &[NemesisResult], seed: u64) -> String {
    let summary = Summary::of(results, seed);
    let mut text = format!(
        "{:>5} {:<9} {:<12} {:>6} {:>5} {:>10} {:>13} {:>8} {:>10}  {}\n",
        "run",
        "model",
        "output",
        "faults",
        "lost",
        "duplicates",
        "late rep/miss",
        "windows",
        "recovery",
        "schedule / verdict"
    );
    for r in results {
        let schedule: Vec<String> = r
            .plan
            .steps
            .iter()
            .chain(&r.plan.whole_run)
            .map(|s| {
                format!(
                    "{:?}@{:.1}s+{:.1}s",
                    s.kind,
                    s.at_ms as f64 / 1e3,
                    s.hold_ms as f64 / 1e3
                )
            })
            .collect();
        let verdict = if r.result.passed {
            "ok".to_owned()
        } else {
            format!(
                "FAILED {}; replay: {}",
                r.result.problems.join("; "),
                r.replay
            )
        };
        text.push_str(&format!(
            "{:>5} {:<9} {:<12} {:>6} {:>5} {:>10} {:>13} {:>8} {:>10}  {} {}\n",
            r.plan.run,
            r.result.model.as_str(),
            r.result.output.as_str(),
            r.applied.len(),
            r.result.lost,
            r.result.duplicates,
            format!("{}/{}", r.result.late_replayed, r.result.late_missed),
            if r.result.windows_correct {
                "correct"
            } else {
                "WRONG"
            },
            r.result
                .recovery_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms")),
            schedule.join(" "),
            verdict
        ));
    }
    text.push_str(&format!(
        "\n{} of {} runs passed (seed {seed})\nfaults by kind (runs applied / while frames flowed):\n",
        summary.passed, summary.runs
    ));
    for (kind, count) in &summary.faults {
        text.push_str(&format!(
            "  {kind:?}: {} / {}\n",
            count.runs, count.while_flowing
        ));
    }
    text.push_str("anomalies by kind:");
    if summary.anomalies.is_empty() {
        text.push_str(" none\n");
    } else {
        text.push('\n');
        for (kind, runs) in &summary.anomalies {
            text.push_str(&format!("  {kind}: {runs}\n"));
        }
    }
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    text.push_str(&format!(
        "recovery after the last heal: p50 {} p90 {} p99 {} max {}\n",
        ms(summary.recovery_ms[0]),
        ms(summary.recovery_ms[1]),
        ms(summary.recovery_ms[2]),
        ms(summary.recovery_ms[3])
    ));
    text.push_str("caught up after each heal (read up to the logs' ends at the heal), by kind:\n");
    for (kind, c) in &summary.caught_up {
        text.push_str(&format!(
            "  {kind:?}: {} of {} healed; p50 {} p90 {} max {}\n",
            c.caught_up,
            c.healed,
            ms(c.ms[0]),
            ms(c.ms[1]),
            ms(c.ms[2])
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A skewed run raises the lateness by the skew: a partition whose producer runs
    /// behind, idle while the others move the watermark, wakes with frames up to skew +
    /// jitter behind the watermark (seed 220 run 24: skew 2 607 ms, jitter 3 s, lateness
    /// 3 s; 14 frames of partition 3 stamped up to 5.6 s back came after its window).
    #[test]
    fn a_clock_skew_raises_the_lateness_by_the_skew() {
        let duration = Duration::from_secs(30);
        let plan = plan(220, 24, Model::Partition, duration);
        let skew = plan
            .whole_run
            .iter()
            .find(|s| s.kind == Kind::ClockSkew)
            .map(|s| s.amount)
            .expect("seed 220 run 24 skews the clocks");
        assert_eq!(skew, 2_607);
        let run = NemesisRun::new(plan);
        let mut settings = Settings::default();
        settings.window.lateness_secs = 3;
        run.settings(&mut settings);
        let behind = run.skews().into_iter().fold(0.0_f64, |a, s| a.max(-s));
        assert!((behind - 2.607).abs() < 1e-9, "{behind}");
        // What the data's jitter (3 s, the lateness as it was) leaves for the skew.
        assert!(
            settings.window.lateness_secs as f64 >= 3.0 + behind,
            "{settings:?}"
        );
        assert_eq!(settings.window.lateness_secs, 6);
    }

    #[test]
    fn a_seed_and_run_give_one_schedule_of_overlapping_faults() {
        let duration = Duration::from_secs(30);
        for run in 0..200 {
            let plan = plan(7, run, Model::Group, duration);
            assert_eq!(
                plan,
                super::plan(7, run, Model::Group, duration),
                "replayable"
            );
            let refusals = plan
                .steps
                .iter()
                .filter(|s| s.kind == Kind::FailingSink)
                .count();
            assert!(refusals <= 1, "run {run}: {plan:?}");
            assert!((3..=5).contains(&(plan.steps.len() - refusals)));
            // The first three overlap: each starts before the others end.
            let first: Vec<&Step> = {
                let mut s: Vec<&Step> = plan.steps.iter().collect();
                s.sort_by_key(|s| s.at_ms);
                s.into_iter().take(3).collect()
            };
            let latest_start = first.iter().map(|s| s.at_ms).max().unwrap();
            let earliest_end = first.iter().map(|s| s.at_ms + s.hold_ms).min().unwrap();
            assert!(latest_start < earliest_end, "run {run}: {plan:?}");
            // At most one broker process fault at a time.
            for a in &plan.steps {
                for b in &plan.steps {
                    if std::ptr::eq(a, b) || !(a.kind.on_process() && b.kind.on_process()) {
                        continue;
                    }
                    assert!(
                        a.at_ms + a.hold_ms <= b.at_ms || b.at_ms + b.hold_ms <= a.at_ms,
                        "run {run}: two broker faults at once: {plan:?}"
                    );
                }
            }
            for s in plan.steps.iter().filter(|s| s.kind != Kind::FailingSink) {
                assert!((1..=3).contains(&s.broker) && (0..PARTITIONS).contains(&s.partition));
                assert!(s.at_ms + s.hold_ms <= duration.as_millis() as u64 + 12_000);
            }
        }
        assert_ne!(
            plan(7, 0, Model::Group, duration),
            plan(8, 0, Model::Group, duration),
            "another seed, another schedule"
        );
        // Every kind shows up over a campaign.
        let kinds: std::collections::BTreeSet<Kind> = (0..200)
            .flat_map(|run| {
                let p = plan(3, run, Model::Group, duration);
                p.steps.into_iter().chain(p.whole_run).map(|s| s.kind)
            })
            .collect();
        assert_eq!(kinds.len(), 14, "{kinds:?}");
        // A refused output ends about one run in six (600 runs: 100 expected, σ ≈ 9).
        for seed in [3, 210, 211] {
            let refused = (0..600)
                .filter(|run| {
                    plan(seed, *run, Model::Group, duration)
                        .steps
                        .iter()
                        .any(|s| s.kind == Kind::FailingSink)
                })
                .count();
            assert!(
                (70..=130).contains(&refused),
                "seed {seed}: {refused} of 600"
            );
        }
    }

    #[test]
    fn flowing_means_frames_were_read_in_the_second_before() {
        let s = |ms: u64| Duration::from_millis(ms);
        let tick = |ms: u64, frames: u64| Tick {
            at: s(ms),
            frames,
            positions: BTreeMap::new(),
        };
        let samples: Samples = vec![
            tick(0, 0),
            tick(500, 0),
            tick(1000, 10),
            tick(1500, 10),
            tick(2500, 10),
        ];
        assert!(!flowing(&samples, s(500)), "nothing since the start");
        assert!(flowing(&samples, s(1000)), "since the start");
        assert!(flowing(&samples, s(1200)));
        assert!(!flowing(&samples, s(2600)), "stopped");
    }

    #[test]
    fn a_fault_is_caught_up_once_every_owned_partition_is_read_to_its_end_at_the_heal() {
        let p = |i: i32| PartitionId::of("t", i);
        let step = Step {
            kind: Kind::LinkCut,
            at_ms: 3_000,
            hold_ms: 4_000,
            broker: 1,
            partition: 0,
            amount: 0,
        };
        let run = NemesisRun::new(plan(1, 0, Model::Partition, Duration::from_secs(30)));
        for ends in [BTreeMap::from([(p(0), 100), (p(1), 50)]), BTreeMap::new()] {
            run.record(Applied {
                step,
                applied: true,
                while_flowing: true,
                healed_at_ms: Some(7_000.0),
                ends_at_heal: ends,
                caught_up_ms: None,
            });
        }
        let tick = |ms: u64, positions: &[(i32, i64)]| Tick {
            at: Duration::from_millis(ms),
            frames: 0,
            positions: positions.iter().map(|(i, at)| (p(*i), *at)).collect(),
        };
        let mut samples: Samples = vec![
            // Read up before the heal: the ends at the heal are further.
            tick(6_750, &[(0, 60), (1, 50)]),
            tick(7_250, &[(0, 90), (1, 50)]),
        ];
        assert!(!run.caught_up(&samples), "partition 0 still behind");
        // Partition 1 went to another member meanwhile: partition 0 is what counts.
        samples.push(tick(7_750, &[(0, 100)]));
        assert!(run.caught_up(&samples));
        let applied = run.applied.lock().unwrap();
        assert_eq!(applied[0].caught_up_ms, Some(750.0));
        // No ends learnt at the heal: no figure.
        assert_eq!(applied[1].caught_up_ms, None);
    }
}
