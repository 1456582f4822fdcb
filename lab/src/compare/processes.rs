//! `compare --instances K`: each model as K processes of the service on the same data. The
//! partition model runs as K static instances (`--instance i/K`, one consumer group, no
//! coordinator); the group model as K members of one group. Every process is this binary's
//! `run` (the service itself) with the compared settings written to a file, its own output
//! file and its own JSON log; it writes its final figures to a summary file when it exits.
//!
//! A round starts the K processes together with `--until-end` and waits for the last to exit:
//! the time for the whole set to finish. Their output together is judged by the chaos oracle
//! (every line exact for the partitions it names, every share of every window written once).
//! Recovery is measured on live data: K processes run, one is SIGKILLed and started again at
//! once (as an orchestrator would), and the time is taken from the kill until every partition
//! of the topics has a commit past where it stood at the kill.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LabError;
use actors::config::GeneratorConfig;
use actors::generator::{self, GeneratorReport};
use actors::line::{read_window_lines, WindowLine};
use actors::topic::PartitionId;
use kafka_actors::blocking;
use kafka_actors::settings::{Model, Settings};

use super::{cpu_micros, report_error, task_error, Round};

/// How a set of processes is started.
pub(crate) struct ProcessSet<'a> {
    /// The binary whose `run` is the service (this one).
    pub(crate) executable: &'a Path,
    /// Where settings, outputs, logs and summaries go.
    pub(crate) dir: &'a Path,
    /// Processes per model.
    pub(crate) instances: u32,
}

/// A settings file for the processes, removed when dropped.
struct SettingsFile(PathBuf);

impl Drop for SettingsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One started process.
struct Process {
    name: String,
    child: Child,
    out: PathBuf,
    summary: PathBuf,
    log: PathBuf,
}

