//! kafka-actors, the service: settings, telemetry, and [`run`], which wires the actor system
//! (the `actors` crate) to Kafka or to the embedded cluster and its frame generator.
//!
//! `run` must be called inside an actix `System` (the binary's `main` and `#[actix::test]` both
//! provide one).
//!
//! The tools around the service (`chaos`, `compare`) are in the `kafka-actors-lab` crate
//! (`lab/`), which builds on this one.

pub mod admin;
pub mod cli;
pub mod layout;
pub mod prometheus;
pub mod settings;
pub mod telemetry;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actors::config::SinkKind;
use actors::config::{ConfigError, KafkaConfig};
use actors::failure::StopCause;
use actors::faults::FaultPlan;
use actors::frame::FrameLimits;
use actors::generator::{self, GeneratorError, GeneratorHandle, GeneratorReport};
use actors::intake::IntakeListener;
use actors::kafka::{
    self, AdapterError, AssigningConsumer, EmbeddedCluster, GroupConsumer, LeaderStats,
};
use actors::layout::SelectionError;
use actors::outlet::Sink;
use actors::outlet::{DeadLetterSink, Outlet, TransactionFailure, TransactionalSink};
use actors::partition::EndPolicy;
use actors::ports::{AssignedPartition, EndOffsetProbe, OffsetCommitter, StartOffset};
use actors::sink::{open_sink, slowed};
use actors::supervisor::{
    EndOffsets, Intake, Outcome, PipelineSpec, RootSupervisor, RunSummary, Shutdown,
};
use actors::topic::PartitionId;

pub use settings::{Model, Settings};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `kafka.partitions` or `kafka.instance` does not fit the topics.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// Kafka could not be reached or set up.
    #[error(transparent)]
    Kafka(#[from] AdapterError),
    /// The sink could not be opened.
    #[error("cannot open the sink `{path}`")]
    Sink {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Kafka output could not start.
    #[error(transparent)]
    Outlet(#[from] kafka::OutletError),
    /// The generator failed.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// A part of the actor system failed and the service stopped (gracefully: closed windows
    /// were written and their offsets committed).
    #[error("stopped after a failure: {cause}")]
    Failed {
        /// What failed.
        cause: Failure,
        /// The figures and offsets up to the stop.
        summary: Box<RunSummary>,
    },
    /// Draining after the stop did not finish within `shutdown.timeout_ms`; nothing further
    /// was committed.
    #[error(
        "stopping did not finish within shutdown.timeout_ms ({timeout_ms} ms): exiting without \
         committing anything further (output written since the last commit is read again by \
         the next run)"
    )]
    ShutdownTimeout {
        /// The deadline.
        timeout_ms: u64,
    },
    /// The admin endpoint could not start.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// A blocking task could not finish.
    #[error("internal task failed: {0}")]
    Task(String),
    /// A report or output file could not be written or read.
    #[error("cannot write or read `{path}`")]
    Report {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a run stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The actor tree stopped it.
    #[error(transparent)]
    Stopped(#[from] StopCause),
    /// The supervisor went away without saying why.
    #[error("the supervisor stopped unexpectedly")]
    SupervisorGone,
    /// `--until-end` on the embedded cluster, and the generator stopped short.
    #[error("the generator stopped before producing all its frames")]
    GeneratorShort,
}

/// How and where a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The input was consumed to its end and every window was written.
    pub completed: bool,
    /// Final figures and offsets.
    pub summary: RunSummary,
    /// The partitions consumed.
    pub partitions: Vec<PartitionId>,
    /// The embedded generator's report (embedded runs only).
    pub generator: Option<GeneratorReport>,
}

/// Runs `f` on actix's blocking pool (Kafka look-ups and other blocking calls inside a run).
///
/// # Errors
/// [`RunError::Task`] if the task panicked or was cancelled.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    actix_rt::task::spawn_blocking(f)
        .await
        .map_err(|e| RunError::Task(e.to_string()))
}

/// Runs the service until `shutdown` resolves, `run.stop_after` passes, the input ends
/// (`run.until_end`), or a part fails. Stopping is graceful: intake stops, closed windows are
/// written, offsets committed.
///
/// # Errors
/// Invalid settings, an unreachable cluster, or a failure that stopped the service.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, RunError> {
    run_with(settings, shutdown, |_| {}).await
}

/// [`run`], handing the supervisor's address to `on_start` once the actor tree starts: tools
/// and tests ask it for figures or restart partitions through it.
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(actix::Addr<RootSupervisor>),
) -> Result<RunReport, RunError> {
    run_with_faults(settings, shutdown, None, on_start).await
}

