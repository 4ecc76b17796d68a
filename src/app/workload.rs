//! The generator: which records producers send, and when; and what consumer group
//! members' applications do with what they poll ([`ConsumerWorkload`]).
//!
//! A [`ProducerWorkload`] wraps a [`Producer`] and calls `send` at the scenario's rate
//! until the workload ends. Values are unique over the run and increase in each
//! producer's send order (`producer index << 32 | counter`), which is what lets the
//! checker see reordering.

use crate::actor::{Actor, Outbox, WallClock};
use crate::app::group_events::{self, Member, Signal};
use crate::bugs::Bugs;
use crate::client::consumer::{CommitId, ConsumedRecord, Consumer};
use crate::client::producer::{Producer, ProducerRecord};
use crate::history::{headers_for, make_value};
use crate::history::{Entry, Op, Outcome, Sink};
use crate::kafka::config::ConsumerConfig;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{BrokerId, Message, NodeId};
use crate::scenario::ProcessingMode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::Arc;

/// What one producer sends.
pub struct WorkloadPlan {
    /// Topics written round-robin over the records.
    pub topics: Vec<Arc<str>>,
    /// Distinct keys; 0 for keyless records.
    pub keys: u32,
    /// Headers per record ([`headers_for`]).
    pub headers: u32,
    /// Gap between two sends (µs, so fractional ms rates work).
    pub interval_us: u64,
    /// First send (ms).
    pub start_ms: Millis,
    /// No sends at or after this time (ms).
    pub end_ms: Millis,
    /// The application closes its producer at this time (the end of the run):
    /// `KafkaProducer.close()`.
    pub close_ms: Millis,
    /// After a crash, send again first what the dead process had not seen
    /// acknowledged (`workload.resend_unacked_after_crash`).
    pub resend_unacked_after_crash: bool,
}

/// Builds the producer of a process incarnation (1 for the first process).
pub type ProducerFactory = Box<dyn Fn(u64) -> Producer + Send>;

/// A producer driven by the workload.
pub struct ProducerWorkload {
    index: u32,
    factory: ProducerFactory,
    producer: Producer,
    plan: WorkloadPlan,
    rng: ChaCha8Rng,
    counter: u64,
    next_send_us: u64,
    /// Records a dead process had not seen acknowledged, sent again before new ones
    /// (bounded by what one producer holds unacknowledged).
    resends: VecDeque<ProducerRecord>,
    /// `close()` was called.
    closing: bool,
}

impl ProducerWorkload {
    /// Drives the producers `factory` builds, one per process incarnation; `seed`
    /// drives key choice and start jitter.
    pub fn new(index: u32, factory: ProducerFactory, plan: WorkloadPlan, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let jitter = rng.gen_range(0..plan.interval_us.max(1));
        let next_send_us = plan.start_ms * 1000 + jitter;
        let producer = factory(1);
        ProducerWorkload {
            index,
            factory,
            producer,
            plan,
            rng,
            counter: 0,
            next_send_us,
            resends: VecDeque::new(),
            closing: false,
        }
    }

    /// The process restarted after a crash (incarnation `incarnation`): the old
    /// producer's unfinished sends become indefinite (recorded in `out`) and a new
    /// producer, with a new producer id, sends on. With
    /// [`WorkloadPlan::resend_unacked_after_crash`] it first sends again, in their
    /// order, the records the old process had not seen acknowledged (those still
    /// waiting to be resent after an earlier crash included).
    pub fn restart(&mut self, now: Millis, incarnation: u64, out: &mut Outbox) {
        let recorded = out.history.len();
        self.producer.crashed(now, out);
        if self.plan.resend_unacked_after_crash {
            let process = NodeId::Producer(self.index);
            let unacked = out.history[recorded..].iter().filter_map(|e| match &e.op {
                Op::Send {
                    key,
                    value,
                    partition,
                    headers,
                    ..
                } if e.process == process && !matches!(e.outcome, Outcome::Ok) => {
                    Some(ProducerRecord {
                        topic: partition.topic.clone(),
                        key: key.clone(),
                        value: *value,
                        headers: headers.clone(),
                    })
                }
                _ => None,
            });
            let mut resends: Vec<ProducerRecord> = unacked.collect();
            resends.sort_by_key(|r| r.value);
            resends.extend(std::mem::take(&mut self.resends));
            resends.sort_by_key(|r| r.value);
            resends.dedup_by_key(|r| r.value);
            self.resends = resends.into();
        }
        self.producer = (self.factory)(incarnation);
        // Sends due while the process was down are not made up for.
        self.next_send_us = self.next_send_us.max(now * 1000);
    }

