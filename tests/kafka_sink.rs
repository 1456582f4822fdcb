//! Results to Kafka (`sink.kind = "kafka"`), exactly once (`sink.exactly_once`), and dead
//! letters, against Apache Kafka 4.1 (`tests/kafka/cluster start`). The output topics are read
//! back as a `read_committed` reader sees them and judged against the Java producer's truth:
//! every (window, partition) share exact, none lost, and in exactly-once mode none twice, also
//! across SIGKILLs; every invalid input record dead-lettered (once, exactly once), unchanged,
//! with its source and reason in headers.

mod common;

use std::collections::BTreeMap;

use actors::config::SinkKind;
use actors::kafka::{headers, StoredRecord};
use actors::line::WindowLine;
use actors::topic::{from_topics, PartitionId};
use common::real::{produce_live, wait_for_data, JavaTruth, Member, RealKafka};
use common::*;
use kafka_actors::{Model, Settings};

/// The settings of a run that writes to `out_topic` (and dead letters to `dlq`).
fn kafka_sink_settings(
    kafka: &RealKafka,
    topic: &str,
    out_topic: &str,
    dlq: Option<&str>,
    exactly_once: bool,
    model: Model,
) -> Settings {
    let scratch = std::env::temp_dir().join("unused.jsonl");
    let mut s = settings(&kafka.bootstrap, topic, &scratch);
    s.model = model;
    s.kafka.group = unique("sink-group");
    s.sink.kind = SinkKind::Kafka;
    s.sink.topic = out_topic.to_owned();
    s.sink.exactly_once = exactly_once;
    if let Some(dlq) = dlq {
        s.sink.dead_letter.topic = dlq.to_owned();
        s.sink.create_topic = true;
        s.sink.topic_partitions = 2;
    }
    s
}

/// How long a read of the output waits for the transactions committed before it to become
/// visible (their markers reach the output partitions after `commit_transaction` returns).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(20);

/// The window lines of `topic`, as a `read_committed` reader sees them once what was
/// committed is visible; checks each record's key.
fn windows_in(kafka: &RealKafka, topic: &str) -> Vec<WindowLine> {
    actors::kafka::read_topic_settled(&kafka.config(topic, ""), topic, SETTLE)
        .expect("read the output topic")
        .into_iter()
        .map(|record| {
            let line: WindowLine =
                serde_json::from_slice(record.payload.as_deref().expect("a value"))
                    .expect("a window line");
            assert_eq!(
                record.key.as_deref(),
                Some(actors::line::window_key(&line).as_bytes()),
                "keyed by window start and partitions"
            );
            line
        })
        .collect()
}

/// Waits (up to a minute) until `topic` holds `lines` records visible to a `read_committed`
/// reader (window lines: nothing else is written there), naming `member`'s log if it does not.
fn wait_for_windows(kafka: &RealKafka, topic: &str, lines: usize, member: &Member) {
    let config = kafka.config(topic, "");
    common::real::wait_on(member, &format!("wrote no {lines} window lines"), || {
        actors::kafka::read_topic(&config, topic).is_ok_and(|records| records.len() >= lines)
    });
}

/// Asserts that `lines` hold every share of `truth` exactly, `times` times each (1: exactly
/// once), and every line covers every one of the `partitions` partitions of `topic`.
fn assert_shares(lines: Vec<WindowLine>, truth: &JavaTruth, kafka: &RealKafka, topic: &str) {
    let all = ids(&kafka.config(topic, ""), truth_partitions(truth));
    for line in &lines {
        assert!(!from_topics(&line.partitions).is_empty(), "{line:?}");
        assert!(
            from_topics(&line.partitions)
                .iter()
                .all(|p| all.contains(p)),
            "{line:?}"
        );
    }
    let seen = exact_shares(lines, truth);
    let twice = assert_no_share_lost(&seen, truth);
    assert!(
        twice.values().all(|n| *n == 0),
        "shares written twice: {twice:?}"
    );
}

fn truth_partitions(truth: &JavaTruth) -> i32 {
    truth
        .shares
        .keys()
        .map(|(_, p)| p.index + 1)
        .max()
        .unwrap_or(0)
}

