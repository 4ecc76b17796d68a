//! What every Kafka client shares: the request side of `NetworkClient` (correlation
//! ids, in-flight requests and their deadlines) and the client's `Metadata` cache
//! (leaders and epochs per partition, refreshed on `metadata.max.age.ms` and on
//! partition-level errors).

use crate::actor::{Channel, Outbox};
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{
    BrokerId, ErrorCode, LeaderEpoch, Message, MetadataRequest, MetadataResponse, NodeId, Request,
    Response, TopicPartition,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Sanity bound on requests in flight from one client.
const MAX_IN_FLIGHT_REQUESTS: usize = 1 << 16;

/// A request that reached a client: clients serve none, so this is a bug of the
/// simulation, not of the system it simulates.
pub(crate) fn refuse_request(client: NodeId, from: NodeId, request: &Request) -> ! {
    panic!(
        "{client} serves no requests, got {} from {from}",
        request.api_name()
    )
}

/// The correlation id and the response of a message that reached `client`, which
/// serves no requests (see [`refuse_request`]).
pub(crate) fn into_response(client: NodeId, from: NodeId, message: Message) -> (u64, Response) {
    match message {
        Message::Response {
            correlation_id,
            response,
        } => (correlation_id, response),
        Message::Request { request, .. } => refuse_request(client, from, &request),
    }
}

/// A response whose kind does not match the request it answers: a bug of the simulation.
pub(crate) fn mismatched_response(client: NodeId, response: &dyn std::fmt::Debug) -> ! {
    panic!("{client}: response {response:?} does not match its request")
}

/// A request awaiting its response.
#[derive(Debug)]
pub(crate) struct InFlightRequest<K> {
    /// The broker it went to.
    pub(crate) broker: BrokerId,
    /// When it counts as failed (`sent + request.timeout.ms`).
    pub(crate) deadline: Millis,
    /// What the client needs to handle the response.
    pub(crate) kind: K,
}

/// The request side of Kafka's `NetworkClient`: correlation ids, in-flight requests and
/// their deadlines. `K` is the client's per-request context.
#[derive(Debug)]
pub(crate) struct NetworkClient<K> {
    /// The connections this client's requests go out on.
    channel: Channel,
    next_correlation_id: u64,
    request_timeout_ms: u64,
    in_flight: BTreeMap<u64, InFlightRequest<K>>,
}

impl<K> NetworkClient<K> {
    /// A client on `channel` whose requests time out after `request_timeout_ms`.
    pub(crate) fn new(channel: Channel, request_timeout_ms: u64) -> Self {
        Self::with_base(channel, request_timeout_ms, 0)
    }

    /// A client whose correlation ids start at `base` (so that two clients sharing one
    /// process, a pipeline's consumer and producer, never collide).
    pub(crate) fn with_base(channel: Channel, request_timeout_ms: u64, base: u64) -> Self {
        NetworkClient {
            channel,
            next_correlation_id: base,
            request_timeout_ms,
            in_flight: BTreeMap::new(),
        }
    }

    /// Sends `request` to `broker` and returns its correlation id. With `kind == None`
    /// no response is expected (`acks=0`) and nothing stays in flight.
    pub(crate) fn send(
        &mut self,
        now: Millis,
        broker: BrokerId,
        request: Request,
        kind: Option<K>,
        out: &mut Outbox,
    ) -> u64 {
        let timeout_ms = self.request_timeout_ms;
        self.send_with_timeout(now, broker, request, kind, timeout_ms, out)
    }

    /// [`NetworkClient::send`] with a timeout of its own (a `JoinGroup` waits up to the
    /// rebalance timeout plus a margin, as Kafka's `AbstractCoordinator` lets it).
    pub(crate) fn send_with_timeout(
        &mut self,
        now: Millis,
        broker: BrokerId,
        request: Request,
        kind: Option<K>,
        timeout_ms: u64,
        out: &mut Outbox,
    ) -> u64 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        out.send_on(
            self.channel,
            NodeId::Broker(broker),
            Message::Request {
                correlation_id,
                request,
            },
        );
        if let Some(kind) = kind {
            self.in_flight.insert(
                correlation_id,
                InFlightRequest {
                    broker,
                    deadline: now + timeout_ms,
                    kind,
                },
            );
            assert!(
                self.in_flight.len() <= MAX_IN_FLIGHT_REQUESTS,
                "more than {MAX_IN_FLIGHT_REQUESTS} requests in flight"
            );
        }
        correlation_id
    }

    /// Takes the request a response answers; `None` for a response to a request that
    /// already failed (timed out or disconnected), which the caller ignores.
    pub(crate) fn complete(
        &mut self,
        from: NodeId,
        correlation_id: u64,
    ) -> Option<InFlightRequest<K>> {
        let request = self.in_flight.remove(&correlation_id)?;
        assert_eq!(
            from,
            NodeId::Broker(request.broker),
            "response to correlation id {correlation_id} came from the wrong node"
        );
        Some(request)
    }

    /// Kafka's `NetworkClient.handleTimedOutRequests`: every broker with a request past
    /// its deadline is disconnected, which fails every request in flight to it. Returns
    /// the failed requests, oldest first.
    pub(crate) fn disconnect_timed_out(&mut self, now: Millis) -> Vec<InFlightRequest<K>> {
        let brokers = self.timed_out_brokers(now);
        self.disconnect(&brokers)
    }

    /// The brokers with a request past its deadline at `now`.
    pub(crate) fn timed_out_brokers(&self, now: Millis) -> BTreeSet<BrokerId> {
        self.in_flight
            .values()
            .filter(|r| r.deadline <= now)
            .map(|r| r.broker)
            .collect()
    }

    /// The connections to `brokers` broke: every request in flight to them fails.
    /// Returns the failed requests, oldest first.
    pub(crate) fn disconnect(&mut self, brokers: &BTreeSet<BrokerId>) -> Vec<InFlightRequest<K>> {
        self.fail_where(|r| brokers.contains(&r.broker))
    }

    /// Fails the requests in flight that `pred` picks; returns them, oldest first.
    pub(crate) fn fail_where(
        &mut self,
        mut pred: impl FnMut(&InFlightRequest<K>) -> bool,
    ) -> Vec<InFlightRequest<K>> {
        self.in_flight
            .extract_if(.., |_, r| pred(r))
            .map(|(_, r)| r)
            .collect()
    }

    /// The deadlines of the requests in flight, oldest request first.
    pub(crate) fn deadlines(&self) -> impl Iterator<Item = Millis> + '_ {
        self.in_flight.values().map(|r| r.deadline)
    }

    /// Requests in flight to `broker` whose context matches `pred`.
    pub(crate) fn count(&self, broker: BrokerId, pred: impl Fn(&K) -> bool) -> usize {
        self.in_flight
            .values()
            .filter(|r| r.broker == broker && pred(&r.kind))
            .count()
    }

    /// The earliest request deadline.
    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.in_flight.values().map(|r| r.deadline).min()
    }

    /// Contexts of the requests in flight, oldest first.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = &K> {
        self.in_flight.values().map(|r| &r.kind)
    }

    /// Mutable contexts of the requests in flight, oldest first.
    pub(crate) fn kinds_mut(&mut self) -> impl Iterator<Item = &mut K> {
        self.in_flight.values_mut().map(|r| &mut r.kind)
    }

    /// Forgets every request in flight (end of run); late responses are ignored.
    pub(crate) fn abandon_all(&mut self) -> Vec<InFlightRequest<K>> {
        std::mem::take(&mut self.in_flight).into_values().collect()
    }
}

