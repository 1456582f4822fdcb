//! `chaos` (`kafka-actors-lab chaos`, or `kafka-actors chaos`): fault scenarios on the
//! embedded cluster, or on a real one (`--brokers`), while a data set with a known ground truth
//! flows, each checked by an oracle that knows every (partition, offset) produced.
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
//!
//! Every scenario runs through the same harness ([`run_scenario`]) and oracle; what a scenario
//! does differently (settings, data, the fault, its own expectations) is its [`Scenario`]
//! implementation in [`scenarios`].

mod cluster;
pub mod nemesis;
pub mod scenarios;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::LabError;
use actix::Addr;
use actors::config::{GeneratorConfig, KafkaConfig, SinkKind};
use actors::faults::{FaultPlan, PartitionFault, Times};
use actors::generator::{self, GeneratorReport, ProducerPause};
use actors::intake::GroupRecord;
use actors::kafka::{self, EmbeddedCluster, FrameProducer};
use actors::line::{read_window_lines, WindowLine};
use actors::metrics::{GetMetrics, MetricsSnapshot};
use actors::supervisor::RootSupervisor;
use actors::topic::{from_topics, PartitionId};
use cluster::{create_away_from_coordinator, ChaosCluster, Power};
use futures::future::LocalBoxFuture;
use kafka_actors::settings::{Model, Settings};
use kafka_actors::{blocking, error_chain, run, run_with_faults, Failure, RunError};
use serde::Serialize;

use crate::oracle::{count_dead_letters, judge, lines, Sample};

/// The oracle's verdict on one scenario run with one model.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario's name (`--scenario NAME`).
    pub scenario: &'static str,
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
    /// Where the windows went (`file`, `kafka`, `exactly-once`).
    pub output: ChaosOutput,
    /// Invalid records found in the dead-letter topic, each counted once (Kafka outputs).
    pub dead_lettered: u64,
    /// Dead letters found more than once, counted once per extra copy.
    pub dead_letter_duplicates: u64,
    /// Frames the service counted as late (their window was closed when they were read),
    /// live run and drain together. Replays after a restart or a lost assignment count here
    /// (frames of windows the commit metadata says are written); a line short of the truth
    /// with late frames points at a frame that arrived after its window was written.
    pub late: u64,
    /// Of the late frames, those whose window share was written short of the truth: frames
    /// read only after their window was written without them (a defect in every scenario).
    pub late_missed: u64,
    /// Of the late frames, the rest: replays of frames whose window was already written with
    /// them (after a restart, a lost assignment or a retried flush; harmless).
    pub late_replayed: u64,
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
    /// The most the open windows held, in bytes, in the run under the fault.
    pub peak_open_window_bytes: u64,
    /// Times a partition was paused at the memory budget of open windows, live run and drain.
    pub budget_pauses: u64,
    /// The error the service stopped with, when it stopped on its own.
    pub stopped_with: Option<String>,
    /// Why it stopped, when the run was in this process.
    #[serde(skip)]
    pub stop_cause: Option<Failure>,
    /// Scenario-specific expectations that did not hold.
    pub problems: Vec<String>,
    /// Everything held.
    pub passed: bool,
}
pub use scenarios::SCENARIOS;

/// Partitions of every scenario's topic.
const PARTITIONS: i32 = 4;
/// The index of the partition that faults aimed at one partition hit.
const TARGET: i32 = 0;

/// Every partition of a scenario's topic.
fn partitions_of(topic: &str) -> Vec<PartitionId> {
    (0..PARTITIONS).map(|i| PartitionId::of(topic, i)).collect()
}
/// How long a recovery is waited for, from the fault.
const RECOVERY_WAIT: Duration = Duration::from_secs(60);
/// When the fault is injected, after the service started.
const FAULT_AT: Duration = Duration::from_millis(2_500);
/// How many group members in child processes a run may start (each writes its windows to a
/// file of its own beside the second member's, [`child_member_file`]; the oracle reads them).
const CHILD_MEMBERS: usize = 8;

/// The file group member `n` in a child process writes to, in `dir`.
fn child_member_file(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("windows-member-c{n}.jsonl"))
}

/// A fault scenario: everything it does differently from the others. The harness
/// ([`run_scenario`]) gives every scenario a fresh cluster and topic, the same settings and
/// data set, runs the service while [`Scenario::drive`] injects the fault, drains, and judges
/// the run; the methods here change those steps. Only [`Scenario::name`] and
/// [`Scenario::about`] are required.
pub trait Scenario: std::fmt::Debug + Sync {
    /// Its name on the command line (`--scenario NAME`) and in `chaos.json`.
    fn name(&self) -> &'static str;

    /// What happens, in a sentence or two (`chaos --help` lists them).
    fn about(&self) -> &'static str;

    /// Whether it means anything for `model` (both models, unless it says otherwise).
    fn applies_to(&self, _model: Model) -> bool {
        true
    }

    /// What the cluster must offer (anything, unless it says otherwise).
    fn needs(&self) -> Needs {
        Needs::Anything
    }

    /// Replicas per partition of the scenario's topic (3, unless it says otherwise).
    fn replication(&self) -> i32 {
        3
    }

