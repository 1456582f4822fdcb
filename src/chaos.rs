//! `kafka-actors chaos`: fault scenarios on the embedded cluster, or on a real one
//! (`--brokers`), while a data set with a known ground truth flows, each checked by an oracle
//! that knows every (partition, offset) produced.
//!
//! One scenario, one model: a fresh 3-broker embedded cluster (or, on a real cluster, a fresh
//! topic with replication factor 3), and a fresh topic; the generator produces
//! live (about six seconds of data); the service runs against the cluster while the fault is
//! injected; once the data is in, the service stops gracefully and a second run (the same
//! group, `--until-end`) drains what is left, as an operator's restart would. Then:
//! - every output line must be exact for the partitions it names, and every (window,
//!   partition) share of the truth must have been written: frames lost = the frames of shares
//!   never written; frames duplicated = the frames of shares written more than once;
//! - throughout the run, committed offsets and the output file were sampled every 50 ms: a
//!   committed offset is ahead when a valid frame below it belongs to a share not yet written
//!   (reading the commits first and the file second, so a flush in between cannot hide one);
//! - the final commits must equal the end offsets;
//! - recovery is the time from the fault to the faulted partition (or, for cluster-wide
//!   faults, any partition) delivering frames again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use actors::config::{GeneratorConfig, KafkaConfig, SinkKind};
use actors::failure::{PartitionFailure, StopCause};
use actors::faults::{FaultPlan, PartitionFault, Times};
use actors::generator::{self, GeneratorReport};
use actors::kafka::{self, BrokerError, BrokerRequest, EmbeddedCluster, FrameProducer};
use actors::metrics::{GetMetrics, MetricsSnapshot};
use actors::sink::{read_window_lines, WindowLine};
use actors::supervisor::RootSupervisor;
use serde::Serialize;

use crate::settings::{Model, Settings};
use crate::{blocking, run, run_with_faults, RunError};

/// Partitions of every scenario's topic.
const PARTITIONS: i32 = 4;
/// The partition that faults aimed at one partition hit.
const TARGET: i32 = 0;
/// How long a recovery is waited for, from the fault.
const RECOVERY_WAIT: Duration = Duration::from_secs(60);
/// When the fault is injected, after the service started.
const FAULT_AT: Duration = Duration::from_millis(2_500);

/// A fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A partition actor panics; it is restarted from its last commit.
    PartitionPanic,
    /// A partition fails at every start; the restart budget runs out and the service stops
    /// with an error naming it.
    RestartBudget,
    /// A partition stops reading without failing; the watchdog restarts it.
    Stall,
    /// The leader of a partition moves to another broker.
    LeaderMove,
    /// Leaders flap back and forth between brokers.
    LeaderFlap,
    /// The broker leading a partition goes down for 3 s; its partitions' leaders are moved
    /// away (the embedded cluster does not move them itself); then it comes back.
    BrokerDown,
    /// Every broker goes down for 2 s; they come back one at a time, 1.5 s apart, so the
    /// partitions led by the last one stay out of reach for 5 s while the others resume.
    AllBrokersDown,
    /// Fetch requests fail (not leader, unknown partition, timeouts, disconnects).
    FetchErrors,
    /// Offset commits fail with retriable errors.
    CommitErrors,
    /// Offset commits fail with an error that is not retriable (authorization).
    CommitErrorsFatal,
    /// 300 ms added to every broker round trip for 3 s.
    Latency,
    /// Invalid frames of every kind in the stream, and as the very last frame of each
    /// partition.
    PoisonFrames,
    /// The output takes 400 ms per write.
    SlowSink,
    /// A second group member joins mid-stream and leaves again (group model only).
    MemberChurn,
    /// The service process is killed with SIGKILL mid-stream and started again.
    Sigkill,
}

impl Scenario {
    /// Every scenario, in order.
    pub fn all() -> Vec<Scenario> {
        use clap::ValueEnum;
        Scenario::value_variants().to_vec()
    }

    /// The scenario's name on the command line.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// Whether the scenario means anything for `model`.
    pub fn applies_to(self, model: Model) -> bool {
        self != Scenario::MemberChurn || model == Model::Group
    }

