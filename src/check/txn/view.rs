//! The transactional view of a run: each partition's final log as batches with their
//! fates (committed, aborted, open), the transactions the history shows, and how
//! values map to both.

use super::*;
use crate::history::UNKNOWN_PARTITION;

/// What became of a record (or a send) as far as transactions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Not written in a transaction.
    NotTransactional,
    /// Its transaction committed.
    Committed,
    /// Its transaction aborted.
    Aborted,
    /// No marker of its producer follows it: its transaction never ended.
    Open,
    /// Transactional, but neither the final log nor the client's `EndTxn` tells.
    Unknown,
}

impl Fate {
    /// Whether a `read_committed` consumer may return it: anything but aborted or open
    /// (an unknown fate is given the benefit of the doubt).
    pub fn visible(self) -> bool {
        !matches!(self, Fate::Aborted | Fate::Open)
    }
}

/// A transactional data batch of a final log.
#[derive(Clone, Copy)]
pub(super) struct Batch {
    pub(super) base_offset: Offset,
    pub(super) last_offset: Offset,
    pub(super) producer_id: i64,
    pub(super) producer_epoch: i16,
    /// Index in `PartitionLog::markers` of the first marker of its producer after it.
    pub(super) end: Option<usize>,
}

/// One partition's final log, as the checker reads it.
pub(super) struct PartitionLog {
    pub(super) broker: u32,
    /// Whether `broker` is the partition's leader (else the longest replica).
    pub(super) leader: bool,
    pub(super) high_watermark: Offset,
    pub(super) last_stable_offset: Offset,
    pub(super) records: BTreeMap<Offset, Value>,
    /// Sorted by base offset.
    pub(super) batches: Vec<Batch>,
    /// Sorted by offset.
    pub(super) markers: Vec<MarkerSnapshot>,
    /// The transaction of each transactional record (from the history's sends).
    pub(super) txn_of: BTreeMap<Offset, TxnId>,
}

impl PartitionLog {
    pub(super) fn new(r: &ReplicaSnapshot, leader: bool) -> PartitionLog {
        assert!(
            r.records.len() + r.markers.len() + r.txn_batches.len() < MAX_ITEMS,
            "log too large to check"
        );
        let mut markers = r.markers.clone();
        markers.sort_by_key(|m| m.offset);
        let mut by_producer: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, m) in markers.iter().enumerate() {
            by_producer.entry(m.producer_id).or_default().push(i);
        }
        let mut batches: Vec<Batch> = r
            .txn_batches
            .iter()
            .map(|b| {
                assert!(b.base_offset <= b.last_offset, "batch {b:?} is empty");
                let end = by_producer.get(&b.producer_id).and_then(|list| {
                    let i = list.partition_point(|&m| markers[m].offset <= b.last_offset);
                    list.get(i).copied()
                });
                Batch {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    producer_id: b.producer_id,
                    producer_epoch: b.producer_epoch,
                    end,
                }
            })
            .collect();
        batches.sort_by_key(|b| b.base_offset);
        PartitionLog {
            broker: r.broker,
            leader,
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            records: r.records.iter().copied().collect(),
            batches,
            markers,
            txn_of: BTreeMap::new(),
        }
    }

    /// The transactional batch holding `offset`, if any.
    pub(super) fn batch_at(&self, offset: Offset) -> Option<&Batch> {
        let i = self.batches.partition_point(|b| b.base_offset <= offset);
        let b = self.batches.get(i.checked_sub(1)?)?;
        (b.last_offset >= offset).then_some(b)
    }

    /// The marker ending `b`'s transaction, if any.
    pub(super) fn end_marker(&self, b: &Batch) -> Option<&MarkerSnapshot> {
        b.end.map(|m| &self.markers[m])
    }

    pub(super) fn batch_fate(&self, b: &Batch) -> Fate {
        match self.end_marker(b) {
            Some(m) if m.committed => Fate::Committed,
            Some(_) => Fate::Aborted,
            None => Fate::Open,
        }
    }

    /// The marker at `offset`, if one is there.
    pub(super) fn marker_at(&self, offset: Offset) -> Option<&MarkerSnapshot> {
        let i = self
            .markers
            .binary_search_by_key(&offset, |m| m.offset)
            .ok()?;
        Some(&self.markers[i])
    }

    /// The markers at offsets in `from..to`.
    pub(super) fn markers_in(&self, from: Offset, to: Offset) -> &[MarkerSnapshot] {
        let a = self.markers.partition_point(|m| m.offset < from);
        let b = self.markers.partition_point(|m| m.offset < to);
        &self.markers[a..b.max(a)]
    }

    /// Whether the log holds anything transactional.
    pub(super) fn has_transactions(&self) -> bool {
        !self.batches.is_empty() || !self.markers.is_empty()
    }

    /// "the final log of its leader broker-1" or "... of broker-2 (no leader)".
    pub(super) fn whose(&self) -> String {
        if self.leader {
            format!("the final log of its leader broker-{}", self.broker)
        } else {
            format!("the final log of broker-{} (it has no leader)", self.broker)
        }
    }
}

