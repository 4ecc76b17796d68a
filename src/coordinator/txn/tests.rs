//! Unit tests of `coordinator::txn`.

use super::*;
use crate::coordinator::shared::testing::complete_appends;
use TransactionState::*;

mod late_end_txn;
mod unreplicated;

const TXN: &str = "pipeline-0";
const TIMEOUT: u64 = 60_000;
const COORDINATOR_EPOCH: i32 = 7;

fn config(transaction_version: i16) -> BrokerConfig {
    BrokerConfig {
        transaction_version,
        ..BrokerConfig::default()
    }
}

/// A coordinator of partition 0 at coordinator epoch 7.
fn coordinator(transaction_version: i16, bugs: Bugs) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(&config(transaction_version), bugs);
    let out = c.load(0, 0, COORDINATOR_EPOCH, &[]);
    assert!(out.appends.is_empty() && out.responses.is_empty());
    c
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn orders(n: u32) -> Vec<TopicPartition> {
    (0..n).map(|p| tp("orders", p)).collect()
}

/// The coordinator's pretend cluster: appends complete at once (the log keeps them),
/// producer ids count up from 1000, every transition is kept.
struct Harness {
    log: Vec<Bytes>,
    next_producer_id: i64,
    transitions: Vec<TxnTransition>,
    correlation_id: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Harness {
            log: Vec::new(),
            next_producer_id: 1000,
            transitions: Vec::new(),
            correlation_id: 0,
        }
    }
}

impl Harness {
    fn run(
        &mut self,
        c: &mut TxnCoordinator,
        now: Millis,
        out: TxnCoordinatorOutput,
    ) -> Vec<(ReplyTo, Response)> {
        let transitions = &mut self.transitions;
        complete_appends(
            &mut self.log,
            out,
            &mut |o: TxnCoordinatorOutput| {
                transitions.extend(o.transitions);
                (o.responses, o.appends)
            },
            &mut |id| c.on_append_complete(now, id, ErrorCode::None),
        )
    }

    /// Sends `request` (as producer 0) and returns the coordinator's answer to it.
    fn call(&mut self, c: &mut TxnCoordinator, now: Millis, request: Request) -> Response {
        self.correlation_id += 1;
        let to = ReplyTo {
            client: NodeId::Producer(0),
            correlation_id: self.correlation_id,
        };
        let mut next = self.next_producer_id;
        let mut ids = || {
            next += 1;
            Some(next - 1)
        };
        let out = c.handle(now, 0, to, request, &mut ids);
        self.next_producer_id = next;
        let responses = self.run(c, now, out);
        let mine: Vec<Response> = responses
            .into_iter()
            .filter(|(r, _)| *r == to)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(mine.len(), 1, "one answer");
        mine.into_iter().next().expect("one")
    }

    /// Writes every marker (every partition led by broker 1, answering `NONE`);
    /// returns the requests sent.
    fn deliver_markers(
        &mut self,
        c: &mut TxnCoordinator,
        now: Millis,
    ) -> Vec<WriteTxnMarkersRequest> {
        let mut sent = Vec::new();
        loop {
            let requests = c.markers_to_send(now, &mut |_| Some(1));
            if requests.is_empty() {
                return sent;
            }
            assert!(sent.len() < 100, "markers never done");
            for r in requests {
                let answer = answer_all(&r.request, ErrorCode::None);
                let out = c.on_markers_response(now, r.id, Ok(&answer));
                assert!(self.run(c, now, out).is_empty());
                sent.push(r.request);
            }
        }
    }
}

/// The same error for every partition of every marker.
fn answer_all(request: &WriteTxnMarkersRequest, error: ErrorCode) -> WriteTxnMarkersResponse {
    WriteTxnMarkersResponse {
        markers: request
            .markers
            .iter()
            .map(|m| {
                let errors = m.partitions.iter().map(|tp| (tp.clone(), error)).collect();
                (m.producer_id, errors)
            })
            .collect(),
    }
}

fn init_request_for(id: &str, timeout_ms: u64, producer: (i64, i16)) -> Request {
    Request::InitProducerId(InitProducerIdRequest {
        transactional_id: Some(Arc::from(id)),
        transaction_timeout_ms: timeout_ms,
        producer_id: producer.0,
        producer_epoch: producer.1,
    })
}

fn init_request(producer_id: i64, producer_epoch: i16) -> Request {
    init_request_for(TXN, TIMEOUT, (producer_id, producer_epoch))
}

fn add_request_for(
    id: &str,
    producer: (i64, i16),
    partitions: &[TopicPartition],
    verify_only: bool,
) -> Request {
    Request::AddPartitionsToTxn(AddPartitionsToTxnRequest {
        transactional_id: Arc::from(id),
        producer_id: producer.0,
        producer_epoch: producer.1,
        partitions: partitions.to_vec(),
        verify_only,
    })
}

fn add_request(producer: (i64, i16), partitions: &[TopicPartition], verify_only: bool) -> Request {
    add_request_for(TXN, producer, partitions, verify_only)
}

fn end_request_for(id: &str, producer: (i64, i16), committed: bool) -> Request {
    Request::EndTxn(EndTxnRequest {
        transactional_id: Arc::from(id),
        producer_id: producer.0,
        producer_epoch: producer.1,
        committed,
    })
}

fn end_request(producer: (i64, i16), committed: bool) -> Request {
    end_request_for(TXN, producer, committed)
}

fn init_answer(r: Response) -> InitProducerIdResponse {
    match r {
        Response::InitProducerId(r) => r,
        other => panic!("not an InitProducerId answer: {other:?}"),
    }
}

fn init(h: &mut Harness, c: &mut TxnCoordinator, now: Millis) -> (i64, i16) {
    let r = init_answer(h.call(c, now, init_request(-1, -1)));
    assert_eq!(r.error, ErrorCode::None);
    (r.producer_id, r.producer_epoch)
}

/// A coordinator where `TXN` has `partitions` in an open transaction (since 10 ms).
fn open(version: i16, partitions: &[TopicPartition]) -> (Harness, TxnCoordinator, (i64, i16)) {
    let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    assert_eq!(producer, (1000, 0));
    assert_eq!(
        add(&mut h, &mut c, 10, producer, partitions),
        ErrorCode::None
    );
    (h, c, producer)
}

/// `open`, then ended (at 20 ms): the markers are to be written.
fn ended(
    version: i16,
    partitions: &[TopicPartition],
    committed: bool,
) -> (Harness, TxnCoordinator, (i64, i16)) {
    let (mut h, mut c, producer) = open(version, partitions);
    assert_eq!(
        end(&mut h, &mut c, 20, producer, committed).error,
        ErrorCode::None
    );
    (h, c, producer)
}