// ---------------------------------------------------------------- MetadataCache

/// What a client knows of a partition's leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartitionLeader {
    /// The leader, `None` when the partition has none (or reported an error).
    pub(crate) leader: Option<BrokerId>,
    /// The leader epoch of this information.
    pub(crate) leader_epoch: LeaderEpoch,
}

/// A client's view of the cluster (Kafka's `Metadata` + `DefaultMetadataUpdater`):
/// partition counts and leaders of the topics of interest, refreshed with `Metadata`
/// requests to the bootstrap brokers.
///
/// The target is Kafka's `leastLoadedNode` among the bootstrap brokers: the one with the
/// fewest requests of this client in flight, ties broken by a rotation that starts at a
/// seeded index and advances after every failed attempt (so a broker holding a hung
/// request is avoided, and a failed one is not retried first).
///
/// Refresh rules: at most one request in flight; a refresh is due when one was
/// requested (an error, an unknown leader or topic) or `metadata.max.age.ms` after the
/// last success, but never sooner than `retry.backoff.ms` after the last attempt ended.
/// A requested update is satisfied only by a response to a request sent after it was
/// requested (Kafka's `requestVersion`). Leader information with an older leader epoch
/// than the cached one is ignored (KIP-320).
#[derive(Debug)]
pub(crate) struct MetadataCache {
    pub(crate) bootstrap: Vec<BrokerId>,
    pub(crate) next_node: usize,
    topics: BTreeSet<Arc<str>>,
    partition_counts: BTreeMap<Arc<str>, u32>,
    partitions: BTreeMap<TopicPartition, PartitionLeader>,
    requested_version: u64,
    satisfied_version: u64,
    /// The requested version the request in flight was sent at.
    in_flight: Option<u64>,
    last_attempt_end: Option<Millis>,
    last_success: Option<Millis>,
    max_age_ms: u64,
    backoff_ms: u64,
}

