//! The simulated network's TCP, as the hosts' kernels run it: connections per client
//! process, purpose ([`Channel`]) and server, each two FIFO byte streams with their own
//! retransmission, and the links under them that the nemesis cuts, delays, slows and
//! resets.
//!
//! What a connection guarantees and what it does not, as TCP does:
//! - In order: on one connection a message is delivered strictly after the previous
//!   one in its direction. Two connections are independent: a request on a new
//!   connection can overtake one still held on an old one.
//! - No loss while both ends live: a message sent while its link is cut is held and
//!   retransmitted with exponential backoff (RTO 200 ms doubling to 10 s) until the link
//!   heals; the kernel gives up on an open connection after Linux's `tcp_retries2`
//!   (about 924.6 s, then a reset) and on a closed one after `tcp_orphan_retries`
//!   (about 102.2 s, then silence).
//! - A closed connection's bytes still leave: a client that closes a connection (its
//!   request timed out) or whose process dies loses nothing its kernel already held,
//!   so a request can reach its server late, after newer requests on another
//!   connection. The answer to it is dropped (the client's socket is gone). A power
//!   loss takes the kernel too: nothing held leaves.
//! - A connection belongs to the process incarnations that opened it: a message that
//!   reaches a restarted server is answered with a reset, which the client's process
//!   learns; an answer that reaches a restarted client is dropped.
//!
//! Correlation ids are rewritten on the wire (one id per request for the whole run),
//! so an answer goes back on the connection its request came in on even when a
//! restarted client reuses its predecessor's ids (Kafka's `RequestChannel` answers by
//! connection id).

use crate::actor::Channel;
use crate::kafka::config::Acks;
use crate::kafka::protocol::{Message, Millis, NodeId, Request};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Simulated time in nanoseconds since the run's start.
pub(super) type Nanos = u64;

/// Nanoseconds in a millisecond.
pub(super) const NANOS_PER_MS: Nanos = 1_000_000;
/// TCP's initial retransmission timeout.
const RTO_MIN_MS: Millis = 200;
/// Cap on the retransmission backoff (Linux caps RTO at 120 s; runs are short).
const RTO_MAX_MS: Millis = 10_000;
/// When Linux gives up on an open connection's unacknowledged data: `tcp_retries2`
/// (15) retransmissions of an RTO from 200 ms doubling to 120 s.
const OPEN_GIVE_UP_MS: Millis = 924_600;
/// When Linux gives up on a closed (orphaned) connection's data: `tcp_orphan_retries`
/// (0, which means 8) retransmissions of an RTO from 200 ms doubling.
const ORPHAN_GIVE_UP_MS: Millis = 102_200;
/// When a client gives up on a connection its server never answered: Kafka's
/// `socket.connection.setup.timeout.ms` default (clients and brokers alike; its growth
/// towards `socket.connection.setup.timeout.max.ms` and its jitter are not modelled).
/// A connection counts as set up once its first message reaches the server's host.
const SETUP_TIMEOUT_MS: Millis = 10_000;
/// Bound on messages held for one direction of one connection.
const MAX_HELD: usize = 100_000;
/// Bound on connections (open, or closed with bytes still to deliver).
const MAX_CONNECTIONS: usize = 1 << 20;
/// Bound on requests awaiting an answer.
const MAX_ROUTES: usize = 1 << 20;

/// A connection's id, unique in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ConnId(u64);

/// A direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dir {
    /// Client to server: requests.
    ToServer,
    /// Server to client: answers.
    ToClient,
}

/// A message on the wire, due at its receiver's host at `deliver_at`.
pub(super) struct Wire {
    pub(super) deliver_at: Nanos,
    pub(super) conn: ConnId,
    pub(super) dir: Dir,
    pub(super) message: Message,
}