fn add(
    h: &mut Harness,
    c: &mut TxnCoordinator,
    now: Millis,
    producer: (i64, i16),
    partitions: &[TopicPartition],
) -> ErrorCode {
    let Response::AddPartitionsToTxn(r) = h.call(c, now, add_request(producer, partitions, false))
    else {
        panic!("not an AddPartitionsToTxn answer")
    };
    assert_eq!(r.results.len(), partitions.len());
    let error = r.results[0].1;
    assert!(r.results.iter().all(|(_, e)| *e == error));
    error
}

fn add_offsets(
    h: &mut Harness,
    c: &mut TxnCoordinator,
    producer: (i64, i16),
    group_id: &str,
) -> ErrorCode {
    let request = Request::AddOffsetsToTxn(AddOffsetsToTxnRequest {
        transactional_id: Arc::from(TXN),
        producer_id: producer.0,
        producer_epoch: producer.1,
        group_id: Arc::from(group_id),
    });
    match h.call(c, 10, request) {
        Response::AddOffsetsToTxn(r) => r.error,
        other => panic!("not an AddOffsetsToTxn answer: {other:?}"),
    }
}

fn verify(
    h: &mut Harness,
    c: &mut TxnCoordinator,
    producer: (i64, i16),
    partitions: &[TopicPartition],
) -> Vec<ErrorCode> {
    let Response::AddPartitionsToTxn(r) = h.call(c, 0, add_request(producer, partitions, true))
    else {
        panic!("not an AddPartitionsToTxn answer")
    };
    r.results.into_iter().map(|(_, e)| e).collect()
}

fn end(
    h: &mut Harness,
    c: &mut TxnCoordinator,
    now: Millis,
    producer: (i64, i16),
    committed: bool,
) -> EndTxnResponse {
    match h.call(c, now, end_request(producer, committed)) {
        Response::EndTxn(r) => r,
        other => panic!("not an EndTxn answer: {other:?}"),
    }
}

fn txn(c: &TxnCoordinator) -> TxnSummary {
    c.transactions()
        .into_iter()
        .find(|t| &*t.transactional_id == TXN)
        .expect("the transaction is loaded")
}

fn states(h: &Harness) -> Vec<(TransactionState, TransactionState, i16)> {
    h.transitions
        .iter()
        .map(|t| (t.from, t.to, t.producer_epoch))
        .collect()
}

// ------------------------------------------------------------ states

#[test]
fn the_transition_table_is_kafkas() {
    let allowed: &[(TransactionState, TransactionState)] = &[
        (Empty, Empty),
        (CompleteCommit, Empty),
        (CompleteAbort, Empty),
        (Ongoing, Ongoing),
        (Empty, Ongoing),
        (CompleteCommit, Ongoing),
        (CompleteAbort, Ongoing),
        (Ongoing, PrepareCommit),
        (Ongoing, PrepareAbort),
        (PrepareEpochFence, PrepareAbort),
        (Empty, PrepareAbort),
        (CompleteCommit, PrepareAbort),
        (CompleteAbort, PrepareAbort),
        (PrepareCommit, CompleteCommit),
        (PrepareAbort, CompleteAbort),
        (Empty, Dead),
        (CompleteAbort, Dead),
        (CompleteCommit, Dead),
        (Ongoing, PrepareEpochFence),
    ];
    for from in TransactionState::ALL {
        for to in TransactionState::ALL {
            assert_eq!(
                to.can_enter_from(from),
                allowed.contains(&(from, to)),
                "{from} -> {to}"
            );
        }
    }
    for s in TransactionState::ALL {
        assert_eq!(TransactionState::from_id(s.id()), Some(s));
    }
    assert_eq!(TransactionState::from_id(8), None);
    assert_eq!(PrepareEpochFence.to_string(), "PrepareEpochFence");
}

fn metadata_in(state: TransactionState) -> TransactionMetadata {
    let mut m = TransactionMetadata::new(Arc::from(TXN), 0, 1000, TIMEOUT, 0);
    m.current.producer_epoch = 0;
    m.current.state = state;
    m
}

#[test]
#[should_panic(expected = "illegal transition Empty -> PrepareCommit")]
fn committing_an_empty_transaction_is_a_bug() {
    metadata_in(Empty).prepare_abort_or_commit(PrepareCommit, 0, NO_PRODUCER_ID, 0, false);
}

#[test]
#[should_panic(expected = "illegal transition PrepareCommit -> Ongoing")]
fn adding_partitions_to_a_prepared_transaction_is_a_bug() {
    metadata_in(PrepareCommit).prepare_add_partitions(&orders(1), 0, 0);
}

#[test]
#[should_panic(expected = "illegal transition CompleteCommit -> CompleteAbort")]
fn completing_twice_is_a_bug() {
    let mut m = metadata_in(CompleteCommit);
    let t = m.transit(CompleteAbort);
    m.prepare_transition(t);
}

#[test]
#[should_panic(expected = "illegal transition Empty -> PrepareEpochFence")]
fn fencing_without_a_transaction_is_a_bug() {
    metadata_in(Empty).fence_producer_epoch();
}

#[test]
#[should_panic(expected = "completing Ongoing without preparing it")]
fn completing_an_unprepared_transition_is_a_bug() {
    let mut m = metadata_in(Empty);
    let t = m.transit(Ongoing);
    m.complete_transition(&t);
}

// ------------------------------------------------------------ the happy paths

#[test]
fn a_commit_writes_its_markers_then_completes() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    assert_eq!(producer, (1000, 0));
    assert_eq!(
        add(&mut h, &mut c, 10, producer, &orders(2)),
        ErrorCode::None
    );
    let written = h.log.len();
    assert_eq!(
        add(&mut h, &mut c, 20, producer, &orders(1)),
        ErrorCode::None
    );
    assert_eq!(
        h.log.len(),
        written,
        "partitions already in: nothing written"
    );
    let t = txn(&c);
    assert_eq!(
        (t.state, t.partitions.clone(), t.txn_start_timestamp),
        (Ongoing, orders(2), 10)
    );

    let r = end(&mut h, &mut c, 30, producer, true);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, -1, -1)
    );
    let t = txn(&c);
    assert_eq!(
        (t.state, t.pending_state),
        (PrepareCommit, Some(CompleteCommit))
    );
    let sent = h.deliver_markers(&mut c, 40);
    assert_eq!(
        sent[0].markers,
        vec![TxnMarker {
            producer_id: 1000,
            producer_epoch: 0,
            committed: true,
            partitions: orders(2),
            coordinator_epoch: COORDINATOR_EPOCH,
        }]
    );
    let t = txn(&c);
    assert_eq!((t.state, t.pending_state), (CompleteCommit, None));
    assert!(t.partitions.is_empty());
    assert_eq!(
        states(&h),
        vec![
            (Empty, Empty, 0),
            (Empty, Ongoing, 0),
            (Ongoing, PrepareCommit, 0),
            (PrepareCommit, CompleteCommit, 0),
        ]
    );
    // A retried commit is answered again; an abort is not.
    let written = h.log.len();
    assert_eq!(
        end(&mut h, &mut c, 50, producer, true).error,
        ErrorCode::None
    );
    assert_eq!(h.log.len(), written);
    assert_eq!(
        end(&mut h, &mut c, 50, producer, false).error,
        ErrorCode::InvalidTxnState
    );
    // The next transaction starts anew.
    assert_eq!(
        add(&mut h, &mut c, 60, producer, &orders(1)[..1]),
        ErrorCode::None
    );
    assert_eq!(txn(&c).txn_start_timestamp, 60);
}