impl ProcessSet<'_> {
    /// Writes `settings` to a file the processes read (`run --config`); the environment's
    /// own settings are not passed on, so every process runs exactly these. The file may hold
    /// secrets (`kafka.properties`): only the owner may read it, and it is removed when the
    /// returned guard is dropped.
    fn settings_file(&self, name: &str, settings: &Settings) -> Result<SettingsFile, LabError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.dir.join(format!(".{name}.toml"));
        let text = toml::to_string(settings).map_err(task_error)?;
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|source| report_error(&path, source))?;
        Ok(SettingsFile(path))
    }

    /// A fresh consumer group for the processes of one run of `model` (`run`: which one).
    fn group(&self, model: Model, run: &str) -> String {
        format!(
            "compare-{}-{run}-k{}-{}",
            model.as_str(),
            self.instances,
            std::process::id()
        )
    }

    /// Starts process `index` of `model` in `group`.
    fn spawn(
        &self,
        settings_file: &Path,
        model: Model,
        group: &str,
        index: u32,
        name: &str,
        until_end: bool,
    ) -> Result<Process, LabError> {
        let out = self.dir.join(format!("{name}.jsonl"));
        let summary = self.dir.join(format!("{name}.summary.json"));
        let log = self.dir.join(format!("{name}.log"));
        for file in [&out, &summary] {
            let _ = std::fs::remove_file(file);
        }
        let mut command = Command::new(self.executable);
        for (key, _) in std::env::vars() {
            if key.starts_with("KAFKA_ACTORS__") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command
            .arg("run")
            .arg("--config")
            .arg(settings_file)
            .args(["--model", model.as_str(), "--group", group])
            .arg("--summary")
            .arg(&summary)
            .env("KAFKA_ACTORS__SINK__KIND", "file")
            .env("KAFKA_ACTORS__SINK__PATH", &out)
            .env("KAFKA_ACTORS__LOG__FORMAT", "json");
        if model == Model::Partition {
            command.args(["--instance", &format!("{index}/{}", self.instances)]);
        }
        if until_end {
            command.arg("--until-end");
        }
        let stderr = std::fs::File::create(&log).map_err(|source| report_error(&log, source))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                LabError::Task(format!("cannot start {}: {e}", self.executable.display()))
            })?;
        Ok(Process {
            name: name.to_owned(),
            child,
            out,
            summary,
            log,
        })
    }

    /// One round of `model`: K processes read the data set to its end.
    pub(crate) async fn round(
        &self,
        settings: &Settings,
        model: Model,
        round: u32,
        produced: &GeneratorReport,
    ) -> Result<Round, LabError> {
        let file = self.settings_file(&format!("settings-{}-{round}", model.as_str()), settings)?;
        let group = self.group(model, &round.to_string());
        let (cpu, wall) = (cpu_micros(libc::RUSAGE_CHILDREN), Instant::now());
        let processes: Vec<Process> = (0..self.instances)
            .map(|i| {
                let name = format!("{}-{round}-{i}", model.as_str());
                self.spawn(&file.0, model, &group, i, &name, true)
            })
            .collect::<Result<_, _>>()?;
        let processes = blocking(move || wait_all(processes)).await??;
        let (cpu, wall) = (cpu_micros(libc::RUSAGE_CHILDREN) - cpu, wall.elapsed());
        let mut lines: Vec<WindowLine> = Vec::new();
        let mut figures = Vec::new();
        for process in &processes {
            lines.extend(
                read_window_lines(&process.out)
                    .map_err(|source| report_error(&process.out, source))?,
            );
            let text = std::fs::read(&process.summary)
                .map_err(|source| report_error(&process.summary, source))?;
            let summary: serde_json::Value = serde_json::from_slice(&text).map_err(task_error)?;
            figures.push(summary);
        }
        let verdict = crate::oracle::judge(&lines, produced, &[]);
        let sum = |key: &str| {
            figures
                .iter()
                .map(|f| f[key].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let max_u64 = |outer: &str, inner: &str| {
            figures
                .iter()
                .map(|f| f[outer][inner].as_u64().unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        let max_f64 = |key: &str| {
            figures
                .iter()
                .filter_map(|f| f[key].as_f64())
                .fold(f64::NAN, f64::max)
        };
        let frames = sum("frames");
        tracing::info!(
            round,
            model = model.as_str(),
            instances = self.instances,
            frames,
            wall_s = wall.as_secs_f64(),
            lost = verdict.lost,
            duplicates = verdict.duplicates,
            "Round of processes done."
        );
        Ok(Round {
            round,
            model: model.as_str(),
            frames,
            frames_per_s: frames as f64 / wall.as_secs_f64(),
            cpu_us_per_frame: cpu / frames.max(1) as f64,
            process_frame_ns: (
                max_u64("process_frame_ns", "p50"),
                max_u64("process_frame_ns", "p99"),
            ),
            flush_us: (
                max_u64("batch_flush_us", "p50"),
                max_u64("batch_flush_us", "p99"),
            ),
            first_frame_ms: max_f64("first_frame_ms"),
            end_ms: max_f64("last_frame_ms"),
            set_finish_ms: wall.as_secs_f64() * 1e3,
            commits: sum("commits"),
            windows_match_truth: verdict.lost == 0
                && verdict.duplicates == 0
                && verdict.inexact.is_empty(),
        })
    }

    /// On live data: K processes of `model` run; process 1 is SIGKILLed and started again at
    /// once. Milliseconds from the kill until every one of `partitions` has a commit past
    /// where it stood at the kill (`None`: not within two minutes).
    pub(crate) async fn kill_recovery(
        &self,
        live: &Settings,
        model: Model,
        partitions: &[PartitionId],
        data: &GeneratorConfig,
    ) -> Result<Option<f64>, LabError> {
        let file = self.settings_file(&format!("settings-{}-killed", model.as_str()), live)?;
        let group = self.group(model, "killed");
        let generator = generator::spawn(
            &live.kafka,
            data,
            live.frames.limits(),
            live.window.length_secs,
            partitions.to_vec(),
            false,
        )
        .map_err(task_error)?;
        let name = |i: u32| format!("{}-killed-{i}", model.as_str());
        let mut processes: Vec<Process> = (0..self.instances)
            .map(|i| self.spawn(&file.0, model, &group, i, &name(i), false))
            .collect::<Result<_, _>>()?;
        let kafka = actors::config::KafkaConfig {
            group: group.clone(),
            ..live.kafka.clone()
        };
        let committed = {
            let (kafka, partitions) = (kafka.clone(), partitions.to_vec());
            move || actors::kafka::committed_positions(&kafka, &partitions).unwrap_or_default()
        };
        // Every partition read and committed: the set is running.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = blocking(committed.clone()).await?;
            if now.len() == partitions.len() {
                break;
            }
            if Instant::now() > deadline {
                stop_all(processes).await?;
                generator.stop();
                return Err(LabError::Task(format!(
                    "{} processes of the {} model did not commit every partition within two minutes",
                    self.instances,
                    model.as_str()
                )));
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        let victim = 1.min(processes.len() - 1);
        let killed_at = Instant::now();
        let _ = processes[victim].child.kill();
        let _ = processes[victim].child.wait();
        let at_kill = blocking(committed.clone()).await?;
        processes[victim] = self.spawn(
            &file.0,
            model,
            &group,
            victim as u32,
            &format!("{}-again", name(victim as u32)),
            false,
        )?;
        let mut recovered = None;
        while killed_at.elapsed() < Duration::from_secs(120) {
            let now = blocking(committed.clone()).await?;
            if partitions.iter().all(|p| {
                now.get(p)
                    .is_some_and(|o| at_kill.get(p).is_none_or(|k| o > k))
            }) {
                recovered = Some(killed_at.elapsed().as_secs_f64() * 1e3);
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        stop_all(processes).await?;
        generator.stop();
        blocking(move || generator.join())
            .await?
            .map_err(LabError::Generator)?;
        tracing::info!(
            model = model.as_str(),
            instances = self.instances,
            recovered_ms = ?recovered,
            "Recovery after a SIGKILL measured."
        );
        Ok(recovered)
    }
}

/// How long a set of processes may take to finish.
const SET_DEADLINE: Duration = Duration::from_secs(600);

/// Waits for every process to exit, for up to [`SET_DEADLINE`]. A process that failed, or a
/// set that outlasts the deadline, is an error naming the log to read; the processes still
/// running then are killed, so none outlives `compare`.
fn wait_all(mut processes: Vec<Process>) -> Result<Vec<Process>, LabError> {
    let deadline = Instant::now() + SET_DEADLINE;
    let mut exited = vec![false; processes.len()];
    let failure = loop {
        let mut running = false;
        let mut failed = None;
        for (process, done) in processes.iter_mut().zip(exited.iter_mut()) {
            if *done {
                continue;
            }
            match process.child.try_wait() {
                Ok(Some(status)) if status.success() => *done = true,
                Ok(Some(status)) => {
                    *done = true;
                    failed = Some(format!(
                        "{} exited with {status}; its log: {}",
                        process.name,
                        process.log.display()
                    ));
                }
                Ok(None) => running = true,
                Err(e) => failed = Some(format!("cannot wait for {}: {e}", process.name)),
            }
        }
        if let Some(failure) = failed {
            break failure;
        }
        if !running {
            return Ok(processes);
        }
        if Instant::now() > deadline {
            break format!(
                "the processes did not finish within {} s; their logs are in {}",
                SET_DEADLINE.as_secs(),
                processes[0]
                    .log
                    .parent()
                    .map_or_else(String::new, |d| d.display().to_string())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for process in &mut processes {
        let _ = process.child.kill();
        let _ = process.child.wait();
    }
    Err(LabError::Task(failure))
}

/// Stops every process with SIGTERM (a graceful drain) and waits for them.
async fn stop_all(processes: Vec<Process>) -> Result<(), LabError> {
    for process in &processes {
        // SAFETY: kill only sends a signal to a child this process started and has not
        // waited for yet.
        unsafe {
            libc::kill(process.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    blocking(move || wait_all(processes)).await??;
    Ok(())
}
