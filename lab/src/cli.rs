//! The command line of `kafka-actors-lab`: `chaos` and `compare`, and the service's own `run`
//! (hidden), so that the chaos SIGKILL scenario can start the very same service from this
//! binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kafka_actors::cli::RunArgs;
use kafka_actors::settings::{Model, Overrides};

use crate::chaos::{self, Scenario, SCENARIOS};

/// Tools around the kafka-actors service: fault scenarios judged by an oracle, and the two
/// consumer models side by side. `kafka-actors chaos|compare` run them too.
#[derive(Debug, Parser)]
#[command(name = "kafka-actors-lab", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the partition model and the group model on the same data, side by side.
    Compare(CompareArgs),
    /// Run fault scenarios (on the embedded cluster, or a real one with --brokers) and check
    /// them against the ground truth.
    #[command(after_long_help = scenarios_help())]
    Chaos(ChaosArgs),
    /// Run the service, exactly as `kafka-actors run` (the chaos SIGKILL scenario and
    /// `compare --instances` start it this way).
    #[command(hide = true)]
    Run(LabRunArgs),
}

/// The service's `run`, and where to leave its figures.
#[derive(Debug, Args)]
pub struct LabRunArgs {
    /// The service's flags.
    #[command(flatten)]
    pub run: RunArgs,
    /// Write the run's final figures (JSON) here when it ends.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}

fn scenarios_help() -> String {
    format!("Scenarios:\n{}", chaos::scenario_list())
}

/// Flags of `chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Settings file layered over config/default.toml (the scenarios set windows, flushes,
    /// sink and supervision themselves).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A scenario to run (repeatable), or `all`.
    #[arg(long = "scenario", value_name = "NAME|all", default_value = "all")]
    pub scenarios: Vec<String>,
    /// The model to run them with; both when not given.
    #[arg(long, value_enum)]
    pub model: Option<Model>,
    /// Kafka bootstrap brokers: run on this cluster (a fresh topic per scenario, replication
    /// factor 3) instead of the embedded one.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
    /// With --brokers: a command that kills, restarts and moves leaders between brokers
    /// (`CMD kill N|all`, `CMD restart N|all`, `CMD move-leader TOPIC PARTITION N`), such as
    /// tests/kafka/cluster. Without it the broker-fault scenarios are skipped.
    #[arg(long, value_name = "CMD", requires = "brokers")]
    pub control: Option<PathBuf>,
    /// Where the service writes: window files (`file`), or an output topic plus a dead-letter
    /// topic, at least once (`kafka`) or exactly once (`exactly-once`, needs --brokers). The
    /// oracle reads the topics back as a `read_committed` reader; exactly once allows no
    /// duplicate.
    #[arg(long, value_enum, default_value = "file")]
    pub output: crate::chaos::ChaosOutput,
    /// Frames of each scenario's data set (produced over about six seconds).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    pub frames: u64,
    /// Directory for chaos.json and every scenario's windows (default: a new directory
    /// `chaos-<time>` here).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Instead of the named scenarios, a campaign of runs each under its own randomized
    /// schedule of overlapping faults (needs --brokers and --control: broker, leader and
    /// link faults), judged by the same oracle; writes nemesis.json.
    #[arg(long, value_enum, requires = "control")]
    pub nemesis: Option<NemesisKind>,
    /// The campaign's seed: the same seed gives the same schedules.
    #[arg(long, default_value_t = 1, requires = "nemesis")]
    pub seed: u64,
    /// Runs of the campaign (the models take turns).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000), requires = "nemesis")]
    pub runs: u32,
    /// The number of the first run (a failing run is replayed with its number and --runs 1).
    #[arg(long, default_value_t = 0, requires = "nemesis")]
    pub first_run: u32,
    /// How long each run's data flows (and its faults are drawn within), e.g. `40s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
}

/// The kinds of campaign `--nemesis` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NemesisKind {
    /// Faults drawn at random from every kind the lab applies.
    Random,
}

impl ChaosArgs {
    /// The scenarios `--scenario` names (`all`: every one).
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn chosen(&self) -> anyhow::Result<Vec<&'static dyn Scenario>> {
        let mut chosen = Vec::new();
        for name in &self.scenarios {
            if name == "all" {
                return Ok(SCENARIOS.to_vec());
            }
            let scenario = chaos::scenario(name).ok_or_else(|| {
                let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name()).collect();
                anyhow::anyhow!(
                    "unknown scenario `{name}` (--scenario); known: all, {}",
                    known.join(", ")
                )
            })?;
            chosen.push(scenario);
        }
        Ok(chosen)
    }
}

/// Flags of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Settings file layered over config/default.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap brokers; without them the embedded cluster is used. The data set is
    /// produced into `kafka.topic`, which should be empty.
    #[arg(long, value_name = "HOST:PORT[,..]")]
    pub brokers: Option<String>,
    /// Frames in the data set.
    #[arg(long, default_value_t = 200_000)]
    pub frames: u64,
    /// Partitions of the topic (embedded cluster).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=256))]
    pub partitions: i32,
    /// Runs of each model, alternating.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Processes per model: above 1, the partition model runs as that many static instances
    /// (`--instance i/K`) and the group model as that many members, each a process of its own;
    /// the report adds the time for the whole set to finish and recovery when one process is
    /// SIGKILLed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub instances: u32,
    /// Directory for report.json, chart.svg and the windows of every run (default: a new
    /// directory `compare-<time>` here).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl CompareArgs {
    /// The settings these flags override.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            brokers: self.brokers.clone(),
            ..Overrides::default()
        }
    }
}
