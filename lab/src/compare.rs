//! `compare` (`kafka-actors-lab compare`, or `kafka-actors compare`): the partition model and the group model side by side on the same
//! data. A data set with a known ground truth is produced once; then each model consumes it to
//! its end `rounds` times, alternating which goes first, each time with a fresh consumer
//! group. The figures of every round, their medians and spreads, and whether every model's
//! windows equal the truth (and each other) go to a table on stdout, `report.json` and
//! `chart.svg`.
//!
//! The data set is produced in full before the rounds. On the embedded cluster each partition
//! keeps about 5 MiB, so the data set is limited to what fits (checked at start).
//!
//! With `instances` above 1 each model runs as that many processes instead ([`processes`]):
//! the partition model as static instances, the group model as members of one group.

mod processes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::Addr;
use actors::metrics::{GetMetrics, MetricsSnapshot};
use actors::supervisor::{RestartPartition, RootSupervisor};

use actors::config::{GeneratorConfig, SinkKind};
use actors::generator::{self, GroundTruth};
use actors::kafka::EmbeddedCluster;
use actors::line::{read_window_lines, WindowLine};
use actors::topic::PartitionId;
use serde::Serialize;

use crate::error::LabError;
use kafka_actors::settings::{Model, Settings};
use kafka_actors::{blocking, run, run_with, RunError, RunReport};

use crate::chart::{self, Bar, Chart, Panel};

/// What `compare` does.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Frames in the data set.
    pub frames: u64,
    /// Partitions of the topic (embedded cluster).
    pub partitions: i32,
    /// Runs of each model.
    pub rounds: u32,
    /// Processes per model: 1 runs both models in this process; more run each model as that
    /// many processes of `executable`.
    pub instances: u32,
    /// The binary whose `run` is the service (this one), for `instances` above 1.
    pub executable: Option<PathBuf>,
    /// Where the report goes.
    pub out: PathBuf,
}

/// Bytes a generated frame takes in the embedded cluster's log, with record overhead.
const FRAME_LOG_BYTES: u64 = 80;
/// What one partition of the embedded cluster keeps.
const PARTITION_LOG_BYTES: u64 = 5 * 1024 * 1024;

/// Median, smallest and largest of a figure over the rounds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// One run of one model.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 0-based round.
    pub round: u32,
    /// `partition` or `group`.
    pub model: &'static str,
    /// Frames counted.
    pub frames: u64,
    /// Frames per second over the whole run (start to exit).
    pub frames_per_s: f64,
    /// Process CPU (user + system) per frame, microseconds. The embedded cluster runs in the
    /// same process, so this includes the broker's work.
    pub cpu_us_per_frame: f64,
    /// `process_frame` p50 / p99, nanoseconds.
    pub process_frame_ns: (u64, u64),
    /// `batch.flush` p50 / p99, microseconds.
    pub flush_us: (u64, u64),
    /// From the start of the actors to the first frame, milliseconds (assignment cost).
    pub first_frame_ms: f64,
    /// From the start of the actors to the last frame, milliseconds (the latest over the
    /// processes).
    pub end_ms: f64,
    /// From starting the run (all its processes) to the last one's exit, milliseconds: the
    /// time for the whole set to finish.
    pub set_finish_ms: f64,
    /// Commits made (by all processes).
    pub commits: u64,
    /// The windows equal the ground truth.
    pub windows_match_truth: bool,
}

/// One model over all rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelSummary {
    /// Frames per second.
    pub frames_per_s: Spread,
    /// CPU microseconds per frame.
    pub cpu_us_per_frame: Spread,
    /// `process_frame` p50, nanoseconds.
    pub process_frame_p50_ns: Spread,
    /// `process_frame` p99, nanoseconds.
    pub process_frame_p99_ns: Spread,
    /// `batch.flush` p50, microseconds.
    pub flush_p50_us: Spread,
    /// `batch.flush` p99, microseconds.
    pub flush_p99_us: Spread,
    /// Milliseconds to the first frame.
    pub first_frame_ms: Spread,
    /// Milliseconds to the last frame.
    pub end_ms: Spread,
    /// Milliseconds for the whole set to finish.
    pub set_finish_ms: Spread,
    /// Commits made.
    pub commits: Spread,
    /// Every round's windows equal the ground truth.
    pub windows_match_truth: bool,
}

