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
mod environment;
pub mod layout;
mod pipeline;
pub mod prometheus;
pub mod settings;
pub mod telemetry;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::config::ConfigError;
use actors::failure::StopCause;
use actors::faults::FaultPlan;
use actors::generator::{self, GeneratorError, GeneratorHandle, GeneratorReport};
use actors::kafka::{self, AdapterError};
use actors::layout::SelectionError;
use actors::supervisor::{EndOffsets, Outcome, RootSupervisor, RunSummary, Shutdown};
use actors::topic::PartitionId;

use environment::Environment;
use pipeline::Pipeline;

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
    let mut environment = Environment::start(&mut settings)?;
    let generated = environment.embedded.is_some();
    let Pipeline {
        spec,
        all,
        partitions,
        commits_closed,
    } = pipeline::build(&settings, faults.as_ref(), generated).await?;
    let mut generator = match generated {
        true => Some(start_generator(&settings, all)?),
        false => None,
    };
    let (supervisor, mut outcome) = RootSupervisor::launch(spec);
    environment.admin_state.running(supervisor.clone());
    on_start(supervisor.clone());

    let serving = Serving {
        supervisor: &supervisor,
        stop_after,
        until_end: settings.run.until_end,
        partitions: &partitions,
    };
    let result = serving
        .serve(&mut outcome, shutdown, generator.as_mut())
        .await;
    environment.admin_state.draining();
    let summary = drain(&supervisor, settings.shutdown.timeout_ms, &commits_closed).await?;
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
    environment.close_admin();
    let generator_report = match generator {
        Some(handle) => Some(blocking(move || handle.join()).await??),
        None => None,
    };
    drop(environment);
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

/// A running tree, served until it should stop.
struct Serving<'a> {
    supervisor: &'a actix::Addr<RootSupervisor>,
    /// `run.stop_after`.
    stop_after: Option<Duration>,
    /// `run.until_end`.
    until_end: bool,
    /// The partitions this instance may read.
    partitions: &'a [PartitionId],
}

impl Serving<'_> {
    /// Waits for `shutdown`, `run.stop_after`, or the tree's own end (completed or failed);
    /// passes the generator's end offsets on for a run to the end. `Ok(true)`: the input was
    /// consumed to its end.
    async fn serve(
        &self,
        outcome: &mut tokio::sync::oneshot::Receiver<Outcome>,
        shutdown: impl Future<Output = ()>,
        generator: Option<&mut GeneratorHandle>,
    ) -> Result<bool, Failure> {
        let mut generator_done = generator.and_then(GeneratorHandle::finished);
        let timer = async {
            match self.stop_after {
                Some(after) => actix_rt::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(shutdown);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("Shutdown requested; draining.");
                    return Ok(false);
                }
                () = &mut timer => {
                    tracing::info!("Run time is up; draining.");
                    return Ok(false);
                }
                ended = &mut *outcome => return match ended {
                    Ok(Outcome::Completed) => Ok(true),
                    Ok(Outcome::Failed(cause)) => Err(Failure::Stopped(cause)),
                    Err(_) => Err(Failure::SupervisorGone),
                },
                ends = until_generator_done(generator_done.as_mut()) => {
                    generator_done = None;
                    match ends {
                        Ok(mut ends) if self.until_end => {
                            ends.retain(|p, _| self.partitions.contains(p));
                            self.supervisor.do_send(EndOffsets(ends));
                        }
                        Ok(_) => {}
                        Err(_) if self.until_end => return Err(Failure::GeneratorShort),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// Stops the tree in order (intake, then the last flush and commit) within `timeout_ms`
/// (`shutdown.timeout_ms`); past it, closes commits for good and fails.
async fn drain(
    supervisor: &actix::Addr<RootSupervisor>,
    timeout_ms: u64,
    commits_closed: &AtomicBool,
) -> Result<RunSummary, RunError> {
    match tokio::time::timeout(Duration::from_millis(timeout_ms), supervisor.send(Shutdown)).await {
        Ok(summary) => Ok(summary.unwrap_or_default()),
        Err(_) => {
            commits_closed.store(true, Ordering::SeqCst);
            tracing::error!(
                timeout_ms,
                "Stopping did not finish within shutdown.timeout_ms; exiting without \
                 committing anything further."
            );
            Err(RunError::ShutdownTimeout { timeout_ms })
        }
    }
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