/// One direction of a connection: its FIFO order and its retransmission queue.
#[derive(Default)]
struct Half {
    /// When the last message transmitted this way is delivered.
    last_delivery: Nanos,
    /// Messages waiting for the link to heal, oldest first.
    held: VecDeque<Message>,
    /// When the held messages are retransmitted next.
    retry_at: Millis,
    backoff_ms: Millis,
    /// Since when messages are held (the kernel gives up after a while).
    held_since: Millis,
    /// Messages transmitted this way and not yet delivered.
    in_flight: u32,
}

/// A connection a client process opened to a server process.
struct Conn {
    client: NodeId,
    client_incarnation: u64,
    server: NodeId,
    server_incarnation: u64,
    /// The client's process closed it (or died): what its kernel holds still leaves,
    /// answers are dropped.
    closed: bool,
    /// Something it carried reached the server's host (the handshake would have
    /// completed); until then [`SETUP_TIMEOUT_MS`] applies.
    established: bool,
    up: Half,
    down: Half,
}

impl Conn {
    fn half(&mut self, dir: Dir) -> &mut Half {
        match dir {
            Dir::ToServer => &mut self.up,
            Dir::ToClient => &mut self.down,
        }
    }

    fn half_ref(&self, dir: Dir) -> &Half {
        match dir {
            Dir::ToServer => &self.up,
            Dir::ToClient => &self.down,
        }
    }

    /// Sender and receiver of `dir`.
    fn ends(&self, dir: Dir) -> (NodeId, NodeId) {
        match dir {
            Dir::ToServer => (self.client, self.server),
            Dir::ToClient => (self.server, self.client),
        }
    }

    /// Nothing of it is left to deliver.
    fn drained(&self) -> bool {
        self.up.held.is_empty() && self.up.in_flight == 0 && self.down.in_flight == 0
    }
}

/// What a message became when it reached its receiver's host.
pub(super) enum Arrival {
    /// For the receiver's process.
    Deliver {
        to: NodeId,
        from: NodeId,
        message: Message,
    },
    /// The receiver's process is gone: its host resets the connection, and the sender's
    /// process learns that its connection to `peer` broke.
    Reset { notify: NodeId, peer: NodeId },
    /// Nobody listens any more.
    Drop,
}

/// The network of a run: every connection and the state of every directed link.
pub(super) struct Network {
    rng: ChaCha8Rng,
    /// One-way latency range (µs) of a healthy link.
    latency_us: (u64, u64),
    /// Directed links cut, with how many faults cut each.
    cut: BTreeMap<(NodeId, NodeId), u32>,
    /// Directed links that hold what they carry until a time, one entry per fault.
    delayed: BTreeMap<(NodeId, NodeId), Vec<Nanos>>,
    /// Directed links with a latency range of their own (µs), one entry per fault,
    /// the latest in force.
    slow: BTreeMap<(NodeId, NodeId), Vec<(u64, u64)>>,
    conns: BTreeMap<ConnId, Conn>,
    /// The directions of connections that hold messages (most hold none).
    holding: BTreeSet<(ConnId, Dir)>,
    /// The open connection of each (client, its incarnation, server, channel).
    open: BTreeMap<(NodeId, u64, NodeId, Channel), ConnId>,
    /// Requests awaiting an answer: wire correlation id -> connection and the
    /// client's own correlation id.
    routes: BTreeMap<u64, (ConnId, u64)>,
    next_conn: u64,
    next_wire_id: u64,
    /// Messages put on the wire.
    pub(super) messages: u64,
    /// Requests put on the wire to brokers, by API name.
    pub(super) broker_requests: BTreeMap<&'static str, u64>,
}

impl Network {
    /// A network drawing latencies (µs, uniform in `latency_us`) from `rng`.
    pub(super) fn new(rng: ChaCha8Rng, latency_us: (u64, u64)) -> Self {
        Network {
            rng,
            latency_us,
            cut: BTreeMap::new(),
            delayed: BTreeMap::new(),
            slow: BTreeMap::new(),
            conns: BTreeMap::new(),
            holding: BTreeSet::new(),
            open: BTreeMap::new(),
            routes: BTreeMap::new(),
            next_conn: 0,
            next_wire_id: 1,
            messages: 0,
            broker_requests: BTreeMap::new(),
        }
    }

