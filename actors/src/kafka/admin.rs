//! Creating topics.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::client::client_config;
use super::error::AdapterError;
use super::lookup::LOOKUP_TIMEOUT;
use crate::config::KafkaConfig;

/// An admin client for the cluster of `kafka`.
pub(super) fn admin_client(
    kafka: &KafkaConfig,
) -> Result<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>, AdapterError> {
    client_config(kafka, "kafka-actors-admin")
        .create()
        .map_err(|e| AdapterError::create_client("admin", &e))
}

/// Creates `topic` with `partitions` partitions on a cluster reached over the network
/// (the embedded cluster has [`EmbeddedCluster::create_topic`]). A topic that already exists
/// is left as it is.
///
/// # Errors
/// If the cluster refuses for another reason.
pub fn create_topic(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), AdapterError> {
    use rdkafka::admin::{NewTopic, TopicReplication};
    create_new_topic(
        kafka,
        &NewTopic::new(topic, partitions, TopicReplication::Fixed(replication)),
    )
}

/// Asks the cluster of `kafka` to create `new`; a topic that already exists is left as it is.
///
/// # Errors
/// If the cluster refuses for another reason.
pub(crate) fn create_new_topic(
    kafka: &KafkaConfig,
    new: &rdkafka::admin::NewTopic<'_>,
) -> Result<(), AdapterError> {
    let admin = admin_client(kafka)?;
    let options = rdkafka::admin::AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
    let failed = |source| AdapterError::Metadata {
        topic: new.name.to_owned(),
        source,
    };
    let results =
        futures::executor::block_on(admin.create_topics([new], &options)).map_err(failed)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}
