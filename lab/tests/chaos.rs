//! The fault scenarios of `chaos`, for both models, each judged by the oracle: no frame lost,
//! every window exact, no commit ahead of durable output, commits at the end, and what the
//! scenario itself must show (a restart, a watchdog recovery, a leader change, an
//! escalation). A handful run by default; the rest are ignored and run from `.ci/run`
//! (`cargo test -p kafka-actors-lab --test chaos -- --ignored`).

mod common;

use kafka_actors::settings::Model;
use kafka_actors::Settings;
use lab::chaos::{run_scenario, scenarios, ChaosOptions, ChaosOutput, Scenario, SCENARIOS};

async fn check(scenario: &dyn Scenario, model: Model) {
    check_output(scenario, model, ChaosOutput::File).await;
}

async fn check_output(scenario: &dyn Scenario, model: Model, output: ChaosOutput) {
    let dir = tempfile::tempdir().unwrap();
    let options = ChaosOptions {
        frames: 20_000,
        out: dir.path().to_owned(),
        // Its hidden `run` is the service (the sigkill scenario starts it).
        executable: Some(env!("CARGO_BIN_EXE_kafka-actors-lab").into()),
        target: Default::default(),
        output,
        data_secs: None,
    };
    let result = run_scenario(&Settings::default(), scenario, model, &options)
        .await
        .unwrap();
    common::assert_scenario_passed(&result, dir, 20_000);
}

/// Windows to an output topic and invalid frames to a dead-letter topic on the embedded
/// cluster, at least once: the oracle reads both back; every invalid record is dead-lettered.
#[actix::test]
async fn poison_frames_partition_to_kafka() {
    check_output(
        &scenarios::PoisonFrames,
        Model::Partition,
        ChaosOutput::Kafka,
    )
    .await;
}

#[actix::test]
#[ignore = "slow; run from .ci/run"]
async fn member_churn_group_to_kafka() {
    check_output(&scenarios::MemberChurn, Model::Group, ChaosOutput::Kafka).await;
}

/// Exactly once is refused on the embedded cluster, which cannot honour it.
#[actix::test]
async fn exactly_once_is_refused_on_the_embedded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let options = ChaosOptions {
        frames: 20_000,
        out: dir.path().to_owned(),
        executable: None,
        target: Default::default(),
        output: ChaosOutput::ExactlyOnce,
        data_secs: None,
    };
    let error = run_scenario(
        &Settings::default(),
        &scenarios::PoisonFrames,
        Model::Partition,
        &options,
    )
    .await
    .expect_err("refused");
    let text = kafka_actors::error_chain(&error);
    assert!(
        text.contains("sink.exactly_once") && text.contains("embedded"),
        "{text}"
    );
}

macro_rules! scenario {
    ($name:ident, $scenario:ident, $model:ident) => {
        #[actix::test]
        async fn $name() {
            check(&scenarios::$scenario, Model::$model).await;
        }
    };
    (ignore $name:ident, $scenario:ident, $model:ident) => {
        #[actix::test]
        #[ignore = "slow; run from .ci/run"]
        async fn $name() {
            check(&scenarios::$scenario, Model::$model).await;
        }
    };
}

scenario!(partition_panic_partition, PartitionPanic, Partition);
scenario!(partition_panic_group, PartitionPanic, Group);
scenario!(restart_budget_partition, RestartBudget, Partition);
scenario!(stall_group, Stall, Group);
scenario!(broker_down_partition, BrokerDown, Partition);
scenario!(ignore leader_hangs_partition, LeaderHangs, Partition);
scenario!(ignore leader_hangs_group, LeaderHangs, Group);
scenario!(ignore memory_budget_partition, MemoryBudget, Partition);
scenario!(ignore memory_budget_group, MemoryBudget, Group);
scenario!(poison_frames_partition, PoisonFrames, Partition);
scenario!(member_churn_group, MemberChurn, Group);
scenario!(sigkill_partition, Sigkill, Partition);
scenario!(output_refused_partition, OutputRefused, Partition);

scenario!(ignore restart_budget_group, RestartBudget, Group);
scenario!(ignore stall_partition, Stall, Partition);
scenario!(ignore leader_move_partition, LeaderMove, Partition);
scenario!(ignore leader_move_group, LeaderMove, Group);
scenario!(ignore leader_flap_partition, LeaderFlap, Partition);
scenario!(ignore leader_flap_group, LeaderFlap, Group);
scenario!(ignore broker_down_group, BrokerDown, Group);
scenario!(ignore all_brokers_down_partition, AllBrokersDown, Partition);
scenario!(ignore all_brokers_down_group, AllBrokersDown, Group);
scenario!(ignore fetch_errors_partition, FetchErrors, Partition);
scenario!(ignore fetch_errors_group, FetchErrors, Group);
scenario!(ignore commit_errors_partition, CommitErrors, Partition);
scenario!(ignore commit_errors_group, CommitErrors, Group);
scenario!(ignore commit_errors_fatal_partition, CommitErrorsFatal, Partition);
scenario!(ignore commit_errors_fatal_group, CommitErrorsFatal, Group);
scenario!(ignore latency_partition, Latency, Partition);
scenario!(ignore latency_group, Latency, Group);
scenario!(ignore poison_frames_group, PoisonFrames, Group);
scenario!(ignore slow_sink_partition, SlowSink, Partition);
scenario!(ignore slow_sink_group, SlowSink, Group);
scenario!(ignore sigkill_group, Sigkill, Group);
scenario!(ignore output_refused_group, OutputRefused, Group);

/// Every scenario has a test for every model it applies to: here on the embedded cluster, or,
/// for faults only a real cluster offers (the service's links), in `tests/kafka_faults.rs` on
/// the test cluster.
#[test]
fn every_scenario_is_tested_for_every_model() {
    // Without whitespace: rustfmt splits a long test's macro call over several lines.
    let squeeze = |source: &str| source.split_whitespace().collect::<String>();
    let embedded = squeeze(include_str!("chaos.rs"));
    let real = squeeze(include_str!("../../tests/kafka_faults.rs"));
    for scenario in SCENARIOS {
        let (source, file) = match scenario.runs_on(&Default::default()) {
            true => (&embedded, "lab/tests/chaos.rs"),
            false => (&real, "tests/kafka_faults.rs"),
        };
        for model in [Model::Partition, Model::Group] {
            if scenario.applies_to(model) {
                let variant = format!("{scenario:?},{model:?})");
                assert!(source.contains(&variant), "no test for {variant} in {file}");
            }
        }
    }
}