#[test]
fn an_abort_writes_abort_markers() {
    let (mut h, mut c, producer) = ended(0, &orders(3), false);
    let sent = h.deliver_markers(&mut c, 30);
    assert!(!sent[0].markers[0].committed);
    assert_eq!(sent[0].markers[0].partitions, orders(3));
    assert_eq!(txn(&c).state, CompleteAbort);
    assert_eq!(
        end(&mut h, &mut c, 40, producer, false).error,
        ErrorCode::None
    );
    assert_eq!(
        end(&mut h, &mut c, 40, producer, true).error,
        ErrorCode::InvalidTxnState
    );
    // Ending a transaction that never began is refused.
    let (mut h, mut c) = (Harness::default(), coordinator(0, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    for committed in [true, false] {
        assert_eq!(
            end(&mut h, &mut c, 10, producer, committed).error,
            ErrorCode::InvalidTxnState
        );
    }
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let (mut h, mut c) = (Harness::default(), coordinator(2, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    assert_eq!(
        add_offsets(&mut h, &mut c, producer, "my-group"),
        ErrorCode::None
    );
    // Utils.abs("my-group".hashCode) % 50 = 12.
    assert_eq!(txn(&c).partitions, vec![tp(OFFSETS_TOPIC, 12)]);
}

#[test]
fn version_2_bumps_the_epoch_at_every_end_and_version_1_does_not() {
    for version in [1, 2] {
        let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
        let mut producer = init(&mut h, &mut c, 0);
        for round in 1..=3i16 {
            let now = Millis::from(round as u16) * 100;
            assert_eq!(
                add(&mut h, &mut c, now, producer, &orders(1)),
                ErrorCode::None
            );
            let r = end(&mut h, &mut c, now + 1, producer, round % 2 == 1);
            assert_eq!(r.error, ErrorCode::None);
            let sent = h.deliver_markers(&mut c, now + 2);
            if version == 2 {
                assert_eq!((r.producer_id, r.producer_epoch), (1000, round));
                assert_eq!(
                    sent[0].markers[0].producer_epoch, round,
                    "markers carry the bump"
                );
                // The old epoch is fenced for the next transaction.
                assert_eq!(
                    add(&mut h, &mut c, now + 3, producer, &orders(1)),
                    ErrorCode::ProducerFenced
                );
                producer = (r.producer_id, r.producer_epoch);
            } else {
                assert_eq!((r.producer_id, r.producer_epoch), (-1, -1));
                assert_eq!(sent[0].markers[0].producer_epoch, 0);
            }
        }
        let t = txn(&c);
        assert_eq!(t.producer_epoch, if version == 2 { 3 } else { 0 });
    }
}

#[test]
fn version_2_answers_a_retried_end_with_the_bumped_epoch() {
    let (mut h, mut c, producer) = open(2, &orders(1));
    // While the markers are written a retry is told to wait.
    assert_eq!(end(&mut h, &mut c, 20, producer, true).producer_epoch, 1);
    assert_eq!(
        end(&mut h, &mut c, 21, producer, true).error,
        ErrorCode::ConcurrentTransactions
    );
    h.deliver_markers(&mut c, 30);
    // Kafka's table: retry (epoch 0) / current (epoch 1) in CompleteCommit.
    let r = end(&mut h, &mut c, 40, producer, true);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 1000, 1)
    );
    assert_eq!(
        end(&mut h, &mut c, 40, producer, false).error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(
        end(&mut h, &mut c, 40, (1000, 1), true).error,
        ErrorCode::InvalidTxnState
    );
    assert_eq!(
        end(&mut h, &mut c, 40, (1000, 5), true).error,
        ErrorCode::ProducerFenced
    );
    // An abort with the current epoch and no partition ends at once, bumping again.
    let written = h.log.len();
    let r = end(&mut h, &mut c, 50, (1000, 1), false);
    assert_eq!((r.error, r.producer_epoch), (ErrorCode::None, 2));
    assert!(
        h.deliver_markers(&mut c, 50).is_empty(),
        "no partition, no marker"
    );
    assert_eq!(h.log.len(), written + 2, "PrepareAbort, CompleteAbort");
    assert_eq!(txn(&c).state, CompleteAbort);
    let r = end(&mut h, &mut c, 60, (1000, 1), false);
    assert_eq!(
        (r.error, r.producer_epoch),
        (ErrorCode::None, 2),
        "retried abort"
    );
}

// ------------------------------------------------------------ fencing

#[test]
fn stale_epochs_and_unknown_producers_are_refused() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    let current = init_answer(h.call(&mut c, 10, init_request(producer.0, producer.1)));
    let current = (current.producer_id, current.producer_epoch);
    assert_eq!(current, (1000, 1));
    assert_eq!(
        add(&mut h, &mut c, 20, producer, &orders(1)),
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        add(&mut h, &mut c, 20, (999, 1), &orders(1)),
        ErrorCode::InvalidProducerIdMapping
    );
    assert_eq!(
        add_offsets(&mut h, &mut c, producer, "g"),
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        add(&mut h, &mut c, 30, current, &orders(1)),
        ErrorCode::None
    );
    assert_eq!(
        end(&mut h, &mut c, 40, producer, true).error,
        ErrorCode::ProducerFenced
    );
    let unknown = end_request_for("nobody", (1000, 0), true);
    let Response::EndTxn(r) = h.call(&mut c, 40, unknown) else {
        panic!("not an EndTxn answer")
    };
    assert_eq!(r.error, ErrorCode::InvalidProducerIdMapping);
    // An InitProducerId, even with an old epoch, fences the open transaction first.
    let r = init_answer(h.call(&mut c, 50, init_request(1000, 0)));
    assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
}

#[test]
fn kip_360_bumps_the_producers_own_epoch() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    assert_eq!(init(&mut h, &mut c, 0), (1000, 0));
    let bump = |h: &mut Harness, c: &mut TxnCoordinator, p: i64, e: i16| {
        let r = init_answer(h.call(c, 10, init_request(p, e)));
        (r.error, r.producer_id, r.producer_epoch)
    };
    assert_eq!(bump(&mut h, &mut c, 1000, 0), (ErrorCode::None, 1000, 1));
    // The answer was lost: the retry gets the same epoch.
    assert_eq!(bump(&mut h, &mut c, 1000, 0), (ErrorCode::None, 1000, 1));
    assert_eq!(
        bump(&mut h, &mut c, 999, 1),
        (ErrorCode::ProducerFenced, -1, -1)
    );
    assert_eq!(bump(&mut h, &mut c, 1000, 1), (ErrorCode::None, 1000, 2));
    assert_eq!(
        bump(&mut h, &mut c, 1000, 0),
        (ErrorCode::ProducerFenced, -1, -1)
    );
    // A new instance (no id) bumps too, and forgets the last epoch.
    assert_eq!(init(&mut h, &mut c, 20), (1000, 3));
    assert_eq!(
        bump(&mut h, &mut c, 1000, 2),
        (ErrorCode::ProducerFenced, -1, -1)
    );
}

/// `InitProducerId` from a new instance while the old one has a transaction open.
fn fence_ongoing(version: i16) {
    let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
    let old = init(&mut h, &mut c, 0);
    assert_eq!(add(&mut h, &mut c, 10, old, &orders(2)), ErrorCode::None);
    let r = init_answer(h.call(&mut c, 20, init_request(-1, -1)));
    assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
    // The fence bumps the epoch; version 2's abort bumps once more.
    let abort_epoch = if version == 2 { 2 } else { 1 };
    assert_eq!(
        states(&h)[2..],
        [
            (Ongoing, PrepareEpochFence, 1),
            (PrepareEpochFence, PrepareAbort, abort_epoch),
        ]
    );
    let t = txn(&c);
    assert_eq!(
        (t.state, t.pending_state),
        (PrepareAbort, Some(CompleteAbort))
    );
    // The old instance is fenced; the new one waits for the abort.
    assert_eq!(
        add(&mut h, &mut c, 21, old, &orders(1)),
        ErrorCode::ConcurrentTransactions
    );
    let r = init_answer(h.call(&mut c, 21, init_request(-1, -1)));
    assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
    let sent = h.deliver_markers(&mut c, 30);
    let m = &sent[0].markers[0];
    assert_eq!(
        (m.committed, m.producer_epoch, m.partitions.clone()),
        (false, abort_epoch, orders(2))
    );
    assert_eq!(txn(&c).state, CompleteAbort);
    assert_eq!(
        end(&mut h, &mut c, 40, old, true).error,
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        add(&mut h, &mut c, 40, old, &orders(1)),
        ErrorCode::ProducerFenced
    );
    // The retry succeeds with the next epoch.
    assert_eq!(init(&mut h, &mut c, 50), (1000, abort_epoch + 1));
}

#[test]
fn init_producer_id_fences_an_ongoing_transaction() {
    fence_ongoing(1);
}

#[test]
fn init_producer_id_fences_an_ongoing_transaction_with_version_2() {
    fence_ongoing(2);
}

/// The fenced instance's `EndTxn` arrives while the fence's abort is being written
/// (Kafka's `TransactionCoordinator.endTransaction`: its epoch is below the bumped
/// one, `PRODUCER_FENCED`, with versions 1 and 2; nothing is written).
fn end_txn_while_the_fence_is_written(version: i16) {
    let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
    let old = init(&mut h, &mut c, 0);
    assert_eq!(add(&mut h, &mut c, 10, old, &orders(2)), ErrorCode::None);
    let to = ReplyTo {
        client: NodeId::Producer(1),
        correlation_id: 1,
    };
    let fence = c.handle(20, 0, to, init_request(-1, -1), &mut || None);
    assert_eq!(fence.appends.len(), 1, "the fence's PrepareAbort");
    let t = txn(&c);
    assert_eq!(
        (t.state, t.pending_state, t.producer_epoch),
        (PrepareEpochFence, Some(PrepareAbort), 1)
    );
    for committed in [true, false] {
        let out = c.handle(21, 0, to, end_request(old, committed), &mut || None);
        assert!(out.appends.is_empty() && out.transitions.is_empty());
        let Response::EndTxn(r) = &out.responses[0].1 else {
            panic!("not an EndTxn answer")
        };
        assert_eq!(r.error, ErrorCode::ProducerFenced, "commit {committed}");
    }
    // The fence goes on: its abort is written and the markers carry the new epoch.
    h.run(&mut c, 22, fence);
    let abort_epoch = if version == 2 { 2 } else { 1 };
    let sent = h.deliver_markers(&mut c, 30);
    let m = &sent[0].markers[0];
    assert_eq!((m.committed, m.producer_epoch), (false, abort_epoch));
    assert_eq!(txn(&c).state, CompleteAbort);
}

#[test]
fn end_txn_while_the_fence_is_written_is_producer_fenced() {
    end_txn_while_the_fence_is_written(1);
}

#[test]
fn end_txn_while_the_fence_is_written_is_producer_fenced_with_version_2() {
    end_txn_while_the_fence_is_written(2);
}

#[test]
fn a_timed_out_transaction_is_aborted_with_a_bumped_epoch() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    assert_eq!(
        add(&mut h, &mut c, 1_000, producer, &orders(1)),
        ErrorCode::None
    );
    // Checked every 10 s (the first check 10 s after the load): open since 1 s with
    // a 60 s timeout, it is older than its timeout at the check of 70 s.
    for check in (10_000..=60_000).step_by(10_000) {
        assert_eq!(c.next_timer(), Some(check));
        let out = c.on_timer(check);
        assert!(h.run(&mut c, check, out).is_empty());
        assert_eq!(txn(&c).state, Ongoing, "at {check}");
    }
    assert_eq!(c.next_timer(), Some(70_000));
    let out = c.on_timer(70_000);
    assert!(h.run(&mut c, 70_000, out).is_empty(), "nobody to answer");
    assert_eq!(
        states(&h)[2..],
        [
            (Ongoing, PrepareEpochFence, 1),
            (PrepareEpochFence, PrepareAbort, 1)
        ]
    );
    assert_eq!(
        add(&mut h, &mut c, 70_001, producer, &orders(1)),
        ErrorCode::ConcurrentTransactions
    );
    let sent = h.deliver_markers(&mut c, 70_010);
    assert_eq!(sent[0].markers[0].producer_epoch, 1);
    assert!(!sent[0].markers[0].committed);
    assert_eq!(
        end(&mut h, &mut c, 70_020, producer, true).error,
        ErrorCode::ProducerFenced
    );
    assert_eq!(txn(&c).state, CompleteAbort);
    assert_eq!(c.next_timer(), Some(80_000));
}

