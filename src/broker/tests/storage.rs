//! A full disk (the `disk-full` fault): the write that hits it is refused with
//! `KAFKA_STORAGE_ERROR`, the only log directory goes offline and the broker halts
//! (Kafka's `LogDirFailureChannel` and `LogDirFailureHandler`); it cannot start while
//! the disk is full.

use super::*;

/// The `log_dir_failure` entries of `out`.
fn dir_failures(out: &Outbox) -> Vec<String> {
    out.history
        .iter()
        .filter_map(|e| match &e.op {
            Op::LogDirFailure { error } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_produce_to_a_full_disk_is_refused_with_kafka_storage_error_and_the_broker_halts() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    assert_eq!(
        send(&mut b, 10, 7, Acks::Leader, &[100]),
        Some((ErrorCode::None, 0))
    );
    b.set_disk_full(true);
    let (answer, out) = send_batch(&mut b, 20, 8, Acks::Leader, batch(&[101]));
    assert_eq!(
        answer,
        Some((ErrorCode::KafkaStorageError, -1)),
        "answered before the halt"
    );
    let failures = dir_failures(&out);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("Error while appending records to orders-0 in dir /tmp/kafka-logs: No space left on device"),
        "{}",
        failures[0]
    );
    assert!(b.halted());
    assert_eq!(b.next_timer(), None, "a halted process takes no more steps");
    assert_eq!(b.disk().logs[&tp()].log_end_offset(), 1, "nothing appended");
    // Nothing answers any more.
    let (answer, out) = send_batch(&mut b, 30, 9, Acks::Leader, batch(&[102]));
    assert_eq!((answer, out.history.len()), (None, 0));
}

#[test]
fn an_idle_broker_on_a_full_disk_halts_at_its_high_watermark_checkpoint() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    assert_eq!(
        send(&mut b, 10, 7, Acks::Leader, &[100]),
        Some((ErrorCode::None, 0))
    );
    let out = fire(&mut b, 5_000);
    assert!(dir_failures(&out).is_empty() && !b.halted());
    assert_eq!(
        b.disk().hw_checkpoint[&tp()],
        1,
        "written with room on the disk"
    );
    b.set_disk_full(true);
    let out = fire(&mut b, 10_000);
    let failures = dir_failures(&out);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with("Error while writing to highwatermark file"),
        "{}",
        failures[0]
    );
    assert!(b.halted());
}

#[test]
fn a_broker_cannot_start_on_a_full_disk_and_starts_with_its_log_once_there_is_room() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    assert_eq!(
        send(&mut b, 10, 7, Acks::Leader, &[100, 101]),
        Some((ErrorCode::None, 0))
    );
    b.set_disk_full(true);
    b.restart(2);
    let mut out = Outbox::default();
    b.on_start(100, &mut out);
    assert!(b.halted(), "the log manager cannot load the directory");
    assert!(out.sends.is_empty(), "no registration: {:?}", out.sends);
    assert_eq!(dir_failures(&out).len(), 1);
    b.set_disk_full(false);
    b.restart(3);
    let mut out = Outbox::default();
    b.on_start(200, &mut out);
    assert!(!b.halted());
    find(&out, |r| matches!(r, Request::BrokerRegistration(_)));
    assert_eq!(
        b.disk().logs[&tp()].log_end_offset(),
        2,
        "the page cache survived the halt"
    );
}

#[test]
fn a_follower_on_a_full_disk_halts_without_appending_what_it_fetched() {
    let (mut leader, _) = replica_of(1, 1, &[1, 2], Bugs::default());
    assert_eq!(
        send(&mut leader, 10, 7, Acks::Leader, &[100]),
        Some((ErrorCode::None, 0))
    );
    let (mut f, out) = replica_of(2, 1, &[1, 2], Bugs::default());
    let c = find(&out, |r| matches!(r, Request::Fetch(_)));
    let Some(Message::Request { request, .. }) = out
        .sends
        .iter()
        .map(|(_, m)| m)
        .find(|m| matches!(m, Message::Request { correlation_id, .. } if *correlation_id == c))
    else {
        panic!("a follower fetch")
    };
    let answer = request_response(&mut leader, request.clone());
    assert!(matches!(&answer, Response::Fetch(r) if !r.partitions[0].batches.is_empty()));
    f.set_disk_full(true);
    // An empty answer needs no space: the follower fetches on.
    let mut empty = answer.clone();
    if let Response::Fetch(r) = &mut empty {
        r.partitions[0].batches.clear();
    }
    let out = answer_with(&mut f, 18, 1, c, empty);
    assert!(!f.halted() && dir_failures(&out).is_empty());
    let c = find(&out, |r| matches!(r, Request::Fetch(_)));
    let out = answer_with(&mut f, 20, 1, c, answer);
    assert_eq!(dir_failures(&out).len(), 1);
    assert!(f.halted());
    assert_eq!(f.disk().logs[&tp()].log_end_offset(), 0, "nothing appended");
}

/// `request` delivered to `b` at 15 from broker 2 and its answer.
fn request_response(b: &mut Broker, request: Request) -> Response {
    let out = deliver_request(b, 15, NodeId::Broker(2), 99, request);
    response_to(&out, 99).expect("answered at once")
}
