//! The sans-IO contract every simulated process implements.
//!
//! A protocol core (broker, controller, producer, consumer) never sees a socket, a
//! clock or a runtime: the host hands it the current simulated time and one input at a
//! time, and collects what it wants sent and what it wants recorded in the history.
//! Unit tests drive cores the same way, without madsim.

use crate::history::Entry;
use crate::kafka::protocol::{Message, Millis, NodeId};
use crate::kafka::record::RECORD_TIMESTAMP_BASE;

/// A node's wall clock (Java's `System.currentTimeMillis`, Kafka's
/// `Time.milliseconds()`): `offset_ms` from true time, running at `1 + drift_ppm / 1e6`
/// of true time since the run's start, stepped by the nemesis' `clock` faults. The
/// default is the true clock.
///
/// Only what Kafka reads as wall time reads it: record timestamps, time-based retention
/// and segment rolling, producer id expiration, `offsetsForTimes` targets, transaction
/// timeouts and the timestamps cores write. Timers and the other timeouts run on the
/// `now` every core gets, true simulated time (a monotonic clock, which steps never
/// move; its drift, a few ppm, is not modelled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WallClock {
    /// The clock's offset from true time (ms), steps included.
    pub offset_ms: i64,
    /// How fast it runs against true time, in parts per million (positive: fast).
    pub drift_ppm: i64,
}

impl WallClock {
    /// The clock's reading at true simulated time `now`, in milliseconds since the
    /// run's start (`now` itself for the true clock; negative when the clock is behind
    /// the start).
    pub fn ms(&self, now: Millis) -> i64 {
        let t = i128::from(now);
        let local = t + t * i128::from(self.drift_ppm) / 1_000_000 + i128::from(self.offset_ms);
        i64::try_from(local).unwrap_or(i64::MAX)
    }

    /// The clock's reading at `now` as an epoch timestamp (ms), the unit of record
    /// timestamps: [`RECORD_TIMESTAMP_BASE`] plus [`WallClock::ms`].
    pub fn timestamp(&self, now: Millis) -> i64 {
        RECORD_TIMESTAMP_BASE.saturating_add(self.ms(now))
    }

    /// Whether this is the true clock.
    pub fn is_true(&self) -> bool {
        *self == Self::default()
    }
}

/// Which of a process's network clients a request goes out on. Kafka opens one
/// connection per client, purpose and broker: the producer's `Sender` (produce and its
/// transactional requests), the consumer's fetcher and, on a connection of its own, its
/// group coordinator; a broker's replica fetcher, its transaction markers channel, its
/// `AddPartitionsToTxnManager` and its channels to the controller. Answers go back on
/// the connection their request came in on, whatever the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    /// A producer's `NetworkClient` (Kafka's `Sender`).
    Producer,
    /// A consumer's `NetworkClient` (its fetcher, `ListOffsets`, metadata).
    Consumer,
    /// A consumer's connection to its group coordinator (Kafka's coordinator node id
    /// `Integer.MAX_VALUE - id`, so a connection apart from the fetcher's).
    GroupCoordinator,
    /// A broker's replica fetcher (`Fetch`, `OffsetsForLeaderEpoch` to leaders).
    ReplicaFetcher,
    /// A transaction coordinator's `TransactionMarkerChannelManager`.
    TxnMarkers,
    /// A broker's `AddPartitionsToTxnManager` (KIP-890 verification).
    TxnVerification,
    /// A broker's `BrokerLifecycleManager` channel to the controller (registration,
    /// heartbeats).
    BrokerLifecycle,
    /// A broker's KRaft client fetching the metadata log from the controller.
    MetadataFetch,
    /// A broker's `AlterPartitionManager` channel to the controller.
    AlterPartition,
    /// A broker's forwarding channel to the controller (producer id blocks).
    Controller,
    /// Answers, and requests of cores with a single client (tests).
    Main,
}

/// What a core asks its host to do after handling one input.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Messages to send, in order.
    pub sends: Vec<(NodeId, Message)>,
    /// The channel of each message in `sends` (same index).
    pub channels: Vec<Channel>,
    /// History entries to record, in order.
    pub history: Vec<Entry>,
    /// Connections to close (Kafka's clients close a connection whose request timed
    /// out): bytes the kernel already holds for them still leave, answers to them are
    /// dropped.
    pub disconnects: Vec<(Channel, NodeId)>,
}

impl Outbox {
    /// Queues a message on the [`Channel::Main`] channel (answers go back on their
    /// request's connection whatever the channel).
    pub fn send(&mut self, to: NodeId, message: Message) {
        self.send_on(Channel::Main, to, message);
    }

    /// Queues a message on `channel`'s connection to `to`.
    pub fn send_on(&mut self, channel: Channel, to: NodeId, message: Message) {
        self.sends.push((to, message));
        self.channels.push(channel);
    }

    /// Closes `channel`'s connection to `peer`.
    pub fn disconnect(&mut self, channel: Channel, peer: NodeId) {
        if !self.disconnects.contains(&(channel, peer)) {
            self.disconnects.push((channel, peer));
        }
    }

    /// Takes the messages to send, each with its channel.
    pub fn take_sends(&mut self) -> Vec<(Channel, NodeId, Message)> {
        assert_eq!(
            self.sends.len(),
            self.channels.len(),
            "every message has its channel"
        );
        std::mem::take(&mut self.channels)
            .into_iter()
            .zip(std::mem::take(&mut self.sends))
            .map(|(c, (to, m))| (c, to, m))
            .collect()
    }

