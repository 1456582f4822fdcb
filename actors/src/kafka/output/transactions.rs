//! Exactly once: each flush's windows, dead letters and input offsets in one transaction of a
//! producer that fences every older one with its transactional id (see
//! [`GroupCommits::exactly_once`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::config::{ensure_topic, producer_config, Acks};
use super::dead_letters::dead_letter_records;
use super::sink::{retry_backoff, send, window_records, OutRecord};
use super::OutletError;
use crate::config::{KafkaConfig, SinkConfig};
use crate::frame::DeadLetter;
use crate::kafka::error::AdapterError;
use crate::kafka::intake::GroupCommits;
use crate::kafka::lookup::{element_id, LOOKUP_TIMEOUT};
use crate::outlet::{TransactionFailure, TransactionalSink};
use crate::ports::CommitPosition;
use crate::window::ClosedWindow;

/// How a step of a transaction failed.
enum Step {
    /// Abort, and the whole transaction may be tried again.
    Abortable(String),
    /// The group refused the offsets of this member's generation (it rejoined meanwhile, or
    /// was dropped): abort, and try again with the current generation if the member still
    /// owns every partition.
    StaleGeneration(String),
    /// A call did not return within its timeout (librdkafka's
    /// `send_offsets_to_transaction` can wait forever for a group coordinator that went away:
    /// librdkafka issues 5456 and 5511): the producer is left to it and made again.
    Stuck(String),
    /// No retry helps.
    Failed(TransactionFailure),
}

/// Writes each flush and its offsets in one transaction; see [`GroupCommits::exactly_once`].
pub struct TransactionalOutput {
    /// Shared with a thread that sends offsets (see [`Step::Stuck`]).
    producer: Arc<BaseProducer<Acks>>,
    /// What the producer was made from: a group member makes it again after a fatal error.
    config: ClientConfig,
    commits: GroupCommits,
    /// The partition model's group metadata (no member, no generation), taken when the output
    /// starts; a group member's comes from its last assignment (`commits.generation`).
    group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    transactional_id: String,
    topic: String,
    dead_letter_topic: Option<String>,
    label: bool,
    /// How long an aborted flush is tried again.
    retry_for: Duration,
    /// The bound of each librdkafka call.
    timeout: Duration,
}

/// A transactional producer that has started: `init_transactions` fenced every older
/// producer with the same transactional id and aborted the transaction it left open. It is
/// started before the service reads its committed offsets: from then on no older instance
/// can commit, so the offsets read are the last ones (a fenced instance's transaction that
/// committed after the look-up would have its windows written twice).
pub struct Transactions {
    producer: BaseProducer<Acks>,
    /// What the producer was made from.
    config: ClientConfig,
    transactional_id: String,
    /// The bound of each librdkafka call (`sink.transaction_timeout_ms`).
    timeout: Duration,
}

impl Transactions {
    /// Makes the transactional producer with `transactional_id` for `sink`, checks the output
    /// topics and runs `init_transactions`.
    ///
    /// # Errors
    /// If the producer cannot be created or started, or a topic is missing.
    pub fn start(
        kafka: &KafkaConfig,
        sink: &SinkConfig,
        transactional_id: &str,
    ) -> Result<Transactions, OutletError> {
        let extra = [
            ("transactional.id", transactional_id.to_owned()),
            (
                "transaction.timeout.ms",
                sink.transaction_timeout_ms.to_string(),
            ),
        ];
        let config = producer_config(kafka, sink, "kafka-actors-sink", &extra);
        let producer: BaseProducer<Acks> = config
            .create_with_context(Acks::default())
            .map_err(|e| AdapterError::create_client("producer", &e))?;
        ensure_topic(&producer, kafka, sink, &sink.topic, "sink.topic")?;
        if sink.dead_letter.enabled() {
            ensure_topic(
                &producer,
                kafka,
                sink,
                &sink.dead_letter.topic,
                "sink.dead_letter.topic",
            )?;
        }
        let timeout = Duration::from_millis(sink.transaction_timeout_ms);
        producer
            .init_transactions(timeout + LOOKUP_TIMEOUT)
            .map_err(|e| OutletError::InitTransactions {
                transactional_id: transactional_id.to_owned(),
                reason: e.to_string(),
            })?;
        tracing::info!(transactional_id, "Transactions started.");
        Ok(Transactions {
            producer,
            config,
            transactional_id: transactional_id.to_owned(),
            timeout,
        })
    }
}