/// The timeout is measured on the coordinator's wall clock
/// (`TransactionStateManager.timedOutTransactions` reads `time.milliseconds()`): stepped
/// 55 s forward after the transaction opened, the check of 10 s finds it 64 s old.
#[test]
fn a_clock_stepped_forward_times_a_transaction_out_early() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    assert_eq!(
        add(&mut h, &mut c, 1_000, producer, &orders(1)),
        ErrorCode::None
    );
    c.set_wall_clock(crate::actor::WallClock {
        offset_ms: 55_000,
        drift_ppm: 0,
    });
    assert_eq!(c.next_timer(), Some(10_000), "the timer keeps true time");
    let out = c.on_timer(10_000);
    assert!(h.run(&mut c, 10_000, out).is_empty());
    assert_eq!(
        states(&h)[2..],
        [
            (Ongoing, PrepareEpochFence, 1),
            (PrepareEpochFence, PrepareAbort, 1)
        ]
    );
}

#[test]
fn a_failed_fence_keeps_its_epoch_and_is_not_bumped_again() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    let old = init(&mut h, &mut c, 0);
    assert_eq!(add(&mut h, &mut c, 10, old, &orders(1)), ErrorCode::None);
    let to = ReplyTo {
        client: NodeId::Producer(1),
        correlation_id: 1,
    };
    let out = c.handle(20, 0, to, init_request(-1, -1), &mut || None);
    assert_eq!(out.transitions.len(), 1, "the fence, at once");
    let done = c.on_append_complete(20, out.appends[0].id, ErrorCode::NotEnoughReplicas);
    assert_eq!(
        init_answer(done.responses[0].1.clone()).error,
        ErrorCode::CoordinatorNotAvailable
    );
    assert_eq!(
        (done.transitions[0].from, done.transitions[0].to),
        (PrepareEpochFence, Ongoing)
    );
    let t = txn(&c);
    assert_eq!(
        (t.state, t.pending_state, t.producer_epoch),
        (Ongoing, None, 1)
    );
    assert_eq!(
        add(&mut h, &mut c, 30, old, &orders(1)),
        ErrorCode::ProducerFenced
    );
    // The next fence does not bump again.
    let r = init_answer(h.call(&mut c, 40, init_request(-1, -1)));
    assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
    assert_eq!(
        h.deliver_markers(&mut c, 50)[0].markers[0].producer_epoch,
        1
    );
    assert_eq!(init(&mut h, &mut c, 60), (1000, 2));
}