    /// Queues a history entry.
    pub fn record(&mut self, entry: Entry) {
        self.history.push(entry);
    }
}

/// A sans-IO process: inputs are the start, messages and timer expiries.
pub trait Actor: Send {
    /// Called once when the process (re)starts.
    fn on_start(&mut self, now: Millis, out: &mut Outbox);
    /// Called for every message delivered to the process.
    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox);
    /// Called when the connection to `peer` broke (its process died, so its host reset
    /// the connection): every request in flight to it is lost. The default ignores it.
    fn on_disconnect(&mut self, _now: Millis, _peer: NodeId, _out: &mut Outbox) {}
    /// Called when `next_timer` has passed.
    fn on_timer(&mut self, now: Millis, out: &mut Outbox);
    /// The earliest time at which `on_timer` must run, if any.
    fn next_timer(&self) -> Option<Millis>;
    /// Whether the process halted itself (Kafka's `Exit.halt(1)`, e.g. a broker whose
    /// log directory failed): its host kills it after the step's output went out. The
    /// default never halts.
    fn halted(&self) -> bool {
        false
    }
    /// The host sets the node's wall clock before each step (the nemesis steps it). The
    /// default ignores it: a core that reads no wall time.
    fn set_wall_clock(&mut self, _clock: WallClock) {}
    /// Whether the process accepts connections: its host refuses a request to a process
    /// that does not, as one to a process that is down (Kafka's broker enables its
    /// listeners only at the end of `BrokerServer.startup`). The host asks after every
    /// step; the default listens from the start.
    fn listening(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::WallClock;
    use crate::kafka::record::RECORD_TIMESTAMP_BASE;

    #[test]
    fn the_default_clock_is_true_time() {
        let c = WallClock::default();
        assert!(c.is_true());
        assert_eq!(c.ms(12_345), 12_345);
        assert_eq!(c.timestamp(12_345), RECORD_TIMESTAMP_BASE + 12_345);
    }

    #[test]
    fn offset_and_drift_move_the_reading() {
        let ahead = WallClock {
            offset_ms: 60_000,
            drift_ppm: 0,
        };
        assert_eq!(ahead.ms(1_000), 61_000);
        // 1,000 ppm fast: 1 ms more per second of true time.
        let fast = WallClock {
            offset_ms: 0,
            drift_ppm: 1_000,
        };
        assert_eq!(fast.ms(10_000), 10_010);
        let slow = WallClock {
            offset_ms: 0,
            drift_ppm: -1_000,
        };
        assert_eq!(slow.ms(10_000), 9_990);
        assert!(!fast.is_true());
    }

    #[test]
    fn a_clock_behind_the_start_stamps_before_the_base() {
        let behind = WallClock {
            offset_ms: -5_000,
            drift_ppm: 0,
        };
        assert_eq!(behind.ms(1_000), -4_000);
        assert_eq!(behind.timestamp(1_000), RECORD_TIMESTAMP_BASE - 4_000);
        // A step back then forth (a `clock` fault's start and end) is the true clock
        // again.
        let mut c = WallClock::default();
        c.offset_ms -= 30_000;
        assert_eq!(c.ms(40_000), 10_000);
        c.offset_ms += 30_000;
        assert!(c.is_true());
    }
}

/// Test support shared by the cores' unit tests: one input handed to an [`Actor`],
/// what it sent in answer.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Actor, Outbox};
    use crate::kafka::protocol::{BrokerId, Message, Millis, NodeId, Request, Response};

    /// Delivers `message` from `from` to `actor` at `now`; returns what it sent.
    pub(crate) fn deliver(
        actor: &mut impl Actor,
        now: Millis,
        from: NodeId,
        message: Message,
    ) -> Outbox {
        let mut out = Outbox::default();
        actor.on_message(now, from, message, &mut out);
        out
    }

    /// Delivers `request` from `from` as `correlation_id`.
    pub(crate) fn deliver_request(
        actor: &mut impl Actor,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        request: Request,
    ) -> Outbox {
        let message = Message::Request {
            correlation_id,
            request,
        };
        deliver(actor, now, from, message)
    }

    /// Delivers `response` from `from` to the request `correlation_id`.
    pub(crate) fn deliver_response(
        actor: &mut impl Actor,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        response: Response,
    ) -> Outbox {
        let message = Message::Response {
            correlation_id,
            response,
        };
        deliver(actor, now, from, message)
    }

    /// Takes the requests sent so far, all to brokers: (broker, correlation id,
    /// request).
    pub(crate) fn take(out: &mut Outbox) -> Vec<(BrokerId, u64, Request)> {
        out.sends
            .drain(..)
            .map(|(to, m)| match (to, m) {
                (
                    NodeId::Broker(b),
                    Message::Request {
                        correlation_id,
                        request,
                    },
                ) => (b, correlation_id, request),
                other => panic!("unexpected send {other:?}"),
            })
            .collect()
    }

    /// Hands `actor` broker `broker`'s `response` to the request `correlation_id`;
    /// what it sends goes to `out`.
    pub(crate) fn respond(
        actor: &mut impl Actor,
        now: Millis,
        broker: BrokerId,
        correlation_id: u64,
        response: Response,
        out: &mut Outbox,
    ) {
        let message = Message::Response {
            correlation_id,
            response,
        };
        actor.on_message(now, NodeId::Broker(broker), message, out);
    }

    /// Runs `actor`'s timers at `now`; returns what it sent.
    pub(crate) fn fire(actor: &mut impl Actor, now: Millis) -> Outbox {
        let mut out = Outbox::default();
        actor.on_timer(now, &mut out);
        out
    }
}
