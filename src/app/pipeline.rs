//! A read-process-write pipeline instance: Kafka's consume-transform-produce loop, one
//! process with a consumer (a member of the pipeline's group, subscribed to the input
//! topic) and a producer writing the output topic (C21, C24-C26, C31).
//!
//! Exactly-once mode is Kafka's transactional loop (KIP-98, with KIP-447's group
//! metadata): `initTransactions` once; then per poll `beginTransaction`, process each
//! record (recorded as [`Op::Processed`] with its sink: the external side effect, if
//! the scenario has one, else the output topic; its output `workload::output_value(v)`
//! sent with the input's key), `sendOffsetsToTransaction` with the
//! consumer's positions and group metadata, `commitTransaction`. A commit that fails
//! is followed by `abortTransaction`, and an abort rewinds the consumer to the positions
//! the transaction started from (what the previous transaction committed). A fatal
//! producer error (`ProducerFencedException`: the coordinator aborted the transaction
//! on timeout, or a newer instance took the `transactional.id`) closes the producer;
//! the instance starts over with a new one, as Kafka Streams does (and as a supervisor
//! restarting the process would).
//!
//! At-least-once mode has no transactions: outputs are sent, and the input positions
//! are `commitSync`ed once every output is acknowledged.
//!
//! The host routes each response to the consumer or the producer by correlation id (the
//! producers' start at [`PIPELINE_PRODUCER_CORRELATION_BASE`], each replacement
//! producer in a range of its own). A crash restarts the
//! instance as a new process: a new consumer (a new group member) and a new producer
//! with the same `transactional.id`, whose `initTransactions` fences the old one.