#[test]
fn no_producer_epoch_fencing_lets_a_zombie_end_its_successors_transaction() {
    for bug in [false, true] {
        let bugs = if bug {
            Bugs::of(&[Bug::NoProducerEpochFencing])
        } else {
            Bugs::default()
        };
        let (mut h, mut c) = (Harness::default(), coordinator(2, bugs));
        let zombie = init(&mut h, &mut c, 0);
        let successor = init(&mut h, &mut c, 10);
        assert_eq!(successor, (1000, 1));
        assert_eq!(
            add(&mut h, &mut c, 20, successor, &orders(1)),
            ErrorCode::None
        );
        let expected = if bug {
            ErrorCode::None
        } else {
            ErrorCode::ProducerFenced
        };
        let zombie_partition = [tp("orders", 5)];
        assert_eq!(add(&mut h, &mut c, 30, zombie, &zombie_partition), expected);
        assert_eq!(verify(&mut h, &mut c, zombie, &orders(1)), vec![expected]);
        assert_eq!(end(&mut h, &mut c, 40, zombie, true).error, expected);
        let t = txn(&c);
        if bug {
            assert_eq!(
                t.state, PrepareCommit,
                "the zombie committed the successor's work"
            );
            assert_eq!(t.partitions, vec![tp("orders", 0), tp("orders", 5)]);
        } else {
            assert_eq!((t.state, t.partitions), (Ongoing, orders(1)));
        }
    }
}

// ------------------------------------------------------------ verification

#[test]
fn verify_only_answers_per_partition_and_writes_nothing() {
    let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
    let producer = init(&mut h, &mut c, 0);
    assert_eq!(
        verify(&mut h, &mut c, producer, &orders(1)),
        vec![ErrorCode::InvalidTxnState]
    );
    assert_eq!(
        add(&mut h, &mut c, 10, producer, &orders(1)),
        ErrorCode::None
    );
    let written = h.log.len();
    assert_eq!(
        verify(&mut h, &mut c, producer, &orders(2)),
        vec![ErrorCode::None, ErrorCode::InvalidTxnState]
    );
    assert_eq!(h.log.len(), written);
    assert_eq!(txn(&c).partitions, orders(1), "nothing added");
    assert_eq!(
        verify(&mut h, &mut c, (1000, 1), &orders(1)),
        vec![ErrorCode::ProducerFenced]
    );
    assert_eq!(
        verify(&mut h, &mut c, (7, 0), &orders(1)),
        vec![ErrorCode::InvalidProducerIdMapping]
    );
    assert_eq!(
        end(&mut h, &mut c, 20, producer, true).error,
        ErrorCode::None
    );
    assert_eq!(
        verify(&mut h, &mut c, producer, &orders(1)),
        vec![ErrorCode::ConcurrentTransactions]
    );
}

// ------------------------------------------------------------ pending transitions

#[test]
fn requests_wait_while_a_transition_is_being_written() {
    let mut c = coordinator(1, Bugs::default());
    let to = |n| ReplyTo {
        client: NodeId::Producer(0),
        correlation_id: n,
    };
    let mut ids = || Some(1000);
    let pending = c.handle(0, 0, to(1), init_request(-1, -1), &mut ids);
    assert!(pending.responses.is_empty(), "answered once replicated");
    assert_eq!(txn(&c).pending_state, Some(Empty));
    let again = c.handle(1, 0, to(2), init_request(-1, -1), &mut ids);
    assert_eq!(
        init_answer(again.responses[0].1.clone()).error,
        ErrorCode::ConcurrentTransactions
    );
    let r = c.handle(
        1,
        0,
        to(3),
        add_request((1000, -1), &orders(1), false),
        &mut ids,
    );
    assert!(matches!(
        &r.responses[0].1,
        Response::AddPartitionsToTxn(a) if a.results[0].1 == ErrorCode::ConcurrentTransactions
    ));
    let r = c.handle(1, 0, to(4), end_request((1000, -1), true), &mut ids);
    assert!(matches!(
        &r.responses[0].1,
        Response::EndTxn(e) if e.error == ErrorCode::ConcurrentTransactions
    ));
    let done = c.on_append_complete(2, pending.appends[0].id, ErrorCode::None);
    let r = init_answer(done.responses[0].1.clone());
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 1000, 0)
    );
    // A failed write changes nothing and is answered with Kafka's mapping.
    for (error, answer) in [
        (ErrorCode::NotLeaderOrFollower, ErrorCode::NotCoordinator),
        (
            ErrorCode::RequestTimedOut,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (
            ErrorCode::NotEnoughReplicas,
            ErrorCode::CoordinatorNotAvailable,
        ),
    ] {
        let out = c.handle(
            3,
            0,
            to(5),
            add_request((1000, 0), &orders(1), false),
            &mut ids,
        );
        let done = c.on_append_complete(4, out.appends[0].id, error);
        assert!(matches!(
            &done.responses[0].1,
            Response::AddPartitionsToTxn(a) if a.results[0].1 == answer
        ));
        let t = txn(&c);
        assert_eq!((t.state, t.pending_state), (Empty, None));
    }
}