/// Asserts that `letters` are the invalid records of `topic`, each once, unchanged (value, key
/// and headers), with its source and reason in headers added, and that their reasons add up to the producer's count.
fn assert_dead_letters(
    kafka: &RealKafka,
    topic: &str,
    letters: &[StoredRecord],
    truth: &JavaTruth,
) {
    let config = kafka.config(topic, "");
    let input: BTreeMap<(PartitionId, i64), StoredRecord> =
        actors::kafka::read_topic(&config, topic)
            .expect("read the input back")
            .into_iter()
            .map(|record| ((record.partition, record.offset), record))
            .collect();
    let ours = [
        headers::SOURCE_TOPIC,
        headers::SOURCE_PARTITION,
        headers::SOURCE_OFFSET,
        headers::REASON,
    ];
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for letter in letters {
        assert_eq!(letter.header(headers::SOURCE_TOPIC).as_deref(), Some(topic));
        let partition: i32 = letter
            .header(headers::SOURCE_PARTITION)
            .and_then(|p| p.parse().ok())
            .expect("source partition");
        let offset: i64 = letter
            .header(headers::SOURCE_OFFSET)
            .and_then(|o| o.parse().ok())
            .expect("source offset");
        let source = (PartitionId::of(topic, partition), offset);
        assert!(seen.insert(source), "{source:?} dead-lettered twice");
        let record = &input[&source];
        assert_eq!(letter.payload, record.payload, "{source:?} unchanged");
        assert_eq!(letter.key, record.key, "{source:?}'s key carried on");
        let (theirs, added): (Vec<_>, Vec<_>) = letter
            .headers
            .iter()
            .cloned()
            .partition(|(name, _)| !ours.contains(&name.as_str()));
        assert_eq!(theirs, record.headers, "{source:?}'s headers carried on");
        assert_eq!(added.len(), ours.len(), "{source:?}: {added:?}");
        *by_reason
            .entry(letter.header(headers::REASON).expect("reason"))
            .or_default() += 1;
    }
    assert_eq!(by_reason, truth.invalid, "dead letters by reason");
}

