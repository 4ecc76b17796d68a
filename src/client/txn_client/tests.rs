//! Unit tests of `client::txn_client`.

use super::*;
use crate::kafka::protocol::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, FindCoordinatorResponse,
    InitProducerIdResponse, TxnOffsetCommitResponse,
};

const ID: ProducerIdentity = ProducerIdentity {
    producer_id: 7,
    producer_epoch: 3,
};

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("out", p)
}

fn found(node: BrokerId) -> Response {
    Response::FindCoordinator(FindCoordinatorResponse {
        error: ErrorCode::None,
        node_id: Some(node),
    })
}

/// Sends the due request and answers it.
fn exchange(c: &mut TxnClient, now: Millis, flushed: bool, answer: Response) -> Vec<TxnEffect> {
    let (_, _, kind) = c.next_request(now, ID, flushed).expect("a request is due");
    c.on_response(now, kind, Some(answer))
}

fn initialized(version2: bool) -> TxnClient {
    let mut c = TxnClient::new(Arc::from("etl-0"), 60_000, version2, 100);
    c.init_transactions();
    let (to, request, _) = c.next_request(0, ProducerIdentity::NONE, true).unwrap();
    assert_eq!(to, TxnDestination::LeastLoaded);
    assert!(
        matches!(request, Request::FindCoordinator(r) if r.key_type == CoordinatorType::Transaction)
    );
    c.in_flight = None;
    c.coordinator = Some(2);
    let (to, request, kind) = c.next_request(1, ProducerIdentity::NONE, true).unwrap();
    assert_eq!(to, TxnDestination::Broker(2));
    assert!(
        matches!(&request, Request::InitProducerId(r) if r.producer_id == -1 && r.transaction_timeout_ms == 60_000)
    );
    let effects = c.on_response(
        2,
        kind,
        Some(Response::InitProducerId(InitProducerIdResponse {
            error: ErrorCode::None,
            producer_id: ID.producer_id,
            producer_epoch: ID.producer_epoch,
        })),
    );
    assert_eq!(effects, vec![TxnEffect::SetIdentity(ID)]);
    assert_eq!(c.drain_events(), vec![TxnEvent::Initialized]);
    assert_eq!(*c.state(), TxnClientState::Ready);
    c
}

#[test]
fn a_commit_adds_partitions_and_offsets_then_ends_once_flushed() {
    let mut c = initialized(false);
    c.begin();
    c.add_partition(&tp(0));
    c.add_partition(&tp(1));
    assert!(
        !c.can_send(&tp(0)),
        "version 1: not before the partition is added"
    );
    let (_, request, kind) = c.next_request(10, ID, false).unwrap();
    let Request::AddPartitionsToTxn(r) = request else {
        panic!("{request:?}")
    };
    assert_eq!(
        (r.partitions.clone(), r.verify_only),
        (vec![tp(0), tp(1)], false)
    );
    c.on_response(
        11,
        kind,
        Some(Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
            results: r
                .partitions
                .iter()
                .map(|p| (p.clone(), ErrorCode::None))
                .collect(),
        })),
    );
    assert!(c.can_send(&tp(0)) && c.can_send(&tp(1)));
    let metadata = GroupMetadata {
        group_id: Arc::from("etl"),
        generation_id: 4,
        member_id: Arc::from("m1"),
        group_instance_id: None,
    };
    let offsets = vec![CommittedOffset {
        tp: TopicPartition::new("in", 0),
        offset: 42,
        leader_epoch: 0,
    }];
    c.send_offsets(metadata, offsets);
    exchange(
        &mut c,
        12,
        false,
        Response::AddOffsetsToTxn(AddOffsetsToTxnResponse {
            error: ErrorCode::None,
        }),
    );
    let (to, _, kind) = c.next_request(13, ID, false).unwrap();
    assert_eq!(
        to,
        TxnDestination::LeastLoaded,
        "the group coordinator is looked up"
    );
    c.on_response(13, kind, Some(found(3)));
    let (to, request, kind) = c.next_request(14, ID, false).unwrap();
    assert_eq!(to, TxnDestination::Broker(3));
    assert!(
        matches!(&request, Request::TxnOffsetCommit(r) if r.generation_id == 4 && r.producer_epoch == 3)
    );
    c.on_response(
        15,
        kind,
        Some(Response::TxnOffsetCommit(TxnOffsetCommitResponse {
            partitions: vec![(TopicPartition::new("in", 0), ErrorCode::None)],
        })),
    );
    assert_eq!(c.drain_events(), vec![TxnEvent::OffsetsSent(Ok(()))]);
    assert_eq!(c.end(true), None);
    assert!(
        c.next_request(16, ID, false).is_none(),
        "EndTxn waits for the flush"
    );
    let (_, request, kind) = c.next_request(17, ID, true).unwrap();
    assert!(matches!(&request, Request::EndTxn(r) if r.committed));
    let effects = c.on_response(
        18,
        kind,
        Some(Response::EndTxn(EndTxnResponse {
            error: ErrorCode::None,
            producer_id: -1,
            producer_epoch: -1,
        })),
    );
    assert!(effects.is_empty(), "version 1 keeps the epoch");
    assert_eq!(
        c.drain_events(),
        vec![TxnEvent::Ended {
            commit: true,
            result: TxnResult::Done
        }]
    );
    assert_eq!(*c.state(), TxnClientState::Ready);
    assert_eq!(c.written().count(), 2, "kept for the history");
}

