#!/usr/bin/env python3
"""Generate the record batch v2 and murmur2 fixtures under tests/fixtures/.

The fixtures pin kafkasim's codec (src/record.rs) and keyed partitioner
(src/partitioner.rs) to an independent Kafka client library, kafka-python,
so that CI can check them without Python: the generated files are committed
and read by tests/record_fixtures.rs.

How to run (from the repository root):

    pip install kafka-python==3.0.12
    python3 scripts/make_fixtures.py

Generated with kafka-python 3.0.12 (the script records the version it ran
with in batches.json and warns when it differs). The output is deterministic:
running the script again with the same kafka-python version rewrites the same
bytes.

What it writes:

* tests/fixtures/<name>.bin: one uncompressed magic-2 record batch each, built
  by kafka.record.default_records.DefaultRecordBatchBuilder.
* tests/fixtures/batches.json: every field of every batch (header fields, and
  for each record its offset delta, timestamp delta, key, value and headers;
  byte strings as lowercase hex, null as JSON null), plus murmur2 vectors
  computed by kafka.partitioner.default.murmur2.

Notes on kafka-python versus the Java client (see the test file too):

* kafka-python's builder always writes baseOffset 0 and partitionLeaderEpoch 0;
  the Java producer writes baseOffset 0 and partitionLeaderEpoch -1
  (RecordBatch.NO_PARTITION_LEADER_EPOCH). Both fields lie outside the CRC and
  are overwritten by the partition leader, so fixtures that need other values
  patch them after building, exactly as a broker does.
* kafka.partitioner.default.murmur2 returns the hash as an unsigned 32-bit
  number; Java's Utils.murmur2 returns a signed int. The JSON stores the
  signed (Java) form.
"""

import json
import os
import struct
import sys

import kafka
from kafka.partitioner.default import murmur2 as kp_murmur2
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

KAFKA_PYTHON_VERSION = "3.0.12"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")

BASE_TS = 1_700_000_000_000  # 2023-11-14T22:13:20Z in milliseconds


def hx(b):
    return None if b is None else bytes(b).hex()


def build(name, records, *, producer_id=-1, producer_epoch=-1, base_sequence=-1,
          transactional=False, base_offset=None, leader_epoch=None, note="",
          compression=0):
    """Builds one batch; records are (offset_delta, timestamp, key, value, headers)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=transactional,
        producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, batch_size=1 << 20)
    for offset_delta, ts, key, value, headers in records:
        meta = builder.append(offset_delta, timestamp=ts, key=key, value=value, headers=headers)
        assert meta is not None, "record did not fit"
    buf = bytearray(builder.build())
    # kafka-python leaves both at 0; a broker patches them (outside the CRC).
    if base_offset is not None:
        struct.pack_into(">q", buf, 0, base_offset)
    if leader_epoch is not None:
        struct.pack_into(">i", buf, 12, leader_epoch)

    first_ts = records[0][1]
    desc = {
        "name": name,
        "file": name + ".bin",
        "note": note,
        "size": len(buf),
        "base_offset": base_offset if base_offset is not None else 0,
        "partition_leader_epoch": leader_epoch if leader_epoch is not None else 0,
        "attributes": (0x10 if transactional else 0) | compression,
        "last_offset_delta": records[-1][0],
        "base_timestamp": first_ts,
        "max_timestamp": max(r[1] for r in records),
        "producer_id": producer_id,
        "producer_epoch": producer_epoch,
        "base_sequence": base_sequence,
        "records": [
            {
                "attributes": 0,
                "offset_delta": od,
                "timestamp_delta": ts - first_ts,
                "key": hx(key),
                "value": hx(value),
                "headers": [{"key": hk, "value": hx(hv)} for hk, hv in headers],
            }
            for od, ts, key, value, headers in records
        ],
    }
    check_with_kafka_python(bytes(buf), desc)
    with open(os.path.join(OUT, desc["file"]), "wb") as f:
        f.write(buf)
    return desc


def check_with_kafka_python(buf, d):
    """Reads the batch back with kafka-python's own reader and checks the description."""
    b = DefaultRecordBatch(buf)
    assert b.validate_crc(), d["name"]
    assert b.magic == 2
    assert b.base_offset == d["base_offset"]
    assert b.leader_epoch == d["partition_leader_epoch"]
    assert b.attributes == d["attributes"]
    assert b.last_offset_delta == d["last_offset_delta"]
    assert b.first_timestamp == d["base_timestamp"]
    assert b.max_timestamp == d["max_timestamp"]
    assert b.producer_id == d["producer_id"]
    assert b.producer_epoch == d["producer_epoch"]
    assert b.base_sequence == d["base_sequence"]
    assert b.records_count == len(d["records"])
    assert b.size_in_bytes == len(buf)
    got = list(b)
    assert len(got) == len(d["records"])
    for rec, want in zip(got, d["records"]):
        assert rec.offset == d["base_offset"] + want["offset_delta"]
        assert rec.timestamp == d["base_timestamp"] + want["timestamp_delta"]
        assert hx(rec.key) == want["key"]
        assert hx(rec.value) == want["value"]
        assert [(k, hx(v)) for k, v in rec.headers] == [
            (h["key"], h["value"]) for h in want["headers"]]