impl GroupCommits {
    /// Turns these commits into exactly-once output through `transactions`: each flush's
    /// windows (to `sink.topic`) and dead letters, and the input offsets sent to the same
    /// transaction with this consumer's group metadata (so the coordinator refuses offsets
    /// from a member of an old generation).
    #[must_use]
    pub fn exactly_once(
        self,
        transactions: Transactions,
        sink: &SinkConfig,
    ) -> TransactionalOutput {
        let group = match &self.generation {
            Some(_) => None,
            None => self.consumer.group_metadata().map(Arc::new),
        };
        TransactionalOutput {
            producer: Arc::new(transactions.producer),
            config: transactions.config,
            group,
            commits: self,
            transactional_id: transactions.transactional_id,
            topic: sink.topic.clone(),
            dead_letter_topic: sink
                .dead_letter
                .enabled()
                .then(|| sink.dead_letter.topic.clone()),
            label: sink.label_partitions,
            retry_for: Duration::from_millis(sink.retry_timeout_ms),
            timeout: transactions.timeout,
        }
    }
}

/// What a flush needs to know that its partitions are still held (see
/// [`TransactionalOutput::check_membership`]).
struct Held<'a> {
    /// The member's losses when the flush began.
    losses_at: u64,
    /// False once the flush's partitions were let go as lost.
    owned: &'a dyn Fn() -> bool,
}

impl TransactionalOutput {
    /// What `error` means for the transaction.
    fn classify(&self, error: &KafkaError) -> Step {
        let reason = error.to_string();
        let KafkaError::Transaction(rd) = error else {
            return Step::Abortable(reason);
        };
        match rd.code() {
            RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress => Step::StaleGeneration(reason),
            RDKafkaErrorCode::FencedInstanceId => {
                Step::Failed(TransactionFailure::NotInGroup { reason })
            }
            RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced => Step::Failed(TransactionFailure::Fenced {
                transactional_id: self.transactional_id.clone(),
                reason,
            }),
            _ if rd.is_fatal() => Step::Failed(TransactionFailure::Fatal { reason }),
            _ => Step::Abortable(reason),
        }
    }