#[test]
fn producer_ids_and_bad_requests() {
    let mut c = coordinator(1, Bugs::default());
    let to = ReplyTo {
        client: NodeId::Producer(0),
        correlation_id: 1,
    };
    let error = |c: &mut TxnCoordinator, request: Request| {
        let out = c.handle(0, 0, to, request, &mut || None);
        assert!(out.appends.is_empty());
        init_answer(out.responses[0].1.clone()).error
    };
    assert_eq!(
        error(&mut c, init_request(-1, -1)),
        ErrorCode::CoordinatorLoadInProgress,
        "no producer id at hand"
    );
    assert!(c.transactions().is_empty());
    for ms in [0, 900_001] {
        assert_eq!(
            error(&mut c, init_request_for(TXN, ms, (-1, -1))),
            ErrorCode::InvalidTransactionTimeout
        );
    }
    assert_eq!(
        error(&mut c, init_request(1000, -1)),
        ErrorCode::InvalidRequest
    );
    let nameless = init_request_for("", TIMEOUT, (-1, -1));
    assert_eq!(error(&mut c, nameless), ErrorCode::InvalidRequest);
    let out = c.handle(0, 3, to, init_request(-1, -1), &mut || Some(5));
    assert_eq!(
        init_answer(out.responses[0].1.clone()).error,
        ErrorCode::NotCoordinator,
        "partition 3 is not loaded"
    );
    let mut idempotent = init_request(-1, -1);
    if let Request::InitProducerId(r) = &mut idempotent {
        r.transactional_id = None;
    }
    assert!(transactional_id(&idempotent).is_none(), "the broker's own");
}

#[test]
fn exhausted_epochs_move_to_a_new_producer_id() {
    // InitProducerId at the last usable epoch.
    let record = |state, epoch, partitions: Vec<TopicPartition>| {
        let t = TxnValue {
            producer_id: 500,
            previous_producer_id: 500,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: TIMEOUT,
            state,
            topic_partitions: partitions.into_iter().collect(),
            txn_start_timestamp: if state == Empty { -1 } else { 0 },
            txn_last_update_timestamp: 0,
            client_transaction_version: 2,
        };
        encode_batch(
            crate::kafka::record::RECORD_TIMESTAMP_BASE,
            vec![(encode_key(TXN), encode_value(&t, 2))],
            None,
        )
    };
    let mut h = Harness::default();
    let mut c = TxnCoordinator::new(&config(2), Bugs::default());
    c.load(0, 0, 1, &[record(CompleteCommit, i16::MAX - 1, vec![])]);
    assert_eq!(init(&mut h, &mut c, 10), (1000, 0));
    let t = &c.txns[TXN];
    assert_eq!(
        (
            t.current.previous_producer_id,
            t.current.last_producer_epoch
        ),
        (500, NO_PRODUCER_EPOCH)
    );

    // Version 2's EndTxn at the last usable epoch moves to the next id at Complete*.
    let mut h = Harness::default();
    let mut c = TxnCoordinator::new(&config(2), Bugs::default());
    c.load(0, 0, 1, &[record(Ongoing, i16::MAX - 1, orders(1))]);
    let r = end(&mut h, &mut c, 10, (500, i16::MAX - 1), true);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 1000, 0)
    );
    let sent = h.deliver_markers(&mut c, 20);
    let m = &sent[0].markers[0];
    assert_eq!((m.producer_id, m.producer_epoch), (500, i16::MAX));
    let t = txn(&c);
    assert_eq!(
        (t.state, t.producer_id, t.producer_epoch),
        (CompleteCommit, 1000, 0)
    );
    // A retry with the old id and epoch is recognised.
    let r = end(&mut h, &mut c, 30, (500, i16::MAX - 1), true);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 1000, 0)
    );
    assert_eq!(
        add(&mut h, &mut c, 40, (1000, 0), &orders(1)),
        ErrorCode::None
    );
}

// ------------------------------------------------------------ markers

#[test]
fn markers_are_retried_until_their_leaders_take_them() {
    let parts = [tp("orders", 0), tp("orders", 1), tp("payments", 0)];
    let (_, mut c, _) = ended(1, &parts, true);
    // orders-0 on broker 1, orders-1 on broker 2, payments-0 without a leader.
    let mut leaders = BTreeMap::from([(parts[0].clone(), 1), (parts[1].clone(), 2)]);
    let requests = c.markers_to_send(100, &mut |tp| leaders.get(tp).copied());
    let by_broker: Vec<(BrokerId, Vec<TopicPartition>)> = requests
        .iter()
        .map(|r| (r.destination, r.request.markers[0].partitions.clone()))
        .collect();
    assert_eq!(
        by_broker,
        vec![(1, vec![parts[0].clone()]), (2, vec![parts[1].clone()])]
    );
    assert_eq!(
        c.next_timer(),
        Some(100 + MARKER_RETRY_BACKOFF_MS),
        "payments-0"
    );
    assert!(c
        .markers_to_send(100, &mut |tp| leaders.get(tp).copied())
        .is_empty());
    // Broker 1 no longer leads; broker 2 never answers.
    let refused = answer_all(&requests[0].request, ErrorCode::NotLeaderOrFollower);
    let out = c.on_markers_response(150, requests[0].id, Ok(&refused));
    assert!(out.appends.is_empty());
    let out = c.on_markers_response(200, requests[1].id, Err(ErrorCode::RequestTimedOut));
    assert!(out.appends.is_empty());
    // payments-0 is due at 200, the others after their backoff.
    leaders.insert(parts[0].clone(), 3);
    leaders.insert(parts[2].clone(), 2);
    let requests = c.markers_to_send(200, &mut |tp| leaders.get(tp).copied());
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].request.markers[0].partitions,
        vec![parts[2].clone()]
    );
    assert_eq!(c.next_timer(), Some(250));
    assert!(
        c.markers_to_send(250, &mut |tp| leaders.get(tp).copied())
            .iter()
            .all(|r| r.destination == 3),
        "broker 2 has a request in flight"
    );
    let ok = answer_all(&requests[0].request, ErrorCode::None);
    let out = c.on_markers_response(260, requests[0].id, Ok(&ok));
    assert!(out.appends.is_empty(), "two partitions left");
    let t = txn(&c);
    assert_eq!(
        t.partitions,
        vec![parts[0].clone(), parts[1].clone()],
        "payments-0 written"
    );
    assert_eq!(t.state, PrepareCommit);
}

