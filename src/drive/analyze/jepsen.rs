//! Jepsen's Kafka workload history (`history.edn`, `jepsen.tests.kafka`) as a
//! kafkasim [`History`].
//!
//! Jepsen records an `:invoke` and then an `:ok`, `:fail` or `:info` completion per
//! `:process`; `:send`, `:poll` and `:txn` operations carry micro-operations
//! (`[:send k v]` completed as `[:send k [offset v]]`, `[:poll {k [[offset v] ...]}]`),
//! `:assign` and `:subscribe` carry the keys a consumer takes, `:crash` replaces a
//! client. Each completed `:send`, `:poll` or `:txn` becomes one kafkasim
//! transaction (`BeginTxn`, a `Send` per sent record, a `Poll` per key read, `EndTxn`
//! with the operation's outcome), as Jepsen's checker treats each as one; polls are
//! `read_committed`, as Jepsen's transactional consumers read.
//!
//! Jepsen's consumer positions, as kafkasim `Seek`s: a consumer's position advances
//! only with `:ok` operations, so after a `:fail` or `:info` one that polled it is
//! back where its last `:ok` poll left it; after an `:assign` or `:subscribe` that
//! drops a key, a `:crash`, or a failed poll with no `:ok` one before it, its next
//! read of the key may start anywhere (the group's committed offset, unknown here),
//! which a `Seek` to that read's offset says.
//!
//! The nemesis's operations (`:process :nemesis`) are faults, not checked: each
//! completed one is a `FaultStart` or `FaultEnd` entry (the report's timeline and
//! fault count show them).

use super::{for_each_line, InputError, Line, Topics};
use crate::drive::analyze::edn::{self, Edn};
use crate::history::{Entry, History, Op, Outcome, ReadRecord, TxnId, Value};
use crate::kafka::protocol::{Millis, NodeId, Offset, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::BufRead;
use std::path::Path;

/// How Jepsen's integer keys map to topic-partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMap {
    /// Jepsen's own rule (`jepsen.kafka.client`, `jepsen.redpanda`): key `k` is
    /// partition `k mod n` of topic `t<k / n>`, with `n` partitions per topic (2 in
    /// Jepsen).
    PerTopic(u32),
    /// Every key in one topic: key `k` is its partition `k`.
    OneTopic(String),
}

impl KeyMap {
    /// The topic-partition of key `k`.
    pub fn partition(&self, k: u64) -> TopicPartition {
        match self {
            KeyMap::PerTopic(n) => {
                let n = u64::from(*n);
                TopicPartition::new(&format!("t{}", k / n), (k % n) as u32)
            }
            KeyMap::OneTopic(topic) => TopicPartition::new(topic, k as u32),
        }
    }
}

/// Jepsen's values are unique per key only, kafkasim's over the whole history: key
/// `k`'s value `v` is kafkasim's value `k * VALUES_PER_KEY + v` (`3000000000017` is
/// key 3's value 17).
pub const VALUES_PER_KEY: u64 = 1_000_000_000_000;

/// The largest key (keys times [`VALUES_PER_KEY`] stay below kafkasim's output bit).
const MAX_KEY: u64 = 999_999;

/// The longest line read (a poll of many records is long; a line past this is not a
/// history line).
const MAX_LINE: usize = 64 << 20;

/// The longest fault description kept from a nemesis operation's `:value`.
const MAX_FAULT_TEXT: usize = 200;

/// The most operations awaiting their completion (one per process).
const MAX_PENDING: usize = 1 << 20;

/// The `:f`s of client operations Jepsen's Kafka workload records.
const CLIENT_FS: &[&str] = &[
    "send",
    "poll",
    "txn",
    "assign",
    "subscribe",
    "crash",
    "debug-topic-partitions",
];

/// A completed operation's type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Ok,
    Info,
    Fail,
}

/// Where in an operation's `:value` a bad value is (`:value[2] key`), spelled out only
/// for an error.
#[derive(Clone, Copy)]
struct At<'a> {
    /// The micro-operation's position, if in one.
    mop: Option<usize>,
    /// What of it (`key`, `offset`, `value`; empty: the whole).
    what: &'a str,
}

impl<'a> At<'a> {
    fn value(mop: Option<usize>, what: &'a str) -> At<'a> {
        At { mop, what }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":value")?;
        if let Some(i) = self.mop {
            write!(f, "[{i}]")?;
        }
        if !self.what.is_empty() {
            write!(f, " {}", self.what)?;
        }
        Ok(())
    }
}

