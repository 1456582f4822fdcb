//! The `kafka-actors` binary: parse flags, load settings, start logging, run.

use anyhow::Context as _;
use clap::Parser;
use kafka_actors::cli::{Cli, Command};
use std::path::PathBuf;

use kafka_actors::chaos::{chaos, ChaosOptions, Scenario, Target};
use kafka_actors::compare::{compare, table, CompareOptions};
use kafka_actors::settings::Model;
use kafka_actors::settings::{self, Overrides, Settings, Sources};

/// Loads the settings and starts logging, before any Kafka client exists.
fn start(config_file: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<Settings> {
    let sources = Sources {
        config_file,
        overrides,
        ..Sources::default()
    };
    let settings = settings::load(&sources).context("invalid settings")?;
    kafka_actors::telemetry::init(&settings.log).context("invalid setting `log.filter`")?;
    Ok(settings)
}

/// A new directory name `<prefix>-<unix time>` in the current directory.
fn fresh_dir(prefix: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from(format!("{prefix}-{stamp}"))
}

/// `--scenario` values: names or `all`.
fn scenarios(names: &[String]) -> anyhow::Result<Vec<Scenario>> {
    use clap::ValueEnum as _;
    let mut chosen = Vec::new();
    for name in names {
        if name == "all" {
            return Ok(Scenario::all());
        }
        let scenario = Scenario::from_str(name, true).map_err(|_| {
            let known: Vec<String> = Scenario::all().iter().map(|s| s.name()).collect();
            anyhow::anyhow!(
                "unknown scenario `{name}` (--scenario); known: all, {}",
                known.join(", ")
            )
        })?;
        chosen.push(scenario);
    }
    Ok(chosen)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let settings = start(args.config.clone(), args.overrides())?;
            actix::System::new()
                .block_on(kafka_actors::run(settings, kafka_actors::shutdown_signal()))
                .map_err(|e| anyhow::anyhow!(kafka_actors::error_chain(&e)))?;
            Ok(())
        }
        Command::Compare(args) => {
            let settings = start(args.config.clone(), args.overrides())?;
            let out = args.out.clone().unwrap_or_else(|| fresh_dir("compare"));
            let options = CompareOptions {
                frames: args.frames,
                partitions: args.partitions,
                rounds: args.rounds,
                out,
            };
            let report = actix::System::new()
                .block_on(compare(settings, &options))
                .map_err(|e| anyhow::anyhow!(kafka_actors::error_chain(&e)))?;
            print!("{}", table(&report));
            println!("report: {}", options.out.join("report.json").display());
            println!("chart:  {}", options.out.join("chart.svg").display());
            if !report.correct() {
                anyhow::bail!(
                    "a model's windows differ from the ground truth (or from each other)"
                );
            }
            Ok(())
        }
        Command::Chaos(args) => {
            let chosen = scenarios(&args.scenarios)?;
            let settings = start(args.config.clone(), Overrides::default())?;
            let out = args.out.clone().unwrap_or_else(|| fresh_dir("chaos"));
            let options = ChaosOptions {
                frames: args.frames,
                out: out.clone(),
                executable: std::env::current_exe().ok(),
                target: match &args.brokers {
                    Some(brokers) => Target::Brokers {
                        brokers: brokers.clone(),
                        control: args.control.clone(),
                    },
                    None => Target::Embedded,
                },
            };
            let models = match args.model {
                Some(model) => vec![model],
                None => vec![Model::Partition, Model::Group],
            };
            let results = actix::System::new()
                .block_on(chaos(&settings, &chosen, &models, &options))
                .map_err(|e| anyhow::anyhow!(kafka_actors::error_chain(&e)))?;
            print!("{}", kafka_actors::chaos::table(&results));
            println!("report: {}", out.join("chaos.json").display());
            let failed = results.iter().filter(|r| !r.passed).count();
            if failed > 0 {
                anyhow::bail!("{failed} of {} scenario runs failed", results.len());
            }
            Ok(())
        }
    }
}
