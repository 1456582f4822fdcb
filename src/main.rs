//! The `kafka-actors` binary: parse flags, load settings, start logging, run.

use anyhow::Context as _;
use clap::Parser;
use kafka_actors::cli::{Cli, Command};
use kafka_actors::settings::{self, Sources};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let sources = Sources {
                config_file: args.config.clone(),
                overrides: args.overrides(),
                ..Sources::default()
            };
            let settings = settings::load(&sources).context("invalid settings")?;
            kafka_actors::telemetry::init(&settings.log).context("invalid setting `log.filter`")?;
            actix::System::new()
                .block_on(kafka_actors::run(settings, kafka_actors::shutdown_signal()))
                .map_err(|e| anyhow::anyhow!(kafka_actors::error_chain(&e)))?;
            Ok(())
        }
    }
}
