//! The pipeline the settings describe, built once: the intake connected to Kafka (the
//! partition model's assigned partitions or the group model's member), the outlet (file,
//! stdout or Kafka, at least once or exactly once, with the faults and the write delay the
//! settings ask for) and the specs of the actors, which the supervisor only starts.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actors::batch::{BatchSpec, Closing, Cover};
use actors::config::{KafkaConfig, SinkKind};
use actors::faults::{delay_writes, FaultPlan};
use actors::frame::FrameLimits;
use actors::intake::{IntakeListener, ReadingSpec, RevokeWait};
use actors::kafka::{self, AssigningConsumer, GroupConsumer, LeaderStats};
use actors::outlet::{DeadLetterSink, Outlet, Sink, TransactionFailure, TransactionalSink};
use actors::partition::EndPolicy;
use actors::ports::{AssignedPartition, EndOffsetProbe, OffsetCommitter, StartOffset};
use actors::sink::{open_sink, LocalSink};
use actors::supervisor::{Intake, PipelineSpec};
use actors::topic::PartitionId;

use crate::{blocking, Model, RunError, Settings};

/// The pipeline, ready for the supervisor to start.
pub(crate) struct Pipeline {
    /// What the supervisor starts.
    pub spec: PipelineSpec,
    /// Every partition of the input topics.
    pub all: Vec<PartitionId>,
    /// The partitions this instance may read: its selection (partition model), or every
    /// partition (group model: the coordinator assigns them).
    pub partitions: Vec<PartitionId>,
    /// Set once a stop misses its deadline: no commit goes out after that.
    pub commits_closed: Arc<AtomicBool>,
}

/// Builds the pipeline `settings` describe, with the partition sources and the output wrapped
/// in `faults` when given. `generated`: the embedded generator writes the input, whose end a
/// run to the end waits for.
///
/// # Errors
/// Kafka cannot be reached or set up, a partition selection does not fit the topics, or the
/// output cannot be opened.
pub(crate) async fn build(
    settings: &Settings,
    faults: Option<&FaultPlan>,
    generated: bool,
) -> Result<Pipeline, RunError> {
    let kafka = Arc::new(settings.kafka.clone());
    let leaders = (settings.supervisor.stats_interval_ms > 0).then(|| LeaderStats {
        board: Arc::default(),
        interval_ms: settings.supervisor.stats_interval_ms,
    });
    let ConnectedIntake {
        mut intake,
        committer,
        probe,
        all,
        partitions,
        transactions,
    } = connect_intake(settings, kafka, leaders.clone()).await?;
    if let Some(faults) = faults {
        intake.assignments = faults.wrap(intake.assignments);
    }
    let commits_closed = Arc::new(AtomicBool::new(false));
    let mut outlet = open_outlet(settings, committer, transactions, commits_closed.clone()).await?;
    if let Some(faults) = faults {
        outlet = faults.wrap_outlet(outlet);
    }
    let outlet = delay_writes(outlet, Duration::from_millis(settings.sink.write_delay_ms));
    let end = match (settings.run.until_end, generated) {
        (false, _) => EndPolicy::Never,
        (true, true) => EndPolicy::AwaitOffset,
        (true, false) => EndPolicy::FirstEnd,
    };
    let closing = match end {
        EndPolicy::Never => Closing::ByWatermark,
        _ if settings.run.keep_open_windows => Closing::ClosedAtEnd,
        _ => Closing::AllAtEnd,
    };
    // Partitions read elsewhere too (group model) must be accounted for before the run is
    // complete.
    let cover = match (closing, intake.assignments.coverage()) {
        (Closing::ByWatermark, _) | (_, None) => Cover::Given,
        (_, Some(_)) => Cover::Group,
    };
    let spec = PipelineSpec {
        intake,
        outlet,
        reading: ReadingSpec {
            partition: settings.partition.clone(),
            limits: FrameLimits {
                invalid: settings.sink.dead_letter.policy(),
                ..settings.frames.limits()
            },
            end,
        },
        batch: BatchSpec {
            window: settings.window.clone(),
            flush: settings.flush.clone(),
            partitions: Vec::new(),
            closing,
            cover,
            require_full_cover: (!settings.sink.label_partitions).then(|| all.clone()),
        },
        metrics: settings.metrics.clone(),
        supervisor: settings.supervisor.clone(),
        probe: (settings.supervisor.stall_timeout_ms > 0).then_some(probe),
        leaders: leaders.map(|l| l.board),
    };
    Ok(Pipeline {
        spec,
        all,
        partitions,
        commits_closed,
    })
}

/// Commits through `inner` until `closed` is set (a stop missed its deadline): then refuses
/// every commit, as an error no retry cures.
struct GatedCommitter {
    inner: Box<dyn OffsetCommitter>,
    closed: Arc<AtomicBool>,
}

impl OffsetCommitter for GatedCommitter {
    fn commit(
        &mut self,
        positions: &[actors::ports::CommitPosition],
    ) -> Result<Vec<actors::ports::CommitPosition>, actors::ports::CommitError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(actors::ports::CommitError {
                kind: actors::ports::CommitErrorKind::Permanent,
                message: "the stop missed shutdown.timeout_ms: nothing more is committed".into(),
            });
        }
        self.inner.commit(positions)
    }
}

/// Transactions through `inner` until `closed` is set (a stop missed its deadline): then
/// refuses every flush.
struct GatedTransactions {
    inner: Box<dyn TransactionalSink>,
    closed: Arc<AtomicBool>,
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
        if self.closed.load(Ordering::SeqCst) {
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
/// [`connect_intake`] started `transactions`), all three in one transaction per flush.
async fn open_outlet(
    settings: &Settings,
    commits: kafka::GroupCommits,
    transactions: Option<kafka::Transactions>,
    closed: Arc<AtomicBool>,
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
            })));
        }
        let local = |target| {
            open_sink(target, sink.label_partitions).map_err(|source| RunError::Sink {
                path: sink.path.clone(),
                source,
            })
        };
        let windows: Box<dyn Sink> = match sink.kind {
            SinkKind::Kafka => Box::new(kafka::KafkaSink::open(&kafka, &sink)?),
            SinkKind::Stdout => local(LocalSink::Stdout)?,
            SinkKind::File => local(LocalSink::File(Path::new(&sink.path)))?,
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
async fn connect_intake(
    settings: &Settings,
    kafka: Arc<KafkaConfig>,
    leaders: Option<LeaderStats>,
) -> Result<ConnectedIntake, RunError> {
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
            let listener = IntakeListener::new(
                Duration::from_millis(settings.group.revoke_timeout_ms),
                revoke_wait(settings),
            );
            let hears = listener.clone();
            let assigned = blocking(move || consumer.assign(assigned, hears)).await??;
            Ok(ConnectedIntake {
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
            let listener = IntakeListener::new(
                Duration::from_millis(group.revoke_timeout_ms),
                revoke_wait(settings),
            );
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
            Ok(ConnectedIntake {
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

/// What [`connect_intake`] connected.
struct ConnectedIntake {
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

/// How long a revocation is waited for: exactly once, until the revoked partitions are
/// written and committed (see [`RevokeWait::UntilReleased`]); else `group.revoke_timeout_ms`.
fn revoke_wait(settings: &Settings) -> RevokeWait {
    match settings.sink.exactly_once {
        true => RevokeWait::UntilReleased,
        false => RevokeWait::AtMost,
    }
}
