//! Dead letters: each invalid record produced unchanged to `sink.dead_letter.topic`, with
//! headers naming its source and why it was refused.

use super::config::ensure_topic;
use super::sink::{Deliverer, OutRecord};
use super::OutletError;
use crate::config::{KafkaConfig, SinkConfig};
use crate::frame::DeadLetter;
use crate::outlet::DeadLetterSink;

/// The header names of a dead letter.
pub mod headers {
    /// The topic the record was read from.
    pub const SOURCE_TOPIC: &str = "kafka-actors.source.topic";
    /// Its partition there, in decimal.
    pub const SOURCE_PARTITION: &str = "kafka-actors.source.partition";
    /// Its offset there, in decimal.
    pub const SOURCE_OFFSET: &str = "kafka-actors.source.offset";
    /// Why it is invalid (`not_json`, `missing_field`, ...).
    pub const REASON: &str = "kafka-actors.invalid.reason";
}

/// The records of dead letters: each payload unchanged, with headers naming its source and
/// reason.
pub(super) fn dead_letter_records<'a>(
    topic: &'a str,
    letters: &[DeadLetter],
) -> Vec<OutRecord<'a>> {
    letters
        .iter()
        .map(|d| {
            // The record's own headers, then ours (readers taking a header's last value,
            // as Kafka's `lastHeader`, get ours).
            let mut headers = d.headers.clone();
            headers.extend(
                [
                    (headers::SOURCE_TOPIC, d.partition.topic.name().to_owned()),
                    (headers::SOURCE_PARTITION, d.partition.index.to_string()),
                    (headers::SOURCE_OFFSET, d.offset.to_string()),
                    (headers::REASON, d.reason.as_str().to_owned()),
                ]
                .map(|(k, v)| (k.to_owned(), Some(v.into_bytes()))),
            );
            OutRecord {
                topic,
                key: d.key.clone(),
                payload: d.payload.clone(),
                headers,
            }
        })
        .collect()
}

/// Produces invalid records to `sink.dead_letter.topic`, at least once.
pub struct KafkaDeadLetters {
    deliverer: Deliverer,
    topic: String,
}

impl KafkaDeadLetters {
    /// Creates the producer and checks (or creates) the topic.
    ///
    /// # Errors
    /// If the producer cannot be created or the topic is missing.
    pub fn open(kafka: &KafkaConfig, sink: &SinkConfig) -> Result<Self, OutletError> {
        let deliverer = Deliverer::create(kafka, sink, "kafka-actors-dead-letters")?;
        let topic = sink.dead_letter.topic.clone();
        ensure_topic(
            &deliverer.producer,
            kafka,
            sink,
            &topic,
            "sink.dead_letter.topic",
        )?;
        Ok(KafkaDeadLetters { deliverer, topic })
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn write(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        let records = dead_letter_records(&self.topic, letters);
        self.deliverer.deliver(&self.topic, &records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::InvalidReason;
    use crate::topic::PartitionId;

    #[test]
    fn a_dead_letter_keeps_its_record_and_names_its_source_in_headers() {
        let letters = [DeadLetter {
            partition: PartitionId::of("frames", 3),
            offset: 41,
            reason: InvalidReason::NotJson,
            payload: Some(b"{oops".to_vec()),
            key: Some(b"device-7".to_vec()),
            headers: vec![
                ("trace".to_owned(), Some(b"abc".to_vec())),
                ("empty".to_owned(), None),
            ],
        }];
        let records = dead_letter_records("dlq", &letters);
        assert_eq!(records[0].payload.as_deref(), Some(&b"{oops"[..]));
        assert_eq!(records[0].key.as_deref(), Some(&b"device-7"[..]));
        assert_eq!(records[0].topic, "dlq");
        let header = |k: &str, v: &str| (k.to_owned(), Some(v.as_bytes().to_vec()));
        assert_eq!(
            records[0].headers,
            vec![
                header("trace", "abc"),
                ("empty".to_owned(), None),
                header(headers::SOURCE_TOPIC, "frames"),
                header(headers::SOURCE_PARTITION, "3"),
                header(headers::SOURCE_OFFSET, "41"),
                header(headers::REASON, "not_json"),
            ]
        );
    }
}