    /// The input offsets, with their metadata, as a list for the transaction.
    fn offsets(positions: &[CommitPosition]) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::with_capacity(positions.len());
        for position in positions {
            let mut element =
                tpl.add_partition(position.partition.topic.name(), position.partition.index);
            element.set_offset(Offset::Offset(position.offset))?;
            element.set_metadata(&position.metadata);
        }
        Ok(tpl)
    }

    /// One try: begin, produce, send the offsets, commit (asking again, until `give_up`, while
    /// the commit's outcome is unknown).
    fn attempt(
        &self,
        records: &[OutRecord<'_>],
        positions: &[CommitPosition],
        give_up: Instant,
        held: &Held<'_>,
    ) -> Result<(), Step> {
        let started = Instant::now();
        self.check_membership(held)?;
        // Records of aborted transactions reported failed: nothing to send again one by one
        // (the whole transaction is tried again).
        self.producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.producer
            .begin_transaction()
            .map_err(|e| self.classify(&e))?;
        for (index, record) in records.iter().enumerate() {
            send(&self.producer, record, index).map_err(|e| self.classify(&e))?;
        }
        if !positions.is_empty() {
            let tpl = Self::offsets(positions).map_err(|e| {
                Step::Failed(TransactionFailure::Fatal {
                    reason: e.to_string(),
                })
            })?;
            let group = match &self.commits.generation {
                Some(slot) => slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .metadata
                    .clone(),
                None => self.group.clone(),
            };
            // Asked after the generation is read: a new one (the member joined again) comes
            // only after the loss was counted and its partitions let go.
            self.check_membership(held)?;
            let Some(group) = group else {
                // A member not yet assigned anything has no generation to commit in.
                return Err(Step::StaleGeneration(
                    "the member has not joined the group yet".into(),
                ));
            };
            tracing::debug!(took = ?started.elapsed(), records = records.len(), "Transaction: records queued.");
            self.send_offsets(tpl, group)?;
            tracing::debug!(took = ?started.elapsed(), "Transaction: offsets sent.");
        }
        // A commit whose outcome is unknown (a timeout) is asked again: librdkafka then
        // reports the outcome of the first.
        let deadline = give_up.max(Instant::now() + self.timeout);
        loop {
            match self.producer.commit_transaction(self.timeout) {
                Ok(()) => {
                    tracing::debug!(took = ?started.elapsed(), "Transaction committed.");
                    return Ok(());
                }
                Err(KafkaError::Transaction(rd))
                    if rd.is_retriable() && Instant::now() < deadline =>
                {
                    tracing::debug!(error = %rd, "Committing the transaction again.");
                }
                Err(error) => return Err(self.classify(&error)),
            }
        }
    }

    /// How many times the member has lost its assignment (0 for the partition model).
    fn losses(&self) -> u64 {
        self.commits.generation.as_ref().map_or(0, |slot| {
            slot.lock().unwrap_or_else(|p| p.into_inner()).losses
        })
    }

    fn lost_meanwhile() -> TransactionFailure {
        TransactionFailure::MembershipLost {
            reason: "the member lost its assignment while the flush was under way; its frames \
                     are read again from the last commit"
                .into(),
        }
    }

    /// A member that lost its assignment since the flush was made must not commit it, even
    /// in the generation it has joined since: the frames were read under the lost assignment,
    /// and the partitions are read again from the last commit.
    fn check_membership(&self, held: &Held<'_>) -> Result<(), Step> {
        match self.losses() == held.losses_at && (held.owned)() {
            true => Ok(()),
            false => Err(Step::Failed(Self::lost_meanwhile())),
        }
    }

    /// `send_offsets_to_transaction` on a thread of its own, waited for no longer than its
    /// timeout and a few seconds more: librdkafka's call can wait forever when the group
    /// coordinator it was talking to went away (librdkafka issues 5456 and 5511, open for
    /// 2.12), and then [`Step::Stuck`] says so.
    fn send_offsets(
        &self,
        offsets: TopicPartitionList,
        group: Arc<rdkafka::consumer::ConsumerGroupMetadata>,
    ) -> Result<(), Step> {
        let (producer, timeout) = (self.producer.clone(), self.timeout);
        let (done, result) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("kafka-txn-offsets".into())
            .spawn(move || {
                let _ = done.send(producer.send_offsets_to_transaction(&offsets, &group, timeout));
            });
        if let Err(error) = spawned {
            return Err(Step::Abortable(format!("cannot start a thread: {error}")));
        }
        match result.recv_timeout(timeout + Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.classify(&error)),
            Err(_) => Err(Step::Stuck(format!(
                "sending the offsets to the transaction did not return within {} ms",
                timeout.as_millis() + 5_000
            ))),
        }
    }

    /// `abort_transaction`, with the producer's delivery reports served meanwhile: the abort
    /// waits until every record of the transaction is delivered or purged and its report
    /// handed out, and rdkafka's `BaseProducer` hands reports out only when polled (its
    /// `commit_transaction` flushes first; its `abort_transaction` does not). Unpolled, an
    /// abort with records in flight fails with "Failed to flush all outstanding messages"
    /// every time it is asked, and the flush never ends.
    fn abort_serving(&self, timeout: Duration) -> Result<(), KafkaError> {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    self.producer.poll(Duration::from_millis(20));
                }
            });
            let result = self.producer.abort_transaction(timeout);
            done.store(true, std::sync::atomic::Ordering::Release);
            result
        })
    }

    /// Aborts the transaction under way, asking again until `give_up` while the abort's
    /// outcome is unknown (the coordinator is out of reach); an abort that fails otherwise
    /// leaves the producer unusable.
    fn abort(&self, give_up: Instant) -> Result<(), TransactionFailure> {
        tracing::debug!("Aborting the transaction.");
        let deadline = give_up.max(Instant::now() + self.timeout);
        loop {
            let error = match self.abort_serving(self.timeout) {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if let KafkaError::Transaction(rd) = &error {
                if rd.is_retriable() && Instant::now() < deadline {
                    tracing::debug!(error = %rd, "Aborting the transaction again.");
                    continue;
                }
            }
            return Err(match self.classify(&error) {
                Step::Failed(failure) => failure,
                Step::Abortable(reason) | Step::StaleGeneration(reason) | Step::Stuck(reason) => {
                    TransactionFailure::Fatal {
                        reason: format!("cannot abort the transaction: {reason}"),
                    }
                }
            });
        }
    }

    /// A fence met by a transaction that was open at least the transaction timeout: the
    /// coordinator aborted it for its age (see [`TransactionFailure::TimedOut`]). A newer
    /// instance on the same partitions that started meanwhile cannot be told apart; the
    /// producer made again then fences it in turn, and of the two the one whose transactions
    /// stay younger than the timeout stops (exactly once holds either way: one writer at a
    /// time).
    fn aged_out(&self, failure: TransactionFailure, open: Duration) -> TransactionFailure {
        match failure {
            TransactionFailure::Fenced { reason, .. } if open >= self.timeout => {
                TransactionFailure::TimedOut {
                    open_ms: open.as_millis(),
                    reason,
                }
            }
            other => other,
        }
    }

    /// After `failure` left the producer unusable: a new one with the same transactional id,
    /// whose `init_transactions` aborts what is left, when that is safe. A fatal error that
    /// is no fence (the broker timed the transaction out during an outage: "invalid
    /// transactional state") is mended in either model. A fence is mended by a group member
    /// only: its id is its own, so nothing but the broker fenced it, and the coordinator still
    /// fences it by generation; the partition model's id is shared by every instance on the
    /// same partitions, and a producer made again would fence the newer instance back.
    fn recover(
        &mut self,
        failure: TransactionFailure,
        give_up: Instant,
    ) -> Result<(), TransactionFailure> {
        match failure {
            TransactionFailure::Fatal { .. } | TransactionFailure::TimedOut { .. } => {
                self.make_again(&failure, give_up)
            }
            TransactionFailure::Fenced { .. } if self.commits.generation.is_some() => {
                self.make_again(&failure, give_up)
            }
            TransactionFailure::Fenced { .. }
            | TransactionFailure::NotInGroup { .. }
            | TransactionFailure::MembershipLost { .. }
            | TransactionFailure::GaveUp { .. }
            | TransactionFailure::Closed => Err(failure),
        }
    }

    /// A new producer with the same transactional id in place of this one (see
    /// [`Self::recover`] and [`Step::Stuck`]).
    /// `init_transactions` is asked again while it times out (the transaction coordinator is
    /// still loading after an outage), until `give_up`.
    fn make_again(
        &mut self,
        why: &dyn std::fmt::Display,
        give_up: Instant,
    ) -> Result<(), TransactionFailure> {
        tracing::warn!(
            transactional_id = %self.transactional_id,
            error = %why,
            "The transactional producer failed; making it again."
        );
        let producer: BaseProducer<Acks> = self
            .config
            .create_with_context(Acks::default())
            .map_err(|e| TransactionFailure::Fatal {
                reason: AdapterError::create_client("producer", &e).to_string(),
            })?;
        loop {
            match producer.init_transactions(self.timeout) {
                Ok(()) => break,
                Err(KafkaError::Transaction(rd))
                    if rd.is_retriable() && Instant::now() < give_up =>
                {
                    tracing::debug!(error = %rd, "Starting transactions again, once more.");
                }
                Err(e) => {
                    return Err(TransactionFailure::Fatal {
                        reason: format!("cannot start transactions again: {e}"),
                    })
                }
            }
        }
        self.producer = Arc::new(producer);
        Ok(())
    }

    /// The partitions of `positions` this member no longer owns (group model); none for the
    /// partition model, which assigns its partitions itself.
    fn not_owned(&self, positions: &[CommitPosition]) -> Vec<crate::topic::PartitionId> {
        if self.commits.scope == crate::kafka::intake::CommitScope::Any {
            return Vec::new();
        }
        let owned: Vec<crate::topic::PartitionId> = self
            .commits
            .consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(element_id).collect())
            .unwrap_or_default();
        positions
            .iter()
            .map(|p| p.partition)
            .filter(|p| !owned.contains(p))
            .collect()
    }
}

