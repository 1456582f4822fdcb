//! The Apache Kafka test cluster (`tests/kafka/cluster start`): finding it, controlling its
//! nodes, producing with Kafka's own Java producer, and that producer's ground truth.
//!
//! A test that needs the cluster calls [`RealKafka::get`]. Without a running cluster it skips,
//! printing the command that starts one, unless `KAFKA_ACTORS_REQUIRE_KAFKA=1` (set by
//! `.ci/run`), which makes it fail instead.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use actors::topic::PartitionId;

/// The test cluster.
#[derive(Clone)]
pub struct RealKafka {
    /// Its bootstrap servers.
    pub bootstrap: String,
    dir: PathBuf,
    /// This test's turn: a few tests at a time share the cluster (each runs brokers' worth of
    /// clients, producers and service processes on a 2-core machine).
    _turn: std::sync::Arc<Turn>,
    /// Ends the test binary if this test is still running after [`TEST_LIMIT`].
    _watch: std::sync::Arc<Watchdog>,
}

/// How long one test may hold the cluster. The longest take about three minutes; a test that
/// hangs (a client call that never returns) would otherwise hold CI until its own limit.
const TEST_LIMIT: Duration = Duration::from_secs(600);

/// Watches one test: if it has not ended (its [`RealKafka`] dropped) within [`TEST_LIMIT`],
/// prints every thread's stack (with `gdb`, when there is one) and ends the test binary with a
/// failure naming the test.
struct Watchdog {
    /// Dropped with the watchdog: tells its thread the test ended.
    _ended: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(test: &str) -> Watchdog {
        let (ended, wait) = std::sync::mpsc::channel::<()>();
        let test = test.to_owned();
        std::thread::spawn(move || {
            if wait.recv_timeout(TEST_LIMIT) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            // Straight to the standard error: the test harness captures `eprintln!` of the
            // test's threads, and prints it only when the test ends.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "{test}: still running after {} s; the threads of the test binary:",
                TEST_LIMIT.as_secs()
            );
            let _ = Command::new("gdb")
                .args(["-p", &std::process::id().to_string(), "-batch", "-ex"])
                .arg("thread apply all bt 40")
                .stdin(Stdio::null())
                .stdout(Stdio::inherit())
                .stderr(Stdio::null())
                .status();
            let _ = writeln!(
                std::io::stderr(),
                "{test}: did not end within {} s",
                TEST_LIMIT.as_secs()
            );
            std::process::exit(101);
        });
        Watchdog { _ended: ended }
    }
}

/// How many tests of one test binary use the cluster at once.
const AT_ONCE: usize = 3;

static RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A place among the [`AT_ONCE`] tests that may use the cluster; given back when dropped.
struct Turn;

impl Turn {
    fn take() -> Turn {
        let (count, freed) = &RUNNING;
        let mut running = count.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= AT_ONCE {
            running = freed.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let (count, freed) = &RUNNING;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        freed.notify_one();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/cluster")
}

fn cluster_dir() -> PathBuf {
    std::env::var_os("KAFKA_ACTORS_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/kafka-cluster"))
}

fn reachable(bootstrap: &str) -> bool {
    bootstrap.split(',').any(|host| {
        host.to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
    })
}

impl RealKafka {
    /// The running test cluster, or `None` (after saying why) when there is none and
    /// `KAFKA_ACTORS_REQUIRE_KAFKA` is not set.
    pub fn get(test: &str) -> Option<RealKafka> {
        let dir = cluster_dir();
        let bootstrap = std::fs::read_to_string(dir.join("bootstrap"))
            .ok()
            .map(|b| b.trim().to_owned());
        match bootstrap {
            Some(bootstrap) if reachable(&bootstrap) => Some(RealKafka {
                bootstrap,
                dir,
                _turn: std::sync::Arc::new(Turn::take()),
                _watch: std::sync::Arc::new(Watchdog::arm(test)),
            }),
            found => {
                let why = match found {
                    Some(b) => format!("the cluster in {} ({b}) does not answer", dir.display()),
                    None => format!("no cluster in {}", dir.display()),
                };
                let required = std::env::var("KAFKA_ACTORS_REQUIRE_KAFKA").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "{test}: {why}, and KAFKA_ACTORS_REQUIRE_KAFKA=1 requires it"
                );
                eprintln!(
                    "skipping {test}: {why}; start one with `tests/kafka/cluster start` \
                     (Java 17+ and Maven; stop it with `tests/kafka/cluster stop`)"
                );
                None
            }
        }
    }