/// [`run_with`], with the partition sources and the output wrapped in `faults` (fault
/// injection: `chaos` and the tests arm faults in the plan while the service runs).
///
/// # Errors
/// As [`run`].
pub async fn run_with_faults(
    mut settings: Settings,
    shutdown: impl Future<Output = ()>,
    faults: Option<FaultPlan>,
    on_start: impl FnOnce(actix::Addr<RootSupervisor>),
) -> Result<RunReport, RunError> {
    settings.validate()?;
    let stop_after = settings.run.stop_after()?;
    let until_end = settings.run.until_end;
    let admin_state = admin::AdminState::new(settings.model, &settings.admin);
    let admin = match settings.admin.enabled {
        true => Some(admin::AdminServer::start(
            &settings.admin,
            admin_state.clone(),
        )?),
        false => None,
    };

    // The embedded cluster lives until the end of this function, after every client of it.
    let embedded = if settings.kafka.embedded() {
        let cluster = EmbeddedCluster::start(settings.embedded.brokers)?;
        let replication = settings.embedded.brokers.min(3);
        let topics = settings.kafka.topic_names();
        for topic in &topics {
            cluster.create_topic(topic, settings.embedded.partitions, replication)?;
        }
        // The output topics live on the same cluster, which takes no CreateTopics request.
        let outputs = [
            (settings.sink.kind == SinkKind::Kafka).then(|| settings.sink.topic.clone()),
            settings
                .sink
                .dead_letter
                .enabled()
                .then(|| settings.sink.dead_letter.topic.clone()),
        ];
        for topic in outputs.into_iter().flatten() {
            if settings.sink.brokers.trim().is_empty() {
                cluster.create_topic(&topic, settings.sink.topic_partitions, replication)?;
            }
        }
        settings.kafka.brokers = cluster.bootstrap_servers().to_owned();
        tracing::info!(
            brokers = settings.embedded.brokers,
            topics = %topics.join(","),
            partitions = settings.embedded.partitions,
            "Started the embedded Kafka cluster."
        );
        Some(cluster)
    } else {
        None
    };
    if settings.kafka.group.trim().is_empty() {
        settings.kafka.group = format!("kafka-actors-{}", settings.model.as_str());
    }
    let kafka = Arc::new(settings.kafka.clone());
    let leaders = (settings.supervisor.stats_interval_ms > 0).then(|| LeaderStats {
        board: Arc::default(),
        interval_ms: settings.supervisor.stats_interval_ms,
    });
    let Intake_ {
        mut intake,
        committer,
        probe,
        all,
        partitions,
        transactions,
    } = prepare_intake(&settings, kafka.clone(), leaders.clone()).await?;
    if let Some(faults) = &faults {
        intake.assignments = faults.wrap(intake.assignments);
    }
    // Closed once a stop misses its deadline: no commit goes out after that.
    let commits_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut outlet =
        open_outlet(&settings, committer, transactions, commits_closed.clone()).await?;
    if let Some(faults) = &faults {
        outlet = faults.wrap_outlet(outlet);
    }
    let probe = (settings.supervisor.stall_timeout_ms > 0).then_some(probe);

    let mut generator = match &embedded {
        Some(_) => Some(start_generator(&settings, all.clone())?),
        None => None,
    };
    let end = match (until_end, &generator) {
        (false, _) => EndPolicy::Never,
        (true, Some(_)) => EndPolicy::AwaitOffset,
        (true, None) => EndPolicy::FirstEnd,
    };
    let spec = PipelineSpec {
        intake,
        outlet,
        partition: settings.partition.clone(),
        limits: FrameLimits {
            invalid: settings.sink.dead_letter.policy(),
            ..settings.frames.limits()
        },
        window: settings.window.clone(),
        flush: settings.flush.clone(),
        metrics: settings.metrics.clone(),
        end,
        keep_open_at_end: settings.run.keep_open_windows,
        require_full_cover: (!settings.sink.label_partitions).then(|| all.clone()),
        supervisor: settings.supervisor.clone(),
        probe,
        leaders: leaders.map(|l| l.board),
    };
    let (supervisor, mut outcome) = RootSupervisor::launch(spec);
    admin_state.running(supervisor.clone());
    on_start(supervisor.clone());

    let mut generator_done = generator.as_mut().and_then(GeneratorHandle::finished);
    let timer = async {
        match stop_after {
            Some(after) => actix_rt::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown);
    tokio::pin!(timer);
    let result: Result<bool, Failure> = loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("Shutdown requested; draining.");
                break Ok(false);
            }
            () = &mut timer => {
                tracing::info!("Run time is up; draining.");
                break Ok(false);
            }
            ended = &mut outcome => break match ended {
                Ok(Outcome::Completed) => Ok(true),
                Ok(Outcome::Failed(cause)) => Err(Failure::Stopped(cause)),
                Err(_) => Err(Failure::SupervisorGone),
            },
            ends = until_generator_done(generator_done.as_mut()) => {
                generator_done = None;
                match ends {
                    Ok(mut ends) if until_end => {
                        ends.retain(|p, _| partitions.contains(p));
                        supervisor.do_send(EndOffsets(ends));
                    }
                    Ok(_) => {}
                    Err(_) if until_end => break Err(Failure::GeneratorShort),
                    Err(_) => {}
                }
            }
        }
    };
    admin_state.draining();
    let timeout_ms = settings.shutdown.timeout_ms;
    let summary =
        match tokio::time::timeout(Duration::from_millis(timeout_ms), supervisor.send(Shutdown))
            .await
        {
            Ok(summary) => summary.unwrap_or_default(),
            Err(_) => {
                commits_closed.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(
                    timeout_ms,
                    "Stopping did not finish within shutdown.timeout_ms; exiting without \
                 committing anything further."
                );
                return Err(RunError::ShutdownTimeout { timeout_ms });
            }
        };
    // A failure while draining (the last flush refused by the output) is the run's failure:
    // what that flush held is neither written nor committed, and the exit status says so. (A
    // run that ended on its own has had its outcome already.)
    let result = match result {
        Ok(false) => match tokio::time::timeout(Duration::from_millis(200), &mut outcome).await {
            Ok(Ok(Outcome::Failed(cause))) => Err(Failure::Stopped(cause)),
            _ => Ok(false),
        },
        other => other,
    };
    drop(admin);
    let generator_report = match generator {
        Some(handle) => Some(blocking(move || handle.join()).await??),
        None => None,
    };
    drop(embedded);
    tracing::info!(
        completed = result.as_ref().is_ok_and(|c| *c),
        frames = summary.metrics.frames,
        windows = summary.metrics.windows,
        restarts = summary.metrics.restarts,
        open_windows = summary.drain.open_windows,
        committed = ?summary.drain.committed,
        "Stopped."
    );
    let completed = match result {
        Ok(completed) => completed,
        Err(cause) => {
            return Err(RunError::Failed {
                cause,
                summary: Box::new(summary),
            })
        }
    };
    Ok(RunReport {
        completed,
        summary,
        partitions,
        generator: generator_report,
    })
}

