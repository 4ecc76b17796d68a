//! The consumer client: Kafka's `KafkaConsumer` in `assign` mode (`Fetcher`,
//! `OffsetFetcher`, `SubscriptionState`) as a sans-IO state machine.
//!
//! Every partition of the configured topics is assigned once metadata names it. A
//! partition without a position gets one from `ListOffsets` per `auto.offset.reset`;
//! partitions with a position are fetched from their leader, one `Fetch` in flight per
//! broker. What the application would see from `poll` is recorded as history entries:
//! [`Op::Poll`] for new records, [`Op::Seek`] for position resets and
//! [`Op::ObserveHighWatermark`] whenever a partition's high watermark changes.

use crate::actor::{Actor, Millis, Outbox};
use crate::config::{AutoOffsetReset, ConsumerConfig};
use crate::history::{Entry, Op, Outcome, ReadRecord};
use crate::producer::{InFlightRequest, MetadataCache, NetworkClient};
use crate::protocol::{
    BrokerId, ErrorCode, FetchPartition, FetchPartitionResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, Message, NodeId, Offset, Request, Response,
    TopicPartition, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use crate::record::{RecordBatch, RecordError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the consumer needs to handle a response.
#[derive(Debug)]
enum ConsumerRequest {
    /// A `Metadata` refresh.
    Metadata,
    /// A `Fetch`: each partition with the offset it was fetched at.
    Fetch {
        partitions: Vec<(TopicPartition, Offset)>,
    },
    /// A `ListOffsets` for partitions whose position is being reset.
    ListOffsets { partitions: Vec<TopicPartition> },
}

/// A position reset waiting for (or awaiting) its `ListOffsets` answer.
#[derive(Debug)]
struct PendingReset {
    /// The `Seek` entry's reason.
    reason: String,
    /// The correlation id of the `ListOffsets` in flight, if any.
    in_flight: Option<u64>,
}

/// `SubscriptionState.TopicPartitionState`: one assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// The next offset to fetch.
    position: Option<Offset>,
    /// The position must be (re)set with `ListOffsets`.
    reset: Option<PendingReset>,
    /// No fetch or `ListOffsets` for it before this time.
    backoff_until: Millis,
    /// The last high watermark seen in a fetch response.
    last_high_watermark: Option<Offset>,
    /// `auto.offset.reset=none` left it without a valid position: not fetched any more.
    failed: bool,
}

/// A Kafka consumer with every partition of its topics assigned, sans-IO.
#[derive(Debug)]
pub struct Consumer {
    index: u32,
    config: ConsumerConfig,
    topics: Vec<Arc<str>>,
    metadata: MetadataCache,
    net: NetworkClient<ConsumerRequest>,
    assignment: BTreeMap<TopicPartition, PartitionState>,
    /// The latest time seen (timers are computed relative to it).
    now: Millis,
}

impl Consumer {
    /// An `assign`-mode consumer of all partitions of `topics` (group membership comes
    /// later), with its history index, configuration, bootstrap brokers and random seed
    /// (the first bootstrap broker).
    pub fn new(
        index: u32,
        config: ConsumerConfig,
        bootstrap: Vec<BrokerId>,
        topics: Vec<Arc<str>>,
        seed: u64,
    ) -> Self {
        assert!(!bootstrap.is_empty(), "a consumer needs bootstrap brokers");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let first_node = rng.gen_range(0..bootstrap.len());
        let mut metadata = MetadataCache::new(
            bootstrap,
            first_node,
            config.metadata_max_age_ms,
            config.retry_backoff_ms,
        );
        for topic in &topics {
            metadata.add_topic(topic);
        }
        Consumer {
            index,
            net: NetworkClient::new(config.request_timeout_ms),
            config,
            topics,
            metadata,
            assignment: BTreeMap::new(),
            now: 0,
        }
    }

    /// Current position per assigned partition that has one (for the end-of-run
    /// snapshot).
    pub fn positions(&self) -> Vec<(TopicPartition, Offset)> {
        self.assignment
            .iter()
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect()
    }

    fn process(&self) -> NodeId {
        NodeId::Consumer(self.index)
    }

    fn reset_policy_name(&self) -> &'static str {
        match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::None => "none",
        }
    }

    /// One step: fail timed-out requests, refresh metadata, reset positions, fetch.
    fn run(&mut self, now: Millis, out: &mut Outbox) {
        self.now = self.now.max(now);
        self.handle_timeouts(now, out);
        self.reset_positions(now, out);
        self.send_fetches(now, out);
        self.metadata
            .poll(now, &mut self.net, ConsumerRequest::Metadata, out);
    }

    /// Assigns partitions metadata names for the first time; they need a position.
    fn assign_new_partitions(&mut self, now: Millis, out: &mut Outbox) {
        let known: Vec<(Arc<str>, u32)> = self
            .metadata
            .partition_counts()
            .filter(|(t, _)| self.topics.contains(t))
            .map(|(t, n)| (t.clone(), n))
            .collect();
        for (topic, count) in known {
            for partition in 0..count {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition,
                };
                if self.assignment.contains_key(&tp) {
                    continue;
                }
                let mut state = PartitionState {
                    position: None,
                    reset: None,
                    backoff_until: 0,
                    last_high_watermark: None,
                    failed: false,
                };
                if self.config.auto_offset_reset == AutoOffsetReset::None {
                    state.failed = true;
                    out.record(Entry {
                        outcome: Outcome::Fail {
                            error: format!(
                                "NoOffsetForPartitionException: {tp} has no position and auto.offset.reset=none"
                            ),
                        },
                        ..Entry::instant(
                            self.process(),
                            now,
                            Op::Poll {
                                partition: tp.clone(),
                                records: Vec::new(),
                                high_watermark: -1,
                            },
                        )
                    });
                } else {
                    state.reset = Some(PendingReset {
                        reason: format!("auto.offset.reset={}", self.reset_policy_name()),
                        in_flight: None,
                    });
                }
                self.assignment.insert(tp, state);
            }
        }
    }

    /// Disconnects brokers with timed-out requests; their requests are retried.
    fn handle_timeouts(&mut self, now: Millis, out: &mut Outbox) {
        let failed = self.net.disconnect_timed_out(now);
        for r in &failed {
            out.disconnect(NodeId::Broker(r.broker));
        }
        self.handle_failed(now, failed);
    }

    /// Requests lost with their connection: refresh metadata and retry.
    fn handle_failed(&mut self, now: Millis, failed: Vec<InFlightRequest<ConsumerRequest>>) {
        if failed.is_empty() {
            return;
        }
        self.metadata.request_update();
        for request in failed {
            match request.kind {
                ConsumerRequest::Metadata => self.metadata.on_failure(now),
                ConsumerRequest::Fetch { partitions } => {
                    // Kafka backs off before reconnecting; without it a refused
                    // connection would be retried at the same instant forever.
                    for (tp, _) in partitions {
                        if let Some(state) = self.assignment.get_mut(&tp) {
                            state.backoff_until =
                                state.backoff_until.max(now + self.config.retry_backoff_ms);
                        }
                    }
                }
                ConsumerRequest::ListOffsets { partitions } => {
                    for tp in partitions {
                        self.list_offsets_failed(now, &tp);
                    }
                }
            }
        }
    }

    /// A `ListOffsets` attempt for `tp` failed: retry after `retry.backoff.ms`.
    fn list_offsets_failed(&mut self, now: Millis, tp: &TopicPartition) {
        let state = self.assignment.get_mut(tp).expect("assigned partition");
        if let Some(reset) = &mut state.reset {
            reset.in_flight = None;
        }
        state.backoff_until = now + self.config.retry_backoff_ms;
    }

    /// `OffsetFetcher.resetPositionsIfNeeded`: one `ListOffsets` per leader.
    fn reset_positions(&mut self, now: Millis, out: &mut Outbox) {
        let timestamp = match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => EARLIEST_TIMESTAMP,
            AutoOffsetReset::Latest => LATEST_TIMESTAMP,
            AutoOffsetReset::None => return,
        };
        let mut by_leader: BTreeMap<BrokerId, Vec<(TopicPartition, i64, i32)>> = BTreeMap::new();
        let mut unknown_leader = false;
        for (tp, state) in &self.assignment {
            let waiting = state.reset.as_ref().is_some_and(|r| r.in_flight.is_none());
            if state.failed || !waiting || state.backoff_until > now {
                continue;
            }
            match self.metadata.leader(tp) {
                Some((leader, epoch)) => {
                    by_leader
                        .entry(leader)
                        .or_default()
                        .push((tp.clone(), timestamp, epoch))
                }
                None => unknown_leader = true,
            }
        }
        if unknown_leader {
            self.metadata.request_update();
        }
        for (leader, partitions) in by_leader {
            let tps: Vec<TopicPartition> = partitions.iter().map(|(tp, _, _)| tp.clone()).collect();
            let request = Request::ListOffsets(ListOffsetsRequest {
                isolation_level: self.config.isolation_level,
                partitions,
            });
            let kind = ConsumerRequest::ListOffsets {
                partitions: tps.clone(),
            };
            let correlation_id = self.net.send(now, leader, request, Some(kind), out);
            for tp in tps {
                let state = self.assignment.get_mut(&tp).expect("assigned partition");
                state.reset.as_mut().expect("reset pending").in_flight = Some(correlation_id);
            }
        }
    }

    /// `AbstractFetch.prepareFetchRequests`: one `Fetch` per leader with no fetch in
    /// flight, covering its fetchable partitions.
    fn send_fetches(&mut self, now: Millis, out: &mut Outbox) {
        let mut by_leader: BTreeMap<BrokerId, Vec<FetchPartition>> = BTreeMap::new();
        let mut unknown_leader = false;
        for (tp, state) in &self.assignment {
            let Some(position) = state.position else {
                continue;
            };
            if state.failed || state.reset.is_some() || state.backoff_until > now {
                continue;
            }
            let Some((leader, epoch)) = self.metadata.leader(tp) else {
                unknown_leader = true;
                continue;
            };
            if self
                .net
                .count(leader, |k| matches!(k, ConsumerRequest::Fetch { .. }))
                > 0
            {
                continue;
            }
            by_leader.entry(leader).or_default().push(FetchPartition {
                tp: tp.clone(),
                fetch_offset: position,
                current_leader_epoch: epoch,
            });
        }
        if unknown_leader {
            self.metadata.request_update();
        }
        for (leader, partitions) in by_leader {
            let kind = ConsumerRequest::Fetch {
                partitions: partitions
                    .iter()
                    .map(|p| (p.tp.clone(), p.fetch_offset))
                    .collect(),
            };
            let request = Request::Fetch(FetchRequest {
                replica_id: None,
                broker_epoch: -1,
                max_wait_ms: self.config.fetch_max_wait_ms,
                min_bytes: self.config.fetch_min_bytes,
                max_bytes: self.config.max_partition_fetch_bytes,
                isolation_level: self.config.isolation_level,
                partitions,
            });
            self.net.send(now, leader, request, Some(kind), out);
        }
    }

    /// Applies a `ListOffsets` answer: new positions, or a retry after the backoff.
    fn handle_list_offsets(
        &mut self,
        now: Millis,
        correlation_id: u64,
        partitions: Vec<TopicPartition>,
        response: ListOffsetsResponse,
        out: &mut Outbox,
    ) {
        for tp in partitions {
            let state = self.assignment.get_mut(&tp).expect("assigned partition");
            if state
                .reset
                .as_ref()
                .is_none_or(|r| r.in_flight != Some(correlation_id))
            {
                continue;
            }
            let part = response
                .partitions
                .iter()
                .find(|p| p.tp == tp)
                .unwrap_or_else(|| panic!("ListOffsets response lacks partition {tp}"));
            if part.error == ErrorCode::None && part.offset >= 0 {
                let reason = state.reset.take().expect("reset pending").reason;
                state.position = Some(part.offset);
                out.record(Entry::instant(
                    NodeId::Consumer(self.index),
                    now,
                    Op::Seek {
                        partition: tp.clone(),
                        offset: part.offset,
                        reason,
                    },
                ));
            } else {
                self.metadata.request_update();
                self.list_offsets_failed(now, &tp);
            }
        }
    }

    /// `AbstractFetch.handleFetchSuccess` / `initializeCompletedFetch` per partition.
    fn handle_fetch(
        &mut self,
        now: Millis,
        broker: BrokerId,
        partitions: Vec<(TopicPartition, Offset)>,
        response: FetchResponse,
        out: &mut Outbox,
    ) {
        for (tp, fetch_offset) in partitions {
            let Some(part) = response.partitions.iter().find(|p| p.tp == tp) else {
                if response.error != ErrorCode::None {
                    self.fetch_error(now, &tp, fetch_offset, response.error, -1, out);
                }
                continue;
            };
            let state = self.assignment.get(&tp).expect("assigned partition");
            if state.failed || state.reset.is_some() || state.position != Some(fetch_offset) {
                // A stale answer: the position moved since this fetch was sent.
                continue;
            }
            let error = if response.error != ErrorCode::None {
                response.error
            } else {
                part.error
            };
            if error == ErrorCode::None {
                self.fetched_data(now, broker, fetch_offset, part, out);
            } else {
                self.fetch_error(now, &tp, fetch_offset, error, part.high_watermark, out);
            }
        }
    }

    /// Records the new records of one partition and advances its position.
    fn fetched_data(
        &mut self,
        now: Millis,
        broker: BrokerId,
        fetch_offset: Offset,
        part: &FetchPartitionResponse,
        out: &mut Outbox,
    ) {
        let tp = &part.tp;
        let mut position = fetch_offset;
        let mut records = Vec::new();
        for (i, bytes) in part.batches.iter().enumerate() {
            let last_element = i + 1 == part.batches.len();
            let mut buf: &[u8] = bytes;
            while !buf.is_empty() {
                let batch = match RecordBatch::decode(buf) {
                    Ok((batch, used)) => {
                        buf = &buf[used..];
                        batch
                    }
                    // A size-limited fetch may end with a partial batch: ignore it.
                    Err(RecordError::Truncated { .. }) if last_element => break,
                    Err(e) => panic!(
                        "consumer-{}: fetch of {tp} at offset {fetch_offset} from broker-{broker} returned a bad batch: {e}",
                        self.index
                    ),
                };
                let last_offset = batch.base_offset + Offset::from(batch.last_offset_delta);
                if last_offset < position {
                    continue;
                }
                let is_control = batch.attributes & crate::record::CONTROL_BIT != 0;
                if !is_control {
                    for record in &batch.records {
                        let offset = batch.base_offset + Offset::from(record.offset_delta);
                        if offset < position {
                            continue;
                        }
                        records.push(self.read_record(tp, offset, record));
                    }
                }
                position = last_offset + 1;
            }
        }
        let state = self.assignment.get_mut(tp).expect("assigned partition");
        state.position = Some(position);
        if state.last_high_watermark != Some(part.high_watermark) {
            state.last_high_watermark = Some(part.high_watermark);
            out.record(Entry::instant(
                NodeId::Consumer(self.index),
                now,
                Op::ObserveHighWatermark {
                    partition: tp.clone(),
                    high_watermark: part.high_watermark,
                    broker: NodeId::Broker(broker),
                },
            ));
        }
        if !records.is_empty() {
            out.record(Entry::instant(
                NodeId::Consumer(self.index),
                now,
                Op::Poll {
                    partition: tp.clone(),
                    records,
                    high_watermark: part.high_watermark,
                },
            ));
        }
    }

    /// A record as the application sees it: UTF-8 key, value parsed from decimal ASCII.
    fn read_record(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        record: &crate::record::Record,
    ) -> ReadRecord {
        let key = record.key.as_ref().map(|k| {
            String::from_utf8(k.to_vec()).unwrap_or_else(|_| {
                panic!("consumer-{}: key of {tp}@{offset} is not UTF-8", self.index)
            })
        });
        let value = record
            .value
            .as_ref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "consumer-{}: value of {tp}@{offset} is not a decimal u64: {:?}",
                    self.index, record.value
                )
            });
        ReadRecord { offset, key, value }
    }

    /// `AbstractFetch.handleInitializeErrors` for one partition.
    fn fetch_error(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        fetch_offset: Offset,
        error: ErrorCode,
        high_watermark: Offset,
        out: &mut Outbox,
    ) {
        let policy = self.reset_policy_name();
        let none_policy = self.config.auto_offset_reset == AutoOffsetReset::None;
        let backoff_until = now + self.config.retry_backoff_ms;
        let process = self.process();
        let state = self.assignment.get_mut(tp).expect("assigned partition");
        match error {
            ErrorCode::OffsetOutOfRange if none_policy => {
                state.failed = true;
                out.record(Entry {
                    outcome: Outcome::Fail {
                        error: format!(
                            "OffsetOutOfRangeException: OFFSET_OUT_OF_RANGE at {fetch_offset}; auto.offset.reset=none"
                        ),
                    },
                    ..Entry::instant(
                        process,
                        now,
                        Op::Poll {
                            partition: tp.clone(),
                            records: Vec::new(),
                            high_watermark,
                        },
                    )
                });
            }
            ErrorCode::OffsetOutOfRange => {
                state.reset = Some(PendingReset {
                    reason: format!(
                        "OFFSET_OUT_OF_RANGE at {fetch_offset}; auto.offset.reset={policy}"
                    ),
                    in_flight: None,
                });
            }
            ErrorCode::OffsetNotAvailable => state.backoff_until = backoff_until,
            _ => {
                // NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
                // LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR,
                // and anything unexpected: refresh metadata and back off.
                state.backoff_until = backoff_until;
                self.metadata.request_update();
            }
        }
    }
}