    /// Whether it can run on `target`: a real cluster has no request-level fault injection,
    /// and broker faults need its control command.
    fn runs_on(&self, target: &Target) -> bool {
        match (target, self.needs()) {
            (Target::Embedded, Needs::Anything | Needs::EmbeddedCluster | Needs::BrokerControl)
            | (Target::Brokers { .. }, Needs::Anything) => true,
            (Target::Brokers { .. }, Needs::EmbeddedCluster) => false,
            (Target::Brokers { control, .. }, Needs::BrokerControl | Needs::Links) => {
                control.is_some()
            }
            (Target::Embedded, Needs::Links) => false,
        }
    }

    /// Whether its topic's partitions are led by brokers other than the group's coordinator
    /// (no, unless it says otherwise): a fault on the coordinator's broker then leaves every
    /// leader in reach.
    fn away_from_coordinator(&self) -> bool {
        false
    }

    /// Changes to the settings every scenario runs with.
    fn settings(&self, _settings: &mut Settings) {}

    /// Changes to the data set every scenario produces.
    fn data(&self, _data: &mut GeneratorConfig) {}

    /// Seconds added to the event time of each partition's frames, by partition index (a
    /// producer whose clock is off; none unless it says otherwise).
    fn skews(&self) -> Vec<f64> {
        Vec::new()
    }

    /// Invalid frames appended to the end of every partition once the data set is in, one
    /// per partition, taken in turn (none unless it says otherwise).
    fn tail(&self) -> &'static [&'static [u8]] {
        &[]
    }

    /// Injects the fault, 2.5 s after the service started in this process, and
    /// answers the milliseconds until frames flow again (`None` for a fault that stops
    /// nothing, or when they did not). The service stops only after this returns and the
    /// data is in. Injects nothing unless it says otherwise.
    fn drive<'a>(&'a self, _fault: &'a Fault<'_>) -> LocalBoxFuture<'a, Option<f64>> {
        Box::pin(async { None })
    }

    /// Runs the service under the fault until the data is in: in this process, with
    /// [`Scenario::drive`] alongside, unless it says otherwise.
    fn serve<'a>(&'a self, service: Service<'a>) -> LocalBoxFuture<'a, Result<Served, LabError>> {
        Box::pin(service.in_process(self))
    }

    /// Checks how the service stopped: it must not have stopped on its own, unless the
    /// scenario says otherwise.
    fn check_stop(&self, run: &Outcome<'_>, problems: &mut Vec<String>) {
        if let Some(error) = &run.result.stopped_with {
            problems.push(format!("the service stopped: {error}"));
        }
    }

    /// What the run must show beyond the common checks (nothing, unless it says otherwise).
    fn expect(&self, _run: &Outcome<'_>, _problems: &mut Vec<String>) {}
}

/// What a scenario needs of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any cluster.
    Anything,
    /// The embedded cluster: request-level faults (errors, latency) and fast leader moves.
    EmbeddedCluster,
    /// Broker faults: on a real cluster, the control command (`--control`).
    BrokerControl,
    /// Faults on the links between the service and single brokers: a real cluster whose
    /// control command offers linked listeners (`CMD linked`, `CMD link N FAULT`).
    Links,
}

/// The scenario named `name` (in any case).
pub fn scenario(name: &str) -> Option<&'static dyn Scenario> {
    SCENARIOS
        .iter()
        .copied()
        .find(|s| s.name().eq_ignore_ascii_case(name))
}

/// Every scenario's name and description, one per line.
pub fn scenario_list() -> String {
    let width = SCENARIOS.iter().map(|s| s.name().len()).max().unwrap_or(0);
    SCENARIOS
        .iter()
        .map(|s| format!("  {:<width$}  {}\n", s.name(), s.about()))
        .collect()
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Frames of each scenario's data set.
    pub frames: u64,
    /// Where each scenario's output and the report go.
    pub out: PathBuf,
    /// An executable whose `run` subcommand is the service (`kafka-actors` or
    /// `kafka-actors-lab`), for the scenarios that run it as a child process (`sigkill`).
    pub executable: Option<PathBuf>,
    /// Where the scenarios run.
    pub target: Target,
    /// Where the service writes its windows (and, to Kafka, its dead letters).
    pub output: ChaosOutput,
    /// Seconds the data set flows for (by default 6 on the embedded cluster, 30 on a real
    /// one).
    pub data_secs: Option<u64>,
}

/// Where a scenario's service writes, and how the oracle reads it back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosOutput {
    /// Window lines appended to a file per process; invalid frames only counted.
    #[default]
    File,
    /// Windows to an output topic and invalid frames to a dead-letter topic, at least once;
    /// the oracle reads both back.
    Kafka,
    /// The same, exactly once (one transaction per flush): the oracle reads with
    /// `read_committed` and allows no duplicate. Needs a Kafka cluster (`--brokers`).
    ExactlyOnce,
}

impl ChaosOutput {
    /// Its name, as `--output` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChaosOutput::File => "file",
            ChaosOutput::Kafka => "kafka",
            ChaosOutput::ExactlyOnce => "exactly-once",
        }
    }
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

/// Where the oracle reads the windows written: files, or the output topic (as a
/// `read_committed` reader).
#[derive(Clone)]
enum Written {
    /// Window lines appended to these files.
    Files(Vec<PathBuf>),
    /// Window records of this topic on this cluster.
    Topic(KafkaConfig, String),
}