    /// Whether the scenario can run on `target`: a real cluster has no request-level fault
    /// injection, and broker faults need its control command.
    pub fn runs_on(self, target: &Target) -> bool {
        match target {
            Target::Embedded => true,
            Target::Brokers { control, .. } => match self {
                Scenario::FetchErrors
                | Scenario::CommitErrors
                | Scenario::CommitErrorsFatal
                | Scenario::Latency
                | Scenario::LeaderFlap => false,
                Scenario::LeaderMove | Scenario::BrokerDown | Scenario::AllBrokersDown => {
                    control.is_some()
                }
                _ => true,
            },
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Frames of each scenario's data set.
    pub frames: u64,
    /// Where each scenario's output and the report go.
    pub out: PathBuf,
    /// The service's executable, for the SIGKILL scenario.
    pub executable: Option<PathBuf>,
    /// Where the scenarios run.
    pub target: Target,
}

/// The cluster the scenarios run on.
#[derive(Debug, Clone, Default)]
pub enum Target {
    /// A fresh embedded cluster per scenario; every scenario runs.
    #[default]
    Embedded,
    /// A real cluster. Broker faults need `control`: a command that takes `kill N`,
    /// `restart N|all`, `kill all` and `move-leader TOPIC PARTITION N` (N a broker id), as
    /// `tests/kafka/cluster` does; without it those scenarios are skipped. Faults that only the
    /// embedded cluster can inject (request errors, latency) are skipped too.
    Brokers {
        /// Bootstrap servers.
        brokers: String,
        /// The broker control command.
        control: Option<PathBuf>,
    },
}

/// The cluster of one scenario run.
enum ChaosCluster {
    Embedded(Arc<EmbeddedCluster>),
    Real {
        brokers: String,
        control: Option<PathBuf>,
    },
}

impl ChaosCluster {
    fn bootstrap(&self) -> &str {
        match self {
            ChaosCluster::Embedded(cluster) => cluster.bootstrap_servers(),
            ChaosCluster::Real { brokers, .. } => brokers,
        }
    }

    fn embedded(&self) -> Option<&EmbeddedCluster> {
        match self {
            ChaosCluster::Embedded(cluster) => Some(cluster),
            ChaosCluster::Real { .. } => None,
        }
    }

    /// Runs the control command (real clusters), logging a failure.
    async fn control(&self, args: &[String]) -> bool {
        let ChaosCluster::Real {
            control: Some(control),
            ..
        } = self
        else {
            return false;
        };
        let (control, args) = (control.clone(), args.to_vec());
        let status = blocking(move || {
            std::process::Command::new(&control)
                .args(&args)
                .stdout(std::process::Stdio::null())
                .status()
        })
        .await;
        match status {
            Ok(Ok(status)) if status.success() => true,
            other => {
                tracing::error!(?other, "The broker control command failed.");
                false
            }
        }
    }

    async fn move_leader(&self, topic: &str, partition: i32, to: i32) {
        match self {
            ChaosCluster::Embedded(cluster) => {
                let _ = cluster.move_leader(topic, partition, to);
            }
            ChaosCluster::Real { .. } => {
                self.control(&[
                    "move-leader".into(),
                    topic.into(),
                    partition.to_string(),
                    to.to_string(),
                ])
                .await;
            }
        }
    }

    async fn broker_down(&self, broker: Option<i32>) {
        self.power(Power::Down, broker).await;
    }

    async fn broker_up(&self, broker: Option<i32>) {
        self.power(Power::Up, broker).await;
    }

    /// Takes `broker` (every broker, when `None`) down or brings it back.
    async fn power(&self, power: Power, broker: Option<i32>) {
        match self {
            ChaosCluster::Embedded(cluster) => {
                for broker in broker.map_or(1..=3, |b| b..=b) {
                    let _ = match power {
                        Power::Down => cluster.broker_down(broker),
                        Power::Up => cluster.broker_up(broker),
                    };
                }
            }
            ChaosCluster::Real { .. } => {
                let verb = match power {
                    Power::Down => "kill",
                    Power::Up => "restart",
                };
                let which = broker.map_or_else(|| "all".to_owned(), |b| b.to_string());
                self.control(&[verb.into(), which]).await;
            }
        }
    }
}

/// A broker fault's two halves.
#[derive(Debug, Clone, Copy)]
enum Power {
    Down,
    Up,
}

/// The oracle's verdict on one scenario run with one model.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// The model.
    pub model: Model,
    /// Frames stored (valid and invalid).
    pub frames: u64,
    /// Of those, records the producer stored twice: a batch retried across a broker outage
    /// is sometimes appended again though only one copy is confirmed. The service must count
    /// both, and so does the truth.
    pub unreported_records: u64,
    /// Frames of window shares never written.
    pub lost: u64,
    /// Frames of window shares written more than once (at-least-once repeats).
    pub duplicates: u64,
    /// Frames the service counted as late (their window was closed when they were read),
    /// live run and drain together. Replays after a restart or a lost assignment count here
    /// (frames of windows the commit metadata says are written); a line short of the truth
    /// with late frames points at a frame that arrived after its window was written.
    pub late: u64,
    /// Records passed over unread (deleted before they were read), live run and drain.
    pub skipped_records: u64,
    /// Every line exact and every share written.
    pub windows_correct: bool,
    /// The most valid frames ever below a committed offset while their window share was not
    /// yet written (must be 0).
    pub max_committed_ahead: u64,
    /// Final commits equal the end offsets.
    pub committed_to_end: bool,
    /// Milliseconds from the fault to frames flowing again (none for faults that stop
    /// nothing, or when the run ended first).
    pub recovery_ms: Option<f64>,
    /// Partition restarts (all causes).
    pub restarts: u64,
    /// Of those, by the stall watchdog.
    pub watchdog_recoveries: u64,
    /// Partition leader changes seen.
    pub leader_changes: u64,
    /// The error the service stopped with, when it stopped on its own.
    pub stopped_with: Option<String>,
    /// Why it stopped, when the run was in this process.
    #[serde(skip)]
    pub stop_cause: Option<crate::Failure>,
    /// Scenario-specific expectations that did not hold.
    pub problems: Vec<String>,
    /// Everything held.
    pub passed: bool,
}

/// Committed offsets and written shares at one moment.
struct Sample {
    committed: BTreeMap<i32, i64>,
    written: BTreeSet<(i64, i32)>,
}

/// Samples committed offsets, then the output file, every 50 ms until stopped.
struct Watcher {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(kafka: KafkaConfig, files: Vec<PathBuf>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, into) = (stop.clone(), samples.clone());
        let partitions: Vec<i32> = (0..PARTITIONS).collect();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(committed) = kafka::committed_positions(&kafka, &partitions) {
                    let written = files
                        .iter()
                        .flat_map(|f| lines(f))
                        .flat_map(|l| {
                            let start = l.window_start;
                            l.partitions.into_iter().map(move |p| (start, p))
                        })
                        .collect();
                    into.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Sample { committed, written });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watcher {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn lines(path: &Path) -> Vec<WindowLine> {
    if path.exists() {
        // A line being appended may be cut short: read what parses.
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    } else {
        Vec::new()
    }
}

/// The settings of one scenario run against `brokers`.
fn scenario_settings(
    base: &Settings,
    scenario: Scenario,
    model: Model,
    brokers: &str,
    topic: &str,
    out: &Path,
    real: bool,
) -> Settings {
    let mut s = base.clone();
    s.model = model;
    s.kafka.brokers = brokers.to_owned();
    s.kafka.topic = topic.to_owned();
    s.kafka.group = format!("{topic}-group");
    s.window.length_secs = 10;
    s.window.lateness_secs = 3;
    // The service default: a partition that is caught up and quiet for 5 s stops holding the
    // watermark. In the all-brokers outage the last broker's partitions are out of reach for
    // 5 s, longer than their 3 s here: quiet time while a partition's leader is out of reach
    // must not count.
    s.window.idle_after_ms = if scenario == Scenario::AllBrokersDown {
        3_000
    } else {
        5_000
    };
    s.flush.interval_ms = 100;
    s.partition.poll_timeout_ms = 50;
    s.metrics.log_interval_ms = 0;
    s.sink.kind = SinkKind::File;
    s.sink.path = out.display().to_string();
    s.sink.label_partitions = true;
    s.sink.write_delay_ms = if scenario == Scenario::SlowSink {
        400
    } else {
        0
    };
    s.supervisor.backoff_initial_ms = 50;
    s.supervisor.backoff_max_ms = 1_000;
    s.supervisor.max_restarts = 3;
    s.supervisor.restart_window_secs = 60;
    s.supervisor.stall_timeout_ms = if scenario == Scenario::Stall {
        2_000
    } else {
        10_000
    };
    // Statistics tell when a partition's leader is out of reach; they must come well within
    // the idle time.
    s.supervisor.stats_interval_ms = if scenario == Scenario::AllBrokersDown {
        250
    } else {
        1_000
    };
    // Kafka refuses sessions below its group.min.session.timeout.ms (6 s by default).
    s.group.session_timeout_ms = if real { 6_000 } else { 3_000 };
    s.group.revoke_timeout_ms = if real { 3_000 } else { 2_000 };
    s.run.until_end = false;
    s.run.stop_after = String::new();
    s
}

/// Runs one scenario with one model and judges it.
///
/// # Errors
/// The embedded cluster, the generator or the drain run failed (a failure of the service
/// under the fault is part of the verdict, not an error).
pub async fn run_scenario(
    base: &Settings,
    scenario: Scenario,
    model: Model,
    options: &ChaosOptions,
) -> Result<ScenarioResult, RunError> {
    let name = format!("{}-{}", scenario.name(), model.as_str());
    let dir = options.out.join(&name);
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Report {
        path: dir.display().to_string(),
        source,
    })?;
    let out = dir.join("windows.jsonl");
    let second = dir.join("windows-member-b.jsonl");
    for file in [&out, &second] {
        let _ = std::fs::remove_file(file);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = format!("chaos-{name}-{}-{stamp}", std::process::id());
    let cluster = Arc::new(match &options.target {
        Target::Embedded => {
            let cluster = EmbeddedCluster::start(3)?;
            cluster.create_topic(&topic, PARTITIONS, 3)?;
            ChaosCluster::Embedded(Arc::new(cluster))
        }
        Target::Brokers { brokers, control } => {
            let kafka = KafkaConfig {
                brokers: brokers.clone(),
                topic: topic.clone(),
                ..KafkaConfig::default()
            };
            blocking(move || kafka::create_topic(&kafka, PARTITIONS, 3)).await??;
            ChaosCluster::Real {
                brokers: brokers.clone(),
                control: control.clone(),
            }
        }
    });
    let real = cluster.embedded().is_none();
    let settings = scenario_settings(
        base,
        scenario,
        model,
        cluster.bootstrap(),
        &topic,
        &out,
        real,
    );
    tracing::info!(scenario = %scenario.name(), model = model.as_str(), "Scenario starts.");

    // About six seconds of data on the embedded cluster; thirty on a real one, where a broker
    // fault takes longer (a killed broker's leaderships move once its session ends, a restart
    // takes seconds, Kafka's reassignment tools take up to 20 s to move a leader on two busy
    // cores) and must land while frames still flow, or no recovery can be seen.
    let seconds = if real { 30 } else { 6 };
    let data = GeneratorConfig {
        rate: (options.frames / seconds).max(1),
        frames: options.frames,
        users: 2_000,
        jitter_secs: 3.0,
        bad_ratio: if scenario == Scenario::PoisonFrames {
            0.05
        } else {
            0.0
        },
        seed: 11,
        event_rate: 500.0,
        start_ts: 1_790_000_000.0,
        truth_file: String::new(),
    };
    // The generator's producer retries a lost broker every 100 ms, so once brokers return what
    // it buffered is stored at once: the scenarios judge how the service waits for it, not how
    // long the producer backs off.
    let mut producing_to = settings.kafka.clone();
    producing_to
        .properties
        .insert("reconnect.backoff.max.ms".to_owned(), "100".to_owned());
    let generator = generator::spawn(
        &producing_to,
        &data,
        settings.frames.limits(),
        settings.window.length_secs,
        PARTITIONS,
        true,
    )
    .map_err(|e| RunError::Task(format!("cannot start the generator thread: {e}")))?;
    let watcher = Watcher::start(settings.kafka.clone(), vec![out.clone(), second.clone()]);

    // The data is in (plus the poison tail): the stop signal for the service.
    let (data_in_tx, data_in) = tokio::sync::oneshot::channel::<()>();
    let producing = {
        let (kafka, poison) = (settings.kafka.clone(), scenario == Scenario::PoisonFrames);
        // Spawned now (not when awaited): it is what stops the service.
        actix_rt::task::spawn_blocking(
            move || -> Result<(GeneratorReport, BTreeMap<i32, i64>), RunError> {
                let report = generator.wait().map_err(RunError::Generator)?;
                let mut ends = report.end_offsets.clone();
                if poison {
                    append_poison_tail(&kafka, &mut ends)?;
                }
                std::thread::sleep(Duration::from_millis(1_500));
                let _ = data_in_tx.send(());
                Ok((report, ends))
            },
        )
    };

    let mut stopped_with = None;
    let mut stop_cause = None;
    let notes = Arc::new(DriverNotes::default());
    let recovery_ms;
    let mut metrics = MetricsSnapshot::default();
    if scenario == Scenario::Sigkill {
        let executable = options
            .executable
            .clone()
            .ok_or_else(|| RunError::Task("the SIGKILL scenario needs the executable".into()))?;
        let (recovery, error) = run_killed_and_restarted(&executable, &settings, data_in).await?;
        recovery_ms = recovery;
        stopped_with = error;
    } else {
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<Addr<RootSupervisor>>();
        let seen = notes.clone();
        let (driver_done_tx, driver_done) = tokio::sync::oneshot::channel::<()>();
        let faults = FaultPlan::default();
        let driver = {
            let (cluster, topic, faults) = (cluster.clone(), topic.clone(), faults.clone());
            let member_b = (scenario == Scenario::MemberChurn).then(|| {
                let mut b = settings.clone();
                b.sink.path = second.display().to_string();
                b
            });
            actix_rt::spawn(async move {
                let _done = driver_done_tx;
                let supervisor = addr_rx.await.ok()?;
                actix_rt::time::sleep(FAULT_AT).await;
                drive_fault(
                    scenario,
                    &supervisor,
                    &faults,
                    &cluster,
                    &topic,
                    member_b,
                    &seen,
                )
                .await
            })
        };
        // The service stops once the data is in and the fault's recovery has been seen (or
        // its wait ran out): a slow recovery is measured, not cut short.
        let result = run_with_faults(
            settings.clone(),
            async move {
                let _ = data_in.await;
                let _ = driver_done.await;
            },
            Some(faults),
            move |supervisor| {
                let _ = addr_tx.send(supervisor);
            },
        )
        .await;
        match result {
            Ok(report) => metrics = report.summary.metrics,
            Err(error) => {
                stopped_with = Some(crate::error_chain(&error));
                if let RunError::Failed { summary, cause } = error {
                    metrics = summary.metrics;
                    stop_cause = Some(cause);
                }
            }
        }
        recovery_ms = driver.await.ok().flatten().flatten();
    }
    let (mut report, ends) = producing
        .await
        .map_err(|e| RunError::Task(e.to_string()))??;

    // Drain: what is left, from the commits, as a restarted service would.
    let mut drain = settings.clone();
    drain.run.until_end = true;
    drain.sink.write_delay_ms = 0;
    let drained = run(drain, std::future::pending()).await?;
    let samples = watcher.finish();
    let final_commits = committed(&settings.kafka).await?;
    let unreported = count_unreported(&settings, &data, &mut report).await?;

    let mut written = read_window_lines(&out).map_err(|source| RunError::Report {
        path: out.display().to_string(),
        source,
    })?;
    written.extend(lines(&second));
    let verdict = judge(&written, &report, &samples);
    // Invalid frames appended after the generator's (the poison tail).
    let tail = (ends.values().sum::<i64>() - report.end_offsets.values().sum::<i64>()) as u64;
    let produced_invalid = report.truth.invalid.values().sum::<u64>() + tail;
    let combined = |f: fn(&MetricsSnapshot) -> u64| f(&metrics) + f(&drained.summary.metrics);
    let mut result = ScenarioResult {
        scenario,
        model,
        frames: report.delivered + unreported + tail,
        unreported_records: unreported,
        lost: verdict.lost,
        duplicates: verdict.duplicates,
        late: combined(|m| m.late),
        skipped_records: combined(|m| m.skipped_records),
        windows_correct: verdict.lost == 0 && verdict.inexact.is_empty(),
        max_committed_ahead: verdict.max_committed_ahead,
        committed_to_end: final_commits == ends,
        recovery_ms,
        restarts: combined(|m| m.restarts),
        watchdog_recoveries: combined(|m| m.watchdog_recoveries),
        leader_changes: metrics.leader_changes.len() as u64,
        stopped_with,
        stop_cause,
        problems: Vec::new(),
        passed: false,
    };
    if !verdict.inexact.is_empty() {
        result.problems.push(format!(
            "{} lines differ from the truth (users, frames written vs true): {}",
            verdict.inexact.len(),
            verdict.inexact.join("; ")
        ));
    }
    if !result.committed_to_end {
        result.problems.push(format!(
            "final commits {final_commits:?} differ from the end offsets {ends:?}"
        ));
    }
    let member_b_assigned = notes.member_b_assignments.load(Ordering::Relaxed) > 0;
    expectations(
        &mut result,
        &metrics,
        &drained.summary.metrics,
        produced_invalid,
        member_b_assigned,
    );
    result.passed = result.lost == 0
        && result.windows_correct
        && result.max_committed_ahead == 0
        && result.problems.is_empty();
    tracing::info!(scenario = %scenario.name(), model = model.as_str(), passed = result.passed, "Scenario done.");
    Ok(result)
}

/// What each scenario must show beyond the common checks.
fn expectations(
    result: &mut ScenarioResult,
    live: &MetricsSnapshot,
    drained: &MetricsSnapshot,
    produced_invalid: u64,
    member_b_assigned: bool,
) {
    let problems = &mut result.problems;
    match result.scenario {
        // Three restarts (supervisor.max_restarts), then the fourth failure stops the service.
        Scenario::RestartBudget => {
            match &result.stop_cause {
                Some(crate::Failure::Stopped(StopCause::RestartBudget {
                    partition: TARGET,
                    failures: 4,
                    last: PartitionFailure::Source { message, .. },
                    ..
                })) if message.ends_with("injected failure") => {}
                other => problems.push(format!(
                    "expected the service to stop naming partition {TARGET}, 4 failures and the cause, got {other:?}"
                )),
            }
            // The figures of the stopped run come with its error.
            if live.restarts != 3 {
                problems.push(format!(
                    "expected 3 restarts before the stop, the stopped run reports {}",
                    live.restarts
                ));
            }
        }
        _ => {
            if let Some(error) = &result.stopped_with {
                problems.push(format!("the service stopped: {error}"));
            }
        }
    }
    match result.scenario {
        Scenario::PartitionPanic if live.restarts == 0 => {
            problems.push("no restart after the panic".into());
        }
        Scenario::PartitionPanic
            if !live.restart_log.iter().any(|r| {
                r.partition == TARGET && matches!(r.cause, PartitionFailure::Panicked { .. })
            }) =>
        {
            problems.push("the restart does not name the panic".into());
        }
        // Retriable commit errors are retried inside librdkafka and never reach the service;
        // an authorization error does.
        Scenario::CommitErrorsFatal if live.commit_failures == 0 => {
            problems.push("no commit failed: the fault did not reach the service".into());
        }
        Scenario::MemberChurn if !member_b_assigned => {
            problems.push("the second member was never assigned a partition".into());
        }
        Scenario::Stall if live.watchdog_recoveries == 0 => {
            problems.push("the watchdog did not recover the stalled partition".into());
        }
        Scenario::LeaderMove | Scenario::LeaderFlap | Scenario::BrokerDown
            if live.leader_changes.is_empty() =>
        {
            problems.push("no leader change recorded".into());
        }
        // Every invalid frame was counted (replays may count some twice). That the poison
        // tail was passed shows in the commits reaching the end offsets, checked for all.
        Scenario::PoisonFrames => {
            let invalid: u64 =
                live.invalid.values().sum::<u64>() + drained.invalid.values().sum::<u64>();
            if invalid < produced_invalid {
                problems.push(format!(
                    "{invalid} invalid frames counted, {produced_invalid} produced"
                ));
            }
        }
        _ => {}
    }
}

/// Checks the delivery reports against the log. When some record in the generator's range of
/// offsets is not named by any report, the reports cannot be trusted as the truth: a retried
/// batch may be stored twice with one copy confirmed, and after the idempotent producer
/// starts a new epoch (a cluster restart) reports may name other offsets than the records
/// took. The truth and the placements are then rebuilt from the log itself, each record
/// recognised by its payload among the frames the generator built (what the service reads
/// is what it must count). Returns how many records the log holds beyond the confirmed
/// deliveries.
async fn count_unreported(
    settings: &Settings,
    data: &GeneratorConfig,
    report: &mut GeneratorReport,
) -> Result<u64, RunError> {
    let kafka = settings.kafka.clone();
    let stored =
        blocking(move || kafka::stored_records(&kafka, &(0..PARTITIONS).collect::<Vec<_>>()))
            .await??;
    let in_range: Vec<(i32, i64, Vec<u8>)> = stored
        .into_iter()
        .filter(|(partition, offset, _)| {
            report
                .end_offsets
                .get(partition)
                .is_some_and(|end| offset < end)
        })
        .collect();
    let known: std::collections::HashSet<(i32, i64)> = report
        .placements
        .iter()
        .map(|p| (p.partition, p.offset))
        .collect();
    let unnamed = in_range
        .iter()
        .filter(|(partition, offset, _)| !known.contains(&(*partition, *offset)))
        .count();
    if unnamed == 0 {
        return Ok(0);
    }
    let frames = generator::FrameGenerator::new(data, settings.frames.limits(), PARTITIONS);
    let kinds: std::collections::HashMap<Vec<u8>, generator::FrameKind> = (0..data.frames)
        .map(|index| {
            let frame = frames.frame(index, 0.0);
            (frame.payload, frame.kind)
        })
        .collect();
    let mut truth = generator::GroundTruth::new(settings.window.length_secs, PARTITIONS);
    let mut placements = Vec::with_capacity(in_range.len());
    for (partition, offset, payload) in &in_range {
        let kind = kinds.get(payload).ok_or_else(|| {
            RunError::Task(format!(
                "partition {partition} offset {offset} holds a record the generator did not build"
            ))
        })?;
        placements.push(generator::Placement {
            partition: *partition,
            offset: *offset,
            window: truth.record(*partition, kind),
        });
    }
    let extra = (in_range.len() as u64).saturating_sub(report.delivered);
    tracing::info!(
        unnamed,
        extra,
        "Delivery reports do not name every stored record; the truth is rebuilt from the log."
    );
    report.truth = truth;
    report.placements = placements;
    Ok(extra)
}

/// Appends one invalid frame of a different kind to the end of every partition.
fn append_poison_tail(kafka: &KafkaConfig, ends: &mut BTreeMap<i32, i64>) -> Result<(), RunError> {
    let poison: [&[u8]; 4] = [
        b"{not json",
        b"[1, 2, 3]",
        br#"{"ts": 1790000000}"#,
        br#"{"ts": "soon", "uid": "u"}"#,
    ];
    let producer = FrameProducer::new(kafka)?;
    for partition in 0..PARTITIONS {
        let payload = poison[partition as usize % poison.len()];
        producer
            .send(u64::MAX - partition as u64, partition, b"poison", payload)
            .map_err(|e| RunError::Task(format!("producing a poison frame: {e}")))?;
        *ends.entry(partition).or_default() += 1;
    }
    producer
        .flush(Duration::from_secs(10))
        .map_err(|e| RunError::Task(format!("producing the poison frames: {e}")))?;
    Ok(())
}

/// Injects the scenario's fault and measures the recovery.
async fn drive_fault(
    scenario: Scenario,
    supervisor: &Addr<RootSupervisor>,
    faults: &FaultPlan,
    cluster: &ChaosCluster,
    topic: &str,
    member_b: Option<Settings>,
    notes: &DriverNotes,
) -> Option<Option<f64>> {
    let inject = |fault: PartitionFault, times: Times| faults.inject(TARGET, fault, times);
    let started = Instant::now();
    let watch = match scenario {
        Scenario::PartitionPanic => {
            inject(PartitionFault::Panic, Times::Once);
            Watch::Restart(TARGET)
        }
        Scenario::RestartBudget => {
            inject(PartitionFault::Fail, Times::EveryOpen);
            Watch::Nothing
        }
        Scenario::Stall => {
            inject(PartitionFault::StallMs(120_000), Times::Once);
            Watch::Restart(TARGET)
        }
        Scenario::LeaderMove => {
            let leader = leader_of(supervisor, TARGET).await;
            cluster
                .move_leader(topic, TARGET, other_broker(leader))
                .await;
            // From the move itself: on a real cluster the reassignment tools take seconds
            // before the election that moves the leader.
            return Some(recovery(supervisor, Watch::Partition(TARGET), Instant::now()).await);
        }
        Scenario::LeaderFlap => {
            let first = leader_of(supervisor, TARGET).await;
            let second = other_broker(first);
            cluster.move_leader(topic, TARGET, second).await;
            // Recovery from the first move; then it flaps back and forth.
            let recovery = recovery(supervisor, Watch::Partition(TARGET), started).await;
            for to in [first, second, first] {
                actix_rt::time::sleep(Duration::from_millis(1_200)).await;
                cluster.move_leader(topic, TARGET, to).await;
            }
            return Some(recovery);
        }
        Scenario::BrokerDown => {
            let leader = leader_of(supervisor, TARGET).await;
            let leaders = supervisor.send(GetMetrics).await.ok()?.partitions;
            cluster.broker_down(Some(leader)).await;
            // The embedded cluster does not move leaders itself; Kafka elects new ones from
            // the in-sync replicas once the broker's session ends.
            if let Some(embedded) = cluster.embedded() {
                for (partition, metrics) in &leaders {
                    if metrics.leader == Some(leader) || *partition == TARGET {
                        let _ = embedded.move_leader(topic, *partition, other_broker(leader));
                    }
                }
            }
            let recovery = recovery(supervisor, Watch::Partition(TARGET), started).await;
            let down_for = if cluster.embedded().is_some() { 3 } else { 10 };
            actix_rt::time::sleep(Duration::from_secs(down_for).saturating_sub(started.elapsed()))
                .await;
            cluster.broker_up(Some(leader)).await;
            return Some(recovery);
        }
        Scenario::AllBrokersDown if cluster.embedded().is_none() => {
            // The whole cluster stops and starts again (all nodes at once; the control
            // command returns when they are registered).
            cluster.broker_down(None).await;
            actix_rt::time::sleep(Duration::from_secs(2)).await;
            let (recovery, ()) = tokio::join!(
                recovery(supervisor, Watch::Any, started),
                cluster.broker_up(None)
            );
            return Some(recovery);
        }
        Scenario::AllBrokersDown => {
            cluster.broker_down(None).await;
            actix_rt::time::sleep(Duration::from_secs(2)).await;
            cluster.broker_up(Some(1)).await;
            let rest = async {
                for broker in 2..=3 {
                    actix_rt::time::sleep(Duration::from_millis(1_500)).await;
                    cluster.broker_up(Some(broker)).await;
                }
            };
            let (recovery, ()) = tokio::join!(recovery(supervisor, Watch::Any, started), rest);
            return Some(recovery);
        }
        Scenario::FetchErrors => {
            let cluster = cluster.embedded()?;
            let _ = cluster.fail_next(
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
            Watch::Nothing
        }
        Scenario::CommitErrors => {
            let cluster = cluster.embedded()?;
            let _ = cluster.fail_next(
                BrokerRequest::OffsetCommit,
                &[
                    BrokerError::RequestTimedOut,
                    BrokerError::CoordinatorLoadInProgress,
                    BrokerError::NotCoordinator,
                    BrokerError::RequestTimedOut,
                ],
            );
            Watch::Nothing
        }
        Scenario::CommitErrorsFatal => {
            let cluster = cluster.embedded()?;
            let _ = cluster.fail_next(
                BrokerRequest::OffsetCommit,
                &[BrokerError::GroupAuthorizationFailed; 3],
            );
            Watch::Nothing
        }
        Scenario::Latency => {
            let cluster = cluster.embedded()?;
            for broker in 1..=3 {
                let _ = cluster.broker_latency(broker, Duration::from_millis(300));
            }
            actix_rt::time::sleep(Duration::from_secs(3)).await;
            for broker in 1..=3 {
                let _ = cluster.broker_latency(broker, Duration::ZERO);
            }
            Watch::Nothing
        }
        Scenario::MemberChurn => {
            let b = member_b?;
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
            let run = crate::run_with(b, leave, move |member| {
                let _ = started_tx.send(member);
            });
            if let Ok(report) = run.await {
                let assigned = report
                    .summary
                    .group_history
                    .iter()
                    .filter(|r| matches!(r.event, actors::intake::GroupEvent::Assigned { .. }))
                    .count();
                notes
                    .member_b_assignments
                    .store(assigned as u64, Ordering::Relaxed);
            }
            Watch::Nothing
        }
        Scenario::PoisonFrames | Scenario::SlowSink | Scenario::Sigkill => Watch::Nothing,
    };
    Some(recovery(supervisor, watch, started).await)
}

/// What the fault driver saw that the run's report cannot tell.
#[derive(Debug, Default)]
struct DriverNotes {
    /// Partitions the second member was assigned.
    member_b_assignments: AtomicU64,
}

/// What counts as consuming again after a fault.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// The fault stops nothing by itself.
    Nothing,
    /// The partition delivers a chunk.
    Partition(i32),
    /// The partition is restarted and then delivers a chunk.
    Restart(i32),
    /// Any partition delivers frames.
    Any,
}

/// Milliseconds from `since` until the watched progress, polled every 20 ms for up to `RECOVERY_WAIT`.
async fn recovery(supervisor: &Addr<RootSupervisor>, watch: Watch, since: Instant) -> Option<f64> {
    let chunks = |m: &MetricsSnapshot, p: i32| m.partitions.get(&p).map_or(0, |p| p.chunks);
    let first = supervisor.send(GetMetrics).await.ok()?;
    let mut reference: Option<u64> = match watch {
        Watch::Nothing => return None,
        Watch::Partition(p) => Some(chunks(&first, p)),
        Watch::Restart(_) => None,
        Watch::Any => Some(first.frames),
    };
    while since.elapsed() < RECOVERY_WAIT {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let now = supervisor.send(GetMetrics).await.ok()?;
        let progressed = match (watch, reference) {
            (Watch::Partition(p), Some(r)) => chunks(&now, p) > r,
            (Watch::Any, Some(r)) => now.frames > r,
            (Watch::Restart(p), None) => {
                if now.restarts > first.restarts {
                    reference = Some(chunks(&now, p));
                }
                false
            }
            (Watch::Restart(p), Some(r)) => chunks(&now, p) > r,
            _ => false,
        };
        if progressed {
            return Some(since.elapsed().as_secs_f64() * 1e3);
        }
    }
    None
}

/// The broker leading `partition` as the service last saw it (after up to 5 s of waiting for
/// the first statistics).
async fn leader_of(supervisor: &Addr<RootSupervisor>, partition: i32) -> i32 {
    for _ in 0..50 {
        if let Ok(m) = supervisor.send(GetMetrics).await {
            if let Some(leader) = m.partitions.get(&partition).and_then(|p| p.leader) {
                return leader;
            }
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    1
}

/// Another broker of the three.
fn other_broker(broker: i32) -> i32 {
    broker % 3 + 1
}

/// The SIGKILL scenario: the service runs as a child process, is killed mid-stream, started
/// again, and stopped with SIGTERM once the data is in. Answers the time from the kill to the
/// new process's first committed progress, and the error if the second process failed.
async fn run_killed_and_restarted(
    executable: &Path,
    settings: &Settings,
    data_in: tokio::sync::oneshot::Receiver<()>,
) -> Result<(Option<f64>, Option<String>), RunError> {
    let spawn = || {
        std::process::Command::new(executable)
            .args(["run", "--model", settings.model.as_str()])
            .args(["--brokers", &settings.kafka.brokers])
            .args(["--topic", &settings.kafka.topic])
            .args(["--group", &settings.kafka.group])
            .envs(child_env(settings))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| RunError::Task(format!("cannot start {}: {e}", executable.display())))
    };
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
        .map_err(|e| RunError::Task(format!("waiting for the service: {e}")))?;
    let error = (!status.success()).then(|| format!("the restarted service exited with {status}"));
    Ok((recovery, error))
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
        ("SINK__KIND", "file".to_owned()),
        ("SINK__PATH", settings.sink.path.clone()),
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

/// The group's committed offsets of every partition that has one.
async fn committed(kafka: &KafkaConfig) -> Result<BTreeMap<i32, i64>, RunError> {
    let kafka = kafka.clone();
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    Ok(blocking(move || kafka::committed_positions(&kafka, &partitions)).await??)
}

async fn committed_sum(kafka: &KafkaConfig) -> i64 {
    committed(kafka).await.map_or(0, |c| c.values().sum())
}

/// The oracle's counts.
struct Verdict {
    lost: u64,
    duplicates: u64,
    /// Every line that differs from the truth: its window, partitions, and both counts.
    inexact: Vec<String>,
    max_committed_ahead: u64,
}

fn judge(written: &[WindowLine], report: &GeneratorReport, samples: &[Sample]) -> Verdict {
    let truth = &report.truth;
    let mut inexact = Vec::new();
    let mut seen: BTreeMap<(i64, i32), u64> = BTreeMap::new();
    for line in written {
        let expected = line
            .partitions
            .iter()
            .map(|p| truth.share(line.window_start, *p))
            .fold((0, 0), |acc, share| (acc.0 + share.0, acc.1 + share.1));
        if (line.unique_users, line.frames) != expected {
            inexact.push(format!(
                "window {} {:?}: ({}, {}) vs {expected:?}",
                line.window_start, line.partitions, line.unique_users, line.frames
            ));
        }
        for partition in &line.partitions {
            *seen.entry((line.window_start, *partition)).or_default() += 1;
        }
    }
    let (mut lost, mut duplicates) = (0, 0);
    for window in truth.lines() {
        for partition in 0..PARTITIONS {
            let frames = truth.share(window.window_start, partition).1;
            if frames == 0 {
                continue;
            }
            match seen.get(&(window.window_start, partition)).copied() {
                None | Some(0) => lost += frames,
                Some(times) => duplicates += (times - 1) * frames,
            }
        }
    }
    // Valid frames by partition, in offset order, with their windows.
    let mut frames: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for placement in &report.placements {
        if let Some(window) = placement.window {
            frames
                .entry(placement.partition)
                .or_default()
                .push((placement.offset, window));
        }
    }
    for list in frames.values_mut() {
        list.sort_unstable();
    }
    let max_committed_ahead = samples
        .iter()
        .map(|sample| {
            sample
                .committed
                .iter()
                .map(|(partition, committed)| {
                    frames.get(partition).map_or(0, |list| {
                        list.iter()
                            .take_while(|(offset, _)| offset < committed)
                            .filter(|(_, window)| !sample.written.contains(&(*window, *partition)))
                            .count() as u64
                    })
                })
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    Verdict {
        lost,
        duplicates,
        inexact,
        max_committed_ahead,
    }
}

/// The results as a table.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut text = format!(
        "{:<20} {:<9} {:>7} {:>5} {:>10} {:>8} {:>14} {:>9} {:>8} {:>7}  {}\n",
        "scenario",
        "model",
        "frames",
        "lost",
        "duplicates",
        "windows",
        "commit-ahead",
        "recovery",
        "restarts",
        "leaders",
        "verdict"
    );
    for r in results {
        let recovery = r
            .recovery_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"));
        let verdict = if r.passed {
            "ok".to_owned()
        } else {
            format!("FAILED {}", r.problems.join("; "))
        };
        text.push_str(&format!(
            "{:<20} {:<9} {:>7} {:>5} {:>10} {:>8} {:>14} {:>9} {:>8} {:>7}  {}\n",
            r.scenario.name(),
            r.model.as_str(),
            r.frames,
            r.lost,
            r.duplicates,
            if r.windows_correct {
                "correct"
            } else {
                "WRONG"
            },
            r.max_committed_ahead,
            recovery,
            r.restarts,
            r.leader_changes,
            verdict
        ));
    }
    text
}

/// Runs the scenarios for the models, writes `chaos.json` into `options.out`.
///
/// # Errors
/// A scenario's harness failed, or the report could not be written.
pub async fn chaos(
    base: &Settings,
    scenarios: &[Scenario],
    models: &[Model],
    options: &ChaosOptions,
) -> Result<Vec<ScenarioResult>, RunError> {
    let mut results = Vec::new();
    for scenario in scenarios {
        if !scenario.runs_on(&options.target) {
            tracing::warn!(scenario = %scenario.name(), "Skipped: it cannot run on this cluster (broker faults need --control).");
            continue;
        }
        for model in models {
            if scenario.applies_to(*model) {
                results.push(run_scenario(base, *scenario, *model, options).await?);
            }
        }
    }
    let path = options.out.join("chaos.json");
    let json = serde_json::to_string_pretty(&results)
        .map_err(|e| RunError::Task(format!("cannot encode the report: {e}")))?;
    std::fs::write(&path, json).map_err(|source| RunError::Report {
        path: path.display().to_string(),
        source,
    })?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose delivery report went missing (as when a retried batch is stored twice)
    /// is found in the log, recognised by its payload and added to the truth in its window.
    #[actix_rt::test]
    async fn the_truth_follows_the_log_when_delivery_reports_do_not_name_every_record() {
        let cluster = EmbeddedCluster::start(1).expect("embedded cluster");
        let mut settings = Settings::default();
        settings.kafka.brokers = cluster.bootstrap_servers().to_owned();
        settings.kafka.topic = "unreported".to_owned();
        settings.window.length_secs = 10;
        cluster
            .create_topic(&settings.kafka.topic, PARTITIONS, 1)
            .expect("topic");
        let data = GeneratorConfig {
            rate: 0,
            frames: 400,
            users: 50,
            event_rate: 500.0,
            start_ts: 1_790_000_000.0,
            ..GeneratorConfig::default()
        };
        let report = generator::spawn(
            &settings.kafka,
            &data,
            settings.frames.limits(),
            10,
            PARTITIONS,
            true,
        )
        .expect("generator")
        .wait()
        .expect("generator run");
        let mut same = report.clone();
        assert_eq!(
            count_unreported(&settings, &data, &mut same).await.ok(),
            Some(0)
        );
        assert_eq!(
            same.truth, report.truth,
            "reports that name every record stand"
        );

        // A report names the wrong offset (as after an idempotent producer's new epoch): the
        // record it should have named is unnamed, but nothing is stored twice.
        let at = report
            .placements
            .iter()
            .position(|p| p.window.is_some() && p.offset > 0)
            .expect("a valid frame");
        let original = report.placements[at];
        let mut misplaced = report.clone();
        misplaced.placements[at].offset = 1_000_000;
        assert_eq!(
            count_unreported(&settings, &data, &mut misplaced)
                .await
                .ok(),
            Some(0),
            "no record beyond the deliveries"
        );
        assert_eq!(misplaced.truth, report.truth, "every frame counted once");
        assert!(
            misplaced.placements.contains(&original),
            "its place is read from the log"
        );

        // One stored record more than the confirmed deliveries (a retried batch stored
        // twice, one copy confirmed): it is counted, in its window, and found in its place.
        let mut unconfirmed = report.clone();
        let lost = unconfirmed.placements.remove(at);
        unconfirmed.delivered -= 1;
        assert_eq!(
            count_unreported(&settings, &data, &mut unconfirmed)
                .await
                .ok(),
            Some(1)
        );
        assert_eq!(
            unconfirmed.truth, report.truth,
            "the truth is what the log holds"
        );
        assert!(
            unconfirmed.placements.contains(&lost),
            "its place is known again"
        );
    }
}
