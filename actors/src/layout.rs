//! Which partitions an instance of the partition model reads ([`Selection`]), and whether a set
//! of instances reads every partition of the input exactly once ([`check_layout`]).
//!
//! The partition model spreads over processes without a group coordinator: each instance is
//! given its own partitions, either listed per topic (`kafka.partitions`, `frames = "0-3,8"`)
//! or as one residue class of the partition index (`kafka.instance = "i/N"`). Instances may
//! share a consumer group: each commits only the partitions it reads.

use std::collections::BTreeMap;
use std::fmt;

use crate::topic::{PartitionId, Topic};

/// The partitions an instance reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every partition of every input topic.
    All,
    /// These partition indices of these topics (topics not named are not read).
    Listed(BTreeMap<Topic, Vec<i32>>),
    /// Every partition whose index is `index` modulo `count`, of every input topic.
    Instance {
        /// `i` of `i/N`.
        index: u32,
        /// `N` of `i/N`.
        count: u32,
    },
}

/// A selection that names partitions the topics do not have, or takes none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// `kafka.partitions` names partitions a topic does not have.
    #[error(
        "invalid value for `kafka.partitions.{topic}`: topic `{topic}` has partitions 0-{last}, \
         not {missing}"
    )]
    NoSuchPartition {
        /// The topic.
        topic: String,
        /// Its highest partition index.
        last: i32,
        /// The indices it does not have, as a range list.
        missing: String,
    },
    /// The selection takes no partition at all.
    #[error("invalid value for `{key}`: {selection} takes no partition of {topics}; an instance that reads nothing refuses to start")]
    Empty {
        /// The key that selected.
        key: &'static str,
        /// The selection, as configured.
        selection: String,
        /// The topics and their partition counts.
        topics: String,
    },
}

/// A partition selection that cannot be used, with the key it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{key}`: {reason}")]
pub struct InvalidSelection {
    /// Dotted key, as written in the TOML file (`kafka.instance`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidSelection {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidSelection {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl Selection {
    /// The selection that `partitions` (`kafka.partitions`: index ranges by topic) and
    /// `instance` (`kafka.instance`: `i/N`) configure, over the input topics `topics`.
    ///
    /// # Errors
    /// A range list that does not parse, a topic that is not an input topic, an instance that
    /// is not `i/N` with `i < N`, or both keys set.
    pub fn parse(
        partitions: &BTreeMap<String, String>,
        instance: &str,
        topics: &[String],
    ) -> Result<Selection, InvalidSelection> {
        let instance = instance.trim();
        match (partitions.is_empty(), instance.is_empty()) {
            (true, true) => Ok(Selection::All),
            (false, false) => Err(InvalidSelection::new(
                "kafka.instance",
                "set kafka.partitions or kafka.instance, not both",
            )),
            (true, false) => {
                let parsed = instance.split_once('/').and_then(|(i, n)| {
                    Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
                });
                match parsed {
                    Some((index, count)) if count > 0 && index < count => {
                        Ok(Selection::Instance { index, count })
                    }
                    _ => Err(InvalidSelection::new(
                        "kafka.instance",
                        format!("`{instance}` is not i/N with 0 <= i < N (for example 0/3)"),
                    )),
                }
            }
            (false, true) => {
                let mut listed = BTreeMap::new();
                for (topic, ranges) in partitions {
                    let key = format!("kafka.partitions.{topic}");
                    if !topics.contains(topic) {
                        return Err(InvalidSelection::new(
                            key,
                            format!(
                                "`{topic}` is not an input topic (kafka.topics: {})",
                                topics.join(", ")
                            ),
                        ));
                    }
                    let indices = parse_ranges(ranges)
                        .map_err(|reason| InvalidSelection::new(key, reason))?;
                    listed.insert(Topic::new(topic), indices);
                }
                Ok(Selection::Listed(listed))
            }
        }
    }

    /// True when every partition is read.
    pub fn is_all(&self) -> bool {
        matches!(self, Selection::All)
    }