impl Actor for Consumer {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.metadata.request_update();
        self.run(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        match message {
            Message::Response {
                correlation_id,
                response,
            } => {
                if let Some(request) = self.net.complete(from, correlation_id) {
                    match (request.kind, response) {
                        (ConsumerRequest::Metadata, Response::Metadata(m)) => {
                            self.metadata.on_response(now, &m);
                            self.assign_new_partitions(now, out);
                        }
                        (ConsumerRequest::Fetch { partitions }, Response::Fetch(f)) => {
                            self.handle_fetch(now, request.broker, partitions, f, out);
                        }
                        (ConsumerRequest::ListOffsets { partitions }, Response::ListOffsets(l)) => {
                            self.handle_list_offsets(now, correlation_id, partitions, l, out);
                        }
                        (_, response) => panic!(
                            "consumer-{}: response {response:?} does not match its request",
                            self.index
                        ),
                    }
                }
            }
            Message::Request { request, .. } => panic!(
                "consumer-{} serves no requests, got {} from {from}",
                self.index,
                request.api_name()
            ),
        }
        self.run(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        if let NodeId::Broker(b) = peer {
            let failed = self.net.disconnect(&[b].into_iter().collect());
            self.handle_failed(now, failed);
        }
        self.run(now, out);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        self.run(now, out);
    }

    fn next_timer(&self) -> Option<Millis> {
        let backoff = self
            .assignment
            .values()
            .filter(|s| !s.failed && s.reset.as_ref().is_none_or(|r| r.in_flight.is_none()))
            .map(|s| s.backoff_until)
            .filter(|t| *t > self.now)
            .min();
        [self.net.next_deadline(), self.metadata.due_at(), backoff]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        LeaderEpoch, ListOffsetsPartitionResponse, MetadataResponse, PartitionMetadata,
    };
    use crate::record::Record;
    use bytes::Bytes;

    fn tp(partition: u32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    fn config(reset: AutoOffsetReset) -> ConsumerConfig {
        ConsumerConfig {
            auto_offset_reset: reset,
            ..ConsumerConfig::default()
        }
    }

    /// Metadata for topic `t`: (partition, leader, leader epoch).
    fn metadata(partitions: &[(u32, BrokerId, LeaderEpoch)]) -> Response {
        Response::Metadata(MetadataResponse {
            brokers: vec![1, 2],
            partitions: partitions
                .iter()
                .map(|&(p, leader, leader_epoch)| PartitionMetadata {
                    tp: tp(p),
                    error: ErrorCode::None,
                    leader: Some(leader),
                    leader_epoch,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                })
                .collect(),
        })
    }

    fn take(out: &mut Outbox) -> Vec<(BrokerId, u64, Request)> {
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

    fn respond(
        c: &mut Consumer,
        now: Millis,
        broker: BrokerId,
        correlation_id: u64,
        response: Response,
        out: &mut Outbox,
    ) {
        c.on_message(
            now,
            NodeId::Broker(broker),
            Message::Response {
                correlation_id,
                response,
            },
            out,
        );
    }

    fn only<'a>(
        reqs: &'a [(BrokerId, u64, Request)],
        api: &str,
    ) -> Vec<&'a (BrokerId, u64, Request)> {
        reqs.iter()
            .filter(|(_, _, r)| r.api_name() == api)
            .collect()
    }

    fn fetch_of(req: &(BrokerId, u64, Request)) -> (BrokerId, u64, FetchRequest) {
        match &req.2 {
            Request::Fetch(f) => (req.0, req.1, f.clone()),
            other => panic!("not a fetch: {other:?}"),
        }
    }

    fn list_offsets_answer(partitions: &[(TopicPartition, ErrorCode, Offset)]) -> Response {
        Response::ListOffsets(ListOffsetsResponse {
            partitions: partitions
                .iter()
                .map(|(tp, error, offset)| ListOffsetsPartitionResponse {
                    tp: tp.clone(),
                    error: *error,
                    offset: *offset,
                    leader_epoch: 0,
                })
                .collect(),
        })
    }

    /// An encoded batch of `values` starting at `base` (keys `k<value>`).
    fn batch(base: Offset, values: &[u64]) -> Bytes {
        RecordBatch {
            base_offset: base,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: values.len() as i32 - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: values
                .iter()
                .enumerate()
                .map(|(i, v)| Record {
                    attributes: 0,
                    timestamp_delta: 0,
                    offset_delta: i as i32,
                    key: Some(Bytes::from(format!("k{v}"))),
                    value: Some(Bytes::from(v.to_string())),
                    headers: Vec::new(),
                })
                .collect(),
        }
        .encode()
    }

    fn fetch_answer(
        tp: TopicPartition,
        error: ErrorCode,
        high_watermark: Offset,
        batches: Vec<Bytes>,
    ) -> Response {
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            partitions: vec![FetchPartitionResponse {
                tp,
                error,
                high_watermark,
                last_stable_offset: high_watermark,
                log_start_offset: 0,
                batches,
            }],
        })
    }

    /// A consumer of `t` (one partition led by broker 1, epoch 3) whose position was reset
    /// to `start`; returns its first Fetch.
    fn fetching(
        config: ConsumerConfig,
        start: Offset,
    ) -> (Consumer, Outbox, (BrokerId, u64, FetchRequest)) {
        let mut c = Consumer::new(2, config, vec![1], vec![Arc::from("t")], 5);
        let mut out = Outbox::default();
        c.on_start(0, &mut out);
        let reqs = take(&mut out);
        respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 3)]), &mut out);
        let reqs = take(&mut out);
        let lo = only(&reqs, "ListOffsets");
        respond(
            &mut c,
            2,
            1,
            lo[0].1,
            list_offsets_answer(&[(tp(0), ErrorCode::None, start)]),
            &mut out,
        );
        let reqs = take(&mut out);
        let fetch = fetch_of(only(&reqs, "Fetch")[0]);
        out.history.clear();
        (c, out, fetch)
    }

    fn ops(out: &Outbox) -> Vec<Op> {
        out.history
            .iter()
            .map(|e| {
                assert_eq!(e.process, NodeId::Consumer(2));
                assert_eq!(
                    Some(e.invoke_ms),
                    e.complete_ms,
                    "consumer entries are instants"
                );
                e.op.clone()
            })
            .collect()
    }

    fn read(offset: Offset, value: u64) -> ReadRecord {
        ReadRecord {
            offset,
            key: Some(format!("k{value}")),
            value,
        }
    }

    #[test]
    fn earliest_reset_then_fetch_from_each_leader() {
        let mut c = Consumer::new(
            2,
            config(AutoOffsetReset::Earliest),
            vec![1],
            vec![Arc::from("t")],
            5,
        );
        let mut out = Outbox::default();
        c.on_start(0, &mut out);
        let reqs = take(&mut out);
        assert_eq!(reqs.len(), 1);
        match &reqs[0].2 {
            Request::Metadata(m) => assert_eq!(m.topics, Some(vec![Arc::from("t")])),
            other => panic!("expected Metadata, got {other:?}"),
        }
        respond(
            &mut c,
            1,
            1,
            reqs[0].1,
            metadata(&[(0, 1, 3), (1, 2, 4)]),
            &mut out,
        );
        let reqs = take(&mut out);
        let lo = only(&reqs, "ListOffsets");
        assert_eq!(lo.len(), 2, "one ListOffsets per leader");
        for (broker, cid, req) in lo {
            let Request::ListOffsets(l) = req else {
                unreachable!()
            };
            let p = *broker - 1;
            assert_eq!(
                l.partitions,
                vec![(tp(p), EARLIEST_TIMESTAMP, 3 + p as i32)]
            );
            respond(
                &mut c,
                2,
                *broker,
                *cid,
                list_offsets_answer(&[(tp(p), ErrorCode::None, 10 * p as i64)]),
                &mut out,
            );
        }
        assert_eq!(
            ops(&out),
            vec![
                Op::Seek {
                    partition: tp(0),
                    offset: 0,
                    reason: "auto.offset.reset=earliest".into()
                },
                Op::Seek {
                    partition: tp(1),
                    offset: 10,
                    reason: "auto.offset.reset=earliest".into()
                },
            ]
        );
        let reqs = take(&mut out);
        let fetches: Vec<_> = only(&reqs, "Fetch").into_iter().map(fetch_of).collect();
        assert_eq!(fetches.len(), 2);
        let (broker, _, f) = &fetches[1];
        assert_eq!(*broker, 2);
        assert_eq!(
            (
                f.replica_id,
                f.broker_epoch,
                f.max_wait_ms,
                f.min_bytes,
                f.max_bytes
            ),
            (None, -1, 500, 1, 1_048_576)
        );
        assert_eq!(f.partitions.len(), 1);
        assert_eq!(
            (
                f.partitions[0].tp.clone(),
                f.partitions[0].fetch_offset,
                f.partitions[0].current_leader_epoch
            ),
            (tp(1), 10, 4)
        );
        assert_eq!(c.positions(), vec![(tp(0), 0), (tp(1), 10)]);
    }

    #[test]
    fn latest_reset_asks_for_the_latest_offset() {
        let mut c = Consumer::new(
            2,
            config(AutoOffsetReset::Latest),
            vec![1],
            vec![Arc::from("t")],
            5,
        );
        let mut out = Outbox::default();
        c.on_start(0, &mut out);
        let reqs = take(&mut out);
        respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
        let reqs = take(&mut out);
        let Request::ListOffsets(l) = &only(&reqs, "ListOffsets")[0].2 else {
            unreachable!()
        };
        assert_eq!(l.partitions[0].1, LATEST_TIMESTAMP);
    }

    #[test]
    fn reset_none_leaves_the_partition_unfetched() {
        let mut c = Consumer::new(
            2,
            config(AutoOffsetReset::None),
            vec![1],
            vec![Arc::from("t")],
            5,
        );
        let mut out = Outbox::default();
        c.on_start(0, &mut out);
        let reqs = take(&mut out);
        respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
        assert!(take(&mut out).is_empty(), "no ListOffsets, no Fetch");
        assert_eq!(out.history.len(), 1);
        assert!(
            matches!(&out.history[0].outcome, Outcome::Fail { error } if error.starts_with("NoOffsetForPartitionException"))
        );
        // A later metadata refresh does not report it again.
        let now = c.next_timer().unwrap();
        c.on_timer(now, &mut out);
        let reqs = take(&mut out);
        respond(&mut c, now, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
        assert_eq!(out.history.len(), 1);
    }

    #[test]
    fn fetched_records_become_polls_and_advance_the_position() {
        let (mut c, mut out, (broker, cid, f)) = fetching(config(AutoOffsetReset::Earliest), 0);
        assert_eq!(
            (
                broker,
                f.partitions[0].fetch_offset,
                f.partitions[0].current_leader_epoch
            ),
            (1, 0, 3)
        );
        respond(
            &mut c,
            10,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::None, 3, vec![batch(0, &[100, 101, 102])]),
            &mut out,
        );
        assert_eq!(
            ops(&out),
            vec![
                Op::ObserveHighWatermark {
                    partition: tp(0),
                    high_watermark: 3,
                    broker: NodeId::Broker(1)
                },
                Op::Poll {
                    partition: tp(0),
                    records: vec![read(0, 100), read(1, 101), read(2, 102)],
                    high_watermark: 3
                },
            ]
        );
        assert_eq!(c.positions(), vec![(tp(0), 3)]);
        let reqs = take(&mut out);
        let (_, cid, f) = fetch_of(only(&reqs, "Fetch")[0]);
        assert_eq!(
            f.partitions[0].fetch_offset, 3,
            "the next fetch starts at the position"
        );
        out.history.clear();
        // A batch starting below the position: only the new records count.
        respond(
            &mut c,
            20,
            1,
            cid,
            fetch_answer(
                tp(0),
                ErrorCode::None,
                6,
                vec![batch(2, &[102, 103]), batch(4, &[104, 105])],
            ),
            &mut out,
        );
        assert_eq!(
            ops(&out)[1],
            Op::Poll {
                partition: tp(0),
                records: vec![read(3, 103), read(4, 104), read(5, 105)],
                high_watermark: 6
            }
        );
        assert_eq!(c.positions(), vec![(tp(0), 6)]);
    }

    #[test]
    fn high_watermark_observed_only_when_it_changes() {
        let (mut c, mut out, (_, mut cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
        for (i, hw) in [3, 3, 5, 4].into_iter().enumerate() {
            respond(
                &mut c,
                10 + i as u64,
                1,
                cid,
                fetch_answer(tp(0), ErrorCode::None, hw, vec![]),
                &mut out,
            );
            let reqs = take(&mut out);
            cid = fetch_of(only(&reqs, "Fetch")[0]).1;
        }
        let seen: Vec<Offset> = ops(&out)
            .into_iter()
            .map(|op| match op {
                Op::ObserveHighWatermark { high_watermark, .. } => high_watermark,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            vec![3, 5, 4],
            "no entry for the repeated 3, one for the drop to 4"
        );
    }

    #[test]
    fn not_leader_refreshes_metadata_and_fetches_from_the_new_leader() {
        let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
        respond(
            &mut c,
            10,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::NotLeaderOrFollower, -1, vec![]),
            &mut out,
        );
        assert!(
            take(&mut out).is_empty(),
            "backs off; metadata is rate limited"
        );
        let mut now = 10;
        for _ in 0..10 {
            now = c.next_timer().unwrap();
            c.on_timer(now, &mut out);
            let reqs = take(&mut out);
            if let Some(md) = only(&reqs, "Metadata").first() {
                respond(&mut c, now, md.0, md.1, metadata(&[(0, 2, 4)]), &mut out);
            }
            let fetches: Vec<_> = only(&reqs, "Fetch").into_iter().map(fetch_of).collect();
            assert!(
                fetches.iter().all(|(b, _, _)| *b == 2),
                "never back to the old leader"
            );
            let more = take(&mut out);
            let fetches: Vec<_> = fetches
                .into_iter()
                .chain(only(&more, "Fetch").into_iter().map(fetch_of))
                .collect();
            if let Some((broker, _, f)) = fetches.first() {
                assert_eq!(*broker, 2);
                assert_eq!(
                    (
                        f.partitions[0].fetch_offset,
                        f.partitions[0].current_leader_epoch
                    ),
                    (0, 4)
                );
                assert!(
                    now >= 110,
                    "retry.backoff.ms after the error, fetched at {now}"
                );
                return;
            }
        }
        panic!("no fetch from the new leader by {now}");
    }

    #[test]
    fn offset_out_of_range_resets_and_records_a_seek() {
        let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 3);
        respond(
            &mut c,
            10,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::OffsetOutOfRange, 2, vec![]),
            &mut out,
        );
        let reqs = take(&mut out);
        assert!(only(&reqs, "Fetch").is_empty());
        let lo = only(&reqs, "ListOffsets");
        let Request::ListOffsets(l) = &lo[0].2 else {
            unreachable!()
        };
        assert_eq!(l.partitions, vec![(tp(0), EARLIEST_TIMESTAMP, 3)]);
        respond(
            &mut c,
            11,
            1,
            lo[0].1,
            list_offsets_answer(&[(tp(0), ErrorCode::None, 7)]),
            &mut out,
        );
        assert_eq!(
            ops(&out),
            vec![Op::Seek {
                partition: tp(0),
                offset: 7,
                reason: "OFFSET_OUT_OF_RANGE at 3; auto.offset.reset=earliest".into()
            }]
        );
        let reqs = take(&mut out);
        assert_eq!(
            fetch_of(only(&reqs, "Fetch")[0]).2.partitions[0].fetch_offset,
            7
        );
    }

    #[test]
    fn a_fetch_timeout_refetches_and_ignores_the_late_answer() {
        let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
        assert_eq!(
            c.next_timer(),
            Some(2 + 30_000),
            "the fetch's request.timeout.ms"
        );
        c.on_timer(30_002, &mut out);
        let reqs = take(&mut out);
        assert_eq!(
            only(&reqs, "Metadata").len(),
            1,
            "a timeout refreshes metadata"
        );
        assert!(
            only(&reqs, "Fetch").is_empty(),
            "backs off before refetching"
        );
        assert_eq!(c.next_timer(), Some(30_002 + 100), "retry.backoff.ms");
        c.on_timer(30_102, &mut out);
        let reqs = take(&mut out);
        let refetch = fetch_of(only(&reqs, "Fetch")[0]);
        assert_eq!(refetch.2.partitions[0].fetch_offset, 0);
        respond(
            &mut c,
            30_003,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::None, 1, vec![batch(0, &[1])]),
            &mut out,
        );
        assert!(out.history.is_empty(), "late answer ignored");
        assert_eq!(c.positions(), vec![(tp(0), 0)]);
    }

    #[test]
    fn a_stale_fetch_answer_is_discarded() {
        let config = ConsumerConfig {
            metadata_max_age_ms: 1_000,
            ..config(AutoOffsetReset::Earliest)
        };
        let (mut c, mut out, (_, old_cid, _)) = fetching(config, 0);
        assert_eq!(c.next_timer(), Some(1_001), "metadata.max.age.ms");
        c.on_timer(1_001, &mut out);
        let reqs = take(&mut out);
        let md = only(&reqs, "Metadata")[0];
        respond(&mut c, 1_001, md.0, md.1, metadata(&[(0, 2, 4)]), &mut out);
        let reqs = take(&mut out);
        let (broker, new_cid, _) = fetch_of(only(&reqs, "Fetch")[0]);
        assert_eq!(
            broker, 2,
            "the new leader is fetched while the old fetch is in flight"
        );
        respond(
            &mut c,
            1_002,
            2,
            new_cid,
            fetch_answer(tp(0), ErrorCode::None, 3, vec![batch(0, &[1, 2, 3])]),
            &mut out,
        );
        let polls = out.history.len();
        respond(
            &mut c,
            1_003,
            1,
            old_cid,
            fetch_answer(tp(0), ErrorCode::None, 2, vec![batch(0, &[1, 2])]),
            &mut out,
        );
        assert_eq!(
            out.history.len(),
            polls,
            "fetched at 0, but the position is 3 now"
        );
        assert_eq!(c.positions(), vec![(tp(0), 3)]);
    }

    #[test]
    #[should_panic(expected = "bad batch")]
    fn a_corrupt_batch_is_a_finding() {
        let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
        let mut bytes = batch(0, &[1, 2]).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        respond(
            &mut c,
            10,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::None, 2, vec![Bytes::from(bytes)]),
            &mut out,
        );
    }

    /// A fake cluster with growing logs answering at random (data, errors, lost
    /// requests, leader moves): polled records match the log and continue exactly where
    /// the position was, and the timer never points at the past.
    #[test]
    fn randomized_runs_read_the_log_in_order() {
        use rand::{Rng, SeedableRng};
        for seed in 0..30 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let reset = [AutoOffsetReset::Earliest, AutoOffsetReset::Latest][rng.gen_range(0..2)];
            let mut c = Consumer::new(2, config(reset), vec![1, 2], vec![Arc::from("t")], seed);
            let mut out = Outbox::default();
            let mut leaders: [(BrokerId, LeaderEpoch); 2] = [(1, 0), (2, 0)];
            let mut log_end = [5i64, 0];
            let mut queue: Vec<(BrokerId, u64, Response)> = Vec::new();
            let value = |p: usize, offset: Offset| 1_000 * p as u64 + offset as u64;
            let mut now = 0;
            c.on_start(now, &mut out);
            for _ in 0..3_000 {
                for (broker, cid, request) in take(&mut out) {
                    if rng.gen_bool(0.05) {
                        continue; // lost
                    }
                    let response = match request {
                        Request::Metadata(_) => {
                            let parts: Vec<_> = (0..2)
                                .map(|i| (i as u32, leaders[i].0, leaders[i].1))
                                .collect();
                            metadata(&parts)
                        }
                        Request::ListOffsets(l) => Response::ListOffsets(ListOffsetsResponse {
                            partitions: l
                                .partitions
                                .iter()
                                .map(|(tp, ts, _)| {
                                    let i = tp.partition as usize;
                                    let (error, offset) = if leaders[i].0 != broker {
                                        (ErrorCode::NotLeaderOrFollower, -1)
                                    } else if *ts == EARLIEST_TIMESTAMP {
                                        (ErrorCode::None, 0)
                                    } else {
                                        (ErrorCode::None, log_end[i])
                                    };
                                    ListOffsetsPartitionResponse {
                                        tp: tp.clone(),
                                        error,
                                        offset,
                                        leader_epoch: 0,
                                    }
                                })
                                .collect(),
                        }),
                        Request::Fetch(f) => Response::Fetch(FetchResponse {
                            error: ErrorCode::None,
                            partitions: f
                                .partitions
                                .iter()
                                .map(|fp| {
                                    let i = fp.tp.partition as usize;
                                    let hw = log_end[i];
                                    let error = if leaders[i].0 != broker {
                                        ErrorCode::NotLeaderOrFollower
                                    } else if fp.fetch_offset > hw {
                                        ErrorCode::OffsetOutOfRange
                                    } else {
                                        [
                                            ErrorCode::None,
                                            ErrorCode::None,
                                            ErrorCode::None,
                                            ErrorCode::OffsetNotAvailable,
                                            ErrorCode::FencedLeaderEpoch,
                                        ][rng.gen_range(0..5)]
                                    };
                                    let mut batches = Vec::new();
                                    if error == ErrorCode::None {
                                        // Batches are aligned at multiples of 3.
                                        let mut base = fp.fetch_offset - fp.fetch_offset % 3;
                                        while base < hw && batches.len() < 2 {
                                            let end = (base + 3).min(hw);
                                            let vals: Vec<u64> =
                                                (base..end).map(|o| value(i, o)).collect();
                                            batches.push(batch(base, &vals));
                                            base = end;
                                        }
                                    }
                                    FetchPartitionResponse {
                                        tp: fp.tp.clone(),
                                        error,
                                        high_watermark: if error == ErrorCode::None {
                                            hw
                                        } else {
                                            -1
                                        },
                                        last_stable_offset: hw,
                                        log_start_offset: 0,
                                        batches,
                                    }
                                })
                                .collect(),
                        }),
                        other => panic!("unexpected request {other:?}"),
                    };
                    queue.push((broker, cid, response));
                }
                if rng.gen_bool(0.01) {
                    let i = rng.gen_range(0..2);
                    leaders[i] = (rng.gen_range(1..=2), leaders[i].1 + 1);
                    // An unclean election may lose the log's tail.
                    log_end[i] = (log_end[i] - rng.gen_range(0..4)).max(0);
                }
                if rng.gen_bool(0.2) {
                    log_end[rng.gen_range(0..2)] += rng.gen_range(1..4);
                }
                match rng.gen_range(0..10) {
                    0..=5 if !queue.is_empty() => {
                        let (broker, cid, response) = queue.remove(rng.gen_range(0..queue.len()));
                        respond(&mut c, now, broker, cid, response, &mut out);
                    }
                    _ => match c.next_timer() {
                        Some(t) if t <= now + 200 => {
                            now = now.max(t);
                            c.on_timer(now, &mut out);
                        }
                        _ => now += 200,
                    },
                }
                assert!(
                    c.next_timer().is_none_or(|t| t > now),
                    "seed {seed}: timer in the past"
                );
                now += rng.gen_range(0..3);
            }
            let mut positions: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
            let mut last_hw: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
            let mut polled = 0;
            for op in ops(&out) {
                match op {
                    Op::Seek {
                        partition, offset, ..
                    } => {
                        positions.insert(partition, offset);
                    }
                    Op::Poll {
                        partition, records, ..
                    } => {
                        let i = partition.partition as usize;
                        let mut pos = positions[&partition];
                        for r in records {
                            assert_eq!(
                                r.offset, pos,
                                "seed {seed}: {partition} continues at its position"
                            );
                            assert_eq!(r.value, value(i, r.offset));
                            assert_eq!(r.key, Some(format!("k{}", r.value)));
                            pos += 1;
                            polled += 1;
                        }
                        positions.insert(partition, pos);
                    }
                    Op::ObserveHighWatermark {
                        partition,
                        high_watermark,
                        ..
                    } => {
                        assert_ne!(
                            last_hw.insert(partition, high_watermark),
                            Some(high_watermark)
                        );
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(polled > 0, "seed {seed}: read something");
            assert_eq!(c.positions(), positions.into_iter().collect::<Vec<_>>());
        }
    }
}