#[test]
fn version_2_sends_without_adding_and_takes_the_bumped_epoch() {
    let mut c = initialized(true);
    c.begin();
    c.add_partition(&tp(0));
    assert!(c.can_send(&tp(0)));
    assert!(c.next_request(10, ID, false).is_none(), "nothing to add");
    c.on_produce_sent();
    c.end(true);
    let next = ProducerIdentity {
        producer_id: 7,
        producer_epoch: 4,
    };
    let effects = exchange(
        &mut c,
        11,
        true,
        Response::EndTxn(EndTxnResponse {
            error: ErrorCode::None,
            producer_id: next.producer_id,
            producer_epoch: next.producer_epoch,
        }),
    );
    assert_eq!(effects, vec![TxnEffect::SetIdentity(next)]);
}

#[test]
fn an_empty_transaction_ends_without_the_coordinator() {
    let mut c = initialized(false);
    c.begin();
    c.end(false);
    assert!(c.next_request(5, ID, true).is_none());
    assert_eq!(
        c.drain_events(),
        vec![TxnEvent::Ended {
            commit: false,
            result: TxnResult::Done
        }]
    );
}

#[test]
fn a_failed_batch_fails_the_commit_and_only_an_abort_is_left() {
    let mut c = initialized(true);
    c.begin();
    c.add_partition(&tp(0));
    c.on_produce_sent();
    let effect = c.on_batch_failed("NOT_ENOUGH_REPLICAS");
    assert!(matches!(effect, Some(TxnEffect::AbortQueued(_))));
    assert!(!c.can_send(&tp(0)));
    c.end(true);
    assert!(matches!(
        &c.drain_events()[..],
        [TxnEvent::Ended {
            commit: true,
            result: TxnResult::Failed { fatal: false, .. }
        }]
    ));
    c.end(false);
    let (_, request, _) = c.next_request(5, ID, true).unwrap();
    assert!(matches!(&request, Request::EndTxn(r) if !r.committed));
}

#[test]
fn fencing_is_fatal_and_a_lost_end_txn_makes_the_outcome_unknown() {
    let mut c = initialized(true);
    c.begin();
    c.on_produce_sent();
    c.end(true);
    let (_, _, kind) = c.next_request(10, ID, true).unwrap();
    c.on_response(11, kind, None);
    assert!(c.next_request(12, ID, true).is_none(), "backing off");
    let (_, _, kind) = c.next_request(111, ID, true).unwrap();
    assert_eq!(kind, TxnRequestKind::FindTxnCoordinator, "looked up again");
    c.on_response(112, kind, Some(found(1)));
    let (_, _, kind) = c.next_request(113, ID, true).unwrap();
    let effects = c.on_response(
        114,
        kind,
        Some(Response::EndTxn(EndTxnResponse {
            error: ErrorCode::ProducerFenced,
            producer_id: -1,
            producer_epoch: -1,
        })),
    );
    assert!(matches!(&effects[..], [TxnEffect::AbortQueued(_)]));
    assert!(
        matches!(c.state(), TxnClientState::FatalError(e) if e.starts_with("ProducerFencedException"))
    );
    assert!(matches!(
        &c.drain_events()[..],
        [TxnEvent::Ended {
            commit: true,
            result: TxnResult::Unknown { .. }
        }]
    ));
    assert!(c.next_request(200, ID, true).is_none());
}

#[test]
fn concurrent_transactions_and_coordinator_moves_are_retried() {
    let mut c = initialized(false);
    c.begin();
    c.add_partition(&tp(0));
    let (_, _, kind) = c.next_request(10, ID, false).unwrap();
    c.on_response(
        11,
        kind,
        Some(Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
            results: vec![(tp(0), ErrorCode::ConcurrentTransactions)],
        })),
    );
    assert_eq!(c.due_at(false), Some(11 + CONCURRENT_RETRY_BACKOFF_MS));
    let (_, _, kind) = c.next_request(31, ID, false).unwrap();
    c.on_response(
        32,
        kind,
        Some(Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
            results: vec![(tp(0), ErrorCode::NotCoordinator)],
        })),
    );
    let (_, _, kind) = c.next_request(132, ID, false).unwrap();
    assert_eq!(kind, TxnRequestKind::FindTxnCoordinator);
}

#[test]
fn an_epoch_bump_after_a_sequence_gap_goes_through_init_producer_id() {
    let mut c = initialized(false);
    c.begin();
    assert!(c.on_epoch_bump_needed().is_some());
    c.end(false);
    assert!(
        c.next_request(1, ID, true).is_none(),
        "nothing was added: local end"
    );
    assert_eq!(*c.state(), TxnClientState::Initializing);
    let (_, request, _) = c.next_request(2, ID, true).unwrap();
    assert!(
        matches!(&request, Request::InitProducerId(r) if r.producer_id == 7 && r.producer_epoch == 3),
        "KIP-360: the current id and epoch ask for a bump"
    );
}

#[test]
#[should_panic(expected = "illegal client transaction state change")]
fn begin_twice_is_illegal() {
    let mut c = initialized(false);
    c.begin();
    c.transition(TxnClientState::InTransaction);
}