impl ModelSummary {
    fn of(rounds: &[&Round]) -> Self {
        ModelSummary {
            frames_per_s: Spread::of(rounds.iter().map(|r| r.frames_per_s)),
            cpu_us_per_frame: Spread::of(rounds.iter().map(|r| r.cpu_us_per_frame)),
            process_frame_p50_ns: Spread::of(rounds.iter().map(|r| r.process_frame_ns.0 as f64)),
            process_frame_p99_ns: Spread::of(rounds.iter().map(|r| r.process_frame_ns.1 as f64)),
            flush_p50_us: Spread::of(rounds.iter().map(|r| r.flush_us.0 as f64)),
            flush_p99_us: Spread::of(rounds.iter().map(|r| r.flush_us.1 as f64)),
            first_frame_ms: Spread::of(rounds.iter().map(|r| r.first_frame_ms)),
            end_ms: Spread::of(rounds.iter().map(|r| r.end_ms)),
            set_finish_ms: Spread::of(rounds.iter().map(|r| r.set_finish_ms)),
            commits: Spread::of(rounds.iter().map(|r| r.commits as f64)),
            windows_match_truth: !rounds.is_empty() && rounds.iter().all(|r| r.windows_match_truth),
        }
    }
}

/// Everything `compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// Frames in the data set.
    pub frames: u64,
    /// Valid frames (the rest are bad frames, if configured).
    pub valid_frames: u64,
    /// Partitions of the topics.
    pub partitions: i32,
    /// Processes per model.
    pub instances: u32,
    /// Windows in the ground truth.
    pub windows: usize,
    /// `embedded` or the brokers.
    pub cluster: String,
    /// Every round.
    pub rounds: Vec<Round>,
    /// The partition model over all rounds.
    pub partition: ModelSummary,
    /// The group model over all rounds.
    pub group: ModelSummary,
    /// Both models wrote the same windows in every round (with several processes, whose lines
    /// split the partitions differently: both wrote every share of the truth once, exactly).
    pub models_agree: bool,
    /// Time to consume again after a fault, on live data.
    pub recovery: Recovery,
}

/// Time to consume again, milliseconds, measured while frames flow.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    /// Partition model: from stopping a partition actor to its restarted actor's first chunk
    /// (each restart).
    pub partition_restart_ms: Vec<f64>,
    /// Group model: from one of two members leaving to the other's first chunk of a partition
    /// it took over.
    pub group_member_leave_ms: Option<f64>,
    /// Records the partition model's recovery run passed over unread because they had been
    /// deleted from the log first (must be 0; the embedded cluster keeps about 5 MiB per
    /// partition).
    pub partition_skipped_records: u64,
    /// The same for the group model's members.
    pub group_skipped_records: u64,
    /// With several processes: from SIGKILLing one static instance of the partition model
    /// (started again at once) until every partition has a commit past where it stood at the
    /// kill.
    pub instance_killed_ms: Option<f64>,
    /// The same for one member of the group model (started again at once; the others take
    /// its partitions once its session expires).
    pub member_killed_ms: Option<f64>,
}

impl CompareReport {
    /// Both models wrote exactly the ground truth in every round.
    pub fn correct(&self) -> bool {
        self.partition.windows_match_truth && self.group.windows_match_truth && self.models_agree
    }
}

