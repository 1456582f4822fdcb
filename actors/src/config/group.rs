//! `[group]`: the group model's membership: assignment strategy, session and revocation.

use serde::{Deserialize, Serialize};

use super::error::{check, ConfigError};

/// How partitions are assigned to group members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// Incremental: only moved partitions stop during a rebalance.
    CooperativeSticky,
    /// Eager, range assignor: every partition is revoked at every rebalance.
    Range,
    /// Eager, round-robin assignor.
    Roundrobin,
}

impl Assignment {
    /// The librdkafka `partition.assignment.strategy` value.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Assignment::CooperativeSticky => "cooperative-sticky",
            Assignment::Range => "range",
            Assignment::Roundrobin => "roundrobin",
        }
    }
}

/// The group model: one subscribing member, partitions assigned by the group coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// `cooperative-sticky`, `range` or `roundrobin`; every member of a group must use the same.
    pub assignment: Assignment,
    /// The coordinator drops a member it has not heard from for this long (milliseconds).
    pub session_timeout_ms: u64,
    /// A revocation must be flushed and committed within this long (milliseconds); must be
    /// below `session_timeout_ms`. With exactly-once output a revocation is waited for until
    /// it is committed, however long that takes (see the README, "Revoke").
    pub revoke_timeout_ms: u64,
    /// Static membership (`group.instance.id`): a member that restarts within the session
    /// timeout gets its partitions back without a rebalance. Empty: dynamic membership.
    pub instance_id: String,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            assignment: Assignment::CooperativeSticky,
            session_timeout_ms: 45_000,
            revoke_timeout_ms: 20_000,
            instance_id: String::new(),
        }
    }
}

impl GroupConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1_000..=3_600_000).contains(&self.session_timeout_ms),
            "group.session_timeout_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            self.revoke_timeout_ms >= 1 && self.revoke_timeout_ms < self.session_timeout_ms,
            "group.revoke_timeout_ms",
            "must be at least 1 and below group.session_timeout_ms",
        )?;
        check(
            self.instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "group.instance_id",
            "uses only ASCII letters, digits, '.', '_' and '-'",
        )
    }
}