impl Written {
    /// Every line written so far (a line being appended to a file may be cut short: what
    /// parses). `None` when the topic cannot be read now.
    fn lines(&self) -> Option<Vec<WindowLine>> {
        match self {
            Written::Files(files) => Some(files.iter().flat_map(|f| lines(f)).collect()),
            Written::Topic(kafka, topic) => kafka::read_topic(kafka, topic).ok().map(|records| {
                records
                    .iter()
                    .filter_map(|r| serde_json::from_slice(r.payload.as_deref()?).ok())
                    .collect()
            }),
        }
    }
}

/// Waits, after committed offsets were read, until every transaction committed by then is
/// visible in the output topic ([`kafka::StableWait`]), up to 20 s. Nothing to wait for with
/// files, or for records outside transactions (at least once).
struct Settled(Option<kafka::StableWait>);

impl Settled {
    fn new(output: &Written) -> Self {
        let Written::Topic(kafka, topic) = output else {
            return Settled(None);
        };
        // The service creates the topic as it starts.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match kafka::StableWait::new(kafka, topic) {
                Ok(wait) => return Settled(Some(wait)),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => return Settled(None),
            }
        }
    }

    fn wait(&self) {
        if let Some(wait) = &self.0 {
            let _ = wait.wait(Duration::from_secs(20));
        }
    }
}

