use super::*;

/// Partition `index` of the test's topic.
fn p(index: i32) -> PartitionId {
    PartitionId::of("t", index)
}

#[actix::test]
async fn aggregates_chunks_and_flushes_per_partition_and_in_total() {
    let metrics = MetricsActor::new(MetricsConfig { log_interval_ms: 0 }).start();
    let mut invalid = InvalidCounts::default();
    invalid.add(InvalidReason::NotJson);
    invalid.add(InvalidReason::TooLarge);
    for (partition, frames) in [(0, 98), (1, 50)] {
        metrics.do_send(ChunkProcessed {
            partition: p(partition),
            frames,
            invalid,
            process: Duration::from_micros(100),
            next_offset: Some(100),
            high_watermark: Some(130),
        });
    }
    metrics.do_send(FramesLate {
        partition: p(1),
        late: 3,
    });
    metrics.do_send(Flushed {
        duration: Duration::from_millis(2),
        frames: 152,
        unique_users: vec![7, 9],
        commit_attempted: true,
        dead_letters: 2,
        commit_error: None,
        commit_failure: None,
        open_bytes: 4_096,
        peak_open_bytes: 8_192,
    });
    metrics.do_send(Flushed {
        duration: Duration::from_millis(2),
        frames: 0,
        unique_users: vec![],
        commit_attempted: true,
        dead_letters: 0,
        commit_error: Some("the group moved on".into()),
        commit_failure: Some(crate::ports::CommitErrorKind::StaleGeneration),
        open_bytes: 4_096,
        peak_open_bytes: 8_192,
    });
    let s = metrics.send(GetMetrics).await.unwrap();
    assert_eq!(s.frames, 148);
    assert_eq!(s.invalid.get("not_json"), Some(&2));
    assert_eq!(s.invalid.get("too_large"), Some(&2));
    assert_eq!(s.late, 3);
    assert_eq!(s.dead_letters, 2);
    assert_eq!(s.partitions[&p(1)].late, 3);
    assert_eq!(s.partitions[&p(0)].lag, Some(30));
    assert_eq!(s.lag, 60);
    assert_eq!(s.process_frame_ns.count, 152);
    assert_eq!(s.partitions[&p(0)].process_frame_ns.count, 100);
    assert_eq!(s.partitions[&p(1)].process_frame_ns.count, 52);
    // 100 µs over 100 records of partition 0: 1 µs per frame.
    assert!(
        (995..=1_005).contains(&s.process_frame_ns.p50),
        "{:?}",
        s.process_frame_ns
    );
    assert_eq!((s.flushes, s.windows, s.commits), (2, 2, 1));
    assert_eq!(s.batch_unique_users.max, 9);
    assert_eq!(s.commit_failures, 1);
    assert_eq!(
        s.commit_failures_by_kind,
        [("stale_generation", 1)].into_iter().collect()
    );
    // The distributions behind the quantiles: 152 process_frame samples in buckets.
    let d = metrics.send(GetDistributions).await.unwrap();
    let process = &d.process_frame_ns;
    assert_eq!(process.count, 152);
    assert_eq!(process.buckets.iter().map(|b| b.1).sum::<u64>(), 152);
    assert_eq!(process.buckets.last().unwrap().0, f64::MAX);
}