    /// The control command (`tests/kafka/cluster`) for this cluster.
    pub fn control_command(&self) -> PathBuf {
        script()
    }

    /// Runs `tests/kafka/cluster ARGS` and returns its standard output.
    pub fn control(&self, args: &[&str]) -> String {
        let output = Command::new(script())
            .args(args)
            .env("KAFKA_ACTORS_CLUSTER_DIR", &self.dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/kafka/cluster");
        assert!(
            output.status.success(),
            "tests/kafka/cluster {args:?} failed: {:?}",
            output.status
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Client settings for `topic` and `group` (empty: the default) on this cluster.
    pub fn config(&self, topic: &str, group: &str) -> actors::config::KafkaConfig {
        let mut config = actors::config::KafkaConfig {
            brokers: self.bootstrap.clone(),
            topic: topic.to_owned(),
            ..actors::config::KafkaConfig::default()
        };
        if !group.is_empty() {
            config.group = group.to_owned();
        }
        config
    }

    /// Creates a topic (replication factor 3) with a fresh name and returns the name.
    pub fn topic(&self, prefix: &str, partitions: i32) -> String {
        let topic = super::unique(prefix);
        actors::kafka::create_topic(&self.config(&topic, ""), &topic, partitions, 3)
            .expect("create topic");
        topic
    }

    /// Creates `topic` with Kafka's own topic tool, with `layout` (its flags:
    /// `--partitions N --replication-factor R`, `--replica-assignment ...`, `--config k=v`).
    pub fn create_topic_with(&self, topic: &str, layout: &[&str]) {
        let mut args = vec![
            "tool",
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            &self.bootstrap,
            "--create",
            "--topic",
            topic,
        ];
        args.extend_from_slice(layout);
        self.control(&args);
    }

    /// Produces frames with Kafka's Java producer (`tests/kafka/FrameProducer.java`; flags as
    /// there, `--topic` given) and returns the truth it computed.
    pub fn produce(&self, topic: &str, args: &[&str]) -> JavaTruth {
        let mut all = vec!["produce", "--topic", topic];
        all.extend_from_slice(args);
        JavaTruth::parse(topic, &self.control(&all))
    }

    /// SIGKILLs node `n` (1..=3).
    pub fn kill(&self, n: u8) {
        self.control(&["kill", &n.to_string()]);
    }

    /// Starts node `n` again and waits until it is registered.
    pub fn restart(&self, n: u8) {
        self.control(&["restart", &n.to_string()]);
    }

    /// The node leading `partition` of `topic` (-1 when none).
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.control(&["leader", topic, &partition.to_string()])
            .trim()
            .parse()
            .expect("a leader id")
    }

    /// The bootstrap servers of the linked listeners: a client given them reaches each node
    /// through a proxy of its own, and meets the faults of [`Self::link`].
    pub fn linked(&self) -> String {
        self.control(&["linked"]).trim().to_owned()
    }

    /// Puts `fault` on the link between linked clients and node `n` (`["cut"]`,
    /// `["latency", "1800"]`, `["heal"]`, ...: `tests/kafka/cluster link`).
    pub fn link(&self, n: u8, fault: &[&str]) {
        let node = n.to_string();
        let mut args = vec!["link", node.as_str()];
        args.extend_from_slice(fault);
        self.control(&args);
    }

    /// Moves the leadership of `partition` of `topic` to node `n`.
    pub fn move_leader(&self, topic: &str, partition: i32, n: u8) {
        self.control(&["move-leader", topic, &partition.to_string(), &n.to_string()]);
    }
}

/// What the Java producer wrote: per window and partition, distinct uids and frames; invalid
/// records by the reason the service must count them under.
#[derive(Debug, Default, Clone)]
pub struct JavaTruth {
    /// (window start, partition) → (distinct uids, frames).
    pub shares: BTreeMap<(i64, PartitionId), (u64, u64)>,
    /// Records sent.
    pub produced: u64,
    /// Valid frames.
    pub valid: u64,
    /// Invalid records by reason.
    pub invalid: BTreeMap<String, u64>,
}

impl JavaTruth {
    fn parse(topic: &str, text: &str) -> JavaTruth {
        let mut truth = JavaTruth::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            if let Some(produced) = value.get("produced") {
                truth.produced = produced.as_u64().unwrap();
                truth.valid = value["valid"].as_u64().unwrap();
                truth.invalid = serde_json::from_value(value["invalid"].clone()).unwrap();
            } else {
                truth.shares.insert(
                    (
                        value["window_start"].as_i64().unwrap(),
                        PartitionId::of(topic, value["partition"].as_i64().unwrap() as i32),
                    ),
                    (
                        value["unique_users"].as_u64().unwrap(),
                        value["frames"].as_u64().unwrap(),
                    ),
                );
            }
        }
        assert!(
            truth.produced > 0,
            "the producer printed no summary: {text}"
        );
        truth
    }

    /// The windows with frames.
    pub fn windows(&self) -> std::collections::BTreeSet<i64> {
        self.shares.keys().map(|(w, _)| *w).collect()
    }
}

impl super::Shares for JavaTruth {
    fn share(&self, window_start: i64, partition: PartitionId) -> (u64, u64) {
        self.shares
            .get(&(window_start, partition))
            .copied()
            .unwrap_or((0, 0))
    }