/// One send made inside a transaction.
#[derive(Clone)]
pub(super) struct TxnSend {
    pub(super) index: u64,
    pub(super) txn: TxnId,
    pub(super) partition: TopicPartition,
    /// The offset it was acknowledged at (`Ok` sends only).
    pub(super) acked: Option<Offset>,
}

/// Everything known about one transaction.
pub(super) struct Txn {
    pub(super) transactional_id: Option<String>,
    /// Producer id and epoch (from `BeginTxn`, else `EndTxn`).
    pub(super) producer: Option<(i64, i16)>,
    pub(super) process: Option<NodeId>,
    pub(super) begin: Option<u64>,
    /// Every `EndTxn` entry, in history order.
    pub(super) ends: Vec<u64>,
    /// The `EndTxn` that decides: the last `ok`, else the last `info`, else the last.
    pub(super) end: Option<u64>,
    /// Whether that `EndTxn` is an acknowledged `commitTransaction`.
    pub(super) commit_acknowledged: bool,
    pub(super) sends: Vec<u64>,
    /// Its process's `Poll` and `Seek` entries in the transaction's window.
    pub(super) reads: Vec<u64>,
    /// Its records in the final logs.
    pub(super) records: Vec<(TopicPartition, Offset)>,
    pub(super) fate: Fate,
}

impl Txn {
    pub(super) fn new() -> Txn {
        Txn {
            transactional_id: None,
            producer: None,
            process: None,
            begin: None,
            ends: Vec::new(),
            end: None,
            commit_acknowledged: false,
            sends: Vec::new(),
            reads: Vec::new(),
            records: Vec::new(),
            fate: Fate::Unknown,
        }
    }