/// Commits through `inner` until `closed` is set (a stop missed its deadline): then refuses
/// every commit, as an error no retry cures.
struct GatedCommitter {
    inner: Box<dyn OffsetCommitter>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl OffsetCommitter for GatedCommitter {
    fn commit(
        &mut self,
        positions: &[actors::ports::CommitPosition],
    ) -> Result<Vec<actors::ports::CommitPosition>, actors::ports::CommitError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(actors::ports::CommitError {
                kind: actors::ports::CommitErrorKind::Permanent,
                message: "the stop missed shutdown.timeout_ms: nothing more is committed".into(),
            });
        }
        self.inner.commit(positions)
    }
}

/// Transactions through `inner` until `closed` is set (a stop missed its deadline): then
/// refuses every flush. Waits `delay` before each (fault injection: `sink.write_delay_ms`).
struct GatedTransactions {
    inner: Box<dyn TransactionalSink>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
}

impl TransactionalSink for GatedTransactions {
    fn write_and_commit(
        &mut self,
        windows: &[actors::window::ClosedWindow],
        letters: &[actors::frame::DeadLetter],
        positions: &[actors::ports::CommitPosition],
        retry_until: Option<std::time::Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<actors::ports::CommitPosition>, TransactionFailure> {
        std::thread::sleep(self.delay);
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TransactionFailure::Closed);
        }
        self.inner
            .write_and_commit(windows, letters, positions, retry_until, owned)
    }
}

/// The transactional id of exactly-once output: `sink.transactional_id`, or one derived from
/// the model. The partition model reads a fixed set of partitions, so the id names the group
/// and that set: an instance started again on the same partitions fences the old one (and
/// aborts the transaction it left open) as it starts. A group member's partitions change with
/// every rebalance; the coordinator fences a member of an old generation through the group
/// metadata sent with the offsets (KIP-447), so the id only needs to be its own: the static
/// member's instance id (a restart then aborts what it left open at once), else the host,
/// process and start time.
fn transactional_id(settings: &Settings, partitions: &[PartitionId]) -> String {
    let configured = settings.sink.transactional_id.trim();
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let group = &settings.kafka.group;
    let id = match settings.model {
        Model::Partition => {
            format!(
                "{group}.{}",
                actors::layout::describe_partitions(partitions)
            )
        }
        Model::Group => match settings.group.instance_id.trim() {
            "" => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "host".to_owned());
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                // Several members may run in one process (tests, tools).
                static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("{group}.{host}.{}.{started}.{n}", std::process::id())
            }
            instance => format!("{group}.{instance}"),
        },
    };
    if id.len() <= 200 {
        return id;
    }
    // Hundreds of scattered partitions: a stable digest of the set instead.
    let digest = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{group}.partitions-{digest:016x}")
}