    fn shares_with_frames(&self) -> Vec<(i64, PartitionId)> {
        self.shares.keys().copied().collect()
    }
}

/// The window length of a [`Member`].
pub const MEMBER_WINDOW_SECS: i64 = 10;
/// A [`Member`]'s allowed lateness: its window `[w, w + length)` is written once its
/// partition's `closed_below` (recorded with each commit) reaches `w + length + lateness`.
pub const MEMBER_LATENESS_SECS: i64 = 3;

/// Whether the commit metadata `closed_below` says the window starting at `window` was written
/// (by a [`Member`]).
pub fn written_by_commit(closed_below: f64, window: i64) -> bool {
    closed_below >= (window + MEMBER_WINDOW_SECS + MEMBER_LATENESS_SECS) as f64
}

/// A `kafka-actors run` in a process of its own, its windows in `out`, its JSON log in `log`.
pub struct Member {
    /// A name for messages.
    pub name: String,
    /// Its window lines.
    pub out: PathBuf,
    /// Its log (JSON lines).
    pub log: PathBuf,
    child: std::process::Child,
}

/// What a member's log says about ownership and commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// The member took `partition`, reading from `start` (None: the reset policy).
    Taken {
        partition: PartitionId,
        start: Option<i64>,
    },
    /// The member let `partition` go; `committed` is its last commit of it.
    Released {
        partition: PartitionId,
        committed: Option<i64>,
        lost: bool,
    },
    /// The member committed these offsets.
    Committed(Vec<(PartitionId, i64)>),
    /// The group's committed offsets as read back from Kafka (after a member was killed: its
    /// last commit may have reached Kafka without reaching its log).
    ReadBack(BTreeMap<PartitionId, i64>),
}

/// A [`LogEvent`], when, and by whom.
#[derive(Debug, Clone)]
pub struct Logged {
    /// RFC 3339 time of the log line (sorts in time order).
    pub at: String,
    /// The member.
    pub member: String,
    /// What happened.
    pub event: LogEvent,
}