/// CPU time (user + system) so far, in microseconds, of this process (`RUSAGE_SELF`) or of its
/// children waited for (`RUSAGE_CHILDREN`).
fn cpu_micros(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// Produces the data set, runs the rounds, writes the report and the chart.
///
/// # Errors
/// A data set too large for the embedded cluster, a run that failed, or a report that could not
/// be written.
pub async fn compare(
    mut settings: Settings,
    options: &CompareOptions,
) -> Result<CompareReport, LabError> {
    std::fs::create_dir_all(&options.out).map_err(|source| report_error(&options.out, source))?;
    settings.validate()?;
    // Both models read every partition of the topics (with `--instances`, shared among the
    // processes by compare itself): a configured partition share does not apply.
    settings.kafka.partitions.clear();
    settings.kafka.instance = String::new();
    // Several services run at once (--instances): each takes any free port.
    settings.admin.port = 0;
    let embedded = settings.kafka.embedded();
    if embedded && options.instances > 1 {
        // Measured: three members of one group on the embedded cluster took 88 s for 20 000
        // frames and wrote every window twice.
        return Err(LabError::Config(actors::config::ConfigError::new(
            "--instances",
            "several processes per model need a real cluster (--brokers): the embedded \
             cluster's group coordinator delays every join by the session timeout and refuses \
             commits while a group is joining, so the group model's members would repeat \
             each other's windows",
        )));
    }
    if embedded {
        let per_partition = options.frames * FRAME_LOG_BYTES / options.partitions.max(1) as u64;
        if per_partition > PARTITION_LOG_BYTES * 4 / 5 {
            return Err(LabError::Config(actors::config::ConfigError::new(
                "--frames",
                format!(
                    "{} frames over {} partitions do not fit the embedded cluster's ~5 MiB per partition; \
                     use fewer frames or more partitions",
                    options.frames, options.partitions
                ),
            )));
        }
    }
    let cluster = if embedded {
        let cluster = EmbeddedCluster::start(settings.embedded.brokers)?;
        settings.kafka.topics = Vec::new();
        settings.kafka.topic = format!("compare-{}", std::process::id());
        cluster.create_topic(
            &settings.kafka.topic,
            options.partitions,
            settings.embedded.brokers.min(3),
        )?;
        settings.kafka.brokers = cluster.bootstrap_servers().to_owned();
        Some(cluster)
    } else {
        None
    };
    let partitions: Vec<PartitionId> = if embedded {
        (0..options.partitions)
            .map(|i| PartitionId::of(&settings.kafka.topic, i))
            .collect()
    } else {
        // Look-ups only: they commit nothing, but librdkafka wants a group id.
        let kafka = actors::config::KafkaConfig {
            group: "kafka-actors-compare".to_owned(),
            ..settings.kafka.clone()
        };
        let prefetch = settings.partition.prefetch_frames;
        let (partitions, records) = blocking(move || {
            let ids = actors::kafka::partition_ids(&kafka)?;
            let records = actors::kafka::count_to_end(&kafka, &ids, prefetch)?;
            Ok::<_, actors::kafka::AdapterError>((ids, records))
        })
        .await??;
        // The ground truth covers only the data set produced here: anything already in the
        // topic would be counted by both models and fail the comparison for the wrong reason.
        if records > 0 {
            return Err(LabError::Config(actors::config::ConfigError::new(
                if settings.kafka.topics.is_empty() {
                    "kafka.topic"
                } else {
                    "kafka.topics"
                },
                format!(
                    "`{}` already holds {records} records; compare loads its own data set \
                     and needs an empty topic",
                    settings.kafka.topic_names().join(", ")
                ),
            )));
        }
        partitions
    };

    // The data set: event time runs 1000 frames per second from a fixed start.
    let data = GeneratorConfig {
        rate: 0,
        frames: options.frames,
        event_rate: 1_000.0,
        start_ts: 1_790_000_000.0,
        truth_file: String::new(),
        ..settings.generator.clone()
    };
    let (kafka, limits, window) = (
        settings.kafka.clone(),
        settings.frames.limits(),
        settings.window.length_secs,
    );
    tracing::info!(frames = options.frames, partitions = partitions.len(), topics = %settings.kafka.topic_names().join(","), "Producing the data set.");
    let writes_to = partitions.clone();
    let produced = blocking(move || {
        generator::spawn(&kafka, &data, limits, window, writes_to, false)
            .map_err(|e| LabError::Task(e.to_string()))?
            .wait()
            .map_err(LabError::Generator)
    })
    .await??;
    let truth: &GroundTruth = &produced.truth;
    let expected = truth.lines();
    let processes = match (options.instances, &options.executable) {
        (1, _) => None,
        (_, Some(executable)) => Some(processes::ProcessSet {
            executable,
            dir: &options.out,
            instances: options.instances,
        }),
        (_, None) => {
            return Err(LabError::Task(
                "several instances need the path of the service binary".into(),
            ))
        }
    };

    let mut rounds = Vec::new();
    let mut first_windows: Option<Vec<WindowLine>> = None;
    let mut models_agree = true;
    for round in 0..options.rounds {
        let order = if round % 2 == 0 {
            [Model::Partition, Model::Group]
        } else {
            [Model::Group, Model::Partition]
        };
        for model in order {
            if let Some(set) = &processes {
                let mut s = settings.clone();
                s.run.until_end = false;
                s.run.stop_after = String::new();
                s.metrics.log_interval_ms = 0;
                rounds.push(set.round(&s, model, round, &produced).await?);
                continue;
            }
            let out = options
                .out
                .join(format!("windows-{}-{round}.jsonl", model.as_str()));
            let mut s = settings.clone();
            s.model = model;
            s.kafka.group = format!("compare-{}-{round}-{}", model.as_str(), std::process::id());
            s.run.until_end = true;
            s.run.stop_after = String::new();
            s.metrics.log_interval_ms = 0;
            s.sink.kind = SinkKind::File;
            s.sink.path = out.display().to_string();
            let _ = std::fs::remove_file(&out);
            let (cpu, wall) = (cpu_micros(libc::RUSAGE_SELF), Instant::now());
            let report = run(s, std::future::pending()).await?;
            let (cpu, wall) = (
                cpu_micros(libc::RUSAGE_SELF) - cpu,
                wall.elapsed().as_secs_f64(),
            );
            let windows = read_window_lines(&out).map_err(|source| report_error(&out, source))?;
            match &first_windows {
                None => first_windows = Some(windows.clone()),
                Some(first) => models_agree &= *first == windows,
            }
            let m = &report.summary.metrics;
            let frames = m.frames;
            rounds.push(Round {
                round,
                model: model.as_str(),
                frames,
                frames_per_s: frames as f64 / wall,
                cpu_us_per_frame: cpu / frames.max(1) as f64,
                process_frame_ns: (m.process_frame_ns.p50, m.process_frame_ns.p99),
                flush_us: (m.batch_flush_us.p50, m.batch_flush_us.p99),
                first_frame_ms: m.first_frame_ms.unwrap_or(f64::NAN),
                end_ms: m.last_frame_ms.unwrap_or(f64::NAN),
                set_finish_ms: wall * 1e3,
                commits: m.commits,
                windows_match_truth: windows == expected,
            });
            tracing::info!(
                round,
                model = model.as_str(),
                frames,
                wall_s = wall,
                "Round done."
            );
        }
    }
    if processes.is_some() {
        // The processes' lines split the partitions differently; the models agree when both
        // wrote every share of the truth once, exactly.
        models_agree = rounds.iter().all(|r| r.windows_match_truth);
    }
    let mut recovery = measure_recovery(&settings, &partitions).await?;
    if let Some(set) = &processes {
        let (live, data) = live_settings(&settings);
        recovery.instance_killed_ms = set
            .kill_recovery(&live, Model::Partition, &partitions, &data)
            .await?;
        recovery.member_killed_ms = set
            .kill_recovery(&live, Model::Group, &partitions, &data)
            .await?;
    }
    drop(cluster);
    let by = |name: &str| {
        rounds
            .iter()
            .filter(|r| r.model == name)
            .collect::<Vec<_>>()
    };
    let report = CompareReport {
        frames: options.frames,
        valid_frames: truth.valid,
        partitions: partitions.len() as i32,
        instances: options.instances,
        windows: expected.len(),
        cluster: if embedded {
            "embedded".into()
        } else {
            settings.kafka.brokers.clone()
        },
        partition: ModelSummary::of(&by("partition")),
        group: ModelSummary::of(&by("group")),
        rounds,
        models_agree,
        recovery,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| LabError::Task(e.to_string()))?;
    let json_path = options.out.join("report.json");
    std::fs::write(&json_path, json).map_err(|source| report_error(&json_path, source))?;
    let chart_path = options.out.join("chart.svg");
    chart::draw(&chart_of(&report), &chart_path)
        .map_err(|e| LabError::Task(format!("cannot draw {}: {e}", chart_path.display())))?;
    Ok(report)
}

/// The chart of `report`: the two models side by side for throughput, CPU per frame, time to
/// the first frame and time to the end of the data (median bar, min–max whisker over the
/// rounds).
fn chart_of(report: &CompareReport) -> Chart {
    let panel = |title: &str, partition: Spread, group: Spread| Panel {
        title: title.to_owned(),
        bars: [("partition", partition), ("group", group)]
            .into_iter()
            .map(|(label, s)| Bar {
                label: label.to_owned(),
                median: s.median,
                min: s.min,
                max: s.max,
            })
            .collect(),
    };
    let (p, g) = (&report.partition, &report.group);
    Chart {
        title: format!(
            "partition model vs group model: {} frames, {} partitions, {} process(es) each",
            report.frames, report.partitions, report.instances
        ),
        panels: vec![
            panel("frames/s", p.frames_per_s, g.frames_per_s),
            panel("CPU µs per frame", p.cpu_us_per_frame, g.cpu_us_per_frame),
            panel("ms to first frame", p.first_frame_ms, g.first_frame_ms),
            panel("ms to end of data", p.end_ms, g.end_ms),
            panel("ms for the whole set", p.set_finish_ms, g.set_finish_ms),
        ],
    }
}

/// Polls a run's figures until `done` says so, for at most `limit`; returns when it did.
async fn wait_for(
    supervisor: &Addr<RootSupervisor>,
    limit: Duration,
    mut done: impl FnMut(&MetricsSnapshot) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(metrics) = supervisor.send(GetMetrics).await {
            if done(&metrics) {
                return Some(Instant::now());
            }
        }
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// A running service, its stop switch and its outcome.
type LiveRun = (
    Addr<RootSupervisor>,
    tokio::sync::oneshot::Sender<()>,
    actix_rt::task::JoinHandle<Result<RunReport, RunError>>,
);

/// A run of `settings` in the background.
async fn start_live(settings: Settings) -> Result<LiveRun, LabError> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let handle = actix_rt::spawn(run_with(
        settings,
        async move {
            let _ = stopped.await;
        },
        move |supervisor| {
            let _ = addr_tx.send(supervisor);
        },
    ));
    let supervisor = addr_rx
        .await
        .map_err(|_| LabError::Task("a live run did not start".into()))?;
    Ok((supervisor, stop, handle))
}

fn task_error(error: impl std::fmt::Display) -> LabError {
    LabError::Task(error.to_string())
}

/// Settings and data for the recovery measurements on live data: 5 000 frames/s stamped
/// with the wall clock, read from the end of the topics by fresh groups. The embedded
/// cluster keeps about 5 MiB per partition: at 20 000 frames/s a loaded machine (a CI run
/// with other tests beside it) fell so far behind that the log rolled past a restarted
/// partition's commit; at 5 000 frames/s the log holds four times as long.
fn live_settings(settings: &Settings) -> (Settings, GeneratorConfig) {
    let live = GeneratorConfig {
        rate: 5_000,
        frames: 0,
        event_rate: 0.0,
        jitter_secs: 0.0,
        truth_file: String::new(),
        ..settings.generator.clone()
    };
    let mut base = settings.clone();
    base.kafka.auto_offset_reset = actors::config::OffsetReset::Latest;
    // A member that leaves is replaced after a rebalance; on the embedded cluster that comes
    // `session_timeout_ms` − 1 s after the change. The 45 s default would outlast this
    // measurement (and the embedded cluster's small log would roll past
    // the commits meanwhile). 6 s is Kafka's smallest allowed session.
    base.group.session_timeout_ms = 6_000;
    base.group.revoke_timeout_ms = 3_000;
    // Commits never pass the first frame of an open window: with minute windows they would
    // stand still for the whole measurement while the embedded cluster's log rolls on, and a
    // partition handed over would start from records already deleted. One-second windows
    // closing a second after their end keep the commits a few seconds behind.
    base.window.length_secs = 1;
    base.window.lateness_secs = 1;
    base.run.until_end = false;
    base.run.stop_after = String::new();
    base.metrics.log_interval_ms = 0;
    base.sink.kind = SinkKind::File;
    (base, live)
}

/// Measures recovery on live data produced into the topic after the rounds (read from its
/// end by fresh groups).
async fn measure_recovery(
    settings: &Settings,
    partitions: &[PartitionId],
) -> Result<Recovery, LabError> {
    let first = partitions[0];
    let (base, live) = live_settings(settings);
    let generator = generator::spawn(
        &base.kafka,
        &live,
        base.frames.limits(),
        base.window.length_secs,
        partitions.to_vec(),
        false,
    )
    .map_err(task_error)?;
    let scratch = std::env::temp_dir().join(format!("kafka-actors-compare-{}", std::process::id()));
    let mut recovery = Recovery::default();

    // Partition model: restart the first partition three times.
    let mut s = base.clone();
    s.model = Model::Partition;
    s.kafka.group = format!("compare-recovery-partition-{}", std::process::id());
    s.sink.path = scratch
        .with_extension("partition.jsonl")
        .display()
        .to_string();
    let (supervisor, stop, handle) = start_live(s).await?;
    wait_for(&supervisor, Duration::from_secs(20), |m| {
        m.partitions.get(&first).is_some_and(|p| p.chunks > 0)
    })
    .await;
    for _ in 0..3 {
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        supervisor
            .send(RestartPartition(first))
            .await
            .map_err(task_error)?
            .map_err(LabError::Task)?;
        // The old actor is gone: any chunk from here on is the new one's.
        let before = supervisor.send(GetMetrics).await.map_err(task_error)?;
        let chunks = before.partitions.get(&first).map_or(0, |p| p.chunks);
        let again = wait_for(&supervisor, Duration::from_secs(20), |m| {
            m.partitions.get(&first).is_some_and(|p| p.chunks > chunks)
        })
        .await;
        if let Some(at) = again {
            recovery
                .partition_restart_ms
                .push((at - started).as_secs_f64() * 1e3);
        }
    }
    let _ = stop.send(());
    recovery.partition_skipped_records = handle
        .await
        .map_err(task_error)??
        .summary
        .metrics
        .skipped_records;

    // Group model: two members; one leaves, the other takes its partitions over.
    let group = format!("compare-recovery-group-{}", std::process::id());
    let member = |name: &str| {
        let mut s = base.clone();
        s.model = Model::Group;
        s.kafka.group = group.clone();
        s.sink.path = scratch
            .with_extension(format!("{name}.jsonl"))
            .display()
            .to_string();
        s
    };
    let (a, stop_a, handle_a) = start_live(member("a")).await?;
    wait_for(&a, Duration::from_secs(60), |m| {
        m.partitions.values().any(|p| p.chunks > 0)
    })
    .await;
    let (b, stop_b, handle_b) = start_live(member("b")).await?;
    wait_for(&b, Duration::from_secs(60), |m| {
        m.partitions.values().any(|p| p.chunks > 0)
    })
    .await;
    // The partitions A reads once the join has settled, and how far each has got.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let before = a.send(GetMetrics).await.map_err(task_error)?;
    let taken_by_b: Vec<PartitionId> = b
        .send(GetMetrics)
        .await
        .map_err(task_error)?
        .partitions
        .iter()
        .filter(|(_, m)| m.chunks > 0)
        .map(|(p, _)| *p)
        .collect();
    let chunks_before = |p: &PartitionId| before.partitions.get(p).map_or(0, |m| m.chunks);
    let left = Instant::now();
    let _ = stop_b.send(());
    recovery.group_skipped_records += handle_b
        .await
        .map_err(task_error)??
        .summary
        .metrics
        .skipped_records;
    let taken_over = wait_for(&a, Duration::from_secs(120), |m| {
        taken_by_b.iter().any(|p| {
            m.partitions
                .get(p)
                .is_some_and(|pm| pm.chunks > chunks_before(p))
        })
    })
    .await;
    recovery.group_member_leave_ms = taken_over.map(|at| (at - left).as_secs_f64() * 1e3);
    let _ = stop_a.send(());
    recovery.group_skipped_records += handle_a
        .await
        .map_err(task_error)??
        .summary
        .metrics
        .skipped_records;
    blocking(move || generator.join().map(|_| ()))
        .await?
        .map_err(LabError::Generator)?;
    for suffix in ["partition.jsonl", "a.jsonl", "b.jsonl"] {
        let _ = std::fs::remove_file(scratch.with_extension(suffix));
    }
    Ok(recovery)
}

fn report_error(path: &Path, source: std::io::Error) -> LabError {
    LabError::Report {
        path: path.display().to_string(),
        source,
    }
}

/// The side-by-side table.
pub fn table(report: &CompareReport) -> String {
    let mut t = String::new();
    let line = |t: &mut String, name: &str, p: String, g: String| {
        t.push_str(&format!("{name:<34} {p:>26} {g:>26}\n"))
    };
    let spread = |s: &Spread, digits: usize| {
        format!(
            "{:.*} ({:.*}–{:.*})",
            digits, s.median, digits, s.min, digits, s.max
        )
    };
    line(&mut t, "", "partition model".into(), "group model".into());
    let (p, g) = (&report.partition, &report.group);
    line(
        &mut t,
        "frames/s",
        spread(&p.frames_per_s, 0),
        spread(&g.frames_per_s, 0),
    );
    line(
        &mut t,
        "CPU µs/frame (process)",
        spread(&p.cpu_us_per_frame, 2),
        spread(&g.cpu_us_per_frame, 2),
    );
    line(
        &mut t,
        "process_frame p50 / p99 (ns)",
        pair(&p.process_frame_p50_ns, &p.process_frame_p99_ns),
        pair(&g.process_frame_p50_ns, &g.process_frame_p99_ns),
    );
    line(
        &mut t,
        "batch.flush p50 / p99 (µs)",
        pair(&p.flush_p50_us, &p.flush_p99_us),
        pair(&g.flush_p50_us, &g.flush_p99_us),
    );
    line(
        &mut t,
        "to first frame (ms)",
        spread(&p.first_frame_ms, 0),
        spread(&g.first_frame_ms, 0),
    );
    line(
        &mut t,
        "to end of data (ms)",
        spread(&p.end_ms, 0),
        spread(&g.end_ms, 0),
    );
    line(
        &mut t,
        "whole set finished (ms)",
        spread(&p.set_finish_ms, 0),
        spread(&g.set_finish_ms, 0),
    );
    line(
        &mut t,
        "commits",
        spread(&p.commits, 0),
        spread(&g.commits, 0),
    );
    let restart = Spread::of(report.recovery.partition_restart_ms.iter().copied());
    let leave = report
        .recovery
        .group_member_leave_ms
        .map_or("not measured".to_owned(), |ms| format!("{ms:.0}"));
    line(
        &mut t,
        "recovery ms: restart / member leaves",
        spread(&restart, 1),
        leave,
    );
    if report.instances > 1 {
        let killed =
            |ms: Option<f64>| ms.map_or("not within 120 s".to_owned(), |ms| format!("{ms:.0}"));
        line(
            &mut t,
            "recovery ms: a process SIGKILLed",
            killed(report.recovery.instance_killed_ms),
            killed(report.recovery.member_killed_ms),
        );
    }
    line(
        &mut t,
        "recovery runs: records skipped unread",
        report.recovery.partition_skipped_records.to_string(),
        report.recovery.group_skipped_records.to_string(),
    );
    line(
        &mut t,
        "windows = ground truth",
        yes(p.windows_match_truth),
        yes(g.windows_match_truth),
    );
    t.push_str(&format!(
        "{:<34} {:>53}\n",
        if report.instances > 1 {
            "every share once in both models"
        } else {
            "windows identical between models"
        },
        yes(report.models_agree)
    ));
    t.push_str(&format!(
        "data: {} frames ({} valid), {} partitions, {} windows, {} rounds per model, {} per model, cluster {}\n",
        report.frames,
        report.valid_frames,
        report.partitions,
        report.windows,
        report.rounds.len() / 2,
        match report.instances {
            1 => "one process".to_owned(),
            k => format!("{k} processes"),
        },
        report.cluster
    ));
    t
}

fn pair(a: &Spread, b: &Spread) -> String {
    format!("{:.0} / {:.0}", a.median, b.median)
}

fn yes(v: bool) -> String {
    if v {
        "yes".into()
    } else {
        "NO".into()
    }
}