def batches():
    out = []
    out.append(build("keyed", [
        (0, BASE_TS, b"k1", b"v1", []),
        (1, BASE_TS + 1, b"key-2", b"a somewhat longer value", []),
        (2, BASE_TS + 1, b"", b"empty (not null) key", []),
        (3, BASE_TS + 5, b"\x00\xff\x80binary", b"\xde\xad\xbe\xef", []),
    ], note="keyed records, an empty key, binary key and value"))
    out.append(build("null_key", [
        (0, BASE_TS, None, b"no key 0", []),
        (1, BASE_TS + 2, None, b"no key 1", []),
    ], note="records without key (sticky partitioning)"))
    out.append(build("null_value", [
        (0, BASE_TS, b"gone", None, []),
        (1, BASE_TS, b"empty", b"", []),
        (2, BASE_TS + 3, None, None, []),
    ], note="tombstone, empty value, null key and null value"))
    out.append(build("headers", [
        (0, BASE_TS, b"h", b"with headers", [
            ("trace-id", b"abc123"),
            ("null-header", None),
            ("empty-header", b""),
            ("dup", b"1"),
            ("dup", b"2"),
        ]),
        (1, BASE_TS + 1, b"h2", b"no headers", []),
        (2, BASE_TS + 2, None, None, [("gr\u00fc\u00dfe-\u00e9", b"\x00\x01\x02")]),
    ], note="headers: null value, empty value, repeated key, non-ASCII key"))
    out.append(build("idempotent", [
        (0, BASE_TS, b"i", b"seq 17", []),
        (1, BASE_TS + 1, b"i", b"seq 18", []),
        (2, BASE_TS + 2, b"i", b"seq 19", []),
    ], producer_id=4242, producer_epoch=3, base_sequence=17,
        note="idempotent producer: producer id, epoch and base sequence set"))
    out.append(build("transactional", [
        (0, BASE_TS, b"t", b"in txn", []),
        (1, BASE_TS + 10, None, b"in txn too", [("h", b"v")]),
    ], producer_id=9_000_000_000, producer_epoch=32767, base_sequence=2_147_483_000,
        transactional=True,
        note="transactional attribute bit, large producer id, max epoch"))
    out.append(build("base_offset_epoch", [
        (0, BASE_TS, b"o", b"patched", []),
        (1, BASE_TS + 1, b"o", b"by the leader", []),
    ], base_offset=1_234_567_890_123, leader_epoch=42,
        note="baseOffset and partitionLeaderEpoch patched after building, as a leader does"))
    out.append(build("producer_epoch_minus_one", [
        (0, BASE_TS, b"j", b"as the Java producer writes it", []),
    ], leader_epoch=-1,
        note="partitionLeaderEpoch -1, the Java producer's NO_PARTITION_LEADER_EPOCH"))
    out.append(build("large_timestamps", [
        (0, BASE_TS, b"t0", b"first", []),
        (1, BASE_TS + (1 << 40), b"t1", b"delta 2^40 (varlong > 5 bytes)", []),
        (2, 1 << 62, b"t2", b"timestamp 2^62 (the max)", []),
        (3, BASE_TS - 86_400_000, b"t3", b"negative delta", []),
        (4, BASE_TS + 3_000_000_000, b"t4", b"delta above i32::MAX", []),
    ], note="timestamp deltas needing long varlongs, negative delta, max not last"))
    out.append(build("sparse_offsets", [
        (0, BASE_TS, b"s", b"0", []),
        (5, BASE_TS, b"s", b"5", []),
        (300, BASE_TS, b"s", b"300 (two-byte varint)", []),
        (70_000, BASE_TS, b"s", b"70000 (three-byte varint)", []),
    ], note="non-contiguous offset deltas, as after compaction"))
    hundred = []
    for i in range(100):
        key = None if i % 7 == 0 else ("key-%d" % (i % 13)).encode()
        value = None if i % 31 == 30 else (("value-%03d-" % i) + "x" * (i * 3)).encode()
        headers = [("idx", str(i).encode())] if i % 10 == 0 else []
        hundred.append((i, BASE_TS + i * 17, key, value, headers))
    out.append(build("hundred", hundred,
                     note="100 records; values grow to ~300 bytes (two-byte length varints)"))
    return out


