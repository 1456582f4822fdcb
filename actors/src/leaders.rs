//! [`LeaderBoard`]: which broker leads each partition, as the clients last reported it, and
//! every change seen. The Kafka adapter feeds it from librdkafka's statistics; the metrics
//! actor reports it. librdkafka itself follows a moved leader; this is for the operator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::topic::PartitionId;

/// A partition's leader moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderChange {
    /// When it was seen, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The partition.
    pub partition: PartitionId,
    /// The broker that led it before.
    pub from: i32,
    /// The broker that leads it now.
    pub to: i32,
}

/// Current leaders and their changes; shared by every client of the service.
#[derive(Debug, Default)]
pub struct LeaderBoard {
    state: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    leaders: BTreeMap<PartitionId, i32>,
    changes: Vec<LeaderChange>,
    /// Partitions whose reading client last reported no connection to their leader.
    unreachable: BTreeSet<PartitionId>,
    /// The group member's join state in the last statistics (`steady` between rebalances).
    join_state: Option<String>,
}

impl LeaderBoard {
    /// Notes that `leader` leads `partition` (a negative id means no leader is known and is
    /// ignored); records and logs a change from a different leader.
    pub fn observe(&self, partition: PartitionId, leader: i32) {
        if leader < 0 {
            return;
        }
        let mut board = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match board.leaders.insert(partition, leader) {
            Some(previous) if previous != leader => {
                tracing::info!(
                    %partition,
                    from = previous,
                    to = leader,
                    "Partition leader changed."
                );
                let at_ms = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                board.changes.push(LeaderChange {
                    at_ms,
                    partition,
                    from: previous,
                    to: leader,
                });
            }
            _ => {}
        }
    }

    /// Notes whether the client reading `partition` is connected to its leader; logs when
    /// that changes.
    pub fn observe_reach(&self, partition: PartitionId, reachable: bool) {
        let mut board = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if reachable {
            board.unreachable.remove(&partition)
        } else {
            board.unreachable.insert(partition)
        };
        if changed && reachable {
            tracing::info!(%partition, "Partition leader reachable again.");
        } else if changed {
            tracing::warn!(
                %partition,
                "Partition leader unreachable: the partition is not taken as idle until it is \
                 read again."
            );
        }
    }

    /// False while the last report on `partition` said its leader was unknown or not
    /// connected; true otherwise, also when nothing was reported.
    pub fn reachable(&self, partition: PartitionId) -> bool {
        !self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unreachable
            .contains(&partition)
    }

    /// The leader of every partition seen so far.
    pub fn leaders(&self) -> BTreeMap<PartitionId, i32> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .leaders
            .clone()
    }

    /// Every change seen, oldest first.
    pub fn changes(&self) -> Vec<LeaderChange> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .changes
            .clone()
    }

    /// Records the group member's join state (librdkafka's `cgrp.join_state`).
    pub fn observe_join_state(&self, join_state: &str) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join_state = Some(join_state.to_owned());
    }

    /// The group member's join state as last reported: `steady` between rebalances; `None`
    /// without a group membership (or statistics).
    pub fn join_state(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join_state
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    #[test]
    fn records_changes_but_not_first_sightings_or_unknown_leaders() {
        let board = LeaderBoard::default();
        board.observe(p(0), 1);
        board.observe(p(1), 2);
        board.observe(p(0), 1);
        board.observe(p(0), -1);
        assert!(board.changes().is_empty());
        board.observe(p(0), 3);
        board.observe(p(0), 1);
        let changes: Vec<(i32, i32, i32)> = board
            .changes()
            .iter()
            .map(|c| (c.partition.index, c.from, c.to))
            .collect();
        assert_eq!(changes, vec![(0, 1, 3), (0, 3, 1)]);
        assert_eq!(board.leaders(), BTreeMap::from([(p(0), 1), (p(1), 2)]));
    }

    #[test]
    fn reach_follows_the_last_report_and_defaults_to_reachable() {
        let board = LeaderBoard::default();
        assert!(board.reachable(p(0)));
        board.observe_reach(p(0), false);
        assert!(!board.reachable(p(0)));
        assert!(board.reachable(p(1)));
        board.observe_reach(p(0), false);
        assert!(!board.reachable(p(0)));
        board.observe_reach(p(0), true);
        assert!(board.reachable(p(0)));
    }
}
