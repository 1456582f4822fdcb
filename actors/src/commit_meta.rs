//! The commit metadata this service writes with every offset it commits: the partition's
//! `closed_below`, the event time below which its windows are written. A restarted service
//! reads it back so frames of windows already written count as late instead of forming
//! partial windows. Read by the intake (where a partition starts), written by the batch actor
//! (with each commit), and read by the tests that check commits.

use crate::topic::PartitionId;

/// Prefix of the commit metadata written by this service.
/// Commit metadata written by this version: `kafka-actors:v1:wm=<closed_below>`, about 35
/// bytes (Kafka keeps up to `offset.metadata.max.bytes`, 4 096 by default). `wm` is the name
/// `closed_below` had when the format was first written.
const METADATA_V1: &str = "kafka-actors:v1:wm=";
/// The same, as written before the format had a version; still read.
const METADATA_UNVERSIONED: &str = "kafka-actors:wm=";
/// What every version of our metadata starts with.
const METADATA_OURS: &str = "kafka-actors:";

/// The commit metadata that records `closed_below`.
pub fn encode_closed_below(closed_below: Option<f64>) -> String {
    closed_below.map_or_else(String::new, |at| format!("{METADATA_V1}{at}"))
}

/// What a commit's metadata says.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitMetadata {
    /// Ours: windows ending (plus lateness) at or below this event time were written.
    ClosedBelow(f64),
    /// None, or another tool's.
    Foreign,
    /// Ours, but of a version this build does not know (written by a newer one).
    UnknownVersion,
    /// Ours, but not a number this build could have written.
    Unreadable,
}

/// Reads commit metadata.
pub fn decode_commit_metadata(metadata: &str) -> CommitMetadata {
    let value = if let Some(value) = metadata.strip_prefix(METADATA_V1) {
        value
    } else if let Some(value) = metadata.strip_prefix(METADATA_UNVERSIONED) {
        value
    } else if metadata.starts_with(METADATA_OURS) {
        return CommitMetadata::UnknownVersion;
    } else {
        return CommitMetadata::Foreign;
    };
    match value.parse::<f64>() {
        Ok(at) if at.is_finite() => CommitMetadata::ClosedBelow(at),
        _ => CommitMetadata::Unreadable,
    }
}

/// The `closed_below` to resume `partition` with, from the metadata of its commit at `offset`,
/// if it can be trusted: ours, of a known version, and no later than `latest` (the latest
/// event time any frame could have; a later one would close windows that have not been
/// written). Anything else is resumed as if new, which can write windows open before the
/// commit again, as partial lines: that is logged.
pub fn closed_below_from_commit(
    partition: PartitionId,
    offset: Option<i64>,
    metadata: &str,
    latest: f64,
) -> Option<f64> {
    let why = match decode_commit_metadata(metadata) {
        CommitMetadata::ClosedBelow(at) if (0.0..=latest).contains(&at) => return Some(at),
        CommitMetadata::ClosedBelow(at) => {
            format!("it claims event time {at}, beyond any frame (latest {latest}); ignored")
        }
        _ if offset.is_none() => return None,
        CommitMetadata::Foreign => "it carries no window metadata (the broker may not keep \
                                    commit metadata, or another tool committed)"
            .to_owned(),
        CommitMetadata::UnknownVersion => {
            "its window metadata is of a version this build does not know; ignored".to_owned()
        }
        CommitMetadata::Unreadable => "its window metadata cannot be read; ignored".to_owned(),
    };
    tracing::warn!(
        %partition,
        ?offset,
        metadata = %metadata.chars().take(64).collect::<String>(),
        "The committed offset's metadata is not trusted: {why}. Windows open at that commit may \
         be written again as partial lines."
    );
    None
}

/// The `closed_below` recorded in commit metadata, if the metadata is ours.
pub fn decode_closed_below(metadata: &str) -> Option<f64> {
    match decode_commit_metadata(metadata) {
        CommitMetadata::ClosedBelow(at) => Some(at),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_below_metadata_round_trips_and_ignores_foreign_metadata() {
        assert_eq!(
            decode_closed_below(&encode_closed_below(Some(1_700_000_012.25))),
            Some(1_700_000_012.25)
        );
        assert_eq!(encode_closed_below(None), "");
        assert!(
            encode_closed_below(Some(-1.234_567_890_123_456_7e11)).len() <= 64,
            "small"
        );
        assert_eq!(decode_closed_below("something else"), None);
        assert_eq!(decode_closed_below("kafka-actors:v1:wm=inf"), None);
        // Commits written before the format had a version still read.
        assert_eq!(decode_closed_below("kafka-actors:wm=125.5"), Some(125.5));
        assert_eq!(
            decode_commit_metadata("kafka-actors:v2:closed=1"),
            CommitMetadata::UnknownVersion
        );
        assert_eq!(
            decode_commit_metadata("kafka-actors:v1:wm=x"),
            CommitMetadata::Unreadable
        );
        assert_eq!(decode_commit_metadata(""), CommitMetadata::Foreign);
    }

    #[test]
    fn commit_metadata_is_trusted_only_when_plausible_and_of_a_known_version() {
        let p0 = PartitionId::of("t", 0);
        let latest = 4_102_444_800.0;
        let trusted = |metadata: &str| closed_below_from_commit(p0, Some(7), metadata, latest);
        assert_eq!(
            trusted("kafka-actors:v1:wm=1790000125"),
            Some(1_790_000_125.0)
        );
        assert_eq!(trusted("kafka-actors:wm=1790000125"), Some(1_790_000_125.0));
        // Years beyond any frame: trusting it would close every window unwritten.
        assert_eq!(trusted("kafka-actors:v1:wm=9000000000"), None);
        assert_eq!(trusted("kafka-actors:v1:wm=-5"), None);
        assert_eq!(trusted("kafka-actors:v9:wm=1790000125"), None);
        assert_eq!(trusted("other-tool:42"), None);
        assert_eq!(closed_below_from_commit(p0, None, "", latest), None);
    }
}