    /// The partitions of `all` (every partition of the input topics) this selection reads, in
    /// order.
    ///
    /// # Errors
    /// A listed partition the topic does not have, or a selection that takes nothing.
    pub fn apply(&self, all: &[PartitionId]) -> Result<Vec<PartitionId>, SelectionError> {
        let chosen: Vec<PartitionId> = match self {
            Selection::All => all.to_vec(),
            Selection::Instance { index, count } => all
                .iter()
                .filter(|p| p.index.unsigned_abs() % count == *index)
                .copied()
                .collect(),
            Selection::Listed(listed) => {
                for (topic, indices) in listed {
                    let present: Vec<i32> = all
                        .iter()
                        .filter(|p| p.topic == *topic)
                        .map(|p| p.index)
                        .collect();
                    let missing: Vec<i32> = indices
                        .iter()
                        .filter(|i| !present.contains(i))
                        .copied()
                        .collect();
                    if !missing.is_empty() {
                        return Err(SelectionError::NoSuchPartition {
                            topic: topic.to_string(),
                            last: present.iter().copied().max().unwrap_or(-1),
                            missing: format_ranges(&missing),
                        });
                    }
                }
                all.iter()
                    .filter(|p| listed.get(&p.topic).is_some_and(|i| i.contains(&p.index)))
                    .copied()
                    .collect()
            }
        };
        if chosen.is_empty() {
            return Err(SelectionError::Empty {
                key: match self {
                    Selection::Instance { .. } => "kafka.instance",
                    _ => "kafka.partitions",
                },
                selection: self.to_string(),
                topics: describe_topics(all),
            });
        }
        Ok(chosen)
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => f.write_str("every partition"),
            Selection::Instance { index, count } => write!(f, "instance {index}/{count}"),
            Selection::Listed(listed) => {
                let parts: Vec<String> = listed
                    .iter()
                    .map(|(topic, indices)| format!("{topic}: {}", format_ranges(indices)))
                    .collect();
                write!(f, "partitions {}", parts.join("; "))
            }
        }
    }
}

/// `topic (N partitions), ...`.
fn describe_topics(all: &[PartitionId]) -> String {
    let mut counts: BTreeMap<Topic, usize> = BTreeMap::new();
    for p in all {
        *counts.entry(p.topic).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(topic, n)| format!("`{topic}` ({n} partitions)"))
        .collect();
    parts.join(", ")
}

/// Parses `0-3,8` into `[0, 1, 2, 3, 8]` (sorted, each index once).
///
/// # Errors
/// An empty list, a negative or non-numeric index, or a range whose end is below its start.
pub fn parse_ranges(text: &str) -> Result<Vec<i32>, String> {
    let mut indices = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let index = |s: &str| {
            s.trim()
                .parse::<i32>()
                .ok()
                .filter(|i| *i >= 0)
                .ok_or_else(|| {
                    format!("`{item}` in `{text}` is not a partition index or a range like 0-3")
                })
        };
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (index(from)?, index(to)?);
                if to < from {
                    return Err(format!(
                        "the range `{item}` in `{text}` ends before it starts"
                    ));
                }
                indices.extend(from..=to);
            }
            None => indices.push(index(item)?),
        }
    }
    indices.sort_unstable();
    indices.dedup();
    Ok(indices)
}

/// `partitions` by topic, each as ranges: `frames:0-3,8;other:0`.
pub fn describe_partitions(partitions: &[PartitionId]) -> String {
    crate::topic::by_topic(partitions)
        .iter()
        .map(|(topic, indices)| format!("{topic}:{}", format_ranges(indices)))
        .collect::<Vec<_>>()
        .join(";")
}

/// `[0, 1, 2, 3, 8]` as `0-3,8`.
pub fn format_ranges(indices: &[i32]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// How a set of instances covers the input, when it does not cover it exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct LayoutError {
    /// Partitions read by more than one instance, with the instances (by name) reading them.
    pub overlapping: BTreeMap<PartitionId, Vec<String>>,
    /// Partitions no instance reads.
    pub missing: Vec<PartitionId>,
    /// Instances whose own selection is invalid for the topics, with the error.
    pub invalid: BTreeMap<String, SelectionError>,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut problems = Vec::new();
        for (name, error) in &self.invalid {
            problems.push(format!("{name}: {error}"));
        }
        for (partition, names) in &self.overlapping {
            problems.push(format!("{partition} is read by {}", names.join(" and ")));
        }
        if !self.missing.is_empty() {
            let names: Vec<String> = self.missing.iter().map(ToString::to_string).collect();
            problems.push(format!("no instance reads {}", names.join(", ")));
        }
        write!(
            f,
            "the instances do not read every partition once: {}",
            problems.join("; ")
        )
    }
}

