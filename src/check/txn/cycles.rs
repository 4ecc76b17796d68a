//! Jepsen's dependency-graph anomalies (G0, G1c): write-write and write-read edges
//! between transactions, strongly connected components (Tarjan) and the shortest
//! cycle through each.

use super::*;

/// Why one committed transaction depends on another: the first witness of each kind.
#[derive(Default)]
pub(super) struct Edge {
    /// ww: (partition, the first's offset, the second's offset).
    pub(super) ww: Option<(TopicPartition, Offset, Offset)>,
    /// wr: (partition, offset, value, the poll's history line).
    pub(super) wr: Option<(TopicPartition, Offset, Value, u64)>,
}

/// `g0` and `g1c`: cycles among committed transactions over Jepsen's ww edges (T1's
/// record precedes T2's in a partition, consecutive writers only) and wr edges (T2's
/// polls returned a record T1 wrote).
pub(super) fn check_cycles(history: &History, view: &TxnView, tallies: &mut Tallies) {
    let nodes: Vec<TxnId> = view
        .txns
        .iter()
        .filter(|(_, t)| t.fate == Fate::Committed)
        .map(|(id, _)| *id)
        .collect();
    if nodes.len() < 2 {
        return;
    }
    assert!(nodes.len() < MAX_ITEMS, "too many transactions");
    let node_of = |t: TxnId| nodes.binary_search(&t).ok();
    let mut edges: BTreeMap<(usize, usize), Edge> = BTreeMap::new();
    // The writers of each partition in offset order: its final log's, or black-box
    // the records the history shows (acknowledged offsets and reads).
    let logged = view
        .logs
        .iter()
        .map(|(tp, log)| (tp, log.txn_of.iter().map(|(o, t)| (*o, *t)).collect()));
    let observed = view.observed.iter().map(|(tp, records)| {
        let writers: Vec<(Offset, TxnId)> = records
            .iter()
            .filter_map(|(&o, &v)| Some((o, view.writer_of(tp, o, v)?)))
            .collect();
        (tp, writers)
    });
    for (tp, writers) in logged.chain(observed) {
        let writers: Vec<(Offset, TxnId)> = writers;
        let mut prev: Option<(usize, Offset)> = None;
        for (o, t) in writers {
            let Some(n) = node_of(t) else {
                continue;
            };
            if let Some((p, po)) = prev.filter(|(p, _)| *p != n) {
                let e = edges.entry((p, n)).or_default();
                e.ww.get_or_insert_with(|| (tp.clone(), po, o));
            }
            prev = Some((n, o));
        }
    }
    for (&t2, t) in &view.txns {
        let Some(n2) = node_of(t2) else {
            continue;
        };
        for &i in &t.reads {
            let Op::Poll {
                partition, records, ..
            } = &history.entries[i as usize].op
            else {
                continue;
            };
            for r in records {
                let Some(n1) = view
                    .writer_of(partition, r.offset, r.value)
                    .and_then(node_of)
                    .filter(|n1| *n1 != n2)
                else {
                    continue;
                };
                let e = edges.entry((n1, n2)).or_default();
                e.wr.get_or_insert_with(|| (partition.clone(), r.offset, r.value, i));
            }
        }
    }
    let mut ww_adj: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut all_adj: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (&(a, b), e) in &edges {
        if e.ww.is_some() {
            ww_adj[a].push(b);
        }
        all_adj[a].push(b);
    }
    let describe_cycle = |kind: &str, cycle: &[usize], first_wr: bool| {
        let members: BTreeSet<usize> = cycle.iter().copied().collect();
        let names: Vec<String> = members
            .iter()
            .map(|n| view.name(nodes[*n]).to_string())
            .collect();
        let steps: Vec<String> = cycle
            .windows(2)
            .enumerate()
            .take(MAX_CYCLE_STEPS)
            .map(|(k, w)| {
                let (a, b) = (view.short(nodes[w[0]]), view.short(nodes[w[1]]));
                let e = &edges[&(w[0], w[1])];
                let wr = if k == 0 && first_wr {
                    e.wr.as_ref()
                } else {
                    None
                };
                match (wr, &e.ww, &e.wr) {
                    (None, Some((tp, x, y)), _) => {
                        format!("{a} wrote offset {x} of {tp} before {b} wrote offset {y}")
                    }
                    (Some((tp, o, v, _)), _, _) | (None, None, Some((tp, o, v, _))) => {
                        format!("{b} polled value {v} at offset {o} of {tp}, which {a} wrote")
                    }
                    (None, None, None) => unreachable!("edges have a witness"),
                }
            })
            .collect();
        let more = (cycle.len() - 1).saturating_sub(MAX_CYCLE_STEPS);
        let more = if more > 0 {
            format!("; and {more} more step(s)")
        } else {
            String::new()
        };
        format!(
            "committed transactions {} form a {kind}: {}{more}",
            names.join(", "),
            steps.join("; ")
        )
    };
    let lines_of = |cycle: &[usize]| -> Vec<u64> {
        let mut l: Vec<u64> = cycle
            .iter()
            .filter_map(|n| view.txns[&nodes[*n]].end)
            .collect();
        l.extend(
            cycle
                .windows(2)
                .filter_map(|w| edges[&(w[0], w[1])].wr.as_ref().map(|x| x.3)),
        );
        l.truncate(12);
        l
    };
    let order_of = |cycle: &[usize]| {
        let first = cycle
            .iter()
            .map(|n| view.txns[&nodes[*n]].first_line())
            .min()
            .unwrap_or(u64::MAX);
        (first, 0)
    };
    for comp in components(&ww_adj) {
        let cycle = shortest_cycle(&ww_adj, &comp, comp[0], comp[0]);
        tallies.add_lines("g0", order_of(&cycle), &lines_of(&cycle), || {
            describe_cycle("write cycle (G0)", &cycle, false)
        });
    }
    for comp in components(&all_adj) {
        let inside = |b: &usize| comp.binary_search(b).is_ok();
        let wr_edge = comp.iter().find_map(|&a| {
            let b = all_adj[a]
                .iter()
                .find(|b| inside(b) && edges[&(a, **b)].wr.is_some())?;
            Some((a, *b))
        });
        let Some((u, v)) = wr_edge else {
            continue;
        };
        let mut cycle = vec![u];
        cycle.extend(shortest_cycle(&all_adj, &comp, v, u));
        tallies.add_lines("g1c", order_of(&cycle), &lines_of(&cycle), || {
            describe_cycle("cycle with a write-read edge (G1c)", &cycle, true)
        });
    }
}

