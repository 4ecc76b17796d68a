//! Tallies of anomalies and events (counts, the first examples in history order, the
//! history lines they involve) and the wording helpers of their descriptions.

use super::*;

/// Pushes `x` onto `v`, growing it from one element rather than `Vec`'s four: the
/// checker keeps a small list per value and per transaction, and most hold one or two.
pub(crate) fn push_tight<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len().max(1));
    }
    v.push(x);
}

/// How many examples each kind keeps.
pub(super) const MAX_EXAMPLES: usize = 3;

/// Where an occurrence sits in the run: (history index, position within the entry).
/// A history index of `u64::MAX` marks a finding from the snapshot (no history line).
pub(crate) type Order = (u64, u64);

/// One kind's count and its earliest examples (with the history lines each involves),
/// sorted by [`Order`].
#[derive(Default)]
pub(super) struct Tally {
    pub(super) count: u64,
    pub(super) examples: Vec<(Order, String, Vec<u64>)>,
}

impl Tally {
    /// Counts one occurrence; formats its example only if it is among the first ones.
    pub(super) fn add(&mut self, order: Order, lines: &[u64], example: impl FnOnce() -> String) {
        self.count += 1;
        let at = self.examples.partition_point(|(o, _, _)| *o <= order);
        if at < MAX_EXAMPLES {
            let mut lines = lines.to_vec();
            lines.extend((order.0 != u64::MAX).then_some(order.0));
            lines.sort_unstable();
            lines.dedup();
            self.examples.insert(at, (order, example(), lines));
            self.examples.truncate(MAX_EXAMPLES);
        }
    }
}

/// Tallies of every kind seen so far.
#[derive(Default)]
pub(crate) struct Tallies(BTreeMap<&'static str, Tally>);

impl Tallies {
    /// Counts one occurrence of `kind` at `order`; formats its example only if it is
    /// among the first ones.
    pub(crate) fn add(
        &mut self,
        kind: &'static str,
        order: Order,
        example: impl FnOnce() -> String,
    ) {
        self.add_lines(kind, order, &[], example);
    }

    /// [`Tallies::add`] for an occurrence that involves other history lines besides
    /// the one in its `order` (the other observation of a duplicate, the send of a
    /// misplaced read, ...).
    pub(crate) fn add_lines(
        &mut self,
        kind: &'static str,
        order: Order,
        lines: &[u64],
        example: impl FnOnce() -> String,
    ) {
        debug_assert!(
            ANOMALY_KINDS.contains(&kind) || EVENT_KINDS.contains(&kind),
            "unknown anomaly kind {kind}"
        );
        self.0.entry(kind).or_default().add(order, lines, example);
    }

    /// Adds `later`'s occurrences as if they had been added after this one's: the
    /// counts sum, and the first examples are those one tally would keep.
    pub(super) fn merge(&mut self, later: Tallies) {
        for (kind, t) in later.0 {
            let mine = self.0.entry(kind).or_default();
            mine.count += t.count;
            for (order, example, lines) in t.examples {
                let at = mine.examples.partition_point(|(o, _, _)| *o <= order);
                if at < MAX_EXAMPLES {
                    mine.examples.insert(at, (order, example, lines));
                    mine.examples.truncate(MAX_EXAMPLES);
                }
            }
        }
    }

    pub(super) fn into_reports(self) -> BTreeMap<String, AnomalyReport> {
        self.0
            .into_iter()
            .map(|(kind, t)| {
                let (examples, lines) = t.examples.into_iter().map(|(_, s, l)| (s, l)).unzip();
                let report = AnomalyReport {
                    count: t.count,
                    examples,
                    lines,
                };
                (kind.to_string(), report)
            })
            .collect()
    }
}

/// Simulated time in seconds with three decimals (`12.400`).
pub(crate) struct Secs(pub(crate) Millis);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// A value with its key, if it has one (`value 4711 (key k3)`).
pub(super) struct Val<'a>(pub(super) Value, pub(super) Option<&'a str>);

impl fmt::Display for Val<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(key) => write!(f, "value {} (key {key})", self.0),
            None => write!(f, "value {}", self.0),
        }
    }
}

/// The time an entry completed, or was invoked if it never completed.
pub(crate) fn entry_ms(entry: &Entry) -> Millis {
    entry.complete_ms.unwrap_or(entry.invoke_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Occurrences of two kinds, some at the same order (ties keep arrival order).
    fn occurrences() -> Vec<(&'static str, Order)> {
        let orders = [(7, 0), (2, 1), (u64::MAX, 1), (2, 1), (1, 0), (u64::MAX, 1)];
        let mut all = Vec::new();
        for (i, o) in orders.into_iter().enumerate() {
            all.push(("duplicate", o));
            if i % 2 == 0 {
                all.push(("lost-write", (o.0, o.1 + 1)));
            }
        }
        all
    }

    fn tallied(occurrences: &[(&'static str, Order)], from: usize) -> Tallies {
        let mut t = Tallies::default();
        for (i, (kind, order)) in occurrences.iter().enumerate() {
            t.add(kind, *order, || format!("occurrence {}", from + i));
        }
        t
    }

    #[test]
    fn merging_is_adding_in_order() {
        let all = occurrences();
        for split in 0..=all.len() {
            let mut first = tallied(&all[..split], 0);
            first.merge(tallied(&all[split..], split));
            let one = tallied(&all, 0);
            assert_eq!(first.into_reports(), one.into_reports(), "split at {split}");
        }
    }
}