    /// Sends a request of `client` (incarnation `client_incarnation`) on its `channel`
    /// connection to `server`, opening one to incarnation `server_incarnation` if it
    /// has none open. Returns what goes on the wire now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn request(
        &mut self,
        now: Nanos,
        client: NodeId,
        client_incarnation: u64,
        server: NodeId,
        server_incarnation: u64,
        channel: Channel,
        message: Message,
    ) -> Vec<Wire> {
        let Message::Request {
            correlation_id,
            request,
        } = message
        else {
            panic!("{client}: an answer is not a request")
        };
        let key = (client, client_incarnation, server, channel);
        let id = match self.open.get(&key) {
            Some(id) => *id,
            None => {
                let id = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.insert(
                    id,
                    Conn {
                        client,
                        client_incarnation,
                        server,
                        server_incarnation,
                        closed: false,
                        established: false,
                        up: Half::default(),
                        down: Half::default(),
                    },
                );
                assert!(self.conns.len() <= MAX_CONNECTIONS, "too many connections");
                self.open.insert(key, id);
                id
            }
        };
        let wire_id = self.next_wire_id;
        self.next_wire_id += 1;
        let answered = !matches!(&request, Request::Produce(p) if p.acks == Acks::None);
        if answered {
            self.routes.insert(wire_id, (id, correlation_id));
            assert!(
                self.routes.len() <= MAX_ROUTES,
                "too many requests unanswered"
            );
        }
        let message = Message::Request {
            correlation_id: wire_id,
            request,
        };
        self.push(now, id, Dir::ToServer, message)
    }

    /// Sends `server`'s answer to the request that came in as `message`'s correlation
    /// id, on that request's connection; dropped if the connection is gone or closed.
    pub(super) fn respond(&mut self, now: Nanos, server: NodeId, message: Message) -> Vec<Wire> {
        let Message::Response {
            correlation_id: wire_id,
            response,
        } = message
        else {
            panic!("{server}: a request is not an answer")
        };
        let Some((id, correlation_id)) = self.routes.remove(&wire_id) else {
            return Vec::new();
        };
        let conn = self.conns.get(&id).expect("routes name live connections");
        assert_eq!(conn.server, server, "an answer comes from the asked server");
        let message = Message::Response {
            correlation_id,
            response,
        };
        self.push(now, id, Dir::ToClient, message)
    }

    /// `client` closed its `channel` connection to `server`: its kernel still sends
    /// what it holds; answers are dropped.
    pub(super) fn close(
        &mut self,
        client: NodeId,
        client_incarnation: u64,
        server: NodeId,
        channel: Channel,
    ) {
        if let Some(id) = self
            .open
            .remove(&(client, client_incarnation, server, channel))
        {
            self.orphan(id, true);
        }
    }

    /// Incarnation `incarnation` of `node` died. As a client its connections close:
    /// held bytes still leave if its kernel survives (`kernel_alive`, a process crash)
    /// and are lost with it otherwise (a power loss). As a server its connections are
    /// gone (its peers are told by the host).
    pub(super) fn process_died(&mut self, node: NodeId, incarnation: u64, kernel_alive: bool) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.client == node && c.client_incarnation == incarnation)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.open
                .retain(|&(c, inc, _, _), v| !(c == node && inc == incarnation && *v == id));
            self.orphan(id, kernel_alive);
        }
        let served: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.server == node && c.server_incarnation == incarnation)
            .map(|(id, _)| *id)
            .collect();
        for id in served {
            self.remove(id);
        }
    }

    /// Resets every connection between `a` and `b` without a process dying (a
    /// middlebox or a NIC reset): what they held is gone. Returns who learns it:
    /// each open connection's client, told its peer.
    pub(super) fn reset_between(&mut self, a: NodeId, b: NodeId) -> Vec<(NodeId, NodeId)> {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| (c.client, c.server) == (a, b) || (c.client, c.server) == (b, a))
            .map(|(id, _)| *id)
            .collect();
        let mut told = BTreeSet::new();
        for id in ids {
            let conn = self.remove(id);
            if !conn.closed {
                told.insert((conn.client, conn.server));
            }
        }
        told.into_iter().collect()
    }

    /// Retransmits what waits for links that healed; backs off on those still cut,
    /// and gives up as Linux does. Returns the wires, and who learns that a
    /// connection it had open was given up (told its peer).
    pub(super) fn retransmit(&mut self, now: Nanos) -> (Vec<Wire>, Vec<(NodeId, NodeId)>) {
        let now_ms = now / NANOS_PER_MS;
        let due: Vec<(ConnId, Dir)> = self
            .holding
            .iter()
            .copied()
            .filter(|&(id, dir)| self.conns[&id].half_ref(dir).retry_at <= now_ms)
            .collect();
        let mut wires = Vec::new();
        let mut told = Vec::new();
        for (id, dir) in due {
            let Some(conn) = self.conns.get(&id) else {
                continue;
            };
            let (from, to) = conn.ends(dir);
            if self.link_up(from, to) {
                let held =
                    std::mem::take(&mut self.conns.get_mut(&id).expect("live").half(dir).held);
                self.holding.remove(&(id, dir));
                for message in held {
                    wires.push(self.transmit(now, id, dir, message));
                }
                continue;
            }
            let closed = conn.closed;
            let setting_up = !closed && !conn.established;
            let give_up = if closed {
                ORPHAN_GIVE_UP_MS
            } else if setting_up {
                SETUP_TIMEOUT_MS
            } else {
                OPEN_GIVE_UP_MS
            };
            let half = self.conns.get_mut(&id).expect("live").half(dir);
            if now_ms >= half.held_since + give_up {
                if closed {
                    half.held.clear();
                    self.holding.remove(&(id, dir));
                    self.forget_if_drained(id);
                } else {
                    let conn = self.remove(id);
                    told.push((conn.client, conn.server));
                }
            } else {
                half.backoff_ms = (half.backoff_ms * 2).min(RTO_MAX_MS);
                half.retry_at = now_ms + half.backoff_ms;
                if setting_up {
                    half.retry_at = half.retry_at.min(half.held_since + SETUP_TIMEOUT_MS);
                }
            }
        }
        (wires, told)
    }

    /// When [`Network::retransmit`] has work next.
    pub(super) fn next_retransmit_ms(&self) -> Option<Millis> {
        self.holding
            .iter()
            .map(|&(id, dir)| self.conns[&id].half_ref(dir).retry_at)
            .min()
    }

    /// A message reached its receiver's host; `incarnation` is the live incarnation
    /// of a node (`None` if its process is down).
    pub(super) fn arrive(
        &mut self,
        wire: Wire,
        incarnation: impl Fn(NodeId) -> Option<u64>,
    ) -> Arrival {
        let Some(conn) = self.conns.get_mut(&wire.conn) else {
            return Arrival::Drop; // reset while the message was on the wire
        };
        let half = conn.half(wire.dir);
        assert!(half.in_flight > 0, "a message arrives once");
        half.in_flight -= 1;
        let arrival = match wire.dir {
            Dir::ToServer if incarnation(conn.server) == Some(conn.server_incarnation) => {
                conn.established = true;
                Arrival::Deliver {
                    to: conn.server,
                    from: conn.client,
                    message: wire.message,
                }
            }
            Dir::ToServer => {
                // The server's process is gone (crashed, or restarted as a new one):
                // its host resets the connection, and every other connection of this
                // client to that gone process.
                let (client, server, stale) = (conn.client, conn.server, conn.server_incarnation);
                let closed = conn.closed;
                let ids: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| {
                        c.client == client && c.server == server && c.server_incarnation == stale
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.remove(id);
                }
                if closed {
                    return Arrival::Drop;
                }
                return Arrival::Reset {
                    notify: client,
                    peer: server,
                };
            }
            Dir::ToClient
                if !conn.closed && incarnation(conn.client) == Some(conn.client_incarnation) =>
            {
                Arrival::Deliver {
                    to: conn.client,
                    from: conn.server,
                    message: wire.message,
                }
            }
            Dir::ToClient => Arrival::Drop,
        };
        self.forget_if_drained(wire.conn);
        arrival
    }

    /// Cuts (or, with `heal`, restores) the given directed links.
    pub(super) fn cut_links(&mut self, pairs: &[(NodeId, NodeId)], heal: bool) {
        for &p in pairs {
            if heal {
                if let Some(n) = self.cut.get_mut(&p) {
                    *n -= 1;
                    if *n == 0 {
                        self.cut.remove(&p);
                    }
                }
            } else {
                *self.cut.entry(p).or_insert(0) += 1;
            }
        }
    }

    /// The given directed links hold what they carry until `until` (or, with `end`,
    /// that hold is over).
    pub(super) fn delay_links(&mut self, pairs: &[(NodeId, NodeId)], until: Nanos, end: bool) {
        for &p in pairs {
            let holds = self.delayed.entry(p).or_default();
            if end {
                if let Some(i) = holds.iter().position(|u| *u == until) {
                    holds.remove(i);
                }
                if holds.is_empty() {
                    self.delayed.remove(&p);
                }
            } else {
                holds.push(until);
            }
        }
    }

    /// The given directed links take a latency in `range_us` (or, with `end`, that
    /// fault is over).
    pub(super) fn slow_links(
        &mut self,
        pairs: &[(NodeId, NodeId)],
        range_us: (u64, u64),
        end: bool,
    ) {
        for &p in pairs {
            let ranges = self.slow.entry(p).or_default();
            if end {
                if let Some(i) = ranges.iter().rposition(|r| *r == range_us) {
                    ranges.remove(i);
                }
                if ranges.is_empty() {
                    self.slow.remove(&p);
                }
            } else {
                ranges.push(range_us);
            }
        }
    }

    /// Whether the directed link is up (not cut).
    pub(super) fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains_key(&(from, to))
    }

    /// Puts a message on connection `id` in direction `dir`, or holds it if the link is
    /// cut (or older messages still wait for it).
    fn push(&mut self, now: Nanos, id: ConnId, dir: Dir, message: Message) -> Vec<Wire> {
        let conn = self.conns.get_mut(&id).expect("live connection");
        let (from, to) = conn.ends(dir);
        let half = conn.half(dir);
        if half.held.is_empty() && !self.cut.contains_key(&(from, to)) {
            return vec![self.transmit(now, id, dir, message)];
        }
        if half.held.is_empty() {
            let now_ms = now / NANOS_PER_MS;
            half.retry_at = now_ms + RTO_MIN_MS;
            half.backoff_ms = RTO_MIN_MS;
            half.held_since = now_ms;
            self.holding.insert((id, dir));
        }
        assert!(half.held.len() < MAX_HELD, "retransmission queue overflow");
        half.held.push_back(message);
        Vec::new()
    }

    fn transmit(&mut self, now: Nanos, id: ConnId, dir: Dir, message: Message) -> Wire {
        let conn = self.conns.get_mut(&id).expect("live connection");
        let (from, to) = conn.ends(dir);
        if let (NodeId::Broker(_), Message::Request { request, .. }) = (to, &message) {
            *self.broker_requests.entry(request.api_name()).or_insert(0) += 1;
        }
        self.messages += 1;
        let (lo, hi) = self
            .slow
            .get(&(from, to))
            .and_then(|r| r.last().copied())
            .unwrap_or(self.latency_us);
        let latency = self.rng.gen_range(lo..=hi) * 1_000;
        let held_until = self
            .delayed
            .get(&(from, to))
            .and_then(|u| u.iter().max().copied())
            .unwrap_or(0);
        let half = conn.half(dir);
        // Strictly after the previous delivery this way: FIFO even with jitter.
        let deliver_at = (now.max(held_until) + latency).max(half.last_delivery + 1);
        half.last_delivery = deliver_at;
        half.in_flight += 1;
        Wire {
            deliver_at,
            conn: id,
            dir,
            message,
        }
    }

    /// Marks connection `id` closed by its client; with `keep_held` false its held
    /// bytes are gone too (the kernel died).
    fn orphan(&mut self, id: ConnId, keep_held: bool) {
        let conn = self.conns.get_mut(&id).expect("live connection");
        conn.closed = true;
        conn.down.held.clear();
        self.holding.remove(&(id, Dir::ToClient));
        if !keep_held {
            conn.up.held.clear();
            self.holding.remove(&(id, Dir::ToServer));
        }
        self.routes.retain(|_, (c, _)| *c != id);
        self.forget_if_drained(id);
    }

    fn forget_if_drained(&mut self, id: ConnId) {
        if self.conns.get(&id).is_some_and(|c| c.closed && c.drained()) {
            self.conns.remove(&id);
        }
    }

    /// Removes connection `id` at once (a reset): nothing of it is delivered any more.
    fn remove(&mut self, id: ConnId) -> Conn {
        let conn = self.conns.remove(&id).expect("live connection");
        self.holding.remove(&(id, Dir::ToServer));
        self.holding.remove(&(id, Dir::ToClient));
        self.open.retain(|_, v| *v != id);
        self.routes.retain(|_, (c, _)| *c != id);
        conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::protocol::{LeaveGroupRequest, Response};
    use rand::SeedableRng;
    use std::sync::Arc;

    const P: NodeId = NodeId::Pipeline(0);
    const B: NodeId = NodeId::Broker(1);

    fn net() -> Network {
        Network::new(ChaCha8Rng::seed_from_u64(1), (100, 200))
    }

    fn leave(correlation_id: u64) -> Message {
        Message::Request {
            correlation_id,
            request: Request::LeaveGroup(LeaveGroupRequest {
                group_id: Arc::from("etl"),
                members: vec![(Arc::from("m"), None)],
                reason: None,
            }),
        }
    }

    fn answer(wire: &Wire) -> Message {
        let Message::Request { correlation_id, .. } = wire.message else {
            panic!("a request")
        };
        Message::Response {
            correlation_id,
            response: Response::Heartbeat(crate::kafka::protocol::HeartbeatResponse {
                error: crate::kafka::protocol::ErrorCode::None,
            }),
        }
    }

    fn live(inc: u64) -> impl Fn(NodeId) -> Option<u64> {
        move |_| Some(inc)
    }

    /// A connection whose first request never reaches its server is given up after
    /// `socket.connection.setup.timeout.ms`, and its client is told; one that got
    /// through once keeps retransmitting.
    #[test]
    fn a_connection_never_set_up_is_given_up_after_the_setup_timeout() {
        let mut n = net();
        n.cut_links(&[(P, B)], false);
        assert!(n.request(0, P, 1, B, 1, Channel::Main, leave(7)).is_empty());
        let mut told = Vec::new();
        let mut at = 0;
        while told.is_empty() {
            at = n.next_retransmit_ms().expect("held");
            assert!(at <= SETUP_TIMEOUT_MS, "retried by the setup deadline");
            told = n.retransmit(at * NANOS_PER_MS).1;
        }
        assert_eq!((at, told), (SETUP_TIMEOUT_MS, vec![(P, B)]));
        assert_eq!(n.next_retransmit_ms(), None, "nothing left to send");
        // Set up first, then cut: TCP's own give-up applies, not the setup timeout.
        n.cut_links(&[(P, B)], true);
        let sent = n.request(20_000 * NANOS_PER_MS, P, 1, B, 1, Channel::Main, leave(8));
        for w in sent {
            assert!(matches!(n.arrive(w, live(1)), Arrival::Deliver { .. }));
        }
        n.cut_links(&[(P, B)], false);
        assert!(n
            .request(21_000 * NANOS_PER_MS, P, 1, B, 1, Channel::Main, leave(9))
            .is_empty());
        let (_, told) = n.retransmit(40_000 * NANOS_PER_MS);
        assert!(
            told.is_empty(),
            "an established connection is not given up at 10 s"
        );
    }

    /// A request held on a cut link and closed by its client still reaches the server
    /// when the link heals, after a newer request on a new connection; the answer to
    /// it is dropped.
    #[test]
    fn a_closed_connection_still_delivers_what_its_kernel_held() {
        let mut n = net();
        n.cut_links(&[(P, B)], false);
        assert!(n.request(0, P, 1, B, 1, Channel::Main, leave(7)).is_empty());
        n.close(P, 1, B, Channel::Main);
        n.cut_links(&[(P, B)], true);
        let new = n.request(1_000, P, 1, B, 1, Channel::Main, leave(8));
        assert_eq!(new.len(), 1);
        let (late, told) = n.retransmit(200 * NANOS_PER_MS);
        assert!(told.is_empty());
        assert_eq!(late.len(), 1);
        assert!(
            late[0].deliver_at > new[0].deliver_at,
            "the new request first"
        );
        let answer_new = answer(&new[0]);
        let answer_late = answer(&late[0]);
        for w in new.into_iter().chain(late) {
            assert!(matches!(
                n.arrive(w, live(1)),
                Arrival::Deliver { to: B, .. }
            ));
        }
        let back = n.respond(300 * NANOS_PER_MS, B, answer_new);
        assert_eq!(back.len(), 1, "the open connection's answer goes back");
        assert!(
            n.respond(300 * NANOS_PER_MS, B, answer_late).is_empty(),
            "the closed connection's answer is dropped"
        );
        let Arrival::Deliver { message, .. } = n.arrive(back.into_iter().next().unwrap(), live(1))
        else {
            panic!("delivered")
        };
        assert!(
            matches!(
                message,
                Message::Response {
                    correlation_id: 8,
                    ..
                }
            ),
            "the client's own correlation id"
        );
    }

    /// A request that reaches a restarted server is answered with a reset that its
    /// client learns; a `reset` fault tells the client of every open connection.
    #[test]
    fn resets_reach_the_client() {
        let mut n = net();
        let w = n.request(0, P, 1, B, 1, Channel::Main, leave(1));
        let restarted = |node| (node == B).then_some(2).or(Some(1));
        assert!(matches!(
            n.arrive(w.into_iter().next().unwrap(), restarted),
            Arrival::Reset { notify: P, peer: B }
        ));
        n.request(0, P, 1, B, 2, Channel::Main, leave(2));
        n.request(0, P, 1, B, 2, Channel::Consumer, leave(3));
        assert_eq!(n.reset_between(B, P), vec![(P, B)]);
        assert!(n.reset_between(B, P).is_empty(), "nothing left to reset");
    }

    /// A delayed link holds what is sent into it until the delay ends, in order.
    #[test]
    fn a_delayed_link_delivers_in_order_when_the_delay_ends() {
        let mut n = net();
        let until = 5_000 * NANOS_PER_MS;
        n.delay_links(&[(P, B)], until, false);
        let a = n.request(0, P, 1, B, 1, Channel::Main, leave(1));
        let b = n.request(1, P, 1, B, 1, Channel::Main, leave(2));
        assert!(a[0].deliver_at > until && b[0].deliver_at > a[0].deliver_at);
        n.delay_links(&[(P, B)], until, true);
        let c = n.request(6_000 * NANOS_PER_MS, P, 1, B, 1, Channel::Main, leave(3));
        assert!(c[0].deliver_at < 6_001 * NANOS_PER_MS);
    }
}