/// Tarjan's algorithm with an explicit stack, so deep graphs cannot overflow.
pub(super) struct Tarjan<'a> {
    pub(super) adj: &'a [Vec<usize>],
    pub(super) index: Vec<usize>,
    pub(super) low: Vec<usize>,
    pub(super) on_stack: Vec<bool>,
    pub(super) stack: Vec<usize>,
    /// The depth-first search: (node, position in its adjacency list).
    pub(super) calls: Vec<(usize, usize)>,
    pub(super) next: usize,
}

impl Tarjan<'_> {
    const UNSEEN: usize = usize::MAX;

    fn visit(&mut self, v: usize) {
        self.index[v] = self.next;
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        self.calls.push((v, 0));
    }

    /// Runs the search from `root`, appending the components of two nodes or more.
    fn run(&mut self, root: usize, out: &mut Vec<Vec<usize>>) {
        self.visit(root);
        while let Some(&(v, pos)) = self.calls.last() {
            if let Some(&w) = self.adj[v].get(pos) {
                self.calls.last_mut().expect("not empty").1 += 1;
                if self.index[w] == Self::UNSEEN {
                    self.visit(w);
                } else if self.on_stack[w] {
                    self.low[v] = self.low[v].min(self.index[w]);
                }
                continue;
            }
            self.calls.pop();
            if let Some(&(u, _)) = self.calls.last() {
                self.low[u] = self.low[u].min(self.low[v]);
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().expect("v is on the stack");
                    self.on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() >= 2 {
                    comp.sort_unstable();
                    out.push(comp);
                }
            }
        }
    }
}

/// Strongly connected components of two nodes or more, each sorted.
pub(super) fn components(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut t = Tarjan {
        adj,
        index: vec![Tarjan::UNSEEN; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        calls: Vec::new(),
        next: 0,
    };
    let mut out = Vec::new();
    for root in 0..n {
        if t.index[root] == Tarjan::UNSEEN {
            t.run(root, &mut out);
            assert!(t.stack.is_empty(), "every node left the stack");
        }
    }
    out
}

/// The shortest path from `from` to `to` inside the component `comp` (breadth-first),
/// closing a cycle when `from == to`: `[from, ..., to]`.
pub(super) fn shortest_cycle(
    adj: &[Vec<usize>],
    comp: &[usize],
    from: usize,
    to: usize,
) -> Vec<usize> {
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        for &w in &adj[v] {
            if comp.binary_search(&w).is_err() {
                continue;
            }
            if w == to {
                let mut path = vec![to, v];
                let mut at = v;
                while at != from {
                    at = parent[&at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if w != from && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
        assert!(parent.len() <= comp.len(), "search stays in the component");
    }
    unreachable!("a strongly connected component holds a path between any two nodes")
}