/// Kafka's `TransactionMarkerRequestCompletionHandler`, error by error: the
/// retriable ones are sent again after the backoff (not a moment before) while the
/// other partition's marker counts as written; a stale producer epoch or a fenced
/// coordinator stops the markers; the last partition written completes.
#[test]
fn marker_errors_are_retried_after_the_backoff_or_stop_the_markers() {
    let retriable = [
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::NotLeaderOrFollower,
        ErrorCode::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::RequestTimedOut,
        ErrorCode::KafkaStorageError,
        ErrorCode::NetworkException,
    ];
    for error in retriable {
        let parts = orders(2);
        let (mut h, mut c, _) = ended(1, &parts, true);
        let requests = c.markers_to_send(30, &mut |_| Some(1));
        assert_eq!(requests.len(), 1);
        let answer = WriteTxnMarkersResponse {
            markers: vec![(
                requests[0].request.markers[0].producer_id,
                vec![
                    (parts[0].clone(), ErrorCode::None),
                    (parts[1].clone(), error),
                ],
            )],
        };
        let out = c.on_markers_response(40, requests[0].id, Ok(&answer));
        assert!(out.appends.is_empty(), "{error}: one partition left");
        assert_eq!(txn(&c).partitions, vec![parts[1].clone()], "{error}");
        let due = 40 + MARKER_RETRY_BACKOFF_MS;
        assert!(
            c.markers_to_send(due - 1, &mut |_| Some(1)).is_empty(),
            "{error}: not before the backoff"
        );
        let again = c.markers_to_send(due, &mut |_| Some(1));
        assert_eq!(
            again[0].request.markers[0].partitions,
            vec![parts[1].clone()],
            "{error}"
        );
        let ok = answer_all(&again[0].request, ErrorCode::None);
        let out = c.on_markers_response(due, again[0].id, Ok(&ok));
        assert!(h.run(&mut c, due, out).is_empty());
        assert_eq!(txn(&c).state, CompleteCommit, "{error}");
    }
    for error in [
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::TransactionCoordinatorFenced,
    ] {
        let (_, mut c, _) = ended(1, &orders(1), false);
        let requests = c.markers_to_send(30, &mut |_| Some(1));
        let answer = answer_all(&requests[0].request, error);
        let out = c.on_markers_response(40, requests[0].id, Ok(&answer));
        assert!(out.appends.is_empty());
        assert!(
            c.markers_to_send(10_000, &mut |_| Some(1)).is_empty(),
            "{error}: no marker is sent again"
        );
        assert_eq!(txn(&c).state, PrepareAbort, "{error}");
    }
}

#[test]
fn one_marker_request_per_leader_carries_every_transaction() {
    let mut h = Harness::default();
    let mut c = coordinator(1, Bugs::default());
    let mut producers = Vec::new();
    for (i, name) in ["a", "b"].iter().enumerate() {
        let r = init_answer(h.call(&mut c, 0, init_request_for(name, TIMEOUT, (-1, -1))));
        let producer = (r.producer_id, r.producer_epoch);
        h.call(
            &mut c,
            1,
            add_request_for(name, producer, &orders(i as u32 + 1), false),
        );
        h.call(&mut c, 2, end_request_for(name, producer, i == 0));
        producers.push(r.producer_id);
    }
    let requests = c.markers_to_send(10, &mut |_| Some(4));
    assert_eq!(requests.len(), 1);
    let markers = &requests[0].request.markers;
    assert_eq!(
        markers
            .iter()
            .map(|m| (m.producer_id, m.committed, m.partitions.len()))
            .collect::<Vec<_>>(),
        vec![(producers[0], true, 1), (producers[1], false, 2)]
    );
    let ok = answer_all(&requests[0].request, ErrorCode::None);
    let out = c.on_markers_response(20, requests[0].id, Ok(&ok));
    assert_eq!(out.appends.len(), 2, "both complete");
}

#[test]
fn a_fenced_coordinator_stops_sending_markers() {
    let (mut h, mut c, _) = ended(1, &orders(2), true);
    let requests = c.markers_to_send(30, &mut |_| Some(1));
    let fenced = answer_all(
        &requests[0].request,
        ErrorCode::TransactionCoordinatorFenced,
    );
    let out = c.on_markers_response(40, requests[0].id, Ok(&fenced));
    assert!(out.appends.is_empty());
    assert!(c.markers_to_send(1_000, &mut |_| Some(1)).is_empty());
    assert_eq!(c.next_timer(), Some(10_000), "only the timeout check");
    let t = txn(&c);
    assert_eq!(
        (t.state, t.pending_state),
        (PrepareCommit, Some(CompleteCommit))
    );
    let r = init_answer(h.call(&mut c, 50, init_request(-1, -1)));
    assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
}

#[test]
fn a_failed_complete_is_written_again() {
    let (mut h, mut c, _) = ended(1, &orders(1), false);
    let requests = c.markers_to_send(30, &mut |_| Some(1));
    let ok = answer_all(&requests[0].request, ErrorCode::None);
    let out = c.on_markers_response(40, requests[0].id, Ok(&ok));
    let done = c.on_append_complete(50, out.appends[0].id, ErrorCode::RequestTimedOut);
    assert!(done.appends.is_empty() && done.transitions.is_empty());
    assert_eq!(c.next_timer(), Some(50 + MARKER_RETRY_BACKOFF_MS));
    let out = c.on_timer(150);
    assert_eq!(out.appends.len(), 1);
    h.run(&mut c, 150, out);
    assert_eq!(txn(&c).state, CompleteAbort);
    assert_eq!(c.next_timer(), Some(10_000));
}

// ------------------------------------------------------------ failover

#[test]
fn unloading_answers_not_coordinator() {
    let (_, mut c, producer) = open(1, &orders(1));
    let to = ReplyTo {
        client: NodeId::Producer(0),
        correlation_id: 99,
    };
    let pending = c.handle(20, 0, to, end_request(producer, true), &mut || None);
    let out = c.unload(0);
    assert!(matches!(
        &out.responses[..],
        [(r, Response::EndTxn(e))] if *r == to && e.error == ErrorCode::NotCoordinator
    ));
    assert!(c.transactions().is_empty() && !c.is_loaded(0));
    assert_eq!(c.next_timer(), None);
    let late = c.on_append_complete(30, pending.appends[0].id, ErrorCode::None);
    assert!(late.responses.is_empty() && late.transitions.is_empty());
    let r = c.handle(40, 0, to, end_request(producer, true), &mut || None);
    assert!(matches!(
        &r.responses[0].1,
        Response::EndTxn(e) if e.error == ErrorCode::NotCoordinator
    ));
}