impl TransactionalSink for TransactionalOutput {
    fn write_and_commit(
        &mut self,
        windows: &[ClosedWindow],
        letters: &[DeadLetter],
        positions: &[CommitPosition],
        retry_until: Option<Instant>,
        owned: &dyn Fn() -> bool,
    ) -> Result<Vec<CommitPosition>, TransactionFailure> {
        if windows.is_empty() && letters.is_empty() && positions.is_empty() {
            return Ok(Vec::new());
        }
        let (topic, dead_letter_topic) = (self.topic.clone(), self.dead_letter_topic.clone());
        let mut records = window_records(&topic, windows, self.label);
        if let Some(topic) = &dead_letter_topic {
            records.extend(dead_letter_records(topic, letters));
        }
        let started = Instant::now();
        // A release waits for this flush no longer than it said.
        let give_up = retry_until.unwrap_or(started + self.retry_for);
        // The member's losses counted from here, and the partitions let go as lost since the
        // flush was made (`owned`): a loss the rebalance callback reported after this, or one
        // whose partitions the batch actor let go before the flush was made, is seen.
        let held = Held {
            losses_at: self.losses(),
            owned,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let began = Instant::now();
            let reason = match self.attempt(&records, positions, give_up, &held) {
                Ok(()) => return Ok(positions.to_vec()),
                Err(Step::Failed(failure)) => {
                    let failure = self.aged_out(failure, began.elapsed());
                    // Nothing of it may become visible; the producer may be unusable already.
                    let _ = self.abort_serving(Duration::from_secs(5));
                    if Instant::now() >= give_up {
                        return Err(failure);
                    }
                    self.recover(failure, give_up)?;
                    continue;
                }
                Err(Step::Abortable(reason)) => reason,
                Err(Step::Stuck(reason)) => {
                    if Instant::now() >= give_up {
                        return Err(TransactionFailure::GaveUp {
                            attempts: attempt,
                            for_ms: started.elapsed().as_millis(),
                            reason,
                        });
                    }
                    // Our own producer hangs: nothing else fenced it, so a new one with the
                    // same id (which fences the stuck one and aborts its transaction) is safe
                    // in either model.
                    self.make_again(&reason, give_up)?;
                    continue;
                }
                Err(Step::StaleGeneration(reason)) => {
                    self.abort(give_up)?;
                    // A member that rejoined keeps its partitions (cooperative rebalancing)
                    // and commits them in its new generation; one that lost any of them must
                    // write nothing more for them.
                    let lost = self.not_owned(positions);
                    if !lost.is_empty() {
                        // Some or all of its partitions went to another member (its session
                        // expired, or a revocation gave up waiting for this flush): the flush
                        // is dropped. The lost partitions' next owner reads them from the last
                        // committed transaction; the batch actor reads the partitions still
                        // held here again from there too, since the dropped windows hold their
                        // shares as well.
                        return Err(TransactionFailure::MembershipLost {
                            reason: format!(
                                "{reason}; partitions no longer assigned here: {}",
                                lost.iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    if Instant::now() + retry_backoff(attempt + 1) >= give_up {
                        // Out of time before the member got into a stable generation (a
                        // rebalance held up by a broker or coordinator fault): the flush is
                        // dropped and read again, as when partitions were lost.
                        return Err(TransactionFailure::MembershipLost {
                            reason: format!(
                                "{reason}; the group's generation was still changing when the \
                                 flush's time ran out"
                            ),
                        });
                    }
                    tracing::info!(
                        attempt,
                        %reason,
                        "The group's generation changed during the flush; committing it again \
                         in the current generation."
                    );
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            if let Err(failure) = self.abort(give_up) {
                // The abort of a transaction the broker already aborted for its age.
                let failure = self.aged_out(failure, began.elapsed());
                if Instant::now() >= give_up {
                    return Err(failure);
                }
                self.recover(failure, give_up)?;
            }
            if Instant::now() + retry_backoff(attempt + 1) >= give_up {
                return Err(TransactionFailure::GaveUp {
                    attempts: attempt,
                    for_ms: started.elapsed().as_millis(),
                    reason,
                });
            }
            tracing::warn!(
                attempt,
                %reason,
                windows = windows.len(),
                dead_letters = letters.len(),
                "The flush's transaction was aborted; trying it again."
            );
            std::thread::sleep(retry_backoff(attempt + 1));
        }
    }
}
