//! `kafka-actors layout`: checks, before deploying, that a set of partition-model instances
//! (one settings file each) reads every partition of the input topics exactly once.

use std::fmt;

use actors::config::ConfigError;
use actors::layout::{check_layout, format_ranges, LayoutError, Selection};
use actors::topic::PartitionId;

use crate::settings::{Model, Settings};
use crate::{blocking, RunError};

/// How a set of instances reads the topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Every partition of the input topics.
    pub partitions: Vec<PartitionId>,
    /// Each instance's name and the partitions it reads.
    pub instances: Vec<(String, Vec<PartitionId>)>,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Each of the {} partitions is read by exactly one instance:",
            self.partitions.len()
        )?;
        for (name, partitions) in &self.instances {
            let by_topic: Vec<String> = actors::topic::by_topic(partitions)
                .iter()
                .map(|(topic, indices)| format!("{topic} {}", format_ranges(indices)))
                .collect();
            writeln!(f, "  {name}: {}", by_topic.join("; "))?;
        }
        Ok(())
    }
}

/// Why a layout cannot be checked or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum LayoutCheckError {
    /// The instances do not read every partition once.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The instances' settings do not describe one layout of the same input.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The partitions could not be looked up.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Checks that `instances` (a name and settings each: the partition model, the same brokers
/// and topics) read every partition of their topics once, looking the partitions up on the
/// brokers of the first.
///
/// # Errors
/// Instances that overlap or leave partitions unread, settings that are not a layout (another
/// model, other topics or brokers, none at all), or a cluster that cannot be reached.
pub async fn check(instances: &[(String, Settings)]) -> Result<Layout, LayoutCheckError> {
    let Some((_, first)) = instances.first() else {
        return Err(ConfigError::new("layout", "no instance settings given").into());
    };
    for (name, settings) in instances {
        let differs = |key: &str, what: &str| {
            ConfigError::new(key, format!("{name} {what} than {}", instances[0].0))
        };
        if settings.model != Model::Partition {
            return Err(ConfigError::new(
                "model",
                format!(
                    "{name} runs the {} model; a static layout is for the partition model",
                    settings.model.as_str()
                ),
            )
            .into());
        }
        if settings.kafka.embedded() {
            return Err(
                ConfigError::new("kafka.brokers", format!("{name} names no brokers")).into(),
            );
        }
        let topics = |s: &Settings| -> std::collections::BTreeSet<String> {
            s.kafka.topic_names().into_iter().collect()
        };
        if topics(settings) != topics(first) {
            return Err(differs("kafka.topics", "reads other topics").into());
        }
        if settings.kafka.brokers.trim() != first.kafka.brokers.trim() {
            return Err(differs("kafka.brokers", "names other brokers").into());
        }
    }
    let selections: Vec<(String, Selection)> = instances
        .iter()
        .map(|(name, s)| Ok((name.clone(), s.kafka.selection()?)))
        .collect::<Result<_, ConfigError>>()?;
    // A look-up only; librdkafka wants a group id for it.
    let kafka = actors::config::KafkaConfig {
        group: "kafka-actors-layout".to_owned(),
        ..first.kafka.clone()
    };
    let all = blocking(move || actors::kafka::partition_ids(&kafka))
        .await?
        .map_err(RunError::from)?;
    check_layout(&selections, &all)?;
    let instances = selections
        .iter()
        .map(|(name, selection)| {
            let chosen = selection.apply(&all).map_err(|e| LayoutError {
                invalid: [(name.clone(), e)].into(),
                ..LayoutError::default()
            })?;
            Ok((name.clone(), chosen))
        })
        .collect::<Result<_, LayoutError>>()?;
    Ok(Layout {
        partitions: all,
        instances,
    })
}