/// Checks that `instances` (a name and a selection each) together read every partition of
/// `all` exactly once.
///
/// # Errors
/// Every partition read twice or not at all, and every instance whose selection does not fit
/// the topics.
pub fn check_layout(
    instances: &[(String, Selection)],
    all: &[PartitionId],
) -> Result<(), LayoutError> {
    let mut readers: BTreeMap<PartitionId, Vec<String>> =
        all.iter().map(|p| (*p, Vec::new())).collect();
    let mut error = LayoutError::default();
    for (name, selection) in instances {
        match selection.apply(all) {
            Ok(chosen) => {
                for p in chosen {
                    readers.entry(p).or_default().push(name.clone());
                }
            }
            Err(e) => {
                error.invalid.insert(name.clone(), e);
            }
        }
    }
    for (partition, names) in readers {
        match names.len() {
            0 => error.missing.push(partition),
            1 => {}
            _ => {
                error.overlapping.insert(partition, names);
            }
        }
    }
    if error == LayoutError::default() {
        Ok(())
    } else {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, n: i32) -> Vec<PartitionId> {
        (0..n).map(|i| PartitionId::of(name, i)).collect()
    }

    /// The selection of `partitions` and `instance` over the input `topics`.
    fn selection(
        topics: &[&str],
        partitions: &[(&str, &str)],
        instance: &str,
    ) -> Result<Selection, InvalidSelection> {
        let partitions = partitions
            .iter()
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect();
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        Selection::parse(&partitions, instance, &topics)
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!(parse_ranges("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_ranges(" 8, 2 ,2-3").unwrap(), vec![2, 3, 8]);
        for bad in ["", "a", "3-1", "-1", "1-", "1,,2", "0-3;8"] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
        assert_eq!(format_ranges(&[8, 0, 1, 2, 3, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_ranges(&[5]), "5");
    }

    #[test]
    fn instances_take_residue_classes_of_every_topic() {
        let all = [topic("a", 3), topic("b", 5)].concat();
        let chosen = Selection::Instance { index: 1, count: 3 }
            .apply(&all)
            .unwrap();
        let names: Vec<String> = chosen.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["a-1", "b-1", "b-4"]);
        assert_eq!(Selection::All.apply(&all).unwrap(), all);
    }

    #[test]
    fn a_listed_partition_the_topic_lacks_or_an_empty_selection_stops_the_start() {
        let all = topic("frames", 4);
        let listed = selection(&["frames"], &[("frames", "2-5")], "").unwrap();
        let error = listed.apply(&all).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value for `kafka.partitions.frames`: topic `frames` has partitions 0-3, not 4-5"
        );
        let error = Selection::Instance { index: 5, count: 8 }
            .apply(&all)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("instance 5/8 takes no partition of `frames` (4 partitions)"),
            "{error}"
        );
        // Listing only one of two input topics reads only that one.
        let all = [topic("a", 2), topic("b", 2)].concat();
        let listed = selection(&["a", "b"], &[("b", "1")], "").unwrap();
        assert_eq!(listed.apply(&all).unwrap(), vec![PartitionId::of("b", 1)]);
    }

    #[test]
    fn a_layout_is_checked_for_overlaps_and_gaps() {
        let all = topic("t", 12);
        let thirds: Vec<(String, Selection)> = (0..3)
            .map(|i| (format!("i{i}"), Selection::Instance { index: i, count: 3 }))
            .collect();
        assert_eq!(check_layout(&thirds, &all), Ok(()));

        let listed = |r: &str| selection(&["t"], &[("t", r)], "").unwrap();
        let layout = vec![
            ("x".to_owned(), listed("0-6")),
            ("y".to_owned(), listed("6-9")),
            ("z".to_owned(), listed("11-12")),
        ];
        let error = check_layout(&layout, &all).unwrap_err();
        assert_eq!(
            error.overlapping,
            BTreeMap::from([(
                PartitionId::of("t", 6),
                vec!["x".to_owned(), "y".to_owned()]
            )])
        );
        assert_eq!(
            error.missing,
            vec![PartitionId::of("t", 10), PartitionId::of("t", 11)]
        );
        assert!(error.invalid.contains_key("z"));
        let text = error.to_string();
        assert!(text.contains("t-6 is read by x and y"), "{text}");
        assert!(text.contains("no instance reads t-10, t-11"), "{text}");
    }
}