/// An `:invoke` awaiting its completion.
struct Invoked {
    line: u64,
    f: String,
    time: Millis,
    value: Edn,
}

/// The state of the conversion.
struct Converter<'a> {
    keys: &'a KeyMap,
    file: &'a Path,
    history: History,
    pending: BTreeMap<u32, Invoked>,
    /// Per (process, key): where its last `:ok` poll left it (the next offset).
    committed: BTreeMap<(u32, u64), Offset>,
    /// The (process, key)s whose next read may start anywhere.
    anywhere: BTreeSet<(u32, u64)>,
    next_txn: TxnId,
    /// The nemesis's `:f`s invoked and not yet completed.
    nemesis_pending: BTreeSet<String>,
    /// Each key's topic-partition, made once (entries share its topic name).
    partitions: BTreeMap<u64, TopicPartition>,
    /// One copy of each topic's name.
    topics: Topics,
}

/// Reads a Jepsen `history.edn` (one operation map per line) into a kafkasim history.
pub fn read(file: &Path, input: impl BufRead, keys: &KeyMap) -> Result<History, InputError> {
    let mut c = Converter {
        keys,
        file,
        history: History::default(),
        pending: BTreeMap::new(),
        committed: BTreeMap::new(),
        anywhere: BTreeSet::new(),
        next_txn: 0,
        nemesis_pending: BTreeSet::new(),
        partitions: BTreeMap::new(),
        topics: Topics::default(),
    };
    for_each_line(input, MAX_LINE, edn::parse_line, |number, line| {
        let values = match line {
            Line::Parsed(values) => values.map_err(|e| {
                c.error(
                    number,
                    &format!("column {}", e.column),
                    format!("EDN: {}", e.expected),
                )
            })?,
            Line::TooLong => {
                return Err(c.error(number, "-", format!("a line of at most {MAX_LINE} bytes")))
            }
            Line::Unreadable(e) => {
                return Err(c.error(number, "-", format!("a readable file ({e})")))
            }
        };
        for op in values {
            c.op(number, op)?;
        }
        Ok(())
    })?;
    // Operations never completed: their outcome is unknown.
    for (process, inv) in std::mem::take(&mut c.pending) {
        if ["send", "poll", "txn"].contains(&inv.f.as_str()) {
            let value = inv.value.clone();
            c.client_op(
                inv.line,
                process,
                &inv,
                Type::Info,
                &value,
                inv.time,
                "never completed",
            )?;
        }
    }
    Ok(c.history)
}