/// Where flushes go, as `settings.sink` says: windows to stdout, a file or a topic, invalid
/// records to the dead-letter topic, offsets through `commits`; or, exactly once (when
/// [`prepare_intake`] started `transactions`), all three in one transaction per flush.
async fn open_outlet(
    settings: &Settings,
    commits: kafka::GroupCommits,
    transactions: Option<kafka::Transactions>,
    closed: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Outlet, RunError> {
    let (kafka, sink) = (settings.kafka.clone(), settings.sink.clone());
    blocking(move || -> Result<Outlet, RunError> {
        if let Some(transactions) = transactions {
            tracing::info!(
                topic = %sink.topic,
                dead_letters = %sink.dead_letter.topic,
                "Results go to Kafka exactly once: one transaction per flush."
            );
            return Ok(Outlet::ExactlyOnce(Box::new(GatedTransactions {
                inner: Box::new(commits.exactly_once(transactions, &sink)),
                closed,
                delay: Duration::from_millis(sink.write_delay_ms),
            })));
        }
        let windows: Box<dyn Sink> = match sink.kind {
            SinkKind::Kafka => slowed(Box::new(kafka::KafkaSink::open(&kafka, &sink)?), &sink),
            SinkKind::Stdout | SinkKind::File => {
                open_sink(&sink).map_err(|source| RunError::Sink {
                    path: sink.path.clone(),
                    source,
                })?
            }
        };
        let dead_letters =
            match sink.dead_letter.enabled() {
                true => Some(Box::new(kafka::KafkaDeadLetters::open(&kafka, &sink)?)
                    as Box<dyn DeadLetterSink>),
                false => None,
            };
        Ok(Outlet::AtLeastOnce {
            sink: windows,
            dead_letters,
            committer: Box::new(GatedCommitter {
                inner: Box::new(commits),
                closed,
            }),
        })
    })
    .await?
}

/// Connects the chosen model's intake: the partition model looks up the partitions and the
/// group's committed offsets and commits through a client of its own; the group model
/// subscribes a member, which also commits.
async fn prepare_intake(
    settings: &Settings,
    kafka: Arc<KafkaConfig>,
    leaders: Option<LeaderStats>,
) -> Result<Intake_, RunError> {
    let intake = settings.partition.clone();
    match settings.model {
        Model::Partition => {
            // One client serves the start-up look-ups, reads this instance's partitions and
            // commits.
            let lookups = kafka.clone();
            let selection = kafka.selection()?;
            let reads = selection.to_string();
            let service = settings.clone();
            let (consumer, all, partitions, committed, transactions) =
                blocking(move || -> Result<_, RunError> {
                    let started = std::time::Instant::now();
                    let all = kafka::partition_ids(&lookups)?;
                    let partitions = selection.apply(&all)?;
                    tracing::debug!(took = ?started.elapsed(), "Partitions looked up.");
                    // Before the committed offsets: see `kafka::Transactions`.
                    let transactions = start_transactions(&service, &partitions)?;
                    let consumer = AssigningConsumer::create(
                        &lookups,
                        &intake,
                        partitions.len(),
                        leaders.as_ref(),
                    )?;
                    tracing::debug!(took = ?started.elapsed(), "Intake client created.");
                    let committed = consumer.committed(&partitions)?;
                    tracing::debug!(took = ?started.elapsed(), "Committed positions looked up.");
                    Ok((consumer, all, partitions, committed, transactions))
                })
                .await??;
            let assigned: Vec<AssignedPartition> = partitions
                .iter()
                .map(|p| {
                    let committed = committed.iter().find(|c| c.partition == *p);
                    AssignedPartition {
                        partition: *p,
                        start: committed
                            .and_then(|c| c.offset)
                            .map_or(StartOffset::Reset, StartOffset::At),
                        metadata: committed.map(|c| c.metadata.clone()).unwrap_or_default(),
                        skipped: None,
                    }
                })
                .collect();
            tracing::info!(
                topics = %kafka.topic_names().join(","),
                group = %kafka.group,
                reads = %reads,
                partitions = partitions.len(),
                of = all.len(),
                committed = committed.iter().filter(|c| c.offset.is_some()).count(),
                "Starting the partition model."
            );
            let listener =
                IntakeListener::new(Duration::from_millis(settings.group.revoke_timeout_ms));
            let hears = listener.clone();
            let assigned = blocking(move || consumer.assign(assigned, hears)).await??;
            Ok(Intake_ {
                intake: Intake {
                    assignments: assigned.assignments,
                    listener,
                },
                committer: assigned.committer,
                probe: assigned.end_offsets,
                all,
                partitions,
                transactions,
            })
        }
        Model::Group => {
            let group = settings.group.clone();
            let listener = IntakeListener::new(Duration::from_millis(group.revoke_timeout_ms));
            let hears = listener.clone();
            // A member that crashed inside a transaction holds its offsets until the broker
            // aborts that transaction: the next owner waits for it.
            let committed_wait = match settings.sink.exactly_once {
                true => Duration::from_millis(settings.sink.transaction_timeout_ms + 5_000),
                false => Duration::ZERO,
            };
            let service = settings.clone();
            let (member, partitions, transactions) = blocking(move || -> Result<_, RunError> {
                let partitions = kafka::partition_ids(&kafka)?;
                // Before joining: a static member's restart aborts what it left open at once.
                let transactions = start_transactions(&service, &partitions)?;
                let member = GroupConsumer::subscribe(
                    &kafka,
                    &group,
                    &intake,
                    partitions.len(),
                    hears,
                    leaders.as_ref(),
                    committed_wait,
                )?;
                tracing::info!(
                    topics = %kafka.topic_names().join(","),
                    group = %kafka.group,
                    partitions = partitions.len(),
                    assignment = group.assignment.librdkafka_name(),
                    "Starting the group model."
                );
                Ok((member, partitions, transactions))
            })
            .await??;
            Ok(Intake_ {
                committer: member.committer(),
                probe: member.end_offsets(),
                intake: Intake {
                    assignments: Box::new(member),
                    listener,
                },
                all: partitions.clone(),
                partitions,
                transactions,
            })
        }
    }
}

/// What [`prepare_intake`] connected.
struct Intake_ {
    intake: Intake,
    committer: kafka::GroupCommits,
    /// End offsets for the stall watchdog, through the intake's client.
    probe: EndOffsetProbe,
    /// Every partition of the input topics.
    all: Vec<PartitionId>,
    /// The partitions this instance may read: its selection (partition model), or every
    /// partition (group model: the coordinator assigns them).
    partitions: Vec<PartitionId>,
    /// The started transactional producer, with `sink.exactly_once`.
    transactions: Option<kafka::Transactions>,
}

/// With `sink.exactly_once`, the transactional producer of this instance, started; reading
/// `partitions` (the partition model's id names them).
fn start_transactions(
    settings: &Settings,
    partitions: &[PartitionId],
) -> Result<Option<kafka::Transactions>, RunError> {
    if !settings.sink.exactly_once {
        return Ok(None);
    }
    let id = transactional_id(settings, partitions);
    Ok(Some(kafka::Transactions::start(
        &settings.kafka,
        &settings.sink,
        &id,
    )?))
}

fn start_generator(
    settings: &Settings,
    partitions: Vec<PartitionId>,
) -> Result<GeneratorHandle, RunError> {
    let handle = generator::spawn(
        &settings.kafka,
        &settings.generator,
        settings.frames.limits(),
        settings.window.length_secs,
        partitions,
        false,
    )
    .map_err(|e| RunError::Task(format!("cannot start the generator thread: {e}")))?;
    if !settings.generator.truth_file.is_empty() {
        tracing::info!(path = %Path::new(&settings.generator.truth_file).display(), "The generator writes its ground truth here.");
    }
    Ok(handle)
}

/// An error and its sources on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match actix_rt::signal::unix::signal(
            actix_rt::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the service.");
                let _ = actix_rt::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = actix_rt::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        // A second signal while stopping exits at once: nothing further is written or
        // committed, and the next run reads again from the last commit.
        actix_rt::spawn(async move {
            tokio::select! {
                _ = actix_rt::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("Second signal while stopping: exiting at once.");
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    {
        let _ = actix_rt::signal::ctrl_c().await;
    }
}

/// Resolves with the generator's end offsets; never, when there is nothing to wait for.
async fn until_generator_done<T>(
    done: Option<&mut tokio::sync::oneshot::Receiver<T>>,
) -> Result<T, tokio::sync::oneshot::error::RecvError> {
    match done {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}