    /// Records sent so far.
    pub fn sent(&self) -> u64 {
        self.counter
    }

    /// End of run: unfinished sends become indefinite.
    pub fn finish(&mut self, now: Millis, out: &mut Outbox) {
        self.producer.finish(now, out);
    }

    fn next_send_ms(&self) -> Option<Millis> {
        let t = self.next_send_us.div_ceil(1000);
        (t < self.plan.end_ms).then_some(t)
    }
}

impl Actor for ProducerWorkload {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.producer.on_start(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        self.producer.on_message(now, from, message, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        self.producer.on_disconnect(now, peer, out);
    }

    fn set_wall_clock(&mut self, clock: WallClock) {
        self.producer.set_wall_clock(clock);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        let mut sent_now = 0;
        // One application thread: no `send` while the previous one is blocked.
        while now < self.plan.end_ms && !self.producer.is_blocked() {
            let Some(record) = self.resends.pop_front() else {
                break;
            };
            self.producer.send(now, record, out);
        }
        while self.next_send_us <= now * 1000
            && now < self.plan.end_ms
            && !self.producer.is_blocked()
        {
            assert!(sent_now < 100_000, "workload send loop unbounded");
            sent_now += 1;
            let topic = self.plan.topics[(self.counter as usize) % self.plan.topics.len()].clone();
            let key =
                (self.plan.keys > 0).then(|| format!("k{}", self.rng.gen_range(0..self.plan.keys)));
            let value = make_value(self.index, self.counter);
            self.counter += 1;
            let headers = headers_for(value, self.plan.headers);
            let record = ProducerRecord {
                topic,
                key,
                value,
                headers,
            };
            self.producer.send(now, record, out);
            self.next_send_us += self.plan.interval_us;
        }
        if now >= self.plan.end_ms {
            // Sends still due when the workload ends (after a blocked send) are dropped.
            self.next_send_us = u64::MAX;
        }
        if self.producer.next_timer().is_some_and(|t| t <= now) {
            self.producer.on_timer(now, out);
        }
        if now >= self.plan.close_ms && !self.closing {
            self.closing = true;
            self.producer.close(now, out);
        }
    }

    fn next_timer(&self) -> Option<Millis> {
        let next_send = if self.producer.is_blocked() {
            None
        } else {
            self.next_send_ms()
        };
        let close = (!self.closing).then_some(self.plan.close_ms);
        [self.producer.next_timer(), next_send, close]
            .into_iter()
            .flatten()
            .min()
    }
}

// ---------------------------------------------------------------- consumer applications

/// What a group member's application does with what it polls.
#[derive(Clone, Debug)]
pub struct ProcessingPlan {
    /// When it commits.
    pub mode: ProcessingMode,
    /// Time per record, ms, `[min, max]`.
    pub time_ms: [u64; 2],
    /// Where each record's effect goes.
    pub sink: Sink,
    /// `group.id`, for the history.
    pub group: String,
    /// A slow phase: from `.0` to `.1` (ms) each record takes `.2` ms instead.
    pub slow: Option<(Millis, Millis, [u64; 2])>,
}

/// How to build the member's consumer again after a crash (a new process).
pub struct ConsumerFactory {
    /// History index.
    pub index: u32,
    /// Its configuration (with `group.id`).
    pub config: ConsumerConfig,
    /// Bootstrap brokers.
    pub bootstrap: Vec<BrokerId>,
    /// Subscribed topics.
    pub topics: Vec<Arc<str>>,
    /// Seed of the first process; later incarnations derive theirs from it.
    pub seed: u64,
    /// Switched-off safeguards.
    pub bugs: Bugs,
}

impl ConsumerFactory {
    fn build(&self, incarnation: u64) -> Consumer {
        Consumer::subscribe(
            self.index,
            self.config.clone(),
            self.bootstrap.clone(),
            self.topics.clone(),
            self.seed ^ incarnation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
        .with_bugs(self.bugs)
    }
}

/// The application loop's state (one thread: poll, process, commit).
#[derive(Debug)]
enum App {
    /// Call `poll` at this time.
    Poll(Millis),
    /// Processing a polled batch: the head record is done at `done_ms`.
    Process {
        batch: VecDeque<ConsumedRecord>,
        done_ms: Millis,
    },
    /// Blocked in `commitSync` until commit `id` completes; then process `then`
    /// (at-most-once) or poll (empty).
    Commit {
        id: CommitId,
        then: VecDeque<ConsumedRecord>,
    },
    /// Fenced: the consumer stopped for good.
    Stopped,
}

/// Idle time between two polls that returned nothing (`poll(Duration)` waiting).
const IDLE_POLL_MS: Millis = 50;
/// Bound on the app loop's steps per wake-up.
const MAX_APP_STEPS: usize = 100_000;

/// A consumer group member's application: polls, processes each record (its effect
/// recorded as [`Op::Processed`]) and commits per its [`ProcessingMode`].
pub struct ConsumerWorkload {
    factory: ConsumerFactory,
    consumer: Consumer,
    plan: ProcessingPlan,
    rng: ChaCha8Rng,
    app: App,
    /// The member id of the latest assignment (kept after the member leaves).
    last_member: String,
    /// The last time seen.
    now: Millis,
}

impl ConsumerWorkload {
    /// A member whose first process starts now.
    pub fn new(factory: ConsumerFactory, plan: ProcessingPlan) -> Self {
        let consumer = factory.build(0);
        let rng = ChaCha8Rng::seed_from_u64(factory.seed ^ 0x4150_5000);
        ConsumerWorkload {
            factory,
            consumer,
            plan,
            rng,
            app: App::Poll(0),
            last_member: String::new(),
            now: 0,
        }
    }