    /// The first history line of the transaction.
    pub(super) fn first_line(&self) -> u64 {
        let first_send = self.sends.first().copied();
        let first_end = self.ends.first().copied();
        [self.begin, first_send, first_end]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// The transactional view of a run: every transaction of the history and the fate of
/// every transactional record of the final logs.
#[derive(Default)]
pub struct TxnView {
    pub(super) logs: BTreeMap<TopicPartition, PartitionLog>,
    pub(super) txns: BTreeMap<TxnId, Txn>,
    /// Sends made inside a transaction, by value (a pipeline may send one output value
    /// in several transactions).
    pub(super) txn_sends: BTreeMap<Value, Vec<TxnSend>>,
    /// The transaction each `Poll` entry belongs to.
    pub(super) poll_txn: BTreeMap<u64, TxnId>,
    /// Every value a completed (`ok`) poll returned: a read of a transaction's record
    /// proves the transaction committed (or is an aborted read).
    /// By partition: a value re-sent elsewhere (a pipeline's output after an abort or a
    /// crash) read there proves nothing of this send.
    pub(super) read_values: BTreeSet<(TopicPartition, Value)>,
    /// For a partition the snapshot has no log of (a black-box history): the records
    /// the history shows, read by any poll or acknowledged in a committed (or no)
    /// transaction, as Jepsen's version orders are built.
    pub(super) observed: BTreeMap<TopicPartition, BTreeMap<Offset, Value>>,
    /// The offset each value was first read at, by partition.
    pub(super) read_at: BTreeMap<(TopicPartition, Value), Offset>,
}

impl TxnView {
    /// Builds the view of a run.
    pub fn new(history: &History, snapshot: &Snapshot) -> TxnView {
        // Entries are looked up by their index.
        assert!(
            history
                .entries
                .iter()
                .enumerate()
                .all(|(i, e)| e.index == i as u64),
            "history entries are numbered from 0 in order"
        );
        let mut view = TxnView::default();
        for p in &snapshot.partitions {
            let leader = p
                .leader
                .and_then(|l| p.replicas.iter().find(|r| r.broker == l));
            let chosen = match leader {
                Some(r) => Some((r, true)),
                None => p
                    .replicas
                    .iter()
                    .max_by_key(|r| (r.log_end_offset, Reverse(r.broker)))
                    .map(|r| (r, false)),
            };
            if let Some((r, is_leader)) = chosen {
                view.logs
                    .insert(p.partition.clone(), PartitionLog::new(r, is_leader));
            }
        }
        view.read_history(history);
        view.attribute_records();
        let fates: Vec<(TxnId, Fate)> = view
            .txns
            .iter()
            .map(|(id, t)| (*id, view.decide(t, history)))
            .collect();
        for (id, fate) in fates {
            view.txns.get_mut(&id).expect("known transaction").fate = fate;
        }
        view.observe(history);
        view
    }

    /// Builds `observed` and `read_at` (once the fates are known).
    fn observe(&mut self, history: &History) {
        for e in &history.entries {
            let (partition, offset, value) = match &e.op {
                Op::Poll {
                    partition, records, ..
                } => {
                    for r in records {
                        self.read_at
                            .entry((partition.clone(), r.value))
                            .or_insert(r.offset);
                    }
                    if self.logs.contains_key(partition) {
                        continue;
                    }
                    let log = self.observed.entry(partition.clone()).or_default();
                    assert!(log.len() < MAX_ITEMS, "too many records");
                    for r in records {
                        log.entry(r.offset).or_insert(r.value);
                    }
                    continue;
                }
                Op::Send {
                    partition,
                    offset: Some(offset),
                    value,
                    ..
                } if e.outcome == Outcome::Ok => (partition, *offset, *value),
                _ => continue,
            };
            if self.logs.contains_key(partition)
                || self.send_fate(e) != Fate::Committed
                    && self.send_fate(e) != Fate::NotTransactional
            {
                continue;
            }
            let log = self.observed.entry(partition.clone()).or_default();
            assert!(log.len() < MAX_ITEMS, "too many records");
            log.entry(offset).or_insert(value);
        }
    }

    /// The records of `tp` as far as the checker knows them: its final log's, or
    /// without one the records the history shows.
    pub(super) fn records_of(&self, tp: &TopicPartition) -> Option<&BTreeMap<Offset, Value>> {
        match self.logs.get(tp) {
            Some(log) => Some(&log.records),
            None => self.observed.get(tp),
        }
    }

    pub(super) fn txn_mut(&mut self, txn: TxnId) -> &mut Txn {
        assert!(self.txns.len() < MAX_ITEMS, "too many transactions");
        self.txns.entry(txn).or_insert_with(Txn::new)
    }

    /// One pass over the history: transactions, their sends and their polls.
    pub(super) fn read_history(&mut self, history: &History) {
        // Per process: the transaction whose window is open, and the reads waiting for
        // the next one.
        let mut current: BTreeMap<NodeId, TxnId> = BTreeMap::new();
        let mut pending: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
        for e in &history.entries {
            match &e.op {
                Op::BeginTxn {
                    transactional_id,
                    txn,
                    producer_id,
                    producer_epoch,
                } => {
                    let waiting = pending.remove(&e.process).unwrap_or_default();
                    for &i in &waiting {
                        if matches!(history.entries[i as usize].op, Op::Poll { .. }) {
                            self.poll_txn.insert(i, *txn);
                        }
                    }
                    let t = self.txn_mut(*txn);
                    t.transactional_id = Some(transactional_id.clone());
                    t.producer = Some((*producer_id, *producer_epoch));
                    t.process = Some(e.process);
                    t.begin.get_or_insert(e.index);
                    t.reads.extend(waiting);
                    current.insert(e.process, *txn);
                }
                Op::EndTxn {
                    transactional_id,
                    txn,
                    producer_id,
                    producer_epoch,
                    ..
                } => {
                    let t = self.txn_mut(*txn);
                    t.transactional_id
                        .get_or_insert_with(|| transactional_id.clone());
                    t.producer.get_or_insert((*producer_id, *producer_epoch));
                    t.process.get_or_insert(e.process);
                    push_tight(&mut t.ends, e.index);
                    if current.get(&e.process) == Some(txn) {
                        current.remove(&e.process);
                    }
                }
                // A record that never got a partition never left the producer
                // (Kafka assigns it before the accumulator): no write at all.
                Op::Send {
                    value,
                    partition,
                    offset,
                    txn: Some(txn),
                    ..
                } if partition.partition != UNKNOWN_PARTITION => {
                    push_tight(&mut self.txn_mut(*txn).sends, e.index);
                    let sends = self.txn_sends.entry(*value).or_default();
                    assert!(sends.len() < MAX_ITEMS, "value sent too often");
                    push_tight(
                        sends,
                        TxnSend {
                            index: e.index,
                            txn: *txn,
                            partition: partition.clone(),
                            acked: offset.filter(|_| e.outcome == Outcome::Ok),
                        },
                    );
                }
                Op::Poll { .. } | Op::Seek { .. } => {
                    if let (
                        Op::Poll {
                            partition, records, ..
                        },
                        Outcome::Ok,
                    ) = (&e.op, &e.outcome)
                    {
                        assert!(self.read_values.len() < MAX_ITEMS, "too many values read");
                        self.read_values
                            .extend(records.iter().map(|r| (partition.clone(), r.value)));
                    }
                    match current.get(&e.process) {
                        Some(txn) => {
                            if matches!(e.op, Op::Poll { .. }) {
                                self.poll_txn.insert(e.index, *txn);
                            }
                            let t = self.txns.get_mut(txn).expect("open transaction is known");
                            push_tight(&mut t.reads, e.index);
                        }
                        None => {
                            let waiting = pending.entry(e.process).or_default();
                            assert!(waiting.len() < MAX_ITEMS, "too many reads waiting");
                            waiting.push(e.index);
                        }
                    }
                }
                Op::Assigned { .. } => {
                    current.remove(&e.process);
                    pending.remove(&e.process);
                }
                _ => {}
            }
        }
        for t in self.txns.values_mut() {
            let rank = |i: &u64| match history.entries[*i as usize].outcome {
                Outcome::Ok => 2,
                Outcome::Info { .. } => 1,
                Outcome::Fail { .. } => 0,
            };
            // The last of the highest rank (`max_by_key` keeps the last maximum).
            t.end = t.ends.iter().max_by_key(|i| rank(i)).copied();
            t.commit_acknowledged = t.end.is_some_and(|i| {
                let e = &history.entries[i as usize];
                e.outcome == Outcome::Ok && matches!(e.op, Op::EndTxn { commit: true, .. })
            });
        }
    }

    /// Finds the transaction of every transactional record of the final logs.
    pub(super) fn attribute_records(&mut self) {
        let TxnView {
            logs,
            txns,
            txn_sends,
            ..
        } = self;
        for (tp, log) in logs.iter_mut() {
            let mut txn_of = BTreeMap::new();
            for (&offset, value) in &log.records {
                let Some(sends) = txn_sends.get(value) else {
                    continue;
                };
                let batch = log
                    .batch_at(offset)
                    .map(|b| (b.producer_id, b.producer_epoch));
                let txn = writer(sends, tp, offset, batch, txns);
                txn_of.insert(offset, txn);
                let t = txns.get_mut(&txn).expect("a send's transaction is known");
                push_tight(&mut t.records, (tp.clone(), offset));
            }
            log.txn_of = txn_of;
        }
    }

    /// A transaction's fate: what its records' markers say (committed anywhere wins,
    /// which `partial-commit` then reports), else what its client's `EndTxn` says.
    pub(super) fn decide(&self, t: &Txn, history: &History) -> Fate {
        let logged: BTreeSet<Fate> = t
            .records
            .iter()
            .filter_map(|(tp, o)| {
                let log = &self.logs[tp];
                log.batch_at(*o).map(|b| log.batch_fate(b))
            })
            .collect();
        if logged.contains(&Fate::Committed) {
            return Fate::Committed;
        }
        if logged.contains(&Fate::Aborted) {
            return Fate::Aborted;
        }
        let said = t.end.map(|i| &history.entries[i as usize]);
        match said.map(|e| (&e.outcome, &e.op)) {
            Some((Outcome::Ok, Op::EndTxn { commit: true, .. })) => Fate::Committed,
            Some((Outcome::Ok, _) | (Outcome::Fail { .. }, _)) => Fate::Aborted,
            _ if logged.contains(&Fate::Open) => Fate::Open,
            // Jepsen's `must-have-committed?`: a transaction whose end is unknown
            // committed if a poll returned one of its records.
            _ if t
                .sends
                .iter()
                .any(|i| self.read_of(&history.entries[*i as usize])) =>
            {
                Fate::Committed
            }
            _ => Fate::Unknown,
        }
    }

    /// The fate of the record holding `value` at `offset` of `tp` (a read): from the
    /// final log when it holds that record in a transactional batch, else from the
    /// transaction that sent the value, else not transactional.
    pub fn fate(&self, tp: &TopicPartition, offset: Offset, value: Value) -> Fate {
        if let Some(f) = self.logged_fate(tp, offset, value) {
            return f;
        }
        match self.writer_of(tp, offset, value) {
            Some(txn) => self.txns[&txn].fate,
            None => Fate::NotTransactional,
        }
    }

    /// Whether that record is one a `read_committed` consumer may see.
    pub fn visible(&self, tp: &TopicPartition, offset: Offset, value: Value) -> bool {
        self.fate(tp, offset, value).visible()
    }

    /// The fate of a `Send` entry's record: through the offset it was acknowledged at
    /// when the final log holds it there in a transactional batch, else through its
    /// transaction (`EndTxn` ok commit: committed; ok abort or fail: aborted; info or
    /// none: unknown, unless the log shows the transaction's other records).
    pub fn send_fate(&self, entry: &Entry) -> Fate {
        let Op::Send {
            value,
            partition,
            offset,
            txn: Some(txn),
            ..
        } = &entry.op
        else {
            return Fate::NotTransactional;
        };
        if let (Outcome::Ok, Some(o)) = (&entry.outcome, offset) {
            if let Some(f) = self.logged_fate(partition, *o, *value) {
                return f;
            }
        }
        self.txns.get(txn).map_or(Fate::Unknown, |t| t.fate)
    }

    /// Whether a `Send` entry's acknowledgement is an observation the main checker
    /// counts: `Some(false)` when its record was aborted or never committed and its
    /// client was never told the transaction committed (no promise was made), or when
    /// its transaction's outcome is unknown (a promise only once a read proves the
    /// transaction committed, which makes it `Committed`); `Some(true)` when the record
    /// is visible, or when its transaction's commit was acknowledged (a promise the
    /// log broke, which `lost-write` then reports).
    pub fn send_visible(&self, entry: &Entry) -> Option<bool> {
        match self.send_fate(entry) {
            Fate::Unknown => Some(false),
            f if f.visible() => Some(true),
            _ => {
                let Op::Send { txn: Some(txn), .. } = &entry.op else {
                    unreachable!("only transactional sends are invisible")
                };
                Some(self.txns[txn].commit_acknowledged)
            }
        }
    }

    /// Whether a completed poll returned the value a `Send` entry sent.
    fn read_of(&self, send: &Entry) -> bool {
        matches!(&send.op, Op::Send { value, partition, .. }
            if self.read_values.contains(&(partition.clone(), *value)))
    }

    /// The fate of a transaction of the history.
    pub fn txn_fate(&self, txn: TxnId) -> Option<Fate> {
        self.txns.get(&txn).map(|t| t.fate)
    }

    /// The fate of the record at (`tp`, `offset`) by the final log, when the log holds
    /// `value` there inside a transactional batch.
    pub(super) fn logged_fate(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        value: Value,
    ) -> Option<Fate> {
        let log = self.logs.get(tp)?;
        if log.records.get(&offset) != Some(&value) {
            return None;
        }
        log.batch_at(offset).map(|b| log.batch_fate(b))
    }

    /// The transaction that wrote `value` at (`tp`, `offset`), if it was sent in one.
    pub(super) fn writer_of(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        value: Value,
    ) -> Option<TxnId> {
        let logged = self
            .logs
            .get(tp)
            .filter(|l| l.records.get(&offset) == Some(&value))
            .and_then(|l| l.txn_of.get(&offset));
        if let Some(txn) = logged {
            return Some(*txn);
        }
        let sends = self.txn_sends.get(&value)?;
        Some(writer(sends, tp, offset, None, &self.txns))
    }

    /// A transaction's name in examples.
    pub(super) fn name(&self, txn: TxnId) -> TxnName<'_> {
        TxnName {
            txn,
            t: self.txns.get(&txn),
            full: true,
        }
    }

    /// A transaction's short name (without its producer).
    pub(super) fn short(&self, txn: TxnId) -> TxnName<'_> {
        TxnName {
            txn,
            t: self.txns.get(&txn),
            full: false,
        }
    }

