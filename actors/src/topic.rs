//! Partitions are named by topic and index everywhere: [`PartitionId`]. Topic names are
//! interned ([`Topic`]), so a partition id is two words, copied freely, and compared and hashed
//! without touching the name's bytes more than once per process.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{LazyLock, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A topic name. Copying is free; ordering and equality are those of the name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(&'static str);

/// Every topic name seen by this process, each stored once for the life of the process (a
/// process reads a handful of topics).
static NAMES: LazyLock<Mutex<BTreeSet<&'static str>>> = LazyLock::new(Mutex::default);

impl Topic {
    /// The topic called `name`.
    pub fn new(name: &str) -> Topic {
        let mut names = NAMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = names.get(name) {
            return Topic(known);
        }
        let stored: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(stored);
        Topic(stored)
    }

    /// The name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Topic::new(&name))
    }
}

/// One partition of one topic, written `topic-index` (Kafka's own notation) in logs and
/// reports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    /// The topic.
    pub topic: Topic,
    /// The partition's index in the topic.
    pub index: i32,
}

impl PartitionId {
    /// Partition `index` of `topic`.
    pub fn new(topic: Topic, index: i32) -> PartitionId {
        PartitionId { topic, index }
    }

    /// Partition `index` of the topic called `topic`.
    pub fn of(topic: &str, index: i32) -> PartitionId {
        PartitionId::new(Topic::new(topic), index)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.index)
    }
}

impl fmt::Debug for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `topic-index` does not name a partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not TOPIC-PARTITION")]
pub struct BadPartitionId(String);

impl std::str::FromStr for PartitionId {
    type Err = BadPartitionId;

    /// Parses `topic-index`; the index follows the last `-` (topic names may contain `-`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPartitionId(text.to_owned());
        let (topic, index) = text.rsplit_once('-').ok_or_else(bad)?;
        let index: i32 = index.parse().map_err(|_| bad())?;
        if topic.is_empty() || index < 0 {
            return Err(bad());
        }
        Ok(PartitionId::of(topic, index))
    }
}

impl Serialize for PartitionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartitionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Partitions grouped by topic, indices ascending: how output lines and reports name a set of
/// partitions (`{"frames": [0, 1, 2], "clicks": [0]}`).
pub type PartitionsByTopic = BTreeMap<String, Vec<i32>>;

/// `partitions` grouped by topic.
pub fn by_topic<'a>(partitions: impl IntoIterator<Item = &'a PartitionId>) -> PartitionsByTopic {
    let mut grouped = PartitionsByTopic::new();
    for p in partitions {
        grouped
            .entry(p.topic.name().to_owned())
            .or_default()
            .push(p.index);
    }
    for indices in grouped.values_mut() {
        indices.sort_unstable();
        indices.dedup();
    }
    grouped
}

/// The partitions of a [`PartitionsByTopic`].
pub fn from_topics(grouped: &PartitionsByTopic) -> Vec<PartitionId> {
    let mut partitions: Vec<PartitionId> = grouped
        .iter()
        .flat_map(|(topic, indices)| {
            let topic = Topic::new(topic);
            indices.iter().map(move |i| PartitionId::new(topic, *i))
        })
        .collect();
    partitions.sort_unstable();
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_interned_and_ordered_by_name() {
        let a = Topic::new("alpha");
        let b = Topic::new(&String::from("alpha"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.name(), b.name()));
        assert!(Topic::new("beta") > a);
    }

    #[test]
    fn partition_ids_read_back_as_written() {
        for (text, topic, index) in [("frames-3", "frames", 3), ("my-topic-12", "my-topic", 12)] {
            let p: PartitionId = text.parse().unwrap();
            assert_eq!(p, PartitionId::of(topic, index));
            assert_eq!(p.to_string(), text);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<PartitionId>(&json).unwrap(), p);
        }
        for bad in ["frames", "-3", "frames-x", ""] {
            assert!(bad.parse::<PartitionId>().is_err(), "{bad}");
        }
        // Keys of JSON objects, as in per-partition reports.
        let map = BTreeMap::from([(PartitionId::of("t", 1), 5u64)]);
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"t-1":5}"#);
        assert_eq!(
            serde_json::from_str::<BTreeMap<PartitionId, u64>>(&json).unwrap(),
            map
        );
    }

    #[test]
    fn sets_group_by_topic() {
        let ps = [
            PartitionId::of("b", 2),
            PartitionId::of("a", 1),
            PartitionId::of("b", 0),
        ];
        let grouped = by_topic(&ps);
        assert_eq!(
            serde_json::to_string(&grouped).unwrap(),
            r#"{"a":[1],"b":[0,2]}"#
        );
        let mut sorted = ps.to_vec();
        sorted.sort();
        assert_eq!(from_topics(&grouped), sorted);
    }
}