    /// The process restarted (after a crash): a new consumer, a new member (a static
    /// member keeps its `group.instance.id`), the application starts over.
    pub fn restart(&mut self, incarnation: u64) {
        self.consumer = self.factory.build(incarnation);
        self.app = App::Poll(self.now);
    }

    /// The consumer (for the end-of-run snapshot).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    fn processing_time(&mut self, now: Millis) -> Millis {
        let [lo, hi] = match self.plan.slow {
            Some((from, to, slow)) if (from..to).contains(&now) => slow,
            _ => self.plan.time_ms,
        };
        self.rng.gen_range(lo..=hi)
    }

    fn member(&self) -> (String, i32) {
        (
            self.consumer
                .member_id()
                .filter(|m| !m.is_empty())
                .map_or_else(|| self.last_member.clone(), |m| m.to_string()),
            self.consumer.generation().unwrap_or(-1),
        )
    }

    /// Records the consumer's group events in the history; returns the outcome of
    /// commit `waiting` if it is among them.
    fn drain_events(&mut self, now: Millis, out: &mut Outbox) -> Option<bool> {
        let mut finished = None;
        let waiting = match &self.app {
            App::Commit { id, .. } => Some(*id),
            _ => None,
        };
        let process = NodeId::Consumer(self.factory.index);
        for event in self.consumer.drain_events() {
            let who = Member {
                process,
                group: self.plan.group.clone(),
                member: self.member().0,
            };
            match group_events::record(event, &who, now, out) {
                Signal::Assigned(member_id) => self.last_member = member_id,
                Signal::CommitDone { id, ok } => {
                    finished = finished.or((waiting == Some(id)).then_some(ok));
                }
                Signal::Fenced => self.app = App::Stopped,
                Signal::None => {}
            }
        }
        finished
    }

