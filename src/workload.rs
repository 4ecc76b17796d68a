//! The generator: which records producers send, and when.
//!
//! A [`ProducerWorkload`] wraps a [`Producer`] and calls `send` at the scenario's rate
//! until the workload ends. Values are unique over the run and increase in each
//! producer's send order (`producer index << 32 | counter`), which is what lets the
//! checker see reordering.

use crate::actor::{Actor, Millis, Outbox};
use crate::history::Value;
use crate::producer::{Producer, ProducerRecord};
use crate::protocol::{Message, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// A value's producer and position in its send order.
pub fn make_value(producer: u32, counter: u64) -> Value {
    assert!(counter < 1 << 32, "value counter overflow");
    (u64::from(producer) << 32) | counter
}

/// What one producer sends.
pub struct WorkloadPlan {
    /// Topics written round-robin over the records.
    pub topics: Vec<Arc<str>>,
    /// Distinct keys; 0 for keyless records.
    pub keys: u32,
    /// Gap between two sends (µs, so fractional ms rates work).
    pub interval_us: u64,
    /// First send (ms).
    pub start_ms: Millis,
    /// No sends at or after this time (ms).
    pub end_ms: Millis,
}

/// A producer driven by the workload.
pub struct ProducerWorkload {
    index: u32,
    producer: Producer,
    plan: WorkloadPlan,
    rng: ChaCha8Rng,
    counter: u64,
    next_send_us: u64,
}

impl ProducerWorkload {
    /// Wraps `producer`; `seed` drives key choice and start jitter.
    pub fn new(index: u32, producer: Producer, plan: WorkloadPlan, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let jitter = rng.gen_range(0..plan.interval_us.max(1));
        let next_send_us = plan.start_ms * 1000 + jitter;
        ProducerWorkload {
            index,
            producer,
            plan,
            rng,
            counter: 0,
            next_send_us,
        }
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

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        let mut sent_now = 0;
        // One application thread: no `send` while the previous one is blocked.
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
            self.producer
                .send(now, ProducerRecord { topic, key, value }, out);
            self.next_send_us += self.plan.interval_us;
        }
        if now >= self.plan.end_ms {
            // Sends still due when the workload ends (after a blocked send) are dropped.
            self.next_send_us = u64::MAX;
        }
        if self.producer.next_timer().is_some_and(|t| t <= now) {
            self.producer.on_timer(now, out);
        }
    }

    fn next_timer(&self) -> Option<Millis> {
        let next_send = if self.producer.is_blocked() {
            None
        } else {
            self.next_send_ms()
        };
        match (self.producer.next_timer(), next_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
