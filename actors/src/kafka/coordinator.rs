//! Where a consumer group's coordinator lives, and topics laid out around it: for fault
//! scenarios that cut the service off from its group coordinator while its partitions' leaders
//! stay in reach. The service itself never calls these.

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;

use super::admin::create_new_topic;
use super::error::AdapterError;
use super::lookup::{lookup_consumer, LOOKUP_TIMEOUT};
use crate::config::KafkaConfig;

/// Kafka's internal topic of committed offsets; its partition leaders coordinate the groups.
const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` of `text` (over its UTF-16 code units), which Kafka uses to place a
/// group on a partition of [`OFFSETS_TOPIC`].
fn java_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The partition of [`OFFSETS_TOPIC`] (of `partitions`) that holds `group`'s commits: its
/// leader is the group's coordinator (`GroupCoordinatorService.partitionFor`:
/// `Utils.abs(groupId.hashCode()) % numPartitions`, where `Utils.abs` is `Math.abs` with
/// `Integer.MIN_VALUE` taken as 0; not the hash with its sign bit cleared, which places about
/// half of all groups elsewhere).
fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let hash = java_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// The broker coordinating `kafka.group` as the cluster's metadata says now: the leader of
/// the group's partition of the committed-offsets topic. `None` while that topic does not
/// exist yet (no group has committed) or the partition has no leader.
///
/// # Errors
/// If the metadata cannot be read.
pub fn group_coordinator(kafka: &KafkaConfig) -> Result<Option<i32>, AdapterError> {
    let client = lookup_consumer(kafka)?;
    let metadata = (*client)
        .fetch_metadata(Some(OFFSETS_TOPIC), LOOKUP_TIMEOUT)
        .map_err(|source| AdapterError::Metadata {
            topic: OFFSETS_TOPIC.to_owned(),
            source,
        })?;
    let Some(topic) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == OFFSETS_TOPIC && t.error().is_none())
    else {
        return Ok(None);
    };
    let count = topic.partitions().len() as i32;
    if count == 0 {
        return Ok(None);
    }
    let wanted = offsets_partition(&kafka.group, count);
    Ok(topic
        .partitions()
        .iter()
        .find(|p| p.id() == wanted)
        .map(|p| p.leader())
        .filter(|leader| *leader >= 0))
}

/// Creates `topic` with one partition per entry of `replicas`, each on the brokers it lists,
/// the first its preferred leader. A topic that already exists is left as it is.
///
/// # Errors
/// If the cluster refuses for another reason.
pub fn create_topic_on(
    kafka: &KafkaConfig,
    topic: &str,
    replicas: &[Vec<i32>],
) -> Result<(), AdapterError> {
    let lists: Vec<&[i32]> = replicas.iter().map(Vec::as_slice).collect();
    let new = NewTopic::new(
        topic,
        replicas.len() as i32,
        TopicReplication::Variable(&lists),
    );
    create_new_topic(kafka, &new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_placed_as_kafka_places_them() {
        // Java: "".hashCode() == 0, "a".hashCode() == 97, "hello".hashCode() == 99162322;
        // Kafka takes the absolute value of a negative one (Integer.MIN_VALUE as 0).
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(
            java_hash("polygenelubricants"),
            i32::MIN,
            "a string whose hash is Integer.MIN_VALUE"
        );
        assert_eq!(offsets_partition("polygenelubricants", 10), 0);
        assert_eq!(offsets_partition("hello", 50), 99_162_322 % 50);
        assert_eq!(offsets_partition("a", 10), 7);
        // A negative hash, as Kafka 4.1 places it (its `Utils.abs(hashCode) % 10`, run on
        // the test cluster's jars): partition 2; clearing the sign bit would say 6.
        let group = "chaos-coordinator-cut-off-group-19516-1796617351411-group";
        assert_eq!(java_hash(group), -330_489_772);
        assert_eq!(offsets_partition(group, 10), 2);
    }
}
