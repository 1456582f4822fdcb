//! At-least-once output: an idempotent producer that delivers each flush's records and waits
//! until every in-sync replica has them ([`KafkaSink`] for windows; the dead letters use the
//! same deliverer).

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::config::{ensure_topic, producer_config, Acks};
use super::OutletError;
use crate::config::{KafkaConfig, SinkConfig};
use crate::kafka::error::AdapterError;
use crate::line::{window_key, window_line};
use crate::outlet::Sink;
use crate::window::ClosedWindow;

/// One record to produce.
pub(super) struct OutRecord<'a> {
    pub(super) topic: &'a str,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Option<Vec<u8>>,
    /// Dead letters: the record's own headers, then where it came from and why it is here.
    pub(super) headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The records of closed windows.
pub(super) fn window_records<'a>(
    topic: &'a str,
    windows: &[ClosedWindow],
    label: bool,
) -> Vec<OutRecord<'a>> {
    windows
        .iter()
        .map(|w| {
            let line = window_line(w, label);
            OutRecord {
                topic,
                key: Some(window_key(&line).into_bytes()),
                payload: Some(serde_json::to_vec(&line).unwrap_or_default()),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Queues `record` (number `index` of its batch), waiting for room in the local queue.
pub(super) fn send<C: ProducerContext<DeliveryOpaque = usize>>(
    producer: &BaseProducer<C>,
    record: &OutRecord<'_>,
    index: usize,
) -> Result<(), KafkaError> {
    let mut base: BaseRecord<'_, [u8], [u8], usize> =
        BaseRecord::with_opaque_to(record.topic, index);
    if let Some(key) = &record.key {
        base = base.key(key.as_slice());
    }
    if let Some(payload) = &record.payload {
        base = base.payload(payload.as_slice());
    }
    if !record.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        base = base.headers(headers);
    }
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                base = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// An idempotent producer that delivers batches of records, at least once.
pub(super) struct Deliverer {
    pub(super) producer: BaseProducer<Acks>,
    /// How long records not acknowledged are sent again.
    retry_for: Duration,
    timeout: Duration,
}

impl Deliverer {
    pub(super) fn create(
        kafka: &KafkaConfig,
        sink: &SinkConfig,
        client_id: &'static str,
    ) -> Result<Self, AdapterError> {
        let producer = producer_config(kafka, sink, client_id, &[])
            .create_with_context(Acks::default())
            .map_err(|e| AdapterError::create_client("producer", &e))?;
        Ok(Deliverer {
            producer,
            retry_for: Duration::from_millis(sink.retry_timeout_ms),
            timeout: Duration::from_millis(sink.delivery_timeout_ms),
        })
    }

    /// Delivers every record, sending again what was not acknowledged for up to
    /// `sink.retry_timeout_ms`; returns once all are acknowledged.
    pub(super) fn deliver(&self, topic: &str, records: &[OutRecord<'_>]) -> std::io::Result<()> {
        let started = Instant::now();
        let mut todo: Vec<usize> = (0..records.len()).collect();
        let mut reason = String::new();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                tracing::warn!(
                    topic,
                    records = todo.len(),
                    attempt,
                    %reason,
                    "Output records were not acknowledged; sending them again. Nothing is \
                     committed meanwhile."
                );
                std::thread::sleep(retry_backoff(attempt));
            }
            let mut failed = Vec::new();
            for &index in &todo {
                if let Err(error) = send(&self.producer, &records[index], index) {
                    failed.push((index, error.to_string()));
                }
            }
            // Every queued record is acknowledged or failed within message.timeout.ms.
            if let Err(error) = self.producer.flush(self.timeout + Duration::from_secs(5)) {
                return Err(std::io::Error::other(format!(
                    "records to topic `{topic}` were neither acknowledged nor failed in time: \
                     {error}"
                )));
            }
            failed.extend(std::mem::take(
                &mut *self
                    .producer
                    .context()
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            ));
            if failed.is_empty() {
                return Ok(());
            }
            reason = failed[0].1.clone();
            todo = failed.into_iter().map(|(index, _)| index).collect();
            todo.sort_unstable();
            todo.dedup();
            if started.elapsed() >= self.retry_for {
                return Err(std::io::Error::other(format!(
                    "{} records to topic `{topic}` were not acknowledged after {attempt} \
                     attempts in {} ms (sink.retry_timeout_ms): {reason}",
                    todo.len(),
                    started.elapsed().as_millis()
                )));
            }
        }
    }
}

/// The wait before attempt number `attempt` (from 2): 0.5 s more each time, at most 5 s.
pub(super) fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 * u64::from(attempt.saturating_sub(1)).min(10))
}

/// Produces closed windows to `sink.topic`, at least once.
pub struct KafkaSink {
    deliverer: Deliverer,
    topic: String,
    label: bool,
}

impl KafkaSink {
    /// Creates the producer and checks (or creates) the topic.
    ///
    /// # Errors
    /// If the producer cannot be created or the topic is missing.
    pub fn open(kafka: &KafkaConfig, sink: &SinkConfig) -> Result<Self, OutletError> {
        let deliverer = Deliverer::create(kafka, sink, "kafka-actors-sink")?;
        ensure_topic(&deliverer.producer, kafka, sink, &sink.topic, "sink.topic")?;
        Ok(KafkaSink {
            deliverer,
            topic: sink.topic.clone(),
            label: sink.label_partitions,
        })
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, windows: &[ClosedWindow]) -> std::io::Result<()> {
        if windows.is_empty() {
            return Ok(());
        }
        let records = window_records(&self.topic, windows, self.label);
        self.deliverer.deliver(&self.topic, &records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::PartitionId;

    #[test]
    fn a_window_record_is_its_line_keyed_by_start_and_partitions() {
        let window = ClosedWindow {
            start: 1_700_000_040,
            end: 1_700_000_100,
            unique_users: 3,
            frames: 7,
            partitions: vec![
                PartitionId::of("frames", 0),
                PartitionId::of("frames", 2),
                PartitionId::of("other", 1),
            ],
        };
        let records = window_records("out", std::slice::from_ref(&window), true);
        assert_eq!(
            records[0].key.as_deref(),
            Some(&b"1700000040 frames:0,2 other:1"[..])
        );
        let line: crate::line::WindowLine =
            serde_json::from_slice(records[0].payload.as_deref().unwrap()).unwrap();
        assert_eq!(line, crate::line::WindowLine::from(&window));
        let unlabelled = window_records("out", &[window], false);
        assert_eq!(unlabelled[0].key.as_deref(), Some(&b"1700000040"[..]));
    }
}