    /// The first history line of the value's transactional sends.
    pub(super) fn send_line(&self, value: Value) -> Option<u64> {
        self.txn_sends.get(&value)?.first().map(|s| s.index)
    }
}

/// Which of the transactions that sent a value wrote its record at (`tp`, `offset`):
/// the only one; else the one acknowledged there; else the one whose producer id and
/// epoch (then producer id) match the batch; else the first.
pub(super) fn writer(
    sends: &[TxnSend],
    tp: &TopicPartition,
    offset: Offset,
    batch: Option<(i64, i16)>,
    txns: &BTreeMap<TxnId, Txn>,
) -> TxnId {
    let first = sends.first().expect("a value's sends are not empty").txn;
    if sends.iter().all(|s| s.txn == first) {
        return first;
    }
    if let Some(s) = sends
        .iter()
        .find(|s| s.partition == *tp && s.acked == Some(offset))
    {
        return s.txn;
    }
    let producer = |s: &&TxnSend| txns.get(&s.txn).and_then(|t| t.producer);
    if let Some((pid, epoch)) = batch {
        let exact = sends.iter().find(|s| producer(s) == Some((pid, epoch)));
        let same_id = sends
            .iter()
            .find(|s| producer(s).is_some_and(|(p, _)| p == pid));
        if let Some(s) = exact.or(same_id) {
            return s.txn;
        }
    }
    first
}