use crate::actor::{Actor, Outbox, WallClock};
use crate::app::group_events::{self, Member, Signal};
use crate::bugs::Bugs;
use crate::client::consumer::{CommitId, ConsumedRecord, Consumer};
use crate::client::producer::{
    Producer, ProducerRecord, ProducerSetup, PIPELINE_PRODUCER_CORRELATION_BASE,
};
use crate::client::txn_client::{GroupMetadata, TxnClientState, TxnEvent, TxnResult};
use crate::history::output_value;
use crate::history::{Entry, Op, Sink, TxnId};
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{BrokerId, Message, NodeId, Offset, TopicPartition};
use crate::scenario::{PipelineMode, PipelineSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Idle time between two polls that returned nothing.
const IDLE_POLL_MS: Millis = 50;
/// Bound on the loop's steps per wake-up.
const MAX_STEPS: usize = 100_000;
/// Producers one process may create (a new one after each fatal error); then it stops.
const MAX_PRODUCERS: u64 = 64;

/// Everything needed to build an instance's clients again after a crash.
pub struct PipelineFactory {
    /// Its index (`pipeline-<index>`).
    pub index: u32,
    /// The pipeline's description.
    pub spec: PipelineSpec,
    /// Bootstrap brokers.
    pub bootstrap: Vec<BrokerId>,
    /// Bug switches.
    pub bugs: Bugs,
    /// The cluster's `transaction.version`.
    pub transaction_version: u8,
    /// Seed of the first process.
    pub seed: u64,
    /// The application stops and closes its producer at this time (the end of the
    /// run): `KafkaProducer.close()`, which aborts a transaction still open.
    pub close_ms: Millis,
}

impl PipelineFactory {
    fn process(&self) -> NodeId {
        NodeId::Pipeline(self.index)
    }

    fn seed(&self, incarnation: u64) -> u64 {
        self.seed ^ incarnation.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn build(&self, incarnation: u64) -> (Consumer, Producer) {
        let seed = self.seed(incarnation);
        let consumer = Consumer::subscribe(
            self.index,
            self.spec.consumer.clone(),
            self.bootstrap.clone(),
            vec![Arc::from(self.spec.input.as_str())],
            seed,
        )
        .with_process(self.process())
        .with_bugs(self.bugs);
        (consumer, self.build_producer(seed, 0))
    }

    /// The instance's `generation`-th producer of one process: each has its own range
    /// of correlation ids, so late answers to a closed producer reach nobody.
    fn build_producer(&self, seed: u64, generation: u64) -> Producer {
        assert!(generation < MAX_PRODUCERS, "producer generations bounded");
        let mut config = self.spec.producer.clone();
        config.transactional_id = self.spec.transactional_id(self.index);
        let setup = ProducerSetup {
            process: self.process(),
            transaction_version: self.transaction_version,
            correlation_base: PIPELINE_PRODUCER_CORRELATION_BASE + (generation << 40),
        };
        Producer::with_setup(
            setup,
            config,
            self.bugs,
            self.bootstrap.clone(),
            seed ^ 0x5049_5045 ^ generation.wrapping_mul(0xff51_afd7_ed55_8ccd),
        )
    }
}

/// Where the loop stands.
#[derive(Debug)]
enum Step {
    /// Waiting for `initTransactions`.
    Initializing,
    /// Call `poll` at this time.
    Poll(Millis),
    /// Processing a polled batch: the head record is done at `done_ms`.
    Process {
        batch: VecDeque<ConsumedRecord>,
        done_ms: Millis,
    },
    /// Exactly-once: waiting for `sendOffsetsToTransaction`.
    SendingOffsets,
    /// Exactly-once: waiting for `commitTransaction` (`true`) or `abortTransaction`.
    Ending(bool),
    /// At-least-once: waiting for every output to be acknowledged, then commit.
    Flushing,
    /// At-least-once: blocked in `commitSync`.
    Committing(CommitId),
    /// Fenced or failed for good.
    Stopped,
    /// The run ended: the producer is closing (`KafkaProducer.close()`); nothing more
    /// is polled or processed.
    Closing,
}

/// One pipeline instance's application.
pub struct PipelineWorkload {
    factory: PipelineFactory,
    consumer: Consumer,
    producer: Producer,
    rng: ChaCha8Rng,
    step: Step,
    /// Transactions begun so far (across restarts: transaction ids stay unique).
    txns: u64,
    /// The positions the open transaction started from (its rollback point).
    rollback: BTreeMap<TopicPartition, Offset>,
    /// Outputs sent so far (across restarts).
    sent: u64,
    /// The process's incarnation (its clients' seed).
    incarnation: u64,
    /// Producers this process has replaced after a fatal error.
    producer_generation: u64,
    now: Millis,
}

impl PipelineWorkload {
    /// An instance whose first process starts now.
    pub fn new(factory: PipelineFactory) -> Self {
        let (consumer, producer) = factory.build(0);
        let rng = ChaCha8Rng::seed_from_u64(factory.seed ^ 0x5049_5045_4c49);
        PipelineWorkload {
            factory,
            consumer,
            producer,
            rng,
            step: Step::Initializing,
            txns: 0,
            rollback: BTreeMap::new(),
            sent: 0,
            incarnation: 0,
            producer_generation: 0,
            now: 0,
        }
    }

    /// The process restarted after a crash: the old producer's unfinished sends become
    /// indefinite (recorded in `out`), new clients are built, the loop starts over.
    pub fn restart(&mut self, now: Millis, incarnation: u64, out: &mut Outbox) {
        self.producer.crashed(now, out);
        let (consumer, producer) = self.factory.build(incarnation);
        self.consumer = consumer;
        self.producer = producer;
        self.incarnation = incarnation;
        self.producer_generation = 0;
        self.step = Step::Initializing;
        self.rollback.clear();
    }

    /// The consumer (for the end-of-run snapshot).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// Outputs sent so far, across restarts.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// End of run: outputs still pending become indefinite.
    pub fn finish(&mut self, now: Millis, out: &mut Outbox) {
        self.producer.finish(now, out);
    }

    fn exactly_once(&self) -> bool {
        self.factory.spec.mode == PipelineMode::ExactlyOnce
    }

    fn processing_time(&mut self) -> Millis {
        let [lo, hi] = self.factory.spec.time_ms;
        self.rng.gen_range(lo..=hi)
    }

    fn group(&self) -> String {
        self.factory
            .spec
            .consumer
            .group_id
            .clone()
            .expect("validated: pipelines have a group")
    }

    /// `consumer.groupMetadata()`: the last joined generation and member id, so that
    /// an evicted instance (a zombie) sends its old ones and is refused
    /// (`ILLEGAL_GENERATION` / `UNKNOWN_MEMBER_ID`), not the reset -1 and "" that the
    /// coordinator accepts from anyone.
    fn group_metadata(&self) -> GroupMetadata {
        let (generation_id, member_id) = self
            .consumer
            .group_metadata()
            .unwrap_or_else(|| (-1, Arc::from("")));
        GroupMetadata {
            group_id: Arc::from(self.group().as_str()),
            generation_id,
            member_id,
            group_instance_id: self
                .factory
                .spec
                .consumer
                .group_instance_id
                .as_deref()
                .map(Arc::from),
        }
    }

    /// Records the group's events (assignments, commits) in the history; returns the
    /// outcome of commit `waiting` if it is among them.
    fn drain_group_events(
        &mut self,
        now: Millis,
        waiting: Option<CommitId>,
        out: &mut Outbox,
    ) -> Option<bool> {
        let who = Member {
            process: self.factory.process(),
            group: self.group(),
            member: self.member_id(),
        };
        let mut finished = None;
        for event in self.consumer.drain_events() {
            match group_events::record(event, &who, now, out) {
                Signal::CommitDone { id, ok } => {
                    finished = finished.or((waiting == Some(id)).then_some(ok));
                }
                Signal::Fenced => self.step = Step::Stopped,
                Signal::Assigned(_) | Signal::None => {}
            }
        }
        finished
    }

    /// The consumer's member id, "" before it joins.
    fn member_id(&self) -> String {
        self.consumer
            .member_id()
            .map(|m| m.to_string())
            .unwrap_or_default()
    }

    /// Starts the work of a polled `batch`: its rollback point is where the batch
    /// starts in each partition (the positions before the poll); exactly-once begins its
    /// transaction, at-least-once forgets earlier outputs' outcomes.
    fn begin(&mut self, now: Millis, batch: &VecDeque<ConsumedRecord>, out: &mut Outbox) {
        self.rollback.clear();
        for r in batch {
            let at = self.rollback.entry(r.partition.clone()).or_insert(r.offset);
            *at = (*at).min(r.offset);
        }
        if self.exactly_once() {
            let txn: TxnId = (u64::from(self.factory.index) << 32) | self.txns;
            assert!(self.txns < 1 << 32, "transaction counter overflow");
            self.txns += 1;
            self.producer.begin_transaction(now, txn, out);
        } else {
            self.producer.take_unacknowledged();
        }
    }

    /// Processes one record: its side effect, then its output.
    fn process(&mut self, now: Millis, record: ConsumedRecord, out: &mut Outbox) {
        let sink = self.factory.spec.sink.unwrap_or(Sink::KafkaOutput);
        out.record(Entry::instant(
            self.factory.process(),
            now,
            Op::Processed {
                group: self.group(),
                member: self.member_id(),
                generation: self.consumer.generation().unwrap_or(-1),
                partition: record.partition.clone(),
                offset: record.offset,
                value: record.value,
                sink,
            },
        ));
        let output = ProducerRecord {
            topic: Arc::from(self.factory.spec.output.as_str()),
            key: record.key,
            value: output_value(record.value),
            headers: Vec::new(),
        };
        self.sent += 1;
        self.producer.send(now, output, out);
    }

    /// After a fatal producer error (`ProducerFencedException` and the like) or a
    /// transaction end whose outcome the application does not know, it closes its
    /// producer and, as Kafka Streams does (and a supervisor restarting the process
    /// would), starts over with a new one: `initTransactions` bumps the epoch, and the
    /// consumer takes its positions again from the group's committed offsets (Kafka
    /// Streams closes the tasks dirty and re-initializes them from
    /// `mainConsumer.committed()`: `TaskManager.closeDirtyAndRevive`,
    /// `StreamTask.resetOffsetsIfNeededAndInitializeMetadata`), not from where the
    /// failed transaction began: that transaction may have committed. The closed
    /// producer's unfinished sends are indefinite. Bounded: after `MAX_PRODUCERS` the
    /// instance stops.
    fn replace_producer(&mut self, now: Millis, out: &mut Outbox) {
        self.producer.crashed(now, out);
        self.rollback.clear();
        self.consumer.seek_to_committed();
        if self.producer_generation + 1 >= MAX_PRODUCERS {
            self.step = Step::Stopped;
            return;
        }
        self.producer_generation += 1;
        let seed = self.factory.seed(self.incarnation);
        self.producer = self.factory.build_producer(seed, self.producer_generation);
        self.producer.on_start(now, out);
        self.step = Step::Initializing;
    }

    /// Rewinds the consumer to where the aborted transaction started (its abort is
    /// known: those positions are what the previous transaction committed).
    fn rewind(&mut self, now: Millis, out: &mut Outbox) {
        for (tp, offset) in std::mem::take(&mut self.rollback) {
            self.consumer.seek(
                now,
                &tp,
                offset,
                "rewind after an aborted transaction or a failed output",
                out,
            );
        }
    }

    /// Runs the loop as far as it can at `now`.
    fn run(&mut self, now: Millis, out: &mut Outbox) {
        self.now = self.now.max(now);
        for steps in 0.. {
            assert!(steps < MAX_STEPS, "pipeline loop unbounded");
            let waiting = match self.step {
                Step::Committing(id) => Some(id),
                _ => None,
            };
            let committed = self.drain_group_events(now, waiting, out);
            let events = self.producer.drain_txn_events();
            // A stopped instance's producer is closed (no timers, no requests): its
            // fatal error is not handled again on every wake-up.
            if matches!(
                self.producer.txn_state(),
                Some(TxnClientState::FatalError(_))
            ) && !matches!(self.step, Step::Ending(_) | Step::Stopped | Step::Closing)
            {
                self.replace_producer(now, out);
            }
            if now >= self.factory.close_ms && !matches!(self.step, Step::Closing) {
                // The application shuts down: whatever it was doing, it closes its
                // producer, which completes what is under way and aborts a transaction
                // still open.
                self.step = Step::Closing;
                self.producer.close(now, out);
                return;
            }
            match std::mem::replace(&mut self.step, Step::Stopped) {
                Step::Stopped => return,
                Step::Closing => {
                    self.step = Step::Closing;
                    return;
                }
                Step::Initializing if !self.exactly_once() => self.step = Step::Poll(now),
                Step::Initializing => {
                    if events.contains(&TxnEvent::Initialized) {
                        self.step = Step::Poll(now);
                        continue;
                    }
                    if self.producer.txn_state() == Some(&TxnClientState::Uninitialized) {
                        self.producer.init_transactions(now, out);
                    }
                    self.step = Step::Initializing;
                    return;
                }
                Step::Poll(at) if at > now => {
                    self.step = Step::Poll(at);
                    return;
                }
                Step::Poll(_)
                    if self.exactly_once()
                        && self.producer.txn_state() != Some(&TxnClientState::Ready) =>
                {
                    // The producer is between transactions but not ready: the epoch bump
                    // after an abort (KIP-360) is under way.
                    self.step = Step::Poll(now + IDLE_POLL_MS);
                }
                Step::Poll(_) => {
                    let records: VecDeque<ConsumedRecord> = self.consumer.poll(now, out).into();
                    if self.consumer.fatal_error().is_some() {
                        self.step = Step::Stopped;
                    } else if records.is_empty() {
                        self.step = Step::Poll(now + IDLE_POLL_MS);
                    } else {
                        self.begin(now, &records, out);
                        let done_ms = now + self.processing_time();
                        self.step = Step::Process {
                            batch: records,
                            done_ms,
                        };
                    }
                }
                Step::Process { batch, done_ms } if done_ms > now => {
                    self.step = Step::Process { batch, done_ms };
                    return;
                }
                Step::Process { mut batch, .. } => {
                    if self.exactly_once()
                        && self.producer.txn_state() != Some(&TxnClientState::InTransaction)
                    {
                        // The transaction failed meanwhile: abort it.
                        self.producer.abort_transaction(now, out);
                        self.step = Step::Ending(false);
                        continue;
                    }
                    let record = batch.pop_front().expect("a batch being processed");
                    self.process(now, record, out);
                    let failed = self.exactly_once()
                        && self.producer.txn_state() != Some(&TxnClientState::InTransaction);
                    self.step = if failed {
                        // Sending failed the transaction: abort it.
                        self.producer.abort_transaction(now, out);
                        Step::Ending(false)
                    } else if !batch.is_empty() {
                        let done_ms = now + self.processing_time();
                        Step::Process { batch, done_ms }
                    } else if self.exactly_once() {
                        let offsets = self.consumer.consumed_offsets();
                        let metadata = self.group_metadata();
                        self.producer
                            .send_offsets_to_transaction(now, offsets, metadata, out);
                        Step::SendingOffsets
                    } else {
                        Step::Flushing
                    };
                }
                Step::SendingOffsets => {
                    let sent = events.iter().find_map(|e| match e {
                        TxnEvent::OffsetsSent(r) => Some(r.clone()),
                        _ => None,
                    });
                    match sent {
                        None => {
                            self.step = Step::SendingOffsets;
                            return;
                        }
                        Some(Ok(())) => {
                            self.producer.commit_transaction(now, out);
                            self.step = Step::Ending(true);
                        }
                        Some(Err(_)) => {
                            self.producer.abort_transaction(now, out);
                            self.step = Step::Ending(false);
                        }
                    }
                }
                Step::Ending(commit) => {
                    let ended = events.iter().find_map(|e| match e {
                        TxnEvent::Ended { commit: c, result } if *c == commit => {
                            Some(result.clone())
                        }
                        _ => None,
                    });
                    match ended {
                        None => {
                            self.step = Step::Ending(commit);
                            return;
                        }
                        Some(TxnResult::Done) if commit => self.step = Step::Poll(now),
                        Some(TxnResult::Done) => {
                            self.rewind(now, out);
                            self.step = Step::Poll(now);
                        }
                        Some(TxnResult::Failed { fatal: false, .. }) if commit => {
                            self.producer.abort_transaction(now, out);
                            self.step = Step::Ending(false);
                        }
                        Some(_) => self.replace_producer(now, out),
                    }
                }
                Step::Flushing => {
                    if self.producer.pending() > 0 {
                        self.step = Step::Flushing;
                        return;
                    }
                    if self.producer.take_unacknowledged() > 0 {
                        // An output failed or may not have been written: at-least-once
                        // commits nothing and processes the batch again, as an
                        // application checking its send futures (or Kafka Streams'
                        // at_least_once, whose failed send fails the task) does.
                        self.rewind(now, out);
                        self.step = Step::Poll(now);
                        continue;
                    }
                    let id = self.consumer.commit_sync(now, None, out);
                    self.step = Step::Committing(id);
                }
                Step::Committing(id) => match committed {
                    None => {
                        self.step = Step::Committing(id);
                        return;
                    }
                    Some(_) => self.step = Step::Poll(now),
                },
            }
        }
    }
}

impl Actor for PipelineWorkload {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.consumer.on_start(now, out);
        self.producer.on_start(now, out);
        self.step = Step::Initializing;
        self.run(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        let to_producer = match &message {
            Message::Response { correlation_id, .. } => {
                *correlation_id >= PIPELINE_PRODUCER_CORRELATION_BASE
            }
            Message::Request { .. } => false,
        };
        if to_producer {
            self.producer.on_message(now, from, message, out);
        } else {
            self.consumer.on_message(now, from, message, out);
        }
        self.run(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        self.consumer.on_disconnect(now, peer, out);
        self.producer.on_disconnect(now, peer, out);
        self.run(now, out);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        if self.consumer.next_timer().is_some_and(|t| t <= now) {
            self.consumer.on_timer(now, out);
        }
        if self.producer.next_timer().is_some_and(|t| t <= now) {
            self.producer.on_timer(now, out);
        }
        self.run(now, out);
    }

    fn set_wall_clock(&mut self, clock: WallClock) {
        self.consumer.set_wall_clock(clock);
        self.producer.set_wall_clock(clock);
    }

    fn next_timer(&self) -> Option<Millis> {
        let step = match &self.step {
            Step::Poll(at) => Some(*at),
            Step::Process { done_ms, .. } => Some(*done_ms),
            _ => None,
        };
        let close = (!matches!(self.step, Step::Closing)).then_some(self.factory.close_ms);
        [
            self.consumer.next_timer(),
            self.producer.next_timer(),
            step,
            close,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exactly-once instance of a pipeline reading `orders` into `enriched`.
    pub(crate) fn factory() -> PipelineFactory {
        let spec: PipelineSpec = serde_json::from_value(serde_json::json!({
            "input": "orders",
            "output": "enriched",
            "mode": "exactly-once",
            "consumer": {
                "group.id": "etl",
                "isolation.level": "read_committed",
                "enable.auto.commit": false
            },
            "producer": { "transactional.id": "etl-txn" },
            "time_ms": [1, 5]
        }))
        .expect("a valid pipeline spec");
        PipelineFactory {
            index: 0,
            spec,
            bootstrap: vec![1, 2, 3],
            bugs: Bugs::default(),
            transaction_version: 2,
            seed: 7,
            close_ms: 1_000_000,
        }
    }

    fn producer_sends(out: &Outbox) -> usize {
        out.sends
            .iter()
            .filter(|(_, m)| {
                matches!(m, Message::Request { correlation_id, .. }
                    if *correlation_id >= PIPELINE_PRODUCER_CORRELATION_BASE)
            })
            .count()
    }

    /// `KafkaProducer.close` stops the `Sender`: an instance that stopped after its last
    /// allowed producer was fenced keeps no producer timer and sends nothing more, however
    /// often it wakes (the finding `stopped-pipeline-timer-spin`: each wake-up replaced
    /// the producer again and left its metadata timer in the past).
    #[test]
    fn a_stopped_instance_has_a_closed_producer_without_timers() {
        let mut w = PipelineWorkload::new(factory());
        let mut out = Outbox::default();
        w.on_start(0, &mut out);
        assert!(producer_sends(&out) > 0, "the producer asks for metadata");
        w.producer_generation = MAX_PRODUCERS - 1;
        w.producer
            .fail_fatally_for_test("ProducerFencedException: test");
        let mut out = Outbox::default();
        w.on_timer(1_000, &mut out);
        assert!(matches!(w.step, Step::Stopped));
        assert!(w.producer.is_closed());
        assert_eq!(w.producer.next_timer(), None);
        assert_eq!(w.producer_generation, MAX_PRODUCERS - 1);
        let metrics = |out: &Outbox| {
            out.history
                .iter()
                .filter(|e| matches!(e.op, Op::ProducerMetrics(_)))
                .count()
        };
        assert_eq!(metrics(&out), 1, "the producer is closed once");
        for now in [1_000, 1_001, 400_000] {
            let mut out = Outbox::default();
            w.on_timer(now, &mut out);
            assert_eq!(producer_sends(&out), 0);
            assert_eq!(metrics(&out), 0, "no second close at {now}");
            assert!(w.next_timer().is_none_or(|t| t > now), "timer in the past");
        }
    }
}
