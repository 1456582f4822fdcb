//! Broker faults on the Apache Kafka test cluster (`tests/kafka/cluster start`), judged by the
//! chaos oracle (`lab::chaos`, the `kafka-actors-lab` crate): a broker leading the watched partition SIGKILLed
//! mid-stream (Kafka elects new leaders from the in-sync replicas) and restarted, a leader
//! moved by reassignment and preferred-leader election, and the whole cluster killed and
//! started again. Both models; each must lose nothing, write every window exactly, never
//! commit ahead of durable output, commit to the end, and report its recovery time. The tests
//! take turns (they stop brokers everyone shares) and leave every node running.

mod common;
#[path = "../lab/tests/common/mod.rs"]
mod lab_common;

use common::real::RealKafka;
use kafka_actors::settings::Model;
use kafka_actors::Settings;
use lab::chaos::{run_scenario, scenarios, ChaosOptions, Scenario, Target};

/// Held by the test whose faults hit the shared cluster.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn check(scenario: &dyn Scenario, model: Model) {
    let name = format!("{}_{}", scenario.name(), model.as_str());
    let Some(kafka) = RealKafka::get(&name) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let options = ChaosOptions {
        frames: 30_000,
        out: dir.path().to_owned(),
        executable: Some(env!("CARGO_BIN_EXE_kafka-actors").into()),
        target: Target::Brokers {
            brokers: kafka.bootstrap.clone(),
            control: Some(kafka.control_command()),
        },
    };
    let result = run_scenario(&Settings::default(), scenario, model, &options).await;
    // Whatever happened, every node runs again for the next test.
    kafka.control(&["restart", "all"]);
    let result = result.unwrap();
    lab_common::assert_scenario_passed(&result, dir, 30_000);
    assert!(
        result.recovery_ms.is_some(),
        "{name}: recovery measured: {result:?}"
    );
}

macro_rules! scenario {
    ($name:ident, $scenario:ident, $model:ident) => {
        #[actix::test]
        async fn $name() {
            check(&scenarios::$scenario, Model::$model).await;
        }
    };
}

scenario!(leader_broker_killed_partition_model, BrokerDown, Partition);
scenario!(leader_broker_hangs_partition_model, LeaderHangs, Partition);
scenario!(leader_broker_hangs_group_model, LeaderHangs, Group);
scenario!(memory_budget_partition_model, MemoryBudget, Partition);
scenario!(memory_budget_group_model, MemoryBudget, Group);
scenario!(leader_broker_killed_group_model, BrokerDown, Group);
scenario!(
    leader_moved_by_reassignment_partition_model,
    LeaderMove,
    Partition
);
scenario!(leader_moved_by_reassignment_group_model, LeaderMove, Group);
scenario!(
    whole_cluster_restarted_partition_model,
    AllBrokersDown,
    Partition
);
scenario!(whole_cluster_restarted_group_model, AllBrokersDown, Group);

/// The node states `tests/kafka/cluster status` reports, by node.
fn states(kafka: &RealKafka) -> Vec<String> {
    kafka
        .control(&["status"])
        .lines()
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_owned())
        .collect()
}

#[actix::test]
async fn the_cluster_pauses_resumes_kills_and_restarts_a_single_node() {
    let Some(kafka) = RealKafka::get("the_cluster_pauses_resumes_kills_and_restarts_a_single_node")
    else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    assert_eq!(states(&kafka), ["running", "running", "running"]);
    kafka.control(&["pause", "3"]);
    assert_eq!(states(&kafka), ["running", "running", "paused"]);
    kafka.control(&["resume", "3"]);
    assert_eq!(states(&kafka), ["running", "running", "running"]);
    kafka.kill(2);
    assert_eq!(states(&kafka), ["running", "stopped", "running"]);
    kafka.restart(2);
    assert_eq!(states(&kafka), ["running", "running", "running"]);
    // A topic created now is served by all three again.
    let topic = kafka.topic("after-restart", 3);
    for partition in 0..3 {
        assert!((1..=3).contains(&kafka.leader(&topic, partition)));
    }
}
