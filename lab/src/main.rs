//! The `kafka-actors-lab` binary: `chaos` and `compare` (and the service's `run`, for the
//! chaos scenarios and `compare --instances`, which start the service as child processes).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use kafka_actors::cli::{run_command, start};
use kafka_actors::error_chain;
use kafka_actors::settings::{Model, Overrides};
use lab::chaos::{self, chaos, ChaosOptions, Target};
use lab::cli::{ChaosArgs, Cli, Command, CompareArgs, LabRunArgs};
use lab::compare::{self, compare, CompareOptions};

/// A new directory name `<prefix>-<unix time>` in the current directory.
fn fresh_dir(prefix: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from(format!("{prefix}-{stamp}"))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run_service(args),
        Command::Compare(args) => run_compare(args),
        Command::Chaos(args) => run_chaos(args),
    }
}

/// The service's `run`; with `--summary`, its final figures are written there as it ends.
fn run_service(args: LabRunArgs) -> anyhow::Result<()> {
    let Some(summary) = args.summary else {
        return run_command(args.run);
    };
    let settings = start(args.run.config.clone(), args.run.overrides())?;
    let report = actix::System::new()
        .block_on(kafka_actors::run(settings, kafka_actors::shutdown_signal()))
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let json = serde_json::to_vec_pretty(&report.summary.metrics)?;
    std::fs::write(&summary, json)
        .with_context(|| format!("cannot write {}", summary.display()))?;
    Ok(())
}

fn run_compare(args: CompareArgs) -> anyhow::Result<()> {
    let settings = start(args.config.clone(), args.overrides())?;
    let options = CompareOptions {
        frames: args.frames,
        partitions: args.partitions,
        rounds: args.rounds,
        instances: args.instances,
        executable: std::env::current_exe().ok(),
        out: args.out.unwrap_or_else(|| fresh_dir("compare")),
    };
    let report = actix::System::new()
        .block_on(compare(settings, &options))
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    print!("{}", compare::table(&report));
    println!("report: {}", options.out.join("report.json").display());
    println!("chart:  {}", options.out.join("chart.svg").display());
    if !report.correct() {
        anyhow::bail!("a model's windows differ from the ground truth (or from each other)");
    }
    Ok(())
}

fn run_chaos(args: ChaosArgs) -> anyhow::Result<()> {
    if args.nemesis.is_some() {
        return run_nemesis(args);
    }
    let chosen = args.chosen()?;
    let settings = start(args.config.clone(), Overrides::default())?;
    let out = args.out.clone().unwrap_or_else(|| fresh_dir("chaos"));
    let options = ChaosOptions {
        frames: args.frames,
        out: out.clone(),
        // The scenarios that start the service as a child process run this binary's `run`.
        executable: std::env::current_exe().ok(),
        target: match &args.brokers {
            Some(brokers) => Target::Brokers {
                brokers: brokers.clone(),
                control: args.control.clone(),
            },
            None => Target::Embedded,
        },
        output: args.output,
        data_secs: args.duration.map(|d| d.as_secs().max(1)),
    };
    let models = match args.model {
        Some(model) => vec![model],
        None => vec![Model::Partition, Model::Group],
    };
    let results = actix::System::new()
        .block_on(chaos(&settings, &chosen, &models, &options))
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    print!("{}", chaos::table(&results));
    println!("report: {}", out.join("chaos.json").display());
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} scenario runs failed", results.len());
    }
    Ok(())
}

/// `chaos --nemesis random`: a campaign of randomized fault schedules on a real cluster.
fn run_nemesis(args: ChaosArgs) -> anyhow::Result<()> {
    let settings = start(args.config.clone(), Overrides::default())?;
    let (Some(brokers), Some(control)) = (args.brokers.clone(), args.control.clone()) else {
        anyhow::bail!("--nemesis needs a real cluster: --brokers and --control");
    };
    let out = args.out.clone().unwrap_or_else(|| fresh_dir("nemesis"));
    let options = ChaosOptions {
        frames: args.frames,
        out: out.clone(),
        executable: std::env::current_exe().ok(),
        target: Target::Brokers {
            brokers: brokers.clone(),
            control: Some(control.clone()),
        },
        output: args.output,
        data_secs: Some(args.duration.map_or(30, |d| d.as_secs().max(10))),
    };
    let models = match args.model {
        Some(model) => vec![model],
        None => vec![Model::Partition, Model::Group],
    };
    let replay = format!(
        "kafka-actors chaos --brokers {brokers} --control {} --frames {}",
        control.display(),
        args.frames
    );
    let results = actix::System::new()
        .block_on(chaos::nemesis::campaign(
            &settings,
            args.seed,
            args.first_run,
            args.runs,
            &models,
            &options,
            &replay,
        ))
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    print!("{}", chaos::nemesis::table(&results, args.seed));
    println!("report: {}", out.join("nemesis.json").display());
    let failed = results.iter().filter(|r| !r.result.passed).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} nemesis runs failed", results.len());
    }
    Ok(())
}