impl Converter<'_> {
    /// Key `key`'s topic-partition.
    fn partition(&mut self, key: u64) -> TopicPartition {
        let (keys, topics) = (self.keys, &mut self.topics);
        self.partitions
            .entry(key)
            .or_insert_with(|| {
                let mut tp = keys.partition(key);
                topics.share(&mut tp);
                tp
            })
            .clone()
    }

    fn error(&self, line: u64, field: &str, expected: impl Into<String>) -> InputError {
        InputError {
            file: self.file.to_path_buf(),
            line: Some(line),
            field: field.to_string(),
            expected: expected.into(),
        }
    }

    /// Takes in one operation map.
    fn op(&mut self, line: u64, mut op: Edn) -> Result<(), InputError> {
        if !matches!(op, Edn::Map(_)) {
            return Err(self.error(line, "-", format!("an operation map, not {op}")));
        }
        let keyword = |field: &str| match op.get(field) {
            Some(Edn::Keyword(k)) => Ok(k.as_str()),
            other => Err(self.error(
                line,
                &format!(":{field}"),
                format!("a keyword, not {}", shown(other)),
            )),
        };
        // The nemesis's operations are not the clients': faults, not checked.
        if matches!(op.get("process"), Some(Edn::Keyword(_))) {
            let f = keyword("f")?.to_string();
            let time = self.time(line, &op)?;
            self.nemesis(f, op.get("value").unwrap_or(&Edn::Nil), time);
            return Ok(());
        }
        let type_ = keyword("type")?.to_string();
        let f = keyword("f")?.to_string();
        let process = match op.get("process") {
            Some(Edn::Int(p)) if (0..i64::from(u32::MAX)).contains(p) => *p as u32,
            other => {
                return Err(self.error(
                    line,
                    ":process",
                    format!("a process number (or :nemesis), not {}", shown(other)),
                ))
            }
        };
        if !CLIENT_FS.contains(&f.as_str()) {
            return Err(self.error(
                line,
                ":f",
                format!("one of :{}, not :{f}", CLIENT_FS.join(", :")),
            ));
        }
        let time = self.time(line, &op)?;
        let value = op.take("value").unwrap_or(Edn::Nil);
        let done = match type_.as_str() {
            "invoke" => {
                if let Some(prev) = self.pending.get(&process) {
                    return Err(self.error(
                        line,
                        ":type",
                        format!(
                            "a completion of process {process}'s :{} invoked on line {}, \
                             not another :invoke",
                            prev.f, prev.line
                        ),
                    ));
                }
                if self.pending.len() >= MAX_PENDING {
                    return Err(self.error(
                        line,
                        ":process",
                        format!("at most {MAX_PENDING} processes"),
                    ));
                }
                let inv = Invoked {
                    line,
                    f,
                    time,
                    value,
                };
                self.pending.insert(process, inv);
                return Ok(());
            }
            "ok" => Type::Ok,
            "info" => Type::Info,
            "fail" => Type::Fail,
            other => {
                return Err(self.error(
                    line,
                    ":type",
                    format!("one of :invoke, :ok, :info, :fail, not :{other}"),
                ))
            }
        };
        let Some(inv) = self.pending.remove(&process) else {
            return Err(self.error(
                line,
                ":type",
                format!("an :invoke of process {process} before its :{type_}"),
            ));
        };
        if inv.f != f {
            return Err(self.error(
                line,
                ":f",
                format!(
                    ":{} as process {process} invoked on line {}, not :{f}",
                    inv.f, inv.line
                ),
            ));
        }
        let why = match op.get("error") {
            Some(e) => e.to_string(),
            None => format!(":{type_}"),
        };
        match f.as_str() {
            "send" | "poll" | "txn" => {
                self.client_op(line, process, &inv, done, &value, time, &why)
            }
            "assign" | "subscribe" if done != Type::Fail => {
                let kept = self.key_list(line, &value)?;
                self.forget(process, |k| !kept.contains(&k));
                Ok(())
            }
            "crash" => {
                self.forget(process, |_| true);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// An operation's `:time` in ms (Jepsen's are nanoseconds; without one, the line
    /// number stands for it).
    fn time(&self, line: u64, op: &Edn) -> Result<Millis, InputError> {
        match op.get("time") {
            Some(Edn::Int(ns)) if *ns >= 0 => Ok((*ns as u64) / 1_000_000),
            None => Ok(line),
            other => Err(self.error(line, ":time", format!("nanoseconds, not {}", shown(other)))),
        }
    }

    /// A nemesis operation (`:process :nemesis`): Jepsen records each twice, both
    /// `:info`, the second with what it did. The second becomes a fault's start or
    /// end, named so the two pair up: `:start-partition` starts `partition`,
    /// `:stop-partition` ends it; `:kill` / `:start` and `:pause` / `:resume` likewise;
    /// any other `:f` is a fault that starts and never ends (a clock bump).
    fn nemesis(&mut self, f: String, value: &Edn, time: Millis) {
        if self.nemesis_pending.insert(f.clone()) {
            return;
        }
        self.nemesis_pending.remove(&f);
        let end = match f.as_str() {
            "start" => Some("kill"),
            "resume" => Some("pause"),
            other => other.strip_prefix("stop-"),
        };
        let op = match end {
            Some(name) => Op::FaultEnd { fault: name.into() },
            None => {
                let name = f.strip_prefix("start-").unwrap_or(&f);
                let mut fault = match value {
                    Edn::Nil => name.to_string(),
                    v => format!("{name} {v}"),
                };
                if fault.len() > MAX_FAULT_TEXT {
                    let cut = (0..=MAX_FAULT_TEXT)
                        .rev()
                        .find(|&i| fault.is_char_boundary(i))
                        .unwrap_or(0);
                    fault.truncate(cut);
                    fault.push_str(" ...");
                }
                Op::FaultStart { fault }
            }
        };
        self.history.push(Entry::instant(NodeId::Nemesis, time, op));
    }

    /// The keys of `process` for which `drop` holds: its next read may start anywhere.
    fn forget(&mut self, process: u32, drop: impl Fn(u64) -> bool) {
        let gone: Vec<(u32, u64)> = self
            .committed
            .keys()
            .filter(|(p, k)| *p == process && drop(*k))
            .copied()
            .collect();
        for pk in gone {
            self.committed.remove(&pk);
            self.anywhere.insert(pk);
        }
    }

    fn key_list(&self, line: u64, value: &Edn) -> Result<BTreeSet<u64>, InputError> {
        let items = value
            .items()
            .ok_or_else(|| self.error(line, ":value", format!("a vector of keys, not {value}")))?;
        items
            .iter()
            .map(|k| self.key(line, At::value(None, ""), k))
            .collect()
    }

    fn key(&self, line: u64, field: At, k: &Edn) -> Result<u64, InputError> {
        match k {
            Edn::Int(k) if (0..=MAX_KEY as i64).contains(k) => Ok(*k as u64),
            other => Err(self.error(
                line,
                &field.to_string(),
                format!("an integer key from 0 to {MAX_KEY}, not {other}"),
            )),
        }
    }

    fn int(&self, line: u64, field: At, v: &Edn) -> Result<u64, InputError> {
        match v {
            Edn::Int(i) if *i >= 0 => Ok(*i as u64),
            other => Err(self.error(
                line,
                &field.to_string(),
                format!("a non-negative integer, not {other}"),
            )),
        }
    }

    /// Key `key`'s Jepsen value `v` as a kafkasim value.
    fn value(&self, line: u64, field: At, key: u64, v: &Edn) -> Result<Value, InputError> {
        match v {
            Edn::Int(i) if (0..VALUES_PER_KEY as i64).contains(i) => {
                Ok(key * VALUES_PER_KEY + *i as u64)
            }
            other => Err(self.error(
                line,
                &field.to_string(),
                format!(
                    "an integer value from 0 to {}, not {other}",
                    VALUES_PER_KEY - 1
                ),
            )),
        }
    }

    fn push(
        &mut self,
        process: u32,
        invoke_ms: Millis,
        complete_ms: Millis,
        outcome: Outcome,
        op: Op,
    ) {
        self.history.push(Entry {
            index: 0,
            process: NodeId::Consumer(process),
            invoke_ms,
            complete_ms: Some(complete_ms),
            outcome,
            op,
        });
    }

    /// A completed `:send`, `:poll` or `:txn`: one transaction.
    #[allow(clippy::too_many_arguments)]
    fn client_op(
        &mut self,
        line: u64,
        process: u32,
        inv: &Invoked,
        done: Type,
        value: &Edn,
        time: Millis,
        why: &str,
    ) -> Result<(), InputError> {
        // A failed op may carry only its invocation's value.
        let mops = match value.items() {
            Some(m) => m,
            None if matches!(value, Edn::Nil) => inv.value.items().unwrap_or_default(),
            None => {
                return Err(self.error(
                    line,
                    ":value",
                    format!("a vector of micro-operations, not {value}"),
                ))
            }
        };
        let txn = self.next_txn;
        self.next_txn += 1;
        let tid = format!("jepsen-{process}");
        let outcome = match done {
            Type::Ok => Outcome::Ok,
            Type::Fail => Outcome::Fail { error: why.into() },
            Type::Info => Outcome::Info { reason: why.into() },
        };
        let begin = Op::BeginTxn {
            transactional_id: tid.clone(),
            txn,
            producer_id: i64::from(process),
            producer_epoch: 0,
        };
        self.push(process, inv.time, inv.time, Outcome::Ok, begin);
        let mut partitions: Vec<TopicPartition> = Vec::new();
        let mut polled: BTreeMap<u64, Offset> = BTreeMap::new();
        for (i, mop) in mops.iter().enumerate() {
            let field = At::value(Some(i), "");
            let parts = mop.items().unwrap_or_default();
            match parts.first() {
                Some(Edn::Keyword(k)) if k == "send" && parts.len() == 3 => {
                    let key = self.key(line, At::value(Some(i), "key"), &parts[1])?;
                    let (offset, v) = match &parts[2] {
                        Edn::Vector(pair) if pair.len() == 2 => {
                            let o = match &pair[0] {
                                Edn::Nil => None,
                                o => Some(self.int(line, At::value(Some(i), "offset"), o)? as Offset),
                            };
                            (o, &pair[1])
                        }
                        v => (None, v),
                    };
                    let v = self.value(line, At::value(Some(i), "value"), key, v)?;
                    let partition = self.partition(key);
                    if !partitions.contains(&partition) {
                        partitions.push(partition.clone());
                    }
                    let send_outcome = match (done, offset) {
                        // Acknowledged inside an operation whose outcome is unknown:
                        // the transaction decides whether it is a promise.
                        (Type::Ok, _) | (Type::Info, Some(_)) => Outcome::Ok,
                        (Type::Info, None) => Outcome::Info { reason: why.into() },
                        (Type::Fail, _) => Outcome::Fail { error: why.into() },
                    };
                    let send = Op::Send {
                        key: Some(key.to_string()),
                        value: v,
                        partition,
                        offset,
                        attempts: 1,
                        txn: Some(txn),
                        timeout: None,
                        headers: Vec::new(),
                        timestamp: None,
                    };
                    self.push(process, inv.time, time, send_outcome, send);
                }
                Some(Edn::Keyword(k)) if k == "poll" && parts.len() <= 2 => {
                    let Some(reads) = parts.get(1) else { continue };
                    let Edn::Map(by_key) = reads else {
                        return Err(self.error(
                            line,
                            &field.to_string(),
                            format!("a map of keys to [offset value] pairs, not {reads}"),
                        ));
                    };
                    for (k, pairs) in by_key {
                        let key = self.key(line, At::value(Some(i), "key"), k)?;
                        let pairs = pairs.items().ok_or_else(|| {
                            self.error(line, &field.to_string(), format!("a vector of [offset value] pairs, not {pairs}"))
                        })?;
                        let mut records = Vec::with_capacity(pairs.len());
                        for p in pairs {
                            let pair = p.items().filter(|x| x.len() == 2).ok_or_else(|| {
                                self.error(line, &field.to_string(), format!("an [offset value] pair, not {p}"))
                            })?;
                            // A read whose offset is unknown says nothing about order.
                            if pair[0] == Edn::Nil {
                                continue;
                            }
                            let offset = self.int(line, At::value(Some(i), "offset"), &pair[0])? as Offset;
                            let value = self.value(line, At::value(Some(i), "value"), key, &pair[1])?;
                            records.push(ReadRecord {
                                offset,
                                key: Some(key.to_string()),
                                value,
                                headers: Vec::new(),
                            });
                        }
                        let Some(first) = records.first().map(|r| r.offset) else {
                            continue;
                        };
                        let partition = self.partition(key);
                        if self.anywhere.remove(&(process, key)) {
                            let seek = Op::Seek {
                                partition: partition.clone(),
                                offset: first,
                                reason: "Jepsen: a new assignment, crash or rewind".into(),
                            };
                            self.push(process, inv.time, time, Outcome::Ok, seek);
                        }
                        let last = records.last().map_or(first, |r| r.offset);
                        polled.insert(key, last + 1);
                        let poll = Op::Poll {
                            partition,
                            records,
                            high_watermark: -1,
                            read_committed: true,
                        };
                        self.push(process, inv.time, time, outcome.clone(), poll);
                    }
                }
                _ => {
                    return Err(self.error(
                        line,
                        &field.to_string(),
                        format!("[:send key value], [:send key [offset value]] or [:poll {{key [[offset value] ...]}}], not {mop}"),
                    ))
                }
            }
        }
        let end = Op::EndTxn {
            transactional_id: tid,
            txn,
            producer_id: i64::from(process),
            producer_epoch: 0,
            commit: true,
            partitions,
            group: None,
            offsets: Vec::new(),
        };
        self.push(process, inv.time, time, outcome, end);
        // Positions: an :ok operation's reads stand; a failed or crashed one's are
        // rewound to where the last :ok one left the consumer.
        for (key, read_to) in polled {
            if done == Type::Ok {
                self.committed.insert((process, key), read_to);
                continue;
            }
            match self.committed.get(&(process, key)).copied() {
                Some(at) => {
                    let seek = Op::Seek {
                        partition: self.partition(key),
                        offset: at,
                        reason: "Jepsen: rewound after a failed or crashed operation".into(),
                    };
                    self.push(process, time, time, Outcome::Ok, seek);
                }
                None => {
                    self.anywhere.insert((process, key));
                }
            }
        }
        Ok(())
    }
}

fn shown(v: Option<&Edn>) -> String {
    v.map_or("nothing".to_string(), |v| v.to_string())
}
