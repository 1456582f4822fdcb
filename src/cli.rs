//! The command line: `kafka-actors run [flags]`, `layout FILE...` (a static layout of
//! partition-model instances, checked against the cluster), and `chaos` and `compare`, which
//! hand over to the `kafka-actors-lab` binary. Flags override every other settings source.
//!
//! [`run_command`] and [`start`] are what the binary does for `run`; the lab binary uses them
//! too, to run the very same service as a child process (the chaos SIGKILL scenario).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::settings::{self, Model, Overrides, Settings, Sources};

/// The binary that holds the `chaos` and `compare` tools.
pub const LAB_BINARY: &str = "kafka-actors-lab";

/// Consume Kafka topics as an actor system: exact unique users per event-time window.
#[derive(Debug, Parser)]
#[command(name = "kafka-actors", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service. Without brokers it starts an embedded cluster and a frame generator.
    Run(RunArgs),
    /// Run the partition model and the group model on the same data, side by side (runs
    /// `kafka-actors-lab compare`; `compare --help` for its flags).
    #[command(disable_help_flag = true)]
    Compare(LabArgs),
    /// Check that partition-model instances, one settings file each, read every partition of
    /// the input topics exactly once (asks the brokers for the partitions; exits 1 naming
    /// partitions read twice or not at all).
    Layout(LayoutArgs),
    /// Run fault scenarios (on the embedded cluster, or a real one with --brokers) and check
    /// them against the ground truth (runs `kafka-actors-lab chaos`; `chaos --help` for its
    /// flags).
    #[command(disable_help_flag = true)]
    Chaos(LabArgs),
}

/// The arguments of a lab tool's subcommand, passed on unchanged (`--help` included).
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Arguments of the tool.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// Flags of `layout`.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Settings files, one per instance, each layered over config/default.toml and the
    /// environment as `run --config` would.
    #[arg(required = true, value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Kafka bootstrap brokers, for every instance (HOST:PORT[,..]).
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
}

/// `layout`: loads each instance's settings and checks the layout against the cluster.
///
/// # Errors
/// Invalid settings, an unreachable cluster, or a layout that reads a partition twice or not
/// at all.
pub fn layout_command(args: LayoutArgs) -> anyhow::Result<()> {
    let mut instances = Vec::with_capacity(args.configs.len());
    for path in &args.configs {
        let sources = Sources {
            config_file: Some(path.clone()),
            overrides: Overrides {
                brokers: args.brokers.clone(),
                ..Overrides::default()
            },
            ..Sources::default()
        };
        let settings = settings::load(&sources)
            .with_context(|| format!("invalid settings in {}", path.display()))?;
        instances.push((path.display().to_string(), settings));
    }
    crate::telemetry::init(&instances[0].1.log).context("invalid setting `log.filter`")?;
    let layout = actix::System::new()
        .block_on(crate::layout::check(&instances))
        .map_err(|e| anyhow::anyhow!(crate::error_chain(&e)))?;
    print!("{layout}");
    Ok(())
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Settings file layered over config/default.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap brokers (HOST:PORT[,..]); without them the embedded cluster is used.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
    /// An input topic; repeat the flag to read several (replaces kafka.topic / kafka.topics).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Partition model: read every partition whose index is I modulo N (I/N, e.g. 0/3), so N
    /// instances share the topics without a group coordinator.
    #[arg(long, value_name = "I/N")]
    pub instance: Option<String>,
    /// The consumer group that holds the offsets.
    #[arg(long)]
    pub group: Option<String>,
    /// How to consume: assign every partition (partition) or subscribe to a group (group).
    #[arg(long, value_enum)]
    pub model: Option<Model>,
    /// Stop gracefully after this long (e.g. 30s, 5m).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub stop_after: Option<String>,
    /// Consume every partition to its end, emit every window, commit and exit.
    #[arg(long)]
    pub until_end: bool,
    /// With --until-end: leave the windows still open (not written, not committed) for a later
    /// run to complete, instead of writing them partly filled.
    #[arg(long = "keep-open", requires = "until_end")]
    pub keep_open_windows: bool,
}

fn parse_duration(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

impl RunArgs {
    /// The settings these flags override.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            brokers: self.brokers.clone(),
            topics: self.topics.clone(),
            instance: self.instance.clone(),
            group: self.group.clone(),
            stop_after: self.stop_after.clone(),
            until_end: self.until_end,
            keep_open_windows: self.keep_open_windows,
            model: self.model,
        }
    }
}

/// Loads the settings (`config/default.toml`, `config_file`, the environment, `overrides`) and
/// starts logging, before any Kafka client exists.
///
/// # Errors
/// Invalid settings (naming the key) or an invalid `log.filter`.
pub fn start(config_file: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<Settings> {
    let sources = Sources {
        config_file,
        overrides,
        ..Sources::default()
    };
    let settings = settings::load(&sources).context("invalid settings")?;
    crate::telemetry::init(&settings.log).context("invalid setting `log.filter`")?;
    Ok(settings)
}

/// `run`: loads the settings and runs the service in a new actix system until Ctrl-C or
/// SIGTERM, `--for`, `--until-end` or a failure.
///
/// # Errors
/// Invalid settings, or the run failed (the error and its causes on one line).
pub fn run_command(args: RunArgs) -> anyhow::Result<()> {
    let settings = start(args.config.clone(), args.overrides())?;
    actix::System::new()
        .block_on(crate::run(settings, crate::shutdown_signal()))
        .map_err(|e| anyhow::anyhow!(crate::error_chain(&e)))?;
    Ok(())
}

/// Runs `kafka-actors-lab TOOL ARGS…` in place of this process (Unix: `exec`, so signals and
/// the exit status are the tool's; elsewhere a child whose exit status this process exits with).
/// The lab binary is looked for next to this executable first, then on `PATH`.
///
/// # Errors
/// The lab binary is in neither place, or cannot be started.
pub fn run_lab_tool(tool: &str, args: Vec<OsString>) -> anyhow::Result<()> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned));
    let binary = find_lab_binary(here.as_deref()).ok_or_else(|| {
        let next_to = here.as_deref().map_or_else(
            || "next to this executable (its path is unknown)".to_owned(),
            |dir| format!("in {}", dir.display()),
        );
        anyhow::anyhow!(
            "`{tool}` is a tool of the `{LAB_BINARY}` binary, which is neither {next_to} nor on \
             PATH; build it with `cargo build --release -p kafka-actors-lab` (a plain \
             `cargo build --release` in the repository builds both binaries), or run it directly"
        )
    })?;
    let mut command = std::process::Command::new(&binary);
    command.arg(tool).args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Only returns on failure.
        let error = command.exec();
        Err(error).with_context(|| format!("cannot start {}", binary.display()))
    }
    #[cfg(not(unix))]
    {
        let status = command
            .status()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

/// `kafka-actors-lab` in `dir`, else the first on `PATH`.
fn find_lab_binary(dir: Option<&Path>) -> Option<PathBuf> {
    let name = format!("{LAB_BINARY}{}", std::env::consts::EXE_SUFFIX);
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    dir.into_iter()
        .map(Path::to_owned)
        .chain(on_path)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
}
