//! [`LeaderBoard`]: which broker leads each partition, as the clients last reported it, and
//! every change seen. The Kafka adapter feeds it from librdkafka's statistics; the metrics
//! actor reports it. librdkafka itself follows a moved leader; this is for the operator, and
//! for the partition readers: a break in the link to a partition's leader (out of reach, a
//! reconnect, a new leader or leader epoch) voids what the reader knew of the partition's end.

use std::collections::BTreeMap;
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

/// The link a client reads a partition over, as one statistics report shows it: any change
/// in it means the partition may have been answered by another broker, or by the same one
/// after a restart, since the client last heard from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The broker leading the partition.
    pub leader: i32,
    /// Its leader epoch (a new election, also of the same broker, raises it; -1: unknown).
    pub leader_epoch: i64,
    /// Connection attempts the client has made to that broker so far (a reconnect between
    /// two reports raises it).
    pub connects: i64,
}

/// What the board knows of one partition's link.
#[derive(Debug, Clone, Copy, Default)]
struct LinkRecord {
    /// The link of the last report that found the leader in reach (none yet, or out of reach
    /// since).
    link: Option<Link>,
    /// The last report found the leader out of reach (unknown, not connected, or silent).
    out_of_reach: bool,
    /// Breaks seen so far: the leader went out of reach, or the link changed.
    breaks: u64,
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
    /// Per partition: the link its reading client last reported, and the breaks seen in it.
    links: BTreeMap<PartitionId, LinkRecord>,
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

    /// Notes the link the client reading `partition` has to its leader (`None`: the leader is
    /// unknown, not connected or not answering), counting a break when the leader goes out of
    /// reach or the link differs from the last one in reach; logs when reach changes.
    pub fn observe_link(&self, partition: PartitionId, link: Option<Link>) {
        let mut board = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let record = board.links.entry(partition).or_default();
        match (record.out_of_reach, link.is_none()) {
            (false, true) => tracing::warn!(
                %partition,
                "Partition leader unreachable: the partition is not taken as idle until a fetch \
                 made after it is in reach again finds its end."
            ),
            (true, false) => tracing::info!(%partition, "Partition leader reachable again."),
            _ => {}
        }
        record.out_of_reach = link.is_none();
        match (record.link, link) {
            (Some(before), None) => {
                record.breaks += 1;
                record.link = None;
                tracing::debug!(%partition, ?before, breaks = record.breaks, "Link to the partition leader broken.");
            }
            (Some(before), Some(now)) if before != now => {
                record.breaks += 1;
                record.link = Some(now);
                tracing::info!(%partition, ?before, ?now, breaks = record.breaks, "Link to the partition leader changed: its end is to be read again.");
            }
            (_, now) => record.link = now,
        }
    }

    /// Whether `partition`'s leader is in reach (false while the last report on it said its
    /// leader was unknown, not connected or silent; true also when nothing was reported), and
    /// how many breaks its link has had so far (see [`Self::observe_link`]).
    pub fn link_state(&self, partition: PartitionId) -> (bool, u64) {
        let board = self.state.lock().unwrap_or_else(|p| p.into_inner());
        board
            .links
            .get(&partition)
            .map_or((true, 0), |r| (!r.out_of_reach, r.breaks))
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
    fn a_link_breaks_when_its_leader_goes_out_of_reach_or_the_link_changes() {
        let board = LeaderBoard::default();
        let link = |leader, leader_epoch, connects| {
            Some(Link {
                leader,
                leader_epoch,
                connects,
            })
        };
        assert_eq!(board.link_state(p(0)), (true, 0));
        // Out of reach before it was ever in reach: nothing was known to break.
        board.observe_link(p(0), None);
        assert_eq!(board.link_state(p(0)), (false, 0));
        board.observe_link(p(0), link(1, 5, 1));
        board.observe_link(p(0), link(1, 5, 1));
        assert_eq!(board.link_state(p(0)), (true, 0), "the same link");
        // The broker went away and came back.
        board.observe_link(p(0), None);
        assert_eq!(board.link_state(p(0)), (false, 1));
        board.observe_link(p(0), None);
        board.observe_link(p(0), link(1, 5, 3));
        assert_eq!(board.link_state(p(0)), (true, 1), "one break per outage");
        // A reconnect between two reports, a new epoch, a new leader: one break each.
        board.observe_link(p(0), link(1, 5, 4));
        board.observe_link(p(0), link(1, 6, 4));
        board.observe_link(p(0), link(2, 6, 1));
        assert_eq!(board.link_state(p(0)), (true, 4));
        assert_eq!(board.link_state(p(1)), (true, 0), "per partition");
    }
}