    /// Runs the application loop as far as it can at `now`.
    fn step(&mut self, now: Millis, out: &mut Outbox) {
        self.now = self.now.max(now);
        for step in 0.. {
            assert!(step < MAX_APP_STEPS, "consumer application loop unbounded");
            let committed = self.drain_events(now, out);
            match std::mem::replace(&mut self.app, App::Stopped) {
                App::Stopped => return,
                App::Poll(at) if at > now => {
                    self.app = App::Poll(at);
                    return;
                }
                App::Poll(_) => {
                    let records: VecDeque<ConsumedRecord> = self.consumer.poll(now, out).into();
                    if self.consumer.fatal_error().is_some() {
                        self.app = App::Stopped;
                    } else if records.is_empty() {
                        self.app = App::Poll(now + IDLE_POLL_MS);
                    } else if self.plan.mode == ProcessingMode::AtMostOnce {
                        let id = self.consumer.commit_sync(now, None, out);
                        self.app = App::Commit { id, then: records };
                    } else {
                        let done_ms = now + self.processing_time(now);
                        self.app = App::Process {
                            batch: records,
                            done_ms,
                        };
                    }
                }
                App::Process { batch, done_ms } if done_ms > now => {
                    self.app = App::Process { batch, done_ms };
                    return;
                }
                App::Process { mut batch, .. } => {
                    let record = batch.pop_front().expect("a batch being processed");
                    let (member, generation) = self.member();
                    out.record(Entry::instant(
                        NodeId::Consumer(self.factory.index),
                        now,
                        Op::Processed {
                            group: self.plan.group.clone(),
                            member,
                            generation,
                            partition: record.partition,
                            offset: record.offset,
                            value: record.value,
                            sink: self.plan.sink,
                        },
                    ));
                    self.app = if !batch.is_empty() {
                        App::Process {
                            batch,
                            done_ms: now + self.processing_time(now),
                        }
                    } else if self.plan.mode == ProcessingMode::AtLeastOnce {
                        let id = self.consumer.commit_sync(now, None, out);
                        App::Commit {
                            id,
                            then: VecDeque::new(),
                        }
                    } else {
                        App::Poll(now)
                    };
                }
                App::Commit { id, then } => match committed {
                    // Blocked in commitSync until its outcome.
                    None => {
                        self.app = App::Commit { id, then };
                        return;
                    }
                    // At-most-once processes what it committed; after a failed commit
                    // it drops the batch (processing it could process it twice).
                    Some(true) if !then.is_empty() => {
                        self.app = App::Process {
                            batch: then,
                            done_ms: now + self.processing_time(now),
                        };
                    }
                    Some(_) => self.app = App::Poll(now),
                },
            }
        }
    }
}

impl Actor for ConsumerWorkload {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.consumer.on_start(now, out);
        self.app = App::Poll(now);
        self.step(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        self.consumer.on_message(now, from, message, out);
        self.step(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        self.consumer.on_disconnect(now, peer, out);
        self.step(now, out);
    }

    fn set_wall_clock(&mut self, clock: WallClock) {
        self.consumer.set_wall_clock(clock);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        if self.consumer.next_timer().is_some_and(|t| t <= now) {
            self.consumer.on_timer(now, out);
        }
        self.step(now, out);
    }

    fn next_timer(&self) -> Option<Millis> {
        let app = match &self.app {
            App::Poll(at) => Some(*at),
            App::Process { done_ms, .. } => Some(*done_ms),
            App::Commit { .. } | App::Stopped => None,
        };
        [self.consumer.next_timer(), app]
            .into_iter()
            .flatten()
            .min()
    }
}
