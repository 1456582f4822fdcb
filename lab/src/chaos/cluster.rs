//! The cluster a scenario runs on: the embedded one or a real one, and what the harness does
//! to it (broker power, hangs, leader moves, link faults, topics laid out around the group
//! coordinator).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::LabError;
use actors::config::KafkaConfig;
use actors::kafka::{self, EmbeddedCluster};
use actors::topic::PartitionId;
use kafka_actors::blocking;

use super::PARTITIONS;

/// The cluster of one scenario run.
pub(crate) enum ChaosCluster {
    Embedded(Arc<EmbeddedCluster>),
    Real {
        brokers: String,
        /// The service's bootstrap servers: the linked listeners when the control command
        /// has them (each broker behind a proxy that takes link faults), else `brokers`.
        linked: String,
        control: Option<PathBuf>,
    },
}

impl ChaosCluster {
    /// A real cluster; asks `control` for its linked listeners.
    pub(crate) async fn real(brokers: String, control: Option<PathBuf>) -> ChaosCluster {
        let linked = match &control {
            Some(control) => {
                let control = control.clone();
                let answer = blocking(move || {
                    std::process::Command::new(&control)
                        .arg("linked")
                        .stderr(std::process::Stdio::inherit())
                        .output()
                })
                .await;
                match answer {
                    Ok(Ok(out)) if out.status.success() => {
                        String::from_utf8_lossy(&out.stdout).trim().to_owned()
                    }
                    _ => String::new(),
                }
            }
            None => String::new(),
        };
        let linked = if linked.is_empty() {
            brokers.clone()
        } else {
            linked
        };
        ChaosCluster::Real {
            brokers,
            linked,
            control,
        }
    }

    /// Bootstrap servers for the harness's own clients (producer, watcher, oracle): never
    /// behind a link fault.
    pub(crate) fn bootstrap(&self) -> &str {
        match self {
            ChaosCluster::Embedded(cluster) => cluster.bootstrap_servers(),
            ChaosCluster::Real { brokers, .. } => brokers,
        }
    }

    /// Bootstrap servers for the service under test.
    pub(crate) fn service_bootstrap(&self) -> &str {
        match self {
            ChaosCluster::Embedded(cluster) => cluster.bootstrap_servers(),
            ChaosCluster::Real { linked, .. } => linked,
        }
    }

    /// Whether link faults reach the service (a real cluster with linked listeners).
    pub(crate) fn has_links(&self) -> bool {
        matches!(self, ChaosCluster::Real { brokers, linked, .. } if brokers != linked)
    }

    /// Puts `fault` (`cut`, `refuse`, `drop-answers`, `latency MS`, `bandwidth KB_PER_S`,
    /// `heal`) on the link between the service and `broker` (every broker, when `None`).
    pub(crate) async fn link(&self, broker: Option<i32>, fault: &[&str]) -> bool {
        if !self.has_links() {
            return false;
        }
        let which = broker.map_or_else(|| "all".to_owned(), |b| b.to_string());
        let mut args = vec!["link".to_owned(), which];
        args.extend(fault.iter().map(|a| (*a).to_owned()));
        tracing::warn!(?broker, ?fault, "Link fault.");
        self.control(&args).await
    }

    pub(crate) fn embedded(&self) -> Option<&EmbeddedCluster> {
        match self {
            ChaosCluster::Embedded(cluster) => Some(cluster),
            ChaosCluster::Real { .. } => None,
        }
    }

    /// Runs the control command (real clusters), logging a failure.
    pub(crate) async fn control(&self, args: &[String]) -> bool {
        let ChaosCluster::Real {
            control: Some(control),
            ..
        } = self
        else {
            return false;
        };
        let (control, args) = (control.clone(), args.to_vec());
        let status = blocking(move || {
            std::process::Command::new(&control)
                .args(&args)
                .stdout(std::process::Stdio::null())
                .status()
        })
        .await;
        match status {
            Ok(Ok(status)) if status.success() => true,
            other => {
                tracing::error!(?other, "The broker control command failed.");
                false
            }
        }
    }