impl Member {
    /// Starts `kafka-actors run` on `topic` in `group` with `env` (KAFKA_ACTORS__… settings)
    /// over the test defaults (10 s windows, 3 s lateness, 100 ms flushes, file sink).
    pub fn spawn(
        kafka: &RealKafka,
        name: &str,
        dir: &std::path::Path,
        topic: &str,
        group: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Member {
        Self::spawn_on(&kafka.bootstrap, name, dir, topic, group, env, args)
    }

    /// [`Self::spawn`] with the brokers `bootstrap` (such as [`RealKafka::linked`]).
    pub fn spawn_on(
        bootstrap: &str,
        name: &str,
        dir: &std::path::Path,
        topic: &str,
        group: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Member {
        let out = dir.join(format!("{name}.jsonl"));
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-actors"));
        command.current_dir(env!("CARGO_MANIFEST_DIR"));
        super::without_service_env(&mut command)
            .env(
                "RUST_LOG",
                "info,actors::kafka::committer=debug,actors::batch=debug,actors::kafka::output=debug",
            )
            .env("KAFKA_ACTORS__LOG__FORMAT", "json")
            .env(
                "KAFKA_ACTORS__WINDOW__LENGTH_SECS",
                MEMBER_WINDOW_SECS.to_string(),
            )
            .env(
                "KAFKA_ACTORS__WINDOW__LATENESS_SECS",
                MEMBER_LATENESS_SECS.to_string(),
            )
            .env("KAFKA_ACTORS__WINDOW__IDLE_AFTER_MS", "2000")
            .env("KAFKA_ACTORS__FLUSH__INTERVAL_MS", "100")
            .env("KAFKA_ACTORS__PARTITION__POLL_TIMEOUT_MS", "50")
            .env("KAFKA_ACTORS__METRICS__LOG_INTERVAL_MS", "0")
            .env("KAFKA_ACTORS__SINK__KIND", "file")
            .env("KAFKA_ACTORS__SINK__PATH", &out);
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .args([
                "run",
                "--brokers",
                bootstrap,
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = command.spawn().expect("start kafka-actors");
        Member {
            name: name.to_owned(),
            out,
            log,
            child,
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the member.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Waits for the member to exit and returns whether it succeeded.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for kafka-actors")
    }

    /// Stops the member with SIGTERM and asserts it drained and exited 0.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait();
        assert!(
            status.success(),
            "{} exited with {status:?}: {}",
            self.name,
            self.log_text()
        );
    }

    /// Stops the member with SIGTERM if it still runs, and waits for it (whatever its exit).
    pub fn stop_if_running(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
        }
        let _ = self.wait();
    }

    /// SIGKILLs the member.
    pub fn kill(&mut self) {
        self.signal("KILL");
        self.wait();
    }

    /// The member's `/status` (its admin endpoint's address is taken from its log), or
    /// `None` while it does not answer.
    pub fn status(&self) -> Option<serde_json::Value> {
        let address = self.log_text().lines().find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = &value["fields"];
            (fields["message"]
                .as_str()?
                .starts_with("Admin endpoint listening"))
            .then(|| fields["address"].as_str().map(str::to_owned))?
        })?;
        ureq::get(&format!("http://{address}/status"))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?
            .into_string()
            .ok()
            .and_then(|body| serde_json::from_str(&body).ok())
    }

    /// The member's log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ownership changes and commits from the member's log, in order.
    pub fn events(&self) -> Vec<Logged> {
        let mut events = Vec::new();
        for line in self.log_text().lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let fields = &value["fields"];
            let at = value["timestamp"].as_str().unwrap_or_default().to_owned();
            let partition = fields["partition"]
                .as_str()
                .and_then(|p| p.parse::<PartitionId>().ok());
            let event = match (fields["message"].as_str(), partition) {
                (Some("Partition taken."), Some(partition)) => LogEvent::Taken {
                    partition,
                    start: fields["start"].as_i64(),
                },
                (Some("Partition released."), Some(partition)) => LogEvent::Released {
                    partition,
                    committed: fields["committed"].as_i64(),
                    lost: fields["lost"].as_bool().unwrap_or(false),
                },
                (Some("Committed."), _) => LogEvent::Committed(
                    fields["offsets"]
                        .as_str()
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(|pair| {
                            let (p, o) = pair.rsplit_once(':').expect("partition:offset");
                            (p.parse().unwrap(), o.parse().unwrap())
                        })
                        .collect(),
                ),
                _ => continue,
            };
            events.push(Logged {
                at,
                member: self.name.clone(),
                event,
            });
        }
        events
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The group's committed offsets now, as a [`LogEvent::ReadBack`] for
/// [`assert_ownership_and_commits`].
pub fn read_back(kafka: &RealKafka, topic: &str, group: &str, partitions: i32) -> Logged {
    let config = kafka.config(topic, group);
    let at = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let offsets = actors::kafka::committed_positions(&config, &super::ids(&config, partitions))
        .expect("committed offsets");
    Logged {
        at,
        member: "kafka".to_owned(),
        event: LogEvent::ReadBack(offsets),
    }
}

/// Checks the members' logs together (with `read_back` commits), in time order: every
/// partition taken starts exactly at the last offset committed for it by anyone (so a revoked
/// partition was committed before its new owner read it), and no member commits a partition
/// it does not own. Returns the number of handovers (a partition taken after someone
/// committed it).
pub fn assert_ownership_and_commits(members: &[&Member], read_back: &[Logged]) -> u64 {
    let mut events: Vec<Logged> = members.iter().flat_map(|m| m.events()).collect();
    events.extend(read_back.iter().cloned());
    events.sort_by(|a, b| a.at.cmp(&b.at));
    let mut owned: BTreeMap<String, std::collections::BTreeSet<PartitionId>> = BTreeMap::new();
    let mut last_commit: BTreeMap<PartitionId, i64> = BTreeMap::new();
    let mut handovers = 0;
    for logged in &events {
        let mine = owned.entry(logged.member.clone()).or_default();
        match &logged.event {
            LogEvent::Taken { partition, start } => {
                if let Some(commit) = last_commit.get(partition) {
                    assert_eq!(
                        *start,
                        Some(*commit),
                        "{} took partition {partition} at {:?}, not at its last commit {commit} ({})",
                        logged.member,
                        start,
                        logged.at
                    );
                    handovers += 1;
                }
                mine.insert(*partition);
            }
            LogEvent::Released { partition, .. } => {
                mine.remove(partition);
            }
            LogEvent::Committed(offsets) => {
                for (partition, offset) in offsets {
                    assert!(
                        mine.contains(partition),
                        "{} committed partition {partition} it does not own ({})",
                        logged.member,
                        logged.at
                    );
                    last_commit.insert(*partition, *offset);
                }
            }
            LogEvent::ReadBack(offsets) => last_commit.extend(offsets),
        }
    }
    handovers
}

/// A directory for the members' output and logs. With `KAFKA_ACTORS_KEEP_LOGS` set it
/// survives the test (its path is printed), so a failure can be read afterwards.
pub fn member_dir(test: &str) -> tempfile::TempDir {
    let keep = std::env::var_os("KAFKA_ACTORS_KEEP_LOGS").is_some();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{test}-"))
        .disable_cleanup(keep)
        .tempdir()
        .expect("member directory");
    if keep {
        eprintln!("{test}: members' logs in {}", dir.path().display());
    }
    dir
}

/// Waits until every partition of `topic` holds records: members started on an empty topic
/// would count its partitions as idle (caught up and quiet), and the first frames of a
/// partition that starts receiving a little later than the others could then be late.
pub fn wait_for_data(kafka: &RealKafka, topic: &str, partitions: i32) {
    let config = kafka.config(topic, "");
    let probe = actors::kafka::end_offset_probe(&config).expect("end offsets");
    let all = super::ids(&config, partitions);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while probe(&all).values().filter(|end| **end > 0).count() < partitions as usize {
        assert!(std::time::Instant::now() < deadline, "no data in {topic}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Produces with the Java producer in the background.
pub fn produce_live(
    kafka: &RealKafka,
    topic: &str,
    args: &[&str],
) -> std::thread::JoinHandle<JavaTruth> {
    let (kafka, topic) = (kafka.clone(), topic.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kafka.produce(&topic, &args)
    })
}

/// What `group` has committed, per partition: the event time up to which that partition's
/// windows were written (commit metadata, which Kafka keeps).
pub fn committed_up_to(
    kafka: &RealKafka,
    topic: &str,
    group: &str,
    partitions: i32,
) -> BTreeMap<PartitionId, f64> {
    let config = kafka.config(topic, group);
    actors::kafka::committed_offsets(&config, &super::ids(&config, partitions))
        .expect("committed offsets")
        .into_iter()
        .filter_map(|c| {
            actors::commit_meta::decode_closed_below(&c.metadata).map(|wm| (c.partition, wm))
        })
        .collect()
}

/// Waits (up to a minute) until `member` owns a partition (its log shows more partitions
/// taken than released).
pub fn wait_until_owning(member: &Member) {
    wait_on(member, "took no partition", || {
        let owned = member.events().iter().fold(0i64, |n, e| match e.event {
            LogEvent::Taken { .. } => n + 1,
            LogEvent::Released { .. } => n - 1,
            _ => n,
        });
        owned > 0
    });
}

/// Waits (up to a minute) until `member` has written `lines` window lines.
pub fn wait_for_lines(member: &Member, lines: usize) {
    wait_on(member, &format!("wrote no {lines} lines"), || {
        super::output(&member.out).len() >= lines
    });
}

/// Waits (up to a minute) until `done`; else fails saying that `member` `failed` (e.g. "took
/// no partition"), with its log.
pub fn wait_on(member: &Member, failed: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} {failed}: {}",
            member.name,
            member.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