/// A coordinator that prepared a commit (version 2) and fails before its markers,
/// with a second transactional id left `Ongoing`; the new coordinator loads the log.
fn failover(bugs: Bugs) -> (Harness, TxnCoordinator) {
    let (mut h, mut c, _) = ended(2, &orders(2), true);
    let r = init_answer(h.call(&mut c, 30, init_request_for("other", 15_000, (-1, -1))));
    let other = (r.producer_id, r.producer_epoch);
    h.call(
        &mut c,
        40,
        add_request_for("other", other, &[tp("payments", 0)], false),
    );
    drop(c);
    let mut moved = TxnCoordinator::new(&config(2), bugs);
    let out = moved.load(50_000, 0, COORDINATOR_EPOCH + 1, &h.log);
    assert!(out.appends.is_empty() && out.responses.is_empty());
    h.transitions.clear();
    (h, moved)
}

#[test]
fn a_new_coordinator_completes_the_prepared_transactions_it_loads() {
    let (mut h, mut c) = failover(Bugs::default());
    let t = txn(&c);
    assert_eq!(
        (t.state, t.pending_state, t.producer_epoch),
        (PrepareCommit, Some(CompleteCommit), 1)
    );
    let sent = h.deliver_markers(&mut c, 50_010);
    assert_eq!(
        sent[0].markers[0],
        TxnMarker {
            producer_id: 1000,
            producer_epoch: 1,
            committed: true,
            partitions: orders(2),
            coordinator_epoch: COORDINATOR_EPOCH + 1,
        }
    );
    assert_eq!(txn(&c).state, CompleteCommit);
    assert_eq!(states(&h), vec![(PrepareCommit, CompleteCommit, 1)]);
    // The Ongoing one keeps its start time (40 ms) and its 15 s timeout.
    let other = c
        .transactions()
        .into_iter()
        .find(|t| &*t.transactional_id == "other");
    let other = other.expect("loaded");
    assert_eq!((other.state, other.txn_start_timestamp), (Ongoing, 40));
    assert_eq!(c.next_timer(), Some(60_000));
    let out = c.on_timer(60_000);
    h.run(&mut c, 60_000, out);
    assert_eq!(
        states(&h)[1..],
        [
            (Ongoing, PrepareEpochFence, 1),
            (PrepareEpochFence, PrepareAbort, 2)
        ]
    );
}

#[test]
fn forget_prepared_txn_bug_drops_the_prepared_transaction() {
    let (mut h, mut c) = failover(Bugs::of(&[Bug::ForgetPreparedTxn]));
    let written = h.log.len();
    let t = txn(&c);
    assert_eq!((t.state, t.pending_state), (CompleteCommit, None));
    assert!(t.partitions.is_empty());
    assert!(
        h.deliver_markers(&mut c, 50_010).is_empty(),
        "no marker, ever"
    );
    assert_eq!(h.log.len(), written, "nothing written either");
}

// ------------------------------------------------------------ records

fn transit(state: TransactionState) -> TxnValue {
    TxnValue {
        producer_id: 0,
        previous_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch: 0,
        last_producer_epoch: NO_PRODUCER_EPOCH,
        txn_timeout_ms: 60_000,
        state,
        topic_partitions: [tp("txtest", 0)].into_iter().collect(),
        txn_start_timestamp: 0x19e_7b4b_367a,
        txn_last_update_timestamp: 0x19e_7b4b_367a,
        client_transaction_version: 0,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn values_are_byte_for_byte_kafkas() {
    // An Ongoing record from a Kafka 4.0 broker with transaction.version 1.
    let kafka = "0001 0000000000000000 0000 0000ea60 01 02 07 747874657374 02 00000000 00 \
                     0000019e7b4b367a 0000019e7b4b367a 00";
    let ours = encode_value(&transit(Ongoing), 1);
    assert_eq!(hex(&ours), kafka.replace(' ', ""));
    assert_eq!(ours.len(), 48);
    // Version 0: i32 counts and i16 string lengths, no tagged fields.
    let v0 = encode_value(&transit(Ongoing), 0);
    assert_eq!(
        hex(&v0),
        "0000 0000000000000000 0000 0000ea60 01 00000001 0006 747874657374 00000001 \
             00000000 0000019e7b4b367a 0000019e7b4b367a"
            .replace(' ', "")
    );
    assert_eq!(hex(&encode_key("tx")), "000000027478");
}

#[test]
fn records_round_trip() {
    let mut versions_2 = transit(PrepareCommit);
    versions_2.previous_producer_id = 41;
    versions_2.next_producer_id = 300;
    versions_2.client_transaction_version = 2;
    versions_2.topic_partitions = [tp("a", 1), tp("a", 3), tp("b", 0)].into_iter().collect();
    let mut empty = transit(Empty);
    empty.topic_partitions.clear();
    empty.txn_start_timestamp = -1;
    for (t, version) in [
        (transit(Ongoing), 0),
        (transit(CompleteAbort), 1),
        (versions_2.clone(), 2),
        (empty.clone(), 0),
        (empty, 2),
    ] {
        let (id, decoded) =
            decode_record(&encode_key("tx"), Some(&encode_value(&t, version))).expect("decodes");
        let mut expected = t.clone();
        if version == 0 {
            // Version 0 has no tagged fields.
            expected.previous_producer_id = NO_PRODUCER_ID;
            expected.next_producer_id = NO_PRODUCER_ID;
            expected.client_transaction_version = 0;
        }
        assert_eq!((&*id, decoded), ("tx", Some(expected)), "version {version}");
    }
    let tagged = encode_value(&versions_2, 2);
    assert_eq!(
        hex(&tagged[tagged.len() - 25..]),
        "03000800000000000000290108000000000000012c02020002"
    );
    assert_eq!(
        decode_record(&encode_key("tx"), None),
        Ok((Arc::from("tx"), None))
    );
    assert!(decode_record(&encode_key("tx"), Some(&tagged[..tagged.len() - 1])).is_err());
    let mut dead = encode_value(&transit(Ongoing), 1).to_vec();
    dead[16] = Dead.id();
    assert!(decode_record(&encode_key("tx"), Some(&dead)).is_err());
    // A later version's tagged field is skipped.
    let mut later = encode_value(&transit(Ongoing), 1).to_vec();
    *later.last_mut().expect("tagged count") = 1;
    later.extend_from_slice(&[9, 2, 0xab, 0xcd]);
    let (_, decoded) = decode_record(&encode_key("tx"), Some(&later)).expect("decodes");
    assert_eq!(decoded, Some(transit(Ongoing)));
}

#[test]
fn transactional_ids_map_to_partitions_as_groups_do() {
    assert_eq!(partition_for_transactional_id("my-group", 50), 12);
    let spec = transaction_state_topic_spec(&BrokerConfig::default(), 2);
    assert_eq!(
        (&*spec.name, spec.partitions, spec.replication_factor),
        (TRANSACTION_STATE_TOPIC, 50, 2)
    );
    let spec = transaction_state_topic_spec(&BrokerConfig::default(), 5);
    assert_eq!(spec.replication_factor, 3);
}
