//! The `kafka-actors` binary: parse flags, load settings, start logging, run.

use anyhow::Context as _;
use clap::Parser;
use kafka_actors::cli::{Cli, Command};
use std::path::PathBuf;

use kafka_actors::compare::{compare, table, CompareOptions};
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
            let out = args.out.clone().unwrap_or_else(|| {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                PathBuf::from(format!("compare-{stamp}"))
            });
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
    }
}
