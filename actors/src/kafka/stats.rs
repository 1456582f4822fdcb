//! librdkafka's statistics, read for what the service needs of them: each partition's leader,
//! whether its link can be read, and the group member's join state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::leaders::{LeaderBoard, Link};
use crate::topic::{PartitionId, Topic};

/// How long a broker connection may receive nothing before its partitions count as out of
/// reach (see [`observe_leaders`]).
const RX_IDLE_MAX: Duration = Duration::from_secs(2);

/// Leader tracking for a client: librdkafka's statistics every `interval_ms` feed `board`.
#[derive(Clone)]
pub struct LeaderStats {
    /// Where leaders are recorded.
    pub board: Arc<LeaderBoard>,
    /// `statistics.interval.ms`.
    pub interval_ms: u64,
}

impl LeaderStats {
    /// The client setting that turns statistics on.
    pub(crate) fn setting(&self) -> (&'static str, String) {
        ("statistics.interval.ms", self.interval_ms.to_string())
    }
}

/// Records the leader of every partition the client is consuming (`desired`) from one
/// statistics report, and whether the partition can be read: the client is connected to that
/// leader and fetching (not querying or validating its offset). Partitions the client only
/// knows from metadata are skipped: another client's older metadata must not look like a
/// leader moving back.
pub(crate) fn observe_leaders(board: &LeaderBoard, stats: &[u8]) {
    let Ok(stats) = serde_json::from_slice::<serde_json::Value>(stats) else {
        return;
    };
    // A group member's statistics say where it is in the group's protocol.
    if let Some(join_state) = stats
        .get("cgrp")
        .and_then(|c| c.get("join_state"))
        .and_then(serde_json::Value::as_str)
    {
        board.observe_join_state(join_state);
    }
    let Some(topics) = stats.get("topics").and_then(|t| t.as_object()) else {
        return;
    };
    // Broker ids whose connection is up and answering, with the connection attempts made to
    // each so far. UPDATE is a connected broker being re-described. A broker that stops
    // answering without closing its sockets (a hung process) stays UP until
    // `socket.timeout.ms` (60 s); fetches to a leader come back at least every
    // `fetch.wait.max.ms` (100 ms), so a connection that received nothing for longer than
    // RX_IDLE_MAX is taken as out of reach. Logical brokers (the group coordinator's own
    // connection) carry a real broker's id but fetch nothing: they are left out.
    let brokers: BTreeMap<i64, (bool, i64)> = stats
        .get("brokers")
        .and_then(|b| b.as_object())
        .into_iter()
        .flat_map(|brokers| brokers.values())
        .filter(|broker| {
            !matches!(
                broker.get("source").and_then(serde_json::Value::as_str),
                Some("logical" | "internal")
            )
        })
        .filter_map(|broker| {
            let id = broker.get("nodeid").and_then(serde_json::Value::as_i64)?;
            let up = matches!(
                broker.get("state").and_then(serde_json::Value::as_str),
                Some("UP" | "UPDATE")
            );
            let answering = broker
                .get("rxidle")
                .and_then(serde_json::Value::as_i64)
                .is_none_or(|micros| micros < 0 || micros <= RX_IDLE_MAX.as_micros() as i64);
            let connects = broker
                .get("connects")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            Some((id, (up && answering, connects)))
        })
        .collect();
    for (name, topic) in topics {
        let topic_id = Topic::new(name);
        let Some(partitions) = topic.get("partitions").and_then(|p| p.as_object()) else {
            continue;
        };
        for partition in partitions.values() {
            let field = |key: &str| partition.get(key).and_then(serde_json::Value::as_i64);
            let desired = partition
                .get("desired")
                .and_then(serde_json::Value::as_bool);
            let fetching = partition
                .get("fetch_state")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|state| state == "active");
            // Which broker the client fetches from is not asked: it may be a follower
            // (rack-aware fetching), and while the client moves the partition to a new leader
            // the leader's change is a break already, whose end only the leader's answer
            // signals.
            let (id, leader) = (field("partition"), field("leader"));
            if let (Some(id), Some(true), Some(leader)) = (id, desired, leader) {
                if id >= 0 {
                    let id = PartitionId::new(topic_id, id as i32);
                    board.observe(id, leader as i32);
                    let link = match brokers.get(&leader) {
                        Some(&(true, connects)) if leader >= 0 && fetching => Some(Link {
                            leader: leader as i32,
                            leader_epoch: field("leader_epoch").unwrap_or(-1),
                            connects,
                        }),
                        _ => None,
                    };
                    board.observe_link(id, link);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition `index` of the test's topic.
    fn p(index: i32) -> PartitionId {
        PartitionId::of("t", index)
    }

    /// The shape of librdkafka's statistics (STATISTICS.md), trimmed to the fields read.
    fn stats(broker_states: &[(i64, &str)], partitions: &[(i64, bool, i64, &str)]) -> Vec<u8> {
        stats_rx(
            &broker_states
                .iter()
                .map(|(id, state)| (*id, *state, 5_000))
                .collect::<Vec<_>>(),
            partitions,
        )
    }

    /// [`stats`] with each broker's microseconds since its last receive.
    fn stats_rx(
        broker_states: &[(i64, &str, i64)],
        partitions: &[(i64, bool, i64, &str)],
    ) -> Vec<u8> {
        let brokers: serde_json::Map<String, serde_json::Value> = broker_states
            .iter()
            .map(|(id, state, rxidle)| {
                (
                    format!("127.0.0.1:900{id}/{id}"),
                    serde_json::json!({ "nodeid": id, "state": state, "rxidle": rxidle }),
                )
            })
            .chain(std::iter::once((
                ":0/internal".to_owned(),
                serde_json::json!({ "nodeid": -1, "state": "UP" }),
            )))
            .collect();
        let parts: serde_json::Map<String, serde_json::Value> = partitions
            .iter()
            .map(|(id, desired, leader, fetch_state)| {
                (
                    id.to_string(),
                    serde_json::json!({
                        "partition": id,
                        "desired": desired,
                        "leader": leader,
                        "fetch_state": fetch_state,
                    }),
                )
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "brokers": brokers,
            "topics": { "t": { "partitions": parts } },
        }))
        .expect("plain JSON")
    }

    #[test]
    fn statistics_give_leaders_and_whether_they_are_connected() {
        let board = LeaderBoard::default();
        observe_leaders(
            &board,
            &stats(
                &[(1, "UP"), (2, "CONNECT"), (3, "UPDATE")],
                // Partition 3 is not consumed by this client; partition 4 has no leader;
                // partition 5's leader is up but its offset is still being validated.
                &[
                    (0, true, 1, "active"),
                    (1, true, 2, "active"),
                    (2, true, 3, "active"),
                    (3, false, 2, "none"),
                    (4, true, -1, "active"),
                    (5, true, 1, "validate-epoch-wait"),
                ],
            ),
        );
        assert_eq!(
            board.leaders(),
            std::collections::BTreeMap::from([(p(0), 1), (p(1), 2), (p(2), 3), (p(5), 1)])
        );
        let reachable: Vec<bool> = (0..6).map(|i| board.link_state(p(i)).0).collect();
        assert_eq!(reachable, vec![true, false, true, true, false, false]);
        observe_leaders(
            &board,
            &stats(
                &[(2, "UP"), (1, "UP")],
                &[
                    (1, true, 2, "active"),
                    (4, true, 2, "active"),
                    (5, true, 1, "active"),
                ],
            ),
        );
        assert!(board.link_state(p(1)).0 && board.link_state(p(4)).0 && board.link_state(p(5)).0);
        observe_leaders(&board, &stats(&[(1, "DOWN")], &[(0, true, 1, "active")]));
        assert!(!board.link_state(p(0)).0);
    }

    #[test]
    fn a_leader_that_stopped_answering_is_out_of_reach_although_its_connection_is_up() {
        let board = LeaderBoard::default();
        let report = |rxidle: i64| {
            stats_rx(
                &[(1, "UP", rxidle), (2, "UP", 40_000)],
                &[(0, true, 1, "active"), (1, true, 2, "active")],
            )
        };
        observe_leaders(&board, &report(150_000));
        assert!(board.link_state(p(0)).0 && board.link_state(p(1)).0);
        // Broker 1 hangs (SIGSTOP): its socket stays open, nothing comes back for 3 s.
        observe_leaders(&board, &report(3_000_000));
        assert!(!board.link_state(p(0)).0, "hung leader");
        assert!(board.link_state(p(1)).0);
        observe_leaders(&board, &report(20_000));
        assert!(board.link_state(p(0)).0, "answering again");
        // No receive yet on a new connection is not a hang.
        observe_leaders(&board, &report(-1));
        assert!(board.link_state(p(0)).0);
    }

    #[test]
    fn statistics_show_breaks_in_the_link_to_a_leader() {
        let board = LeaderBoard::default();
        // Broker 1's connection attempts, partition 0's leader, epoch and fetching broker;
        // the group coordinator's logical connection to broker 2 is down throughout.
        let report = |connects: i64, leader: i64, epoch: i64, broker: i64| {
            let stats = serde_json::json!({
                "brokers": {
                    "127.0.0.1:9001/1": { "nodeid": 1, "state": "UP", "connects": connects, "source": "learned" },
                    "127.0.0.1:9002/2": { "nodeid": 2, "state": "UP", "connects": 1, "source": "learned" },
                    "GroupCoordinator": { "nodeid": 2, "state": "DOWN", "connects": 9, "source": "logical" },
                },
                "topics": { "t": { "partitions": { "0": {
                    "partition": 0, "desired": true, "leader": leader, "leader_epoch": epoch,
                    "broker": broker, "fetch_state": "active",
                } } } },
            });
            observe_leaders(&board, &serde_json::to_vec(&stats).expect("plain JSON"));
            board.link_state(p(0))
        };
        assert_eq!(report(1, 1, 7, 1), (true, 0));
        assert_eq!(report(1, 1, 7, 1), (true, 0), "nothing changed");
        assert_eq!(
            report(2, 1, 7, 1),
            (true, 1),
            "reconnected between two reports"
        );
        assert_eq!(report(2, 1, 8, 1), (true, 2), "elected again");
        // Moving to broker 2 (its metadata names the new leader before the fetch moves, or a
        // follower serves the fetches): one break, the leader's.
        assert_eq!(report(2, 2, 9, 1), (true, 3), "a new leader");
        assert_eq!(report(2, 2, 9, 2), (true, 3), "fetched from the new leader");
        assert_eq!(
            report(2, 2, 9, 2),
            (true, 3),
            "the coordinator's connection is not the leader's"
        );
    }

    #[test]
    fn a_members_join_state_is_taken_from_its_statistics() {
        let board = LeaderBoard::default();
        observe_leaders(&board, br#"{"topics":{}}"#);
        assert_eq!(board.join_state(), None);
        observe_leaders(
            &board,
            br#"{"cgrp":{"state":"up","join_state":"wait-sync"},"topics":{}}"#,
        );
        assert_eq!(board.join_state().as_deref(), Some("wait-sync"));
        observe_leaders(&board, br#"{"cgrp":{"state":"up","join_state":"steady"}}"#);
        assert_eq!(board.join_state().as_deref(), Some("steady"));
    }
}
