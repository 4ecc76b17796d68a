//! The sans-IO contract every simulated process implements.
//!
//! A protocol core (broker, controller, producer, consumer) never sees a socket, a
//! clock or a runtime: the host hands it the current simulated time and one input at a
//! time, and collects what it wants sent and what it wants recorded in the history.
//! Unit tests drive cores the same way, without madsim.

use crate::history::Entry;
use crate::kafka::protocol::{Message, Millis, NodeId};

/// What a core asks its host to do after handling one input.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Messages to send, in order.
    pub sends: Vec<(NodeId, Message)>,
    /// History entries to record, in order.
    pub history: Vec<Entry>,
    /// Connections to close (Kafka's clients close a connection whose request timed
    /// out): what was not yet transmitted on them is discarded.
    pub disconnects: Vec<NodeId>,
}

impl Outbox {
    /// Queues a message.
    pub fn send(&mut self, to: NodeId, message: Message) {
        self.sends.push((to, message));
    }

    /// Closes the connection to `peer`.
    pub fn disconnect(&mut self, peer: NodeId) {
        if !self.disconnects.contains(&peer) {
            self.disconnects.push(peer);
        }
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
}