/// Samples committed offsets, then the output, every 50 ms until stopped.
struct Watcher {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(kafka: KafkaConfig, output: Written) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (flag, into) = (stop.clone(), samples.clone());
        let partitions = partitions_of(&kafka.topic);
        let thread = std::thread::spawn(move || {
            let settled = Settled::new(&output);
            while !flag.load(Ordering::Relaxed) {
                let sampled = kafka::committed_positions(&kafka, &partitions)
                    .ok()
                    .and_then(|committed| {
                        settled.wait();
                        Some((committed, output.lines()?))
                    });
                if let Some((committed, lines)) = sampled {
                    let written = lines
                        .into_iter()
                        .flat_map(|l| {
                            let start = l.window_start;
                            from_topics(&l.partitions)
                                .into_iter()
                                .map(move |p| (start, p))
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

/// Which kind of cluster a scenario runs on (timeouts and the data's pace differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClusterKind {
    /// librdkafka's mock cluster, in this process.
    Embedded,
    /// Brokers of a real cluster (`--brokers`).
    Real,
}

/// The settings of one scenario run against `brokers`.
#[allow(clippy::too_many_arguments)]
fn scenario_settings(
    base: &Settings,
    scenario: &dyn Scenario,
    model: Model,
    brokers: &str,
    topic: &str,
    out: &Path,
    kind: ClusterKind,
    output: ChaosOutput,
) -> Settings {
    let mut s = base.clone();
    s.model = model;
    s.kafka.brokers = brokers.to_owned();
    // The scenario's own topic, read whole: a configured input or partition share does not
    // apply to it.
    s.kafka.topic = topic.to_owned();
    s.kafka.topics = Vec::new();
    s.kafka.partitions.clear();
    s.kafka.instance = String::new();
    s.kafka.group = format!("{topic}-group");
    s.window.length_secs = 10;
    s.window.lateness_secs = 3;
    // The service default: a partition that is caught up and quiet for 5 s stops holding the
    // watermark.
    s.window.idle_after_ms = 5_000;
    s.flush.interval_ms = 100;
    s.partition.poll_timeout_ms = 50;
    s.metrics.log_interval_ms = 0;
    // Any free port: runs of the harness may overlap with a service on the default one.
    s.admin.port = 0;
    s.sink.kind = SinkKind::File;
    s.sink.path = out.display().to_string();
    s.sink.label_partitions = true;
    s.sink.write_delay_ms = 0;
    if output != ChaosOutput::File {
        s.sink.kind = SinkKind::Kafka;
        s.sink.topic = format!("{topic}-out");
        s.sink.dead_letter.topic = format!("{topic}-dlq");
        s.sink.create_topic = true;
        s.sink.topic_partitions = 3;
        s.sink.exactly_once = output == ChaosOutput::ExactlyOnce;
    }
    s.supervisor.backoff_initial_ms = 50;
    s.supervisor.backoff_max_ms = 1_000;
    s.supervisor.max_restarts = 3;
    s.supervisor.restart_window_secs = 60;
    s.supervisor.stall_timeout_ms = 10_000;
    // Statistics tell when a partition's leader is out of reach; they must come well within
    // the idle time.
    s.supervisor.stats_interval_ms = 1_000;
    // Kafka refuses sessions below its group.min.session.timeout.ms (6 s by default).
    (s.group.session_timeout_ms, s.group.revoke_timeout_ms) = match kind {
        ClusterKind::Real => (6_000, 3_000),
        ClusterKind::Embedded => (3_000, 2_000),
    };
    s.run.until_end = false;
    s.run.stop_after = String::new();
    scenario.settings(&mut s);
    s
}

/// The service of one scenario run, for [`Scenario::serve`].
pub struct Service<'a> {
    /// The scenario's settings.
    settings: &'a Settings,
    /// The cluster it runs on.
    cluster: &'a ChaosCluster,
    /// The scenario's topic.
    topic: &'a str,
    /// Where a second group member writes its windows (the oracle reads it too).
    second_out: &'a Path,
    /// Resolves once the data set is in: the service is to stop then.
    data_in: tokio::sync::oneshot::Receiver<()>,
    /// The service's executable (`ChaosOptions::executable`), for runs in a child process.
    executable: Option<&'a Path>,
    /// Pauses the data set's producer.
    producer: &'a ProducerPause,
}

/// How the service ran under the fault.
#[derive(Debug, Default)]
pub struct Served {
    /// The figures of the run in this process (none from a child process).
    metrics: MetricsSnapshot,
    /// The error the service stopped with, when it stopped on its own.
    stopped_with: Option<String>,
    /// Why it stopped, when the run was in this process.
    stop_cause: Option<Failure>,
    /// Milliseconds from the fault to frames flowing again.
    recovery_ms: Option<f64>,
    /// What the fault driver found wrong.
    problems: Vec<String>,
    /// Group model: the ownership changes of the run in this process, in order.
    group_history: Vec<GroupRecord>,
}

impl Service<'_> {
    /// Runs the service in this process with the scenario's fault plan, while
    /// [`Scenario::drive`] injects the fault [`FAULT_AT`] after it started. The service stops
    /// once the data is in and the driver is done (the fault's recovery has been seen, or its
    /// wait ran out): a slow recovery is measured, not cut short.
    async fn in_process<S: Scenario + ?Sized>(self, scenario: &S) -> Result<Served, LabError> {
        let Service {
            settings,
            cluster,
            topic,
            second_out,
            data_in,
            producer,
            executable,
        } = self;
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<Addr<RootSupervisor>>();
        let (driver_done_tx, driver_done) = tokio::sync::oneshot::channel::<()>();
        let plan = FaultPlan::default();
        let mut second_member = settings.clone();
        second_member.sink.path = second_out.display().to_string();
        let driver = async {
            let _done = driver_done_tx;
            let supervisor = addr_rx.await.ok()?;
            actix_rt::time::sleep(FAULT_AT).await;
            let fault = Fault {
                supervisor: &supervisor,
                plan: &plan,
                cluster,
                topic,
                second_member: &second_member,
                executable,
                producer,
                started: Instant::now(),
                problems: RefCell::default(),
            };
            let recovery_ms = scenario.drive(&fault).await;
            Some((recovery_ms, fault.problems.into_inner()))
        };
        let service = run_with_faults(
            settings.clone(),
            async move {
                let _ = data_in.await;
                let _ = driver_done.await;
            },
            Some(plan.clone()),
            move |supervisor| {
                let _ = addr_tx.send(supervisor);
            },
        );
        let (result, driven) = tokio::join!(service, driver);
        let mut served = Served::default();
        match result {
            Ok(report) => {
                served.metrics = report.summary.metrics;
                served.group_history = report.summary.group_history;
            }
            Err(error) => {
                served.stopped_with = Some(error_chain(&error));
                if let RunError::Failed { summary, cause } = error {
                    served.metrics = summary.metrics;
                    served.group_history = summary.group_history;
                    served.stop_cause = Some(cause);
                }
            }
        }
        if let Some((recovery_ms, problems)) = driven {
            served.recovery_ms = recovery_ms;
            served.problems = problems;
        }
        Ok(served)
    }
}

/// The running service and its cluster, for [`Scenario::drive`].
pub struct Fault<'a> {
    /// The service's supervisor.
    supervisor: &'a Addr<RootSupervisor>,
    /// The faults armed at the service's partition sources.
    plan: &'a FaultPlan,
    /// The cluster.
    cluster: &'a ChaosCluster,
    /// The scenario's topic.
    topic: &'a str,
    /// Settings for a second member of the service's group, writing to a file of its own.
    second_member: &'a Settings,
    /// The service's executable, for members in child processes.
    executable: Option<&'a Path>,
    /// Pauses the data set's producer.
    producer: &'a ProducerPause,
    /// When the driver started: the fault's moment, unless it measures from later.
    started: Instant,
    /// What the driver found wrong (added to the verdict's problems).
    problems: RefCell<Vec<String>>,
}

impl Fault<'_> {
    /// Arms `fault` at the partition the scenarios aim at, [`Fault::target`].
    fn inject(&self, fault: PartitionFault, times: Times) {
        self.plan.inject(self.target(), fault, times);
    }

    /// The partition faults aimed at one partition hit.
    fn target(&self) -> PartitionId {
        PartitionId::of(self.topic, TARGET)
    }

    /// Milliseconds from `since` until `watch` sees progress (polled every 20 ms, for up to
    /// 60 s from the fault).
    async fn recovery(&self, watch: Watch, since: Instant) -> Option<f64> {
        recovery(self.supervisor, watch, since).await
    }

    /// The broker leading `partition` as the service last saw it.
    async fn leader_of(&self, partition: PartitionId) -> i32 {
        leader_of(self.supervisor, partition).await
    }

    /// Records something the scenario's run did wrong.
    fn problem(&self, problem: impl Into<String>) {
        self.problems.borrow_mut().push(problem.into());
    }

    /// Puts `fault` on the service's link to `broker` (`None`: every broker); a cluster
    /// without links is a problem of the run.
    async fn link(&self, broker: Option<i32>, fault: &[&str]) {
        if !self.cluster.link(broker, fault).await {
            self.problem(format!(
                "the link fault {fault:?} could not be applied (no linked listeners?)"
            ));
        }
    }

    /// Settings for group member `n` (below [`CHILD_MEMBERS`]) in a child process: the second
    /// member's, writing to a file of its own ([`child_member_file`]).
    fn child_member(&self, n: usize) -> Settings {
        assert!(
            n < CHILD_MEMBERS,
            "at most {CHILD_MEMBERS} members in child processes"
        );
        let mut settings = self.second_member.clone();
        let dir = Path::new(&self.second_member.sink.path)
            .parent()
            .unwrap_or(Path::new("."));
        settings.sink.path = child_member_file(dir, n).display().to_string();
        settings
    }

    /// Waits (up to 30 s) until the service has read frames: it owns partitions (a group
    /// member has joined and been assigned). Answers whether it has.
    async fn reading(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .supervisor
                .send(GetMetrics)
                .await
                .is_ok_and(|m| m.frames > 0)
            {
                return true;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The broker coordinating the service's group, as the cluster's metadata says.
    async fn coordinator(&self) -> Option<i32> {
        let kafka = KafkaConfig {
            brokers: self.cluster.bootstrap().to_owned(),
            topic: self.topic.to_owned(),
            group: self.second_member.kafka.group.clone(),
            ..KafkaConfig::default()
        };
        blocking(move || kafka::group_coordinator(&kafka))
            .await
            .ok()?
            .ok()?
    }
}

/// A judged run, for a scenario's own checks ([`Scenario::check_stop`], [`Scenario::expect`]).
pub struct Outcome<'a> {
    /// The verdict so far.
    result: &'a ScenarioResult,
    /// The figures of the run under the fault.
    live: &'a MetricsSnapshot,
    /// The figures of the drain run.
    drained: &'a MetricsSnapshot,
    /// Invalid frames produced (the data set's and the tail's).
    produced_invalid: u64,
    /// Group model: the ownership changes of the run under the fault, in order.
    history: &'a [GroupRecord],
}

/// Runs one scenario with one model and judges it.
///
/// # Errors
/// The embedded cluster, the generator or the drain run failed (a failure of the service
/// under the fault is part of the verdict, not an error).
pub async fn run_scenario(
    base: &Settings,
    scenario: &dyn Scenario,
    model: Model,
    options: &ChaosOptions,
) -> Result<ScenarioResult, LabError> {
    if options.output == ChaosOutput::ExactlyOnce && matches!(options.target, Target::Embedded) {
        return Err(LabError::Config(actors::config::ConfigError::new(
            "sink.exactly_once",
            "exactly-once output needs a Kafka cluster (--brokers): the embedded cluster \
             (librdkafka's mock) neither keeps offsets sent to a transaction nor hides aborted \
             records",
        )));
    }
    let name = format!("{}-{}", scenario.name(), model.as_str());
    let dir = options.out.join(&name);
    std::fs::create_dir_all(&dir).map_err(|source| LabError::Report {
        path: dir.display().to_string(),
        source,
    })?;
    let out = dir.join("windows.jsonl");
    let second = dir.join("windows-member-b.jsonl");
    let children: Vec<PathBuf> = (0..CHILD_MEMBERS)
        .map(|n| child_member_file(&dir, n))
        .collect();
    for file in [&out, &second].into_iter().chain(&children) {
        let _ = std::fs::remove_file(file);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = format!("chaos-{name}-{}-{stamp}", std::process::id());
    let cluster = match &options.target {
        Target::Embedded => {
            let cluster = EmbeddedCluster::start(3)?;
            cluster.create_topic(&topic, PARTITIONS, scenario.replication())?;
            if options.output != ChaosOutput::File {
                // The embedded cluster takes no CreateTopics request: the output topics are
                // made here.
                cluster.create_topic(&format!("{topic}-out"), 3, 3)?;
                cluster.create_topic(&format!("{topic}-dlq"), 3, 3)?;
            }
            ChaosCluster::Embedded(Arc::new(cluster))
        }
        Target::Brokers { brokers, control } => {
            let kafka = KafkaConfig {
                brokers: brokers.clone(),
                topic: topic.clone(),
                ..KafkaConfig::default()
            };
            let created = topic.clone();
            let replication = scenario.replication();
            if scenario.away_from_coordinator() {
                let group = format!("{topic}-group");
                blocking(move || create_away_from_coordinator(kafka, &created, &group)).await??;
            } else {
                blocking(move || kafka::create_topic(&kafka, &created, PARTITIONS, replication))
                    .await??;
            }
            let cluster = ChaosCluster::real(brokers.clone(), control.clone()).await;
            // A fault a run before left on a link is healed.
            cluster.link(None, &["heal"]).await;
            cluster
        }
    };
    let kind = match cluster.embedded() {
        Some(_) => ClusterKind::Embedded,
        None => ClusterKind::Real,
    };
    let settings = scenario_settings(
        base,
        scenario,
        model,
        cluster.service_bootstrap(),
        &topic,
        &out,
        kind,
        options.output,
    );
    // The harness's own clients reach the brokers directly: link faults are the service's.
    let mut direct = settings.clone();
    direct.kafka.brokers = cluster.bootstrap().to_owned();
    tracing::info!(
        scenario = scenario.name(),
        model = model.as_str(),
        "Scenario starts."
    );

    // About six seconds of data on the embedded cluster; thirty on a real one, where a broker
    // fault takes longer (a killed broker's leaderships move once its session ends, a restart
    // takes seconds, Kafka's reassignment tools take up to 20 s to move a leader on two busy
    // cores) and must land while frames still flow, or no recovery can be seen.
    let seconds = options.data_secs.unwrap_or(match kind {
        ClusterKind::Real => 30,
        ClusterKind::Embedded => 6,
    });
    let mut data = GeneratorConfig {
        rate: (options.frames / seconds).max(1),
        frames: options.frames,
        users: 2_000,
        jitter_secs: 3.0,
        bad_ratio: 0.0,
        seed: 11,
        event_rate: 500.0,
        start_ts: 1_790_000_000.0,
        truth_file: String::new(),
    };
    scenario.data(&mut data);
    // The generator's producer retries a lost broker every 100 ms, so once brokers return what
    // it buffered is stored at once: the scenarios judge how the service waits for it, not how
    // long the producer backs off.
    let mut producing_to = direct.kafka.clone();
    producing_to
        .properties
        .insert("reconnect.backoff.max.ms".to_owned(), "100".to_owned());
    let frames =
        generator::FrameGenerator::new(&data, settings.frames.limits(), partitions_of(&topic))
            .with_skews(scenario.skews());
    let generator = generator::spawn_from(&producing_to, frames, settings.window.length_secs, true)
        .map_err(|e| LabError::Task(format!("cannot start the generator thread: {e}")))?;
    let producer = generator.pauser();
    let written_to = match options.output {
        ChaosOutput::File => Written::Files(
            [out.clone(), second.clone()]
                .into_iter()
                .chain(children.iter().cloned())
                .collect(),
        ),
        ChaosOutput::Kafka | ChaosOutput::ExactlyOnce => {
            Written::Topic(direct.kafka.clone(), settings.sink.topic.clone())
        }
    };
    let watcher = Watcher::start(direct.kafka.clone(), written_to.clone());

    // The data is in (plus the scenario's tail): the stop signal for the service.
    let (data_in_tx, data_in) = tokio::sync::oneshot::channel::<()>();
    let producing = {
        let (kafka, tail) = (direct.kafka.clone(), scenario.tail());
        // Spawned now (not when awaited): it is what stops the service.
        actix_rt::task::spawn_blocking(
            move || -> Result<(GeneratorReport, BTreeMap<PartitionId, i64>), LabError> {
                let report = generator.wait().map_err(LabError::Generator)?;
                let mut ends = report.end_offsets.clone();
                if !tail.is_empty() {
                    append_tail(&kafka, tail, &mut ends)?;
                }
                std::thread::sleep(Duration::from_millis(1_500));
                let _ = data_in_tx.send(());
                Ok((report, ends))
            },
        )
    };

    let served = scenario
        .serve(Service {
            settings: &settings,
            cluster: &cluster,
            topic: &topic,
            second_out: &second,
            data_in,
            executable: options.executable.as_deref(),
            producer: &producer,
        })
        .await?;
    let (mut report, ends) = producing
        .await
        .map_err(|e| LabError::Task(e.to_string()))??;

    // Whatever the scenario left on the links is healed before the drain.
    cluster.link(None, &["heal"]).await;
    // Drain: what is left, from the commits, as a restarted service would.
    let mut drain = settings.clone();
    drain.run.until_end = true;
    drain.sink.write_delay_ms = 0;
    let drained = run(drain, std::future::pending()).await?;
    let samples = watcher.finish();
    let final_commits = committed(&direct.kafka).await?;
    let unreported = count_unreported(&direct, &data, &mut report).await?;

    let written = match &written_to {
        Written::Files(_) => {
            let mut written = read_window_lines(&out).map_err(|source| LabError::Report {
                path: out.display().to_string(),
                source,
            })?;
            written.extend(lines(&second));
            for child in &children {
                written.extend(lines(child));
            }
            written
        }
        Written::Topic(kafka, topic) => {
            let (kafka, topic) = (kafka.clone(), topic.clone());
            let records = blocking(move || {
                kafka::read_topic_settled(&kafka, &topic, Duration::from_secs(20))
            })
            .await??;
            let mut written = Vec::with_capacity(records.len());
            for record in records {
                let line = record
                    .payload
                    .as_deref()
                    .and_then(|p| serde_json::from_slice(p).ok())
                    .ok_or_else(|| {
                        LabError::Task(format!(
                            "record {}@{} of the output topic is not a window line",
                            record.partition, record.offset
                        ))
                    })?;
                written.push(line);
            }
            written
        }
    };
    let verdict = judge(&written, &report, &samples);
    let dead_letters = match options.output {
        ChaosOutput::File => None,
        ChaosOutput::Kafka | ChaosOutput::ExactlyOnce => {
            let (kafka, topic) = (
                direct.kafka.clone(),
                settings.sink.dead_letter.topic.clone(),
            );
            // The service creates the topic when the first dead letter goes out.
            let records = blocking(move || {
                kafka::read_topic_settled(&kafka, &topic, Duration::from_secs(20))
            })
            .await?
            .unwrap_or_default();
            Some(count_dead_letters(&records, &report))
        }
    };
    // Invalid frames appended after the generator's (the tail).
    let tail = (ends.values().sum::<i64>() - report.end_offsets.values().sum::<i64>()) as u64;
    let produced_invalid = report.truth.invalid.values().sum::<u64>() + tail;
    let metrics = served.metrics;
    let combined = |f: fn(&MetricsSnapshot) -> u64| f(&metrics) + f(&drained.summary.metrics);
    let mut result = ScenarioResult {
        scenario: scenario.name(),
        model,
        frames: report.delivered + unreported + tail,
        unreported_records: unreported,
        lost: verdict.lost,
        duplicates: verdict.duplicates,
        output: options.output,
        dead_lettered: dead_letters.as_ref().map_or(0, |d| d.distinct),
        dead_letter_duplicates: dead_letters.as_ref().map_or(0, |d| d.duplicates),
        late: combined(|m| m.late),
        late_missed: verdict.missed,
        late_replayed: combined(|m| m.late).saturating_sub(verdict.missed),
        skipped_records: combined(|m| m.skipped_records),
        windows_correct: verdict.lost == 0 && verdict.inexact.is_empty(),
        max_committed_ahead: verdict.max_committed_ahead,
        committed_to_end: final_commits == ends,
        recovery_ms: served.recovery_ms,
        restarts: combined(|m| m.restarts),
        watchdog_recoveries: combined(|m| m.watchdog_recoveries),
        leader_changes: metrics.leader_changes.len() as u64,
        peak_open_window_bytes: metrics.peak_open_window_bytes,
        budget_pauses: combined(|m| m.budget_pauses),
        stopped_with: served.stopped_with,
        stop_cause: served.stop_cause,
        problems: Vec::new(),
        passed: false,
    };
    if verdict.missed > 0 {
        result.problems.push(format!(
            "{} frames missed their window (of {} late, {} were replays of written windows)",
            verdict.missed, result.late, result.late_replayed
        ));
    }
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
    if let Some(dead) = &dead_letters {
        if dead.distinct != produced_invalid {
            result.problems.push(format!(
                "{} invalid records dead-lettered, {produced_invalid} produced",
                dead.distinct
            ));
        }
        if !dead.valid.is_empty() {
            result
                .problems
                .push(format!("valid frames dead-lettered: {:?}", dead.valid));
        }
    }
    if options.output == ChaosOutput::ExactlyOnce {
        if result.duplicates > 0 {
            result.problems.push(format!(
                "exactly once, yet {} frames' shares were written more than once",
                result.duplicates
            ));
        }
        if result.dead_letter_duplicates > 0 {
            result.problems.push(format!(
                "exactly once, yet {} dead letters were written more than once",
                result.dead_letter_duplicates
            ));
        }
    }
    // What the scenario itself must show.
    let mut problems = Vec::new();
    let outcome = Outcome {
        result: &result,
        live: &metrics,
        drained: &drained.summary.metrics,
        produced_invalid,
        history: &served.group_history,
    };
    scenario.check_stop(&outcome, &mut problems);
    problems.extend(served.problems);
    scenario.expect(&outcome, &mut problems);
    result.problems.extend(problems);
    result.passed = result.lost == 0
        && result.windows_correct
        && result.max_committed_ahead == 0
        && result.problems.is_empty();
    tracing::info!(
        scenario = scenario.name(),
        model = model.as_str(),
        passed = result.passed,
        "Scenario done."
    );
    Ok(result)
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
) -> Result<u64, LabError> {
    let kafka = settings.kafka.clone();
    let partitions = report.truth.partitions().to_vec();
    let stored = blocking(move || kafka::stored_records(&kafka, &partitions)).await??;
    let in_range: Vec<(PartitionId, i64, Vec<u8>)> = stored
        .into_iter()
        .filter(|(partition, offset, _)| {
            report
                .end_offsets
                .get(partition)
                .is_some_and(|end| offset < end)
        })
        .collect();
    let known: std::collections::HashSet<(PartitionId, i64)> = report
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
    let partitions = report.truth.partitions().to_vec();
    let frames = generator::FrameGenerator::new(data, settings.frames.limits(), partitions.clone());
    let kinds: std::collections::HashMap<Vec<u8>, generator::FrameKind> = (0..data.frames)
        .map(|index| {
            let frame = frames.frame(index, 0.0);
            (frame.payload, frame.kind)
        })
        .collect();
    let mut truth = generator::GroundTruth::new(settings.window.length_secs, partitions);
    let mut placements = Vec::with_capacity(in_range.len());
    for (partition, offset, payload) in &in_range {
        let kind = kinds.get(payload).ok_or_else(|| {
            LabError::Task(format!(
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

/// Appends `tail[p % tail.len()]` to the end of every partition `p`.
fn append_tail(
    kafka: &KafkaConfig,
    tail: &[&[u8]],
    ends: &mut BTreeMap<PartitionId, i64>,
) -> Result<(), LabError> {
    let producer = FrameProducer::new(kafka)?;
    for partition in partitions_of(&kafka.topic) {
        let payload = tail[partition.index as usize % tail.len()];
        producer
            .send(
                u64::MAX - partition.index as u64,
                partition,
                b"poison",
                payload,
            )
            .map_err(|e| LabError::Task(format!("producing a poison frame: {e}")))?;
        *ends.entry(partition).or_default() += 1;
    }
    producer
        .flush(Duration::from_secs(10))
        .map_err(|e| LabError::Task(format!("producing the poison frames: {e}")))?;
    Ok(())
}

/// What counts as consuming again after a fault.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// The partition delivers a chunk.
    Partition(PartitionId),
    /// The partition is restarted and then delivers a chunk.
    Restart(PartitionId),
    /// Any partition delivers frames.
    Any,
}

/// Milliseconds from `since` until the watched progress, polled every 20 ms for up to `RECOVERY_WAIT`.
async fn recovery(supervisor: &Addr<RootSupervisor>, watch: Watch, since: Instant) -> Option<f64> {
    let chunks = |m: &MetricsSnapshot, p: PartitionId| m.partitions.get(&p).map_or(0, |p| p.chunks);
    let first = supervisor.send(GetMetrics).await.ok()?;
    let mut reference: Option<u64> = match watch {
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
async fn leader_of(supervisor: &Addr<RootSupervisor>, partition: PartitionId) -> i32 {
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

/// The group's committed offsets of every partition that has one.
async fn committed(kafka: &KafkaConfig) -> Result<BTreeMap<PartitionId, i64>, LabError> {
    let kafka = kafka.clone();
    let partitions = partitions_of(&kafka.topic);
    Ok(blocking(move || kafka::committed_positions(&kafka, &partitions)).await??)
}

/// The sum of the group's committed offsets (0 when they cannot be read).
async fn committed_sum(kafka: &KafkaConfig) -> i64 {
    committed(kafka).await.map_or(0, |c| c.values().sum())
}

/// The results as a table.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut text = format!(
        "{:<20} {:<9} {:<12} {:>7} {:>5} {:>10} {:>13} {:>12} {:>8} {:>14} {:>9} {:>8} {:>7} {:>10}  {}\n",
        "scenario",
        "model",
        "output",
        "frames",
        "lost",
        "duplicates",
        "late rep/miss",
        "dead letters",
        "windows",
        "commit-ahead",
        "recovery",
        "restarts",
        "leaders",
        "open peak",
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
        let open_peak = format!("{:.0} KiB", r.peak_open_window_bytes as f64 / 1024.0);
        let dead = match (r.output, r.dead_letter_duplicates) {
            (ChaosOutput::File, _) => "-".to_owned(),
            (_, 0) => r.dead_lettered.to_string(),
            (_, extra) => format!("{} (+{extra})", r.dead_lettered),
        };
        text.push_str(&format!(
            "{:<20} {:<9} {:<12} {:>7} {:>5} {:>10} {:>13} {:>12} {:>8} {:>14} {:>9} {:>8} {:>7} {:>10}  {}\n",
            r.scenario,
            r.model.as_str(),
            r.output.as_str(),
            r.frames,
            r.lost,
            r.duplicates,
            format!("{}/{}", r.late_replayed, r.late_missed),
            dead,
            if r.windows_correct {
                "correct"
            } else {
                "WRONG"
            },
            r.max_committed_ahead,
            recovery,
            r.restarts,
            r.leader_changes,
            open_peak,
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
    scenarios: &[&dyn Scenario],
    models: &[Model],
    options: &ChaosOptions,
) -> Result<Vec<ScenarioResult>, LabError> {
    let mut results = Vec::new();
    for scenario in scenarios {
        if !scenario.runs_on(&options.target) {
            tracing::warn!(
                scenario = scenario.name(),
                "Skipped: it cannot run on this cluster (broker faults need --control)."
            );
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
        .map_err(|e| LabError::Task(format!("cannot encode the report: {e}")))?;
    std::fs::write(&path, json).map_err(|source| LabError::Report {
        path: path.display().to_string(),
        source,
    })?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_missing_from_a_line_written_short_are_counted_as_missed_not_lost() {
        let topic = "t";
        let mut report = GeneratorReport {
            truth: generator::GroundTruth::new(10, partitions_of(topic)),
            ..GeneratorReport::default()
        };
        for (partition, uid) in [(0, "a"), (0, "b"), (0, "c"), (1, "d"), (1, "e")] {
            report.truth.record(
                PartitionId::of(topic, partition),
                &generator::FrameKind::Valid {
                    ts: 1_790_000_003.0,
                    uid: uid.to_owned(),
                },
            );
        }
        let line = |partition: i32, users: u64, frames: u64| -> WindowLine {
            serde_json::from_value(serde_json::json!({
                "window_start": 1_790_000_000, "window_end": 1_790_000_010,
                "start": "2026-09-21T12:26:40Z", "unique_users": users, "frames": frames,
                "partitions": { topic: [partition] },
            }))
            .expect("a window line")
        };
        // Partition 0's share was written without one of its frames (read after the window
        // was written), partition 1's whole.
        let verdict = judge(&[line(0, 2, 2), line(1, 2, 2)], &report, &[]);
        assert_eq!(
            (verdict.missed, verdict.lost, verdict.duplicates),
            (1, 0, 0)
        );
        assert_eq!(verdict.inexact.len(), 1);
        // Written whole, once again short (at least once): one frame missed, two repeated.
        let verdict = judge(&[line(0, 3, 3), line(0, 2, 2), line(1, 2, 2)], &report, &[]);
        assert_eq!(
            (verdict.missed, verdict.lost, verdict.duplicates),
            (1, 0, 3)
        );
        let verdict = judge(&[line(0, 3, 3), line(1, 2, 2)], &report, &[]);
        assert_eq!((verdict.missed, verdict.lost), (0, 0));
        assert!(verdict.inexact.is_empty());
    }

    /// A record whose delivery report went missing (as when a retried batch is stored twice)
    /// is found in the log, recognised by its payload and added to the truth in its window.
    #[actix_rt::test]
    async fn the_truth_follows_the_log_when_delivery_reports_do_not_name_every_record() {
        let cluster = EmbeddedCluster::start(1).expect("embedded cluster");
        let mut settings = Settings::default();
        settings.admin.port = 0;
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
            partitions_of(&settings.kafka.topic),
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
