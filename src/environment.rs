//! What a run stands in before its pipeline is built: the admin endpoint and, with no brokers
//! configured, the embedded cluster with the input (and output) topics.

use std::sync::Arc;

use actors::config::SinkKind;
use actors::kafka::EmbeddedCluster;

use crate::admin::{AdminServer, AdminState};
use crate::{RunError, Settings};

/// The admin endpoint and the embedded cluster of a run.
pub(crate) struct Environment {
    /// What the admin endpoint reports: the run's phase and its supervisor.
    pub admin_state: Arc<AdminState>,
    /// The admin endpoint, when `admin.enabled`.
    admin: Option<AdminServer>,
    /// The embedded cluster, when no brokers are configured. It lives until the environment
    /// is dropped, after every client of it.
    pub embedded: Option<EmbeddedCluster>,
}

impl Environment {
    /// Starts the admin endpoint and, with no brokers configured, the embedded cluster with
    /// the input topics (and the output topics on it): `settings.kafka.brokers` then names it.
    /// A group left empty is named after the model.
    ///
    /// # Errors
    /// The admin endpoint cannot listen, or the embedded cluster cannot start.
    pub(crate) fn start(settings: &mut Settings) -> Result<Environment, RunError> {
        let admin_state = AdminState::new(settings.model, &settings.admin);
        let admin = match settings.admin.enabled {
            true => Some(AdminServer::start(&settings.admin, admin_state.clone())?),
            false => None,
        };
        let embedded = if settings.kafka.embedded() {
            Some(start_embedded(settings)?)
        } else {
            None
        };
        if settings.kafka.group.trim().is_empty() {
            settings.kafka.group = format!("kafka-actors-{}", settings.model.as_str());
        }
        Ok(Environment {
            admin_state,
            admin,
            embedded,
        })
    }

    /// Stops the admin endpoint (the run has drained; the embedded cluster stays until the
    /// environment is dropped).
    pub(crate) fn close_admin(&mut self) {
        self.admin = None;
    }
}

/// The embedded cluster with the input topics and, on the same cluster (which takes no
/// CreateTopics request), the output topics; `settings.kafka.brokers` is pointed at it.
fn start_embedded(settings: &mut Settings) -> Result<EmbeddedCluster, RunError> {
    let cluster = EmbeddedCluster::start(settings.embedded.brokers)?;
    let replication = settings.embedded.brokers.min(3);
    let topics = settings.kafka.topic_names();
    for topic in &topics {
        cluster.create_topic(topic, settings.embedded.partitions, replication)?;
    }
    let outputs = [
        (settings.sink.kind == SinkKind::Kafka).then(|| settings.sink.topic.clone()),
        settings
            .sink
            .dead_letter
            .enabled()
            .then(|| settings.sink.dead_letter.topic.clone()),
    ];
    for topic in outputs.into_iter().flatten() {
        if settings.sink.brokers.trim().is_empty() {
            cluster.create_topic(&topic, settings.sink.topic_partitions, replication)?;
        }
    }
    settings.kafka.brokers = cluster.bootstrap_servers().to_owned();
    tracing::info!(
        brokers = settings.embedded.brokers,
        topics = %topics.join(","),
        partitions = settings.embedded.partitions,
        "Started the embedded Kafka cluster."
    );
    Ok(cluster)
}