    pub(crate) async fn move_leader(&self, partition: PartitionId, to: i32) {
        let topic = partition.topic.name();
        match self {
            ChaosCluster::Embedded(cluster) => {
                let _ = cluster.move_leader(topic, partition.index, to);
            }
            ChaosCluster::Real { .. } => {
                self.control(&[
                    "move-leader".into(),
                    topic.into(),
                    partition.index.to_string(),
                    to.to_string(),
                ])
                .await;
            }
        }
    }

    /// Makes `broker` stop answering without closing its connections (`hung`), or answer
    /// again: SIGSTOP / SIGCONT on a real cluster, a 30 s round trip on the embedded one.
    pub(crate) async fn hang(&self, broker: i32, hung: bool) {
        match self {
            ChaosCluster::Embedded(cluster) => {
                let delay = if hung {
                    Duration::from_secs(30)
                } else {
                    Duration::ZERO
                };
                let _ = cluster.broker_latency(broker, delay);
            }
            ChaosCluster::Real { .. } => {
                let verb = if hung { "pause" } else { "resume" };
                self.control(&[verb.into(), broker.to_string()]).await;
            }
        }
    }

    pub(crate) async fn broker_down(&self, broker: Option<i32>) {
        self.power(Power::Down, broker).await;
    }

    pub(crate) async fn broker_up(&self, broker: Option<i32>) {
        self.power(Power::Up, broker).await;
    }

    /// Takes `broker` (every broker, when `None`) down or brings it back.
    pub(crate) async fn power(&self, power: Power, broker: Option<i32>) {
        match self {
            ChaosCluster::Embedded(cluster) => {
                for broker in broker.map_or(1..=3, |b| b..=b) {
                    let _ = match power {
                        Power::Down => cluster.broker_down(broker),
                        Power::Up => cluster.broker_up(broker),
                    };
                }
            }
            ChaosCluster::Real { .. } => {
                let verb = match power {
                    Power::Down => "kill",
                    Power::Up => "restart",
                };
                let which = broker.map_or_else(|| "all".to_owned(), |b| b.to_string());
                self.control(&[verb.into(), which]).await;
            }
        }
    }
}

/// A broker fault's two halves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Power {
    Down,
    Up,
}

/// Creates `topic` with every partition led (and replicated) on the brokers other than
/// `group`'s coordinator first, the coordinator last, so that cutting the coordinator off
/// leaves every leader in reach. Waits (up to 30 s) for the committed-offsets topic, which
/// the first coordinator look-up creates.
pub(crate) fn create_away_from_coordinator(
    mut kafka: KafkaConfig,
    topic: &str,
    group: &str,
) -> Result<(), LabError> {
    kafka.group = group.to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let coordinator = loop {
        if let Some(coordinator) = kafka::group_coordinator(&kafka)? {
            break coordinator;
        }
        if Instant::now() > deadline {
            return Err(LabError::Task(format!(
                "no coordinator for group {group} within 30 s"
            )));
        }
        // Asking the cluster about the group looks its coordinator up, which creates the
        // committed-offsets topic on a cluster that has none yet.
        let _ = kafka::group_state(&kafka);
        std::thread::sleep(Duration::from_millis(500));
    };
    let others: Vec<i32> = (1..=3).filter(|b| *b != coordinator).collect();
    let replicas: Vec<Vec<i32>> = (0..PARTITIONS as usize)
        .map(|i| {
            let first = others[i % others.len()];
            let second = others[(i + 1) % others.len()];
            vec![first, second, coordinator]
        })
        .collect();
    tracing::info!(%topic, coordinator, ?replicas, "Topic laid out away from the group coordinator.");
    Ok(kafka::create_topic_on(&kafka, topic, &replicas)?)
}