impl MetadataCache {
    /// A cache needing its first refresh, which goes to `bootstrap[first_node]`.
    pub(crate) fn new(
        bootstrap: Vec<BrokerId>,
        first_node: usize,
        max_age_ms: u64,
        backoff_ms: u64,
    ) -> Self {
        assert!(!bootstrap.is_empty(), "a client needs bootstrap brokers");
        MetadataCache {
            bootstrap,
            next_node: first_node,
            topics: BTreeSet::new(),
            partition_counts: BTreeMap::new(),
            partitions: BTreeMap::new(),
            requested_version: 1,
            satisfied_version: 0,
            in_flight: None,
            last_attempt_end: None,
            last_success: None,
            max_age_ms,
            backoff_ms,
        }
    }

    /// Adds a topic of interest; a new one requests an update. Returns whether it was new.
    pub(crate) fn add_topic(&mut self, topic: &Arc<str>) -> bool {
        let new = self.topics.insert(topic.clone());
        if new {
            self.request_update();
        }
        new
    }

    /// Kafka's `Metadata.requestUpdate`.
    pub(crate) fn request_update(&mut self) {
        self.requested_version += 1;
    }

    /// The partition count of a topic, once known.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<u32> {
        self.partition_counts.get(topic).copied()
    }

    /// Partition counts of every known topic.
    pub(crate) fn partition_counts(&self) -> impl Iterator<Item = (&Arc<str>, u32)> {
        self.partition_counts.iter().map(|(t, n)| (t, *n))
    }

    /// The partition's leader and leader epoch, if it has a leader.
    pub(crate) fn leader(&self, tp: &TopicPartition) -> Option<(BrokerId, LeaderEpoch)> {
        let p = self.partitions.get(tp)?;
        p.leader.map(|l| (l, p.leader_epoch))
    }

    /// When the next `Metadata` request is due; `None` while one is in flight.
    pub(crate) fn due_at(&self) -> Option<Millis> {
        if self.in_flight.is_some() {
            return None;
        }
        let allowed = self.last_attempt_end.map_or(0, |t| t + self.backoff_ms);
        let wanted = if self.requested_version > self.satisfied_version {
            0
        } else {
            self.last_success.map_or(0, |t| t + self.max_age_ms)
        };
        Some(allowed.max(wanted))
    }

    /// Kafka's `leastLoadedNode`: the bootstrap broker with the fewest requests in
    /// flight, starting the search at the rotating `next_node`.
    pub(crate) fn least_loaded_node<K>(&self, net: &NetworkClient<K>) -> BrokerId {
        let n = self.bootstrap.len();
        (0..n)
            .map(|i| self.bootstrap[(self.next_node + i) % n])
            .min_by_key(|b| net.count(*b, |_| true))
            .expect("bootstrap brokers")
    }

    /// Moves the rotation on (after a failed request to the least loaded node).
    pub(crate) fn rotate(&mut self) {
        self.next_node += 1;
    }

    /// Sends a `Metadata` request when one is due.
    pub(crate) fn poll<K>(
        &mut self,
        now: Millis,
        net: &mut NetworkClient<K>,
        kind: K,
        out: &mut Outbox,
    ) {
        if self.due_at().is_some_and(|t| t <= now) {
            let node = self.least_loaded_node(net);
            let request = Request::Metadata(MetadataRequest {
                topics: Some(self.topics.iter().cloned().collect()),
            });
            net.send(now, node, request, Some(kind), out);
            self.in_flight = Some(self.requested_version);
        }
    }

    /// Applies a `Metadata` response to the request in flight.
    pub(crate) fn on_response(&mut self, now: Millis, response: &MetadataResponse) {
        let version = self
            .in_flight
            .take()
            .expect("a Metadata response without a Metadata request in flight");
        self.last_attempt_end = Some(now);
        self.last_success = Some(now);
        self.satisfied_version = self.satisfied_version.max(version);
        let mut counts: BTreeMap<Arc<str>, u32> = BTreeMap::new();
        let mut invalid = false;
        for pm in &response.partitions {
            if !self.topics.contains(&pm.tp.topic) {
                continue;
            }
            let count = counts.entry(pm.tp.topic.clone()).or_insert(0);
            *count = (*count).max(pm.tp.partition + 1);
            let fresh = PartitionLeader {
                leader: if pm.error == ErrorCode::None {
                    pm.leader
                } else {
                    None
                },
                leader_epoch: pm.leader_epoch,
            };
            let stale = self
                .partitions
                .get(&pm.tp)
                .is_some_and(|old| old.leader_epoch > fresh.leader_epoch);
            if !stale {
                self.partitions.insert(pm.tp.clone(), fresh);
            }
            // Kafka's `Metadata.handleMetadataResponse`: a partition-level
            // `InvalidMetadataException` (LEADER_NOT_AVAILABLE while the partition has no
            // leader, ...) requests another update, sent after `retry.backoff.ms`. Without
            // it a client whose only use of the partition is waiting for its leader (a
            // consumer position awaiting KIP-320 validation) waits `metadata.max.age.ms`.
            if pm.error.is_invalid_metadata() {
                invalid = true;
            }
        }
        if invalid {
            self.request_update();
        }
        for (topic, count) in counts {
            let known = self.partition_counts.entry(topic).or_insert(0);
            *known = (*known).max(count);
        }
        if self
            .topics
            .iter()
            .any(|t| !self.partition_counts.contains_key(t))
        {
            self.request_update();
        }
    }

    /// The request in flight failed (timeout or disconnect): try the next bootstrap
    /// broker after the backoff.
    pub(crate) fn on_failure(&mut self, now: Millis) {
        assert!(
            self.in_flight.take().is_some(),
            "no Metadata request in flight"
        );
        self.last_attempt_end = Some(now);
        self.next_node += 1;
    }

    /// Forgets the request in flight (end of run).
    pub(crate) fn abandon(&mut self) {
        self.in_flight = None;
    }
}
