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

/// The test cluster.
pub struct RealKafka {
    /// Its bootstrap servers.
    pub bootstrap: String,
    dir: PathBuf,
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
            Some(bootstrap) if reachable(&bootstrap) => Some(RealKafka { bootstrap, dir }),
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

    /// Creates a topic (replication factor 3) with a fresh name and returns the name.
    pub fn topic(&self, prefix: &str, partitions: i32) -> String {
        let topic = super::unique(prefix);
        let kafka = actors::config::KafkaConfig {
            brokers: self.bootstrap.clone(),
            topic: topic.clone(),
            ..actors::config::KafkaConfig::default()
        };
        actors::kafka::create_topic(&kafka, partitions, 3).expect("create topic");
        topic
    }

    /// Produces frames with Kafka's Java producer (`tests/kafka/FrameProducer.java`; flags as
    /// there, `--topic` given) and returns the truth it computed.
    pub fn produce(&self, topic: &str, args: &[&str]) -> JavaTruth {
        let mut all = vec!["produce", "--topic", topic];
        all.extend_from_slice(args);
        JavaTruth::parse(&self.control(&all))
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
    pub shares: BTreeMap<(i64, i32), (u64, u64)>,
    /// Records sent.
    pub produced: u64,
    /// Valid frames.
    pub valid: u64,
    /// Invalid records by reason.
    pub invalid: BTreeMap<String, u64>,
}

impl JavaTruth {
    fn parse(text: &str) -> JavaTruth {
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
                        value["partition"].as_i64().unwrap() as i32,
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
    fn share(&self, window_start: i64, partition: i32) -> (u64, u64) {
        self.shares
            .get(&(window_start, partition))
            .copied()
            .unwrap_or((0, 0))
    }

    fn shares_with_frames(&self) -> Vec<(i64, i32)> {
        self.shares.keys().copied().collect()
    }
}
