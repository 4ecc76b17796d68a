use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dump-log")
        .join(name)
}

fn files() -> DumpFiles {
    DumpFiles {
        describe: fixture("describe.txt"),
        dumps: vec![(1, fixture("broker-1.txt")), (2, fixture("broker-2.txt"))],
        checkpoints: vec![(1, fixture("broker-1-replication-offset-checkpoint"))],
    }
}

/// Writes `text` to a fresh file of this test's own and returns its path.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafkasim-dump-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_dump_becomes_each_replicas_log() {
    let s = snapshot(&files()).unwrap();
    // orders-1 was described but no broker's dump holds it: left out.
    assert_eq!(s.partitions.len(), 1);
    let p = &s.partitions[0];
    assert_eq!(
        (p.partition.to_string(), p.leader, &p.isr),
        ("orders-0".into(), Some(1), &vec![1, 2])
    );
    let leader = &p.replicas[0];
    assert_eq!(leader.broker, 1);
    // The corrupt batch's records are not readable; the index file and the metadata
    // log's segment are passed over.
    assert_eq!(leader.records, vec![(0, 7), (1, 8), (2, 9), (4, 10)]);
    assert_eq!(leader.corrupt, vec![(5, 6)]);
    assert_eq!(leader.log_end_offset, 7);
    assert_eq!(leader.high_watermark, 4, "from its checkpoint");
    assert_eq!(
        leader.markers,
        vec![MarkerSnapshot {
            offset: 3,
            producer_id: 2000,
            producer_epoch: 3,
            committed: true,
            timestamp: 1_700_000_000_300,
        }]
    );
    let txn: Vec<(Offset, Offset)> = leader
        .txn_batches
        .iter()
        .map(|b| (b.base_offset, b.last_offset))
        .collect();
    assert_eq!(txn, vec![(2, 2), (4, 4)]);
    // Offset 4 opens a transaction no marker ends: the first unstable offset.
    assert_eq!(leader.last_stable_offset, 4);
    let follower = &p.replicas[1];
    assert_eq!((follower.broker, follower.log_end_offset), (2, 2));
    assert_eq!(
        follower.high_watermark, 2,
        "no checkpoint: the leader's end, capped at its own"
    );
    assert_eq!(follower.records, vec![(0, 7), (1, 13)]);
}

#[test]
fn the_checker_judges_a_converted_snapshot() {
    let s = snapshot(&files()).unwrap();
    let result = crate::check::check(&crate::history::History::default(), &s);
    let kinds: Vec<&str> = result.anomalies.keys().map(String::as_str).collect();
    assert!(kinds.contains(&"replica-divergence"), "{kinds:?}");
}

#[test]
fn bad_dumps_name_the_line_and_field() {
    let batch = "baseOffset: 0 lastOffset: 0 count: 1 baseSequence: 0 lastSequence: 0 \
                 producerId: 1 producerEpoch: 0 partitionLeaderEpoch: 0 isTransactional: false \
                 isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 5 \
                 size: 70 magic: 2 compresscodec: none crc: 1 isvalid: true";
    let head = "Dumping /data/orders-0/00000000000000000000.log\nLog starting offset: 0\n";
    let cases = [
        (
            format!("{head}{batch}\n| offset: 0 CreateTime: 5 keySize: 1 valueSize: 3 sequence: 0 headerKeys: [] key: k payload: abc\n"),
            (4, "payload"),
        ),
        (
            format!("{head}{batch}\n| offset: 0 CreateTime: 5 keySize: 1 valueSize: 3 sequence: 0 headerKeys: [] key: k\n"),
            (4, "payload"),
        ),
        (format!("{head}{batch}\n{batch}\n"), (4, "baseOffset")),
        (format!("{head}{}\n", batch.replace("isvalid: true", "isvalid: maybe")), (3, "isvalid")),
        (format!("{head}| offset: 0 payload: 1\n"), (3, "offset")),
        (
            format!("{head}{batch}\n| offset: 9 CreateTime: 5 payload: 1\n"),
            (4, "offset"),
        ),
    ];
    for (i, (text, (line, field))) in cases.iter().enumerate() {
        let dump = scratch(&format!("bad-{i}.txt"), text);
        let files = DumpFiles {
            describe: fixture("describe.txt"),
            dumps: vec![(1, dump.clone())],
            checkpoints: vec![],
        };
        let e = snapshot(&files).unwrap_err();
        assert_eq!(
            (e.file, e.line, e.field.as_str()),
            (dump, Some(*line), *field),
            "case {i}"
        );
    }
}

#[test]
fn bad_describe_and_checkpoint_files_are_refused() {
    let describe = scratch(
        "describe-bad.txt",
        "\tTopic: orders\tPartition: 0\tLeader: x\tReplicas: 1\tIsr: 1\n",
    );
    let e = snapshot(&DumpFiles {
        describe: describe.clone(),
        dumps: vec![],
        checkpoints: vec![],
    })
    .unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(1), "Leader"));
    let empty = scratch("describe-empty.txt", "nothing here\n");
    assert_eq!(
        snapshot(&DumpFiles {
            describe: empty,
            dumps: vec![],
            checkpoints: vec![]
        })
        .unwrap_err()
        .field,
        "Partition"
    );
    for (i, (text, field)) in [
        ("1\n0\n", "version"),
        ("0\n2\norders 0 4\n", "count"),
        ("0\n1\norders x 4\n", "partition"),
    ]
    .iter()
    .enumerate()
    {
        let checkpoint = scratch(&format!("checkpoint-{i}"), text);
        let e = snapshot(&DumpFiles {
            describe: fixture("describe.txt"),
            dumps: vec![],
            checkpoints: vec![(1, checkpoint)],
        })
        .unwrap_err();
        assert_eq!(e.field, *field, "{text:?}");
    }
}