async fn exactly_once_in_process(model: Model) {
    let test = format!("exactly_once_output_is_the_truth_once_{}", model.as_str());
    let Some(kafka) = RealKafka::get(&test) else {
        return;
    };
    let topic = kafka.topic("eos-in", 4);
    let truth = kafka.produce(
        &topic,
        &[
            "--frames",
            "30000",
            "--event-rate",
            "500",
            "--jitter-ms",
            "2000",
            "--bad-every",
            "41",
            "--window",
            "10",
        ],
    );
    let out = kafka.topic("eos-out", 3);
    // Created by the service (sink.create_topic).
    let dlq = unique("eos-dlq");
    let mut s = kafka_sink_settings(&kafka, &topic, &out, Some(&dlq), true, model);
    s.run.until_end = true;
    let run = kafka_actors::run(s.clone(), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{model:?}: {}", kafka_actors::error_chain(&e)));
    assert!(run.completed);
    assert_shares(windows_in(&kafka, &out), &truth, &kafka, &topic);
    let letters = actors::kafka::read_topic_settled(&kafka.config(&dlq, ""), &dlq, SETTLE).unwrap();
    assert_dead_letters(&kafka, &topic, &letters, &truth);
    let invalid: u64 = truth.invalid.values().sum();
    assert_eq!(run.summary.metrics.dead_letters, invalid);
    let ends = actors::kafka::end_offset_probe(&s.kafka).unwrap()(&ids(&s.kafka, 4));
    assert_eq!(
        committed(&s.kafka, &ids(&s.kafka, 4)),
        ends,
        "the transactions committed every offset"
    );
}

#[actix::test]
async fn exactly_once_output_is_the_truth_once_partition_model() {
    exactly_once_in_process(Model::Partition).await;
}

#[actix::test]
async fn exactly_once_output_is_the_truth_once_group_model() {
    exactly_once_in_process(Model::Group).await;
}

/// A group member's flush dropped because the member lost some of its partitions while the
/// transaction was open (here injected at the output port on the first flush that holds
/// windows: the member in fact keeps them all) held the shares of the partitions it keeps as
/// well: those are read again from their last commit and written once. Before, the dropped
/// windows' kept shares were lost (or, where the output said which partitions were lost, the
/// member stopped). The group has no commit yet, so `auto.offset.reset` placed the partitions
/// and nothing durable was written for them: they are read again from where their reading
/// began (a reader restarted without a position would go on from the client's fetch position,
/// and the windows be written short of the frames read before the drop).
#[actix::test]
async fn a_flush_dropped_with_part_of_its_partitions_has_the_rest_read_again() {
    let test = "a_flush_dropped_with_part_of_its_partitions_has_the_rest_read_again";
    let Some(kafka) = RealKafka::get(test) else {
        return;
    };
    let topic = kafka.topic("eos-dropped-in", 4);
    let out = kafka.topic("eos-dropped-out", 3);
    let mut s = kafka_sink_settings(&kafka, &topic, &out, None, true, Model::Group);
    // About five windows closing every second while the producer runs.
    let producer = produce_live(
        &kafka,
        &topic,
        &["--frames", "20000", "--rate", "4000", "--event-rate", "200"],
    );
    wait_for_data(&kafka, &topic, 4);
    let plan = actors::faults::FaultPlan::default();
    // The first flush that holds windows (how many flushes the windows close in depends on
    // how fast the service reads: on a loaded machine, a backlog read at once closes many
    // windows in one flush).
    plan.drop_flush(0);
    let supervisor: std::cell::RefCell<Option<actix::Addr<actors::supervisor::RootSupervisor>>> =
        std::cell::RefCell::new(None);
    let run = kafka_actors::run_with_faults(
        s.clone(),
        async {
            // Until the producer is done and the fault has landed (a loaded machine reads
            // slowly), for at most a minute.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                let addr = supervisor.borrow().clone();
                let landed = match addr {
                    Some(addr) => addr.send(actors::metrics::GetMetrics).await.is_ok_and(
                        |m: actors::metrics::MetricsSnapshot| {
                            m.restart_log
                                .iter()
                                .any(|r| r.cause == actors::failure::PartitionFailure::FlushDropped)
                        },
                    ),
                    None => false,
                };
                if landed && producer.is_finished() {
                    break;
                }
                actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            actix_rt::time::sleep(std::time::Duration::from_secs(2)).await;
        },
        Some(plan),
        |addr| *supervisor.borrow_mut() = Some(addr),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", kafka_actors::error_chain(&e)));
    let truth = producer.join().expect("producer");
    let read_again: Vec<_> = run
        .summary
        .metrics
        .restart_log
        .iter()
        .filter(|r| r.cause == actors::failure::PartitionFailure::FlushDropped)
        .map(|r| r.partition)
        .collect();
    assert!(
        !read_again.is_empty(),
        "the dropped flush's partitions were read again: {:?}",
        run.summary.metrics.restart_log
    );
    // What was still open at the stop, read to the end.
    s.run.until_end = true;
    let run = kafka_actors::run(s.clone(), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{}", kafka_actors::error_chain(&e)));
    assert!(run.completed);
    assert_shares(windows_in(&kafka, &out), &truth, &kafka, &topic);
    let ends = actors::kafka::end_offset_probe(&s.kafka).unwrap()(&ids(&s.kafka, 4));
    assert_eq!(committed(&s.kafka, &ids(&s.kafka, 4)), ends);
}

#[actix::test]
async fn at_least_once_kafka_output_and_a_missing_output_topic() {
    let Some(kafka) = RealKafka::get("at_least_once_kafka_output_and_a_missing_output_topic")
    else {
        return;
    };
    let topic = kafka.topic("alo-in", 4);
    let truth = kafka.produce(
        &topic,
        &[
            "--frames",
            "20000",
            "--event-rate",
            "500",
            "--bad-every",
            "29",
            "--window",
            "10",
        ],
    );
    let out = kafka.topic("alo-out", 2);
    let dlq = kafka.topic("alo-dlq", 1);
    let mut s = kafka_sink_settings(&kafka, &topic, &out, Some(&dlq), false, Model::Partition);
    s.sink.create_topic = false;
    s.run.until_end = true;
    let run = kafka_actors::run(s.clone(), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{}", kafka_actors::error_chain(&e)));
    assert!(run.completed);
    assert_shares(windows_in(&kafka, &out), &truth, &kafka, &topic);
    let letters = actors::kafka::read_topic_settled(&kafka.config(&dlq, ""), &dlq, SETTLE).unwrap();
    assert_dead_letters(&kafka, &topic, &letters, &truth);

    // An output topic that does not exist stops the start, naming it; nothing is read.
    let missing = unique("no-such-output");
    let mut s = kafka_sink_settings(&kafka, &topic, &missing, None, false, Model::Partition);
    s.run.until_end = true;
    let error = kafka_actors::run(s.clone(), std::future::pending())
        .await
        .expect_err("missing output topic");
    let text = kafka_actors::error_chain(&error);
    assert!(
        text.contains(&missing) && text.contains("sink.topic"),
        "{text}"
    );
    assert!(
        committed(&s.kafka, &ids(&s.kafka, 4)).is_empty(),
        "nothing committed"
    );
}

/// SIGKILLs exactly-once services of `model` at several points while frames arrive, starting
/// them again each time; a last run reads to the end. A `read_committed` reader of the output
/// sees every share once.
fn killed_exactly_once(model: Model) {
    let test = format!("killed_exactly_once_{}", model.as_str());
    let Some(kafka) = RealKafka::get(&test) else {
        return;
    };
    let topic = kafka.topic("eos-kill", 4);
    let out = kafka.topic("eos-kill-out", 3);
    let dlq = kafka.topic("eos-kill-dlq", 1);
    let group = unique("eos-kill-group");
    let dir = common::real::member_dir(&test);
    let mut env = vec![
        ("KAFKA_ACTORS__GROUP__SESSION_TIMEOUT_MS", "6000"),
        ("KAFKA_ACTORS__GROUP__REVOKE_TIMEOUT_MS", "3000"),
        ("KAFKA_ACTORS__SINK__KIND", "kafka"),
        ("KAFKA_ACTORS__SINK__TOPIC", out.as_str()),
        ("KAFKA_ACTORS__SINK__EXACTLY_ONCE", "true"),
        ("KAFKA_ACTORS__SINK__DEAD_LETTER__TOPIC", dlq.as_str()),
    ];
    if model == Model::Group {
        // Without an instance id each start has its own transactional id: the transaction a
        // killed member left open ends when the broker times it out.
        env.push(("KAFKA_ACTORS__SINK__TRANSACTION_TIMEOUT_MS", "8000"));
        env.push(("KAFKA_ACTORS__SINK__DELIVERY_TIMEOUT_MS", "8000"));
    }
    let model_args = ["--model", model.as_str()];
    let producer = produce_live(
        &kafka,
        &topic,
        &[
            "--frames",
            "45000",
            "--rate",
            "3000",
            "--event-rate",
            "300",
            "--bad-every",
            "53",
        ],
    );
    wait_for_data(&kafka, &topic, 4);
    // Kill after a first window is out, then at different moments of the next runs.
    let mut runs = 0;
    for wait_ms in [0u64, 1_300, 2_700] {
        runs += 1;
        let name = format!("run-{runs}");
        let member = Member::spawn(&kafka, &name, dir.path(), &topic, &group, &env, &model_args);
        if wait_ms == 0 {
            wait_for_windows(&kafka, &out, 1, &member);
        } else {
            std::thread::sleep(std::time::Duration::from_millis(wait_ms + 4_000));
        }
        let mut member = member;
        member.kill();
    }
    let truth = producer.join().expect("producer");
    let mut last_args = model_args.to_vec();
    last_args.push("--until-end");
    let mut last = Member::spawn(&kafka, "last", dir.path(), &topic, &group, &env, &last_args);
    let status = last.wait();
    assert!(status.success(), "{}", last.log_text());
    assert_shares(windows_in(&kafka, &out), &truth, &kafka, &topic);
    let letters = actors::kafka::read_topic_settled(&kafka.config(&dlq, ""), &dlq, SETTLE).unwrap();
    assert_dead_letters(&kafka, &topic, &letters, &truth);
}

#[test]
fn killed_exactly_once_partition_model_writes_every_window_once() {
    killed_exactly_once(Model::Partition);
}

#[test]
fn killed_exactly_once_group_model_writes_every_window_once() {
    killed_exactly_once(Model::Group);
}

/// A second partition-model instance started on the same partitions takes the same
/// transactional id: the first is fenced and stops with an error saying so, and the output
/// still holds every share once. One-second windows make the first commit a transaction at
/// nearly every flush (100 ms), so one lands while the second starts: the second must fence
/// the first before it reads the committed offsets, or it starts before that transaction's
/// offsets and writes its windows again.
#[test]
fn a_second_instance_on_the_same_partitions_fences_the_first() {
    let test = "a_second_instance_on_the_same_partitions_fences_the_first";
    let Some(kafka) = RealKafka::get(test) else {
        return;
    };
    let topic = kafka.topic("eos-fence", 2);
    let out = kafka.topic("eos-fence-out", 1);
    let group = unique("eos-fence-group");
    let dir = common::real::member_dir(test);
    let env = [
        ("KAFKA_ACTORS__SINK__KIND", "kafka"),
        ("KAFKA_ACTORS__SINK__TOPIC", out.as_str()),
        ("KAFKA_ACTORS__SINK__EXACTLY_ONCE", "true"),
        ("KAFKA_ACTORS__WINDOW__LENGTH_SECS", "1"),
    ];
    let args = ["--model", "partition"];
    let producer = produce_live(
        &kafka,
        &topic,
        &[
            "--frames",
            "24000",
            "--rate",
            "3000",
            "--event-rate",
            "300",
            "--window",
            "1",
        ],
    );
    wait_for_data(&kafka, &topic, 2);
    let mut first = Member::spawn(&kafka, "first", dir.path(), &topic, &group, &env, &args);
    wait_for_windows(&kafka, &out, 1, &first);
    let mut second = Member::spawn(&kafka, "second", dir.path(), &topic, &group, &env, &args);
    let status = first.wait();
    assert!(!status.success(), "the first instance stops");
    let log = first.log_text();
    assert!(log.contains("fenced"), "{log}");
    let truth = producer.join().expect("producer");
    std::thread::sleep(std::time::Duration::from_secs(3));
    second.stop();
    let mut last = Member::spawn(
        &kafka,
        "last",
        dir.path(),
        &topic,
        &group,
        &env,
        &["--model", "partition", "--until-end"],
    );
    assert!(last.wait().success(), "{}", last.log_text());
    assert_shares(windows_in(&kafka, &out), &truth, &kafka, &topic);
}

/// A partition whose producer writes nothing but invalid records stops the service with an
/// error naming it once `sink.dead_letter.max_consecutive` is reached, instead of filling the
/// dead-letter topic; nothing past the flood is committed.
#[actix::test]
async fn a_flood_of_invalid_frames_stops_the_service_naming_the_partition() {
    let Some(kafka) =
        RealKafka::get("a_flood_of_invalid_frames_stops_the_service_naming_the_partition")
    else {
        return;
    };
    let topic = kafka.topic("flood", 1);
    // Every record invalid.
    kafka.produce(&topic, &["--frames", "3000", "--bad-every", "1"]);
    let dlq = unique("flood-dlq");
    let out = kafka.topic("flood-out", 1);
    let mut s = kafka_sink_settings(&kafka, &topic, &out, Some(&dlq), false, Model::Partition);
    s.sink.dead_letter.max_consecutive = 500;
    s.run.until_end = true;
    let error = kafka_actors::run(s.clone(), std::future::pending())
        .await
        .expect_err("the flood stops the service");
    let text = kafka_actors::error_chain(&error);
    assert!(
        text.contains(&format!("{topic}-0"))
            && text.contains("500 invalid frames in a row")
            && text.contains("sink.dead_letter.max_consecutive"),
        "{text}"
    );
    let letters = actors::kafka::read_topic_settled(&kafka.config(&dlq, ""), &dlq, SETTLE).unwrap();
    assert!(letters.len() < 500, "{} dead letters", letters.len());
    let committed = committed(&s.kafka, &ids(&s.kafka, 1));
    let committed = committed.values().copied().max().unwrap_or(0);
    assert!(
        committed as usize <= letters.len(),
        "nothing committed past what was dead-lettered: {committed} > {}",
        letters.len()
    );
}

/// A group member hung (SIGSTOP) past its session while a flush may be under way: the other
/// member takes its partitions over; when the hung one wakes, the coordinator refuses its
/// offsets of the old generation, so whatever it was writing is aborted. A `read_committed`
/// reader of the output sees every share once.
#[test]
fn a_zombie_group_member_writes_nothing_twice() {
    let test = "a_zombie_group_member_writes_nothing_twice";
    let Some(kafka) = RealKafka::get(test) else {
        return;
    };
    let topic = kafka.topic("eos-zombie", 4);
    let out = kafka.topic("eos-zombie-out", 3);
    let group = unique("eos-zombie-group");
    let dir = common::real::member_dir(test);
    let env = [
        ("KAFKA_ACTORS__GROUP__SESSION_TIMEOUT_MS", "6000"),
        ("KAFKA_ACTORS__GROUP__REVOKE_TIMEOUT_MS", "3000"),
        ("KAFKA_ACTORS__SINK__KIND", "kafka"),
        ("KAFKA_ACTORS__SINK__TOPIC", out.as_str()),
        ("KAFKA_ACTORS__SINK__EXACTLY_ONCE", "true"),
        ("KAFKA_ACTORS__SINK__TRANSACTION_TIMEOUT_MS", "8000"),
        ("KAFKA_ACTORS__SINK__DELIVERY_TIMEOUT_MS", "8000"),
    ];
    let args = ["--model", "group"];
    let producer = produce_live(
        &kafka,
        &topic,
        &["--frames", "60000", "--rate", "3000", "--event-rate", "300"],
    );
    wait_for_data(&kafka, &topic, 4);
    let mut a = Member::spawn(&kafka, "a", dir.path(), &topic, &group, &env, &args);
    let mut b = Member::spawn(&kafka, "b", dir.path(), &topic, &group, &env, &args);
    wait_for_windows(&kafka, &out, 2, &a);
    // It owns partitions (it may join after `b` has written the first windows), and flushes.
    common::real::wait_until_owning(&a);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Hung past its 6 s session: the group moves on without it.
    a.signal("STOP");
    std::thread::sleep(std::time::Duration::from_secs(10));
    a.signal("CONT");
    let truth = producer.join().expect("producer");
    std::thread::sleep(std::time::Duration::from_secs(3));
    b.stop();
    // The woken member rejoined, or stopped on the refused offsets: either way it goes now.
    a.stop_if_running();
    let a_log = a.log_text();
    assert!(
        a_log.contains(r#""lost":true"#) || a_log.contains("refused this member's offsets"),
        "the hung member found its membership gone: {a_log}"
    );
    let mut last = Member::spawn(
        &kafka,
        "last",
        dir.path(),
        &topic,
        &group,
        &env,
        &["--model", "group", "--until-end"],
    );
    assert!(last.wait().success(), "{}", last.log_text());
    assert_shares(windows_in(&kafka, &out), &truth, &kafka, &topic);
}

/// Three one-frame windows of `partition`'s first three frames, and the commit after them.
fn three_windows_of(
    partition: PartitionId,
) -> (
    Vec<actors::window::ClosedWindow>,
    actors::ports::CommitPosition,
) {
    let windows = (0..3)
        .map(|i| actors::window::ClosedWindow {
            start: 1_790_000_000 + 60 * i,
            end: 1_790_000_060 + 60 * i,
            unique_users: 1,
            frames: 1,
            partitions: vec![partition],
        })
        .collect();
    let position = actors::ports::CommitPosition {
        partition,
        offset: 3,
        metadata: String::new(),
    };
    (windows, position)
}

/// A transaction aborted after its records were sent ends at once, and none of them becomes
/// visible; a flush whose partitions were let go as lost since it was made sends nothing. Here a group member that has not joined yet (no generation to send offsets in)
/// writes a flush: its records go out, the offsets cannot, the transaction is aborted and,
/// the member owning none of the flush's partitions, the flush is dropped with them. (An
/// abort waits for every record's delivery report; unserved, it failed again and again until
/// the flush gave up, and the member stopped with "cannot abort the transaction".)
#[test]
fn an_aborted_transaction_with_its_records_sent_ends_at_once() {
    use actors::outlet::{TransactionFailure, TransactionalSink};
    let Some(kafka) = RealKafka::get("an_aborted_transaction_with_its_records_sent_ends_at_once")
    else {
        return;
    };
    let topic = kafka.topic("abort-in", 1);
    let out = kafka.topic("abort-out", 1);
    let s = kafka_sink_settings(&kafka, &topic, &out, None, true, Model::Group);
    let member = actors::kafka::GroupConsumer::subscribe(
        &s.kafka,
        &s.group,
        &s.partition,
        1,
        actors::intake::IntakeListener::new(
            std::time::Duration::from_secs(3),
            actors::intake::RevokeWait::UntilReleased,
        ),
        None,
        std::time::Duration::ZERO,
    )
    .expect("subscribe");
    let transactions = actors::kafka::Transactions::start(&s.kafka, &s.sink, &unique("abort-txn"))
        .expect("start transactions");
    let mut output = member.committer().exactly_once(transactions, &s.sink);
    let partition = ids(&s.kafka, 1)[0];
    let (windows, position) = three_windows_of(partition);
    let until = Some(std::time::Instant::now() + std::time::Duration::from_secs(10));
    // A flush whose partitions were let go as lost since it was made is not even begun.
    let result = output.write_and_commit(
        &windows,
        &[],
        std::slice::from_ref(&position),
        until,
        &|| false,
    );
    assert!(
        matches!(&result, Err(TransactionFailure::MembershipLost { reason }) if reason.contains("lost its assignment")),
        "{result:?}"
    );
    // Held still: its records go out, the offsets cannot, and the abort ends it.
    let result = output.write_and_commit(&windows, &[], &[position], until, &|| true);
    assert!(
        matches!(&result, Err(TransactionFailure::MembershipLost { reason }) if reason.contains("not joined")),
        "{result:?}"
    );
    assert!(
        windows_in(&kafka, &out).is_empty(),
        "aborted records are not visible"
    );
    assert_eq!(committed(&s.kafka, &[partition]).get(&partition), None);
}

/// A transaction that stays open past `sink.transaction_timeout_ms` is aborted by the
/// transaction coordinator, which bumps the producer's epoch: librdkafka 2.12 reports the next
/// step as a fence. The partition model's transactional id is shared by every instance on the
/// same partitions, so a fence there normally means a newer instance and stops this one; a
/// fence on a transaction open at least the timeout is the broker's doing instead
/// (`TransactionFailure::TimedOut`), and the flush is written again by a producer made again
/// with the same id: once, with its offsets. Here the transaction is held open (its records
/// sent, its offsets not yet) for the 2 s timeout plus the coordinator's 10 s abort interval
/// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`) and 3 s more.
#[test]
fn a_transaction_the_broker_aborted_for_its_age_is_written_again_once() {
    use actors::outlet::TransactionalSink;
    let name = "a_transaction_the_broker_aborted_for_its_age_is_written_again_once";
    let Some(kafka) = RealKafka::get(name) else {
        return;
    };
    let topic = kafka.topic("aged-in", 1);
    let out = kafka.topic("aged-out", 1);
    let mut s = kafka_sink_settings(&kafka, &topic, &out, None, true, Model::Partition);
    s.sink.transaction_timeout_ms = 2_000;
    s.sink.delivery_timeout_ms = 2_000;
    let partition = ids(&s.kafka, 1)[0];
    let consumer = actors::kafka::AssigningConsumer::create(&s.kafka, &s.partition, 1, None)
        .expect("consumer");
    let assigned = consumer
        .assign(
            vec![actors::ports::AssignedPartition {
                partition,
                start: actors::ports::StartOffset::Reset,
                metadata: String::new(),
                skipped: None,
            }],
            actors::intake::IntakeListener::new(
                std::time::Duration::from_secs(3),
                actors::intake::RevokeWait::UntilReleased,
            ),
        )
        .expect("assign");
    let transactions = actors::kafka::Transactions::start(&s.kafka, &s.sink, &unique("aged-txn"))
        .expect("start transactions");
    let mut output = assigned.committer.exactly_once(transactions, &s.sink);
    let (windows, position) = three_windows_of(partition);
    // Asked before the transaction begins and again once its records are sent: the second
    // time, it holds the transaction open.
    let asked = std::cell::Cell::new(0);
    let held_open = || {
        asked.set(asked.get() + 1);
        if asked.get() == 2 {
            std::thread::sleep(std::time::Duration::from_secs(15));
        }
        true
    };
    let until = Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let result = output.write_and_commit(
        &windows,
        &[],
        std::slice::from_ref(&position),
        until,
        &held_open,
    );
    assert_eq!(
        result.expect("written again after the broker aborted it"),
        vec![position.clone()]
    );
    assert!(asked.get() >= 3, "tried again: asked {} times", asked.get());
    let written = windows_in(&kafka, &out);
    assert_eq!(
        written.len(),
        windows.len(),
        "every window once: {written:?}"
    );
    assert_eq!(committed(&s.kafka, &[partition]).get(&partition), Some(&3));
}