MURMUR_KEYS = [
    # Kafka's UtilsTest.testMurmur2 inputs (expected values asserted below).
    b"21", b"foobar", b"a-little-bit-long-string", b"a-little-bit-longer-string",
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", b"abc",
    # More: every tail length 0-7, bytes with the high bit set (Java bytes are
    # signed), and typical record keys.
    b"", b"a", b"ab", b"abcd", b"abcde", b"abcdef", b"abcdefg",
    b"\x80", b"\xff\xfe", b"\xff\xfe\xfd", b"\xff\xfe\xfd\xfc", b"\x80\x81\x82\x83\x84",
    b"\x00", b"\x00\x00\x00\x00", b"key-0", b"key-1", b"key-12", b"user-4711",
    "\u00fcber-schl\u00fcssel".encode(), b"order-2023-11-14T22:13:20Z",
    bytes(range(256)),
]

# org.apache.kafka.common.utils.UtilsTest.testMurmur2
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

PARTITION_COUNTS = [1, 3, 7, 12, 50, 100]


def signed32(u):
    u &= 0xFFFFFFFF
    return u - (1 << 32) if u >= (1 << 31) else u


def murmur_vectors():
    out = []
    for key in MURMUR_KEYS:
        h = signed32(kp_murmur2(key))
        if key in KAFKA_VECTORS:
            assert h == KAFKA_VECTORS[key], (key, h)
        out.append({
            "key": key.hex(),
            "murmur2": h,
            "partitions": {str(n): (h & 0x7FFFFFFF) % n for n in PARTITION_COUNTS},
        })
    return out


def compressed_batches():
    """Batches compressed by kafka-python: kafkasim must decode them (its own deflate
    output differs byte-wise, so only decoding is pinned)."""
    records = [(i, BASE_TS + i, ("key-%d" % (i % 5)).encode(),
                ("%d" % (4_294_967_296 + i)).encode(), []) for i in range(50)]
    return [build("gzip", records, compression=1,
                  note="50 workload-like records, gzip (codec 1) by kafka-python")]


def check_ours():
    """Reads kafkasim's own gzip batch (tests/fixtures/ours_gzip.bin, pinned byte for
    byte by tests/record_fixtures.rs) with kafka-python: a real client can read what
    kafkasim's producer writes."""
    path = os.path.join(OUT, "ours_gzip.bin")
    if not os.path.exists(path):
        print("note: %s missing; run the Rust fixture tests with "
              "KAFKASIM_WRITE_FIXTURES=1 first" % os.path.relpath(path, ROOT), file=sys.stderr)
        return
    with open(path, "rb") as f:
        buf = f.read()
    b = DefaultRecordBatch(buf)
    assert b.validate_crc()
    assert b.compression_type == 1, b.compression_type
    got = [(r.offset, r.key, r.value) for r in b]
    want = [(i, ("key-%d" % (i % 5)).encode(), ("%d" % (4_294_967_296 + i)).encode())
            for i in range(50)]
    assert got == want, got[:3]
    print("kafka-python %s reads kafkasim's gzip batch (%d records, %d bytes)"
          % (kafka.__version__, len(got), len(buf)))


def main():
    if kafka.__version__ != KAFKA_PYTHON_VERSION:
        print("warning: fixtures were generated with kafka-python %s, this is %s"
              % (KAFKA_PYTHON_VERSION, kafka.__version__), file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    doc = {
        "generator": "scripts/make_fixtures.py",
        "library": "kafka-python",
        "library_version": kafka.__version__,
        "bytes": "lowercase hex; null is JSON null",
        "batches": batches(),
        "compressed_batches": compressed_batches(),
        "murmur2": murmur_vectors(),
    }
    with open(os.path.join(OUT, "batches.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote %d batches and %d murmur2 vectors to %s"
          % (len(doc["batches"]), len(doc["murmur2"]), os.path.relpath(OUT, ROOT)))
    check_ours()


if __name__ == "__main__":
    main()