/// A transaction in words: `tx-0#3 (producer id 7, epoch 2)`.
pub(super) struct TxnName<'a> {
    pub(super) txn: TxnId,
    pub(super) t: Option<&'a Txn>,
    pub(super) full: bool,
}

impl fmt::Display for TxnName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.t.and_then(|t| t.transactional_id.as_deref()) {
            Some(id) => write!(f, "{id}#{}", self.txn & 0xffff_ffff)?,
            None => write!(f, "{}", self.txn)?,
        }
        match self.t.and_then(|t| t.producer).filter(|_| self.full) {
            Some((pid, epoch)) => write!(f, " (producer id {pid}, epoch {epoch})"),
            None => Ok(()),
        }
    }
}

/// A marker in words: `the COMMIT marker of epoch 2 at offset 14, written at 3.600 s`.
pub(super) struct MarkerWords<'a>(pub(super) &'a MarkerSnapshot);

impl fmt::Display for MarkerWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        let kind = if m.committed { "COMMIT" } else { "ABORT" };
        write!(
            f,
            "the {kind} marker of epoch {} at offset {}, written at {} s",
            m.producer_epoch,
            m.offset,
            Secs(marker_ms(m))
        )
    }
}

/// The simulated time a marker was written (its timestamp is the coordinator's clock).
pub(super) fn marker_ms(m: &MarkerSnapshot) -> Millis {
    Millis::try_from(m.timestamp - RECORD_TIMESTAMP_BASE).unwrap_or(0)
}
