//! Consumer-group checks: what each member processed and committed, judged against its
//! processing mode (at-least-once, at-most-once, auto-commit) and the group's
//! rebalances.

use super::*;

/// One processing of a record by a group.
pub(super) struct Processing<'h> {
    pub(super) index: u64,
    pub(super) member: &'h str,
    pub(super) generation: i32,
    pub(super) at_ms: Millis,
    pub(super) sink: Sink,
}

/// The consumer-group checks: what each group processed against what was
/// acknowledged, who owned which partition in which generation, and how committed
/// offsets moved.
pub(super) fn check_groups(
    history: &History,
    snapshot: &Snapshot,
    view: &TxnView,
    tallies: &mut Tallies,
    stats: &mut CheckStats,
) {
    // Acknowledged sends: value -> (partition, offset, history index, time).
    let mut acked: BTreeMap<Value, (&TopicPartition, Offset, u64, Millis)> = BTreeMap::new();
    let mut processed: BTreeMap<(&str, Value), Vec<Processing>> = BTreeMap::new();
    let mut max_processed: BTreeMap<(&str, &TopicPartition), Offset> = BTreeMap::new();
    let mut owners: BTreeMap<(&str, i32, &TopicPartition), (NodeId, u64)> = BTreeMap::new();
    let mut last_commit: BTreeMap<(&str, &TopicPartition), (i32, Offset, u64)> = BTreeMap::new();
    let mut max_committed: BTreeMap<(&str, &TopicPartition), Offset> = BTreeMap::new();
    // Per group: (time, generation) of every assignment, and the first generation.
    let mut assigned_at: BTreeMap<&str, Vec<(Millis, i32)>> = BTreeMap::new();
    let mut first_generation: BTreeMap<&str, i32> = BTreeMap::new();
    // The topics each group was ever assigned partitions of (what it subscribes to).
    let mut group_topics: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut generations_seen: BTreeSet<(&str, i32)> = BTreeSet::new();
    // Why each generation was left: (group, generation) -> the first trigger.
    let mut prepared: BTreeMap<(&str, i32), (Millis, RebalanceCause, &str)> = BTreeMap::new();
    // Acknowledged commits per (group, partition), in the order they completed.
    let mut acked_commits: BTreeMap<(&str, &TopicPartition), Vec<AckedCommit>> = BTreeMap::new();
    for e in &history.entries {
        match &e.op {
            Op::PrepareRebalance {
                group,
                generation,
                cause,
                reason,
            } => {
                prepared.entry((group.as_str(), *generation)).or_insert((
                    entry_ms(e),
                    *cause,
                    reason.as_str(),
                ));
            }
            Op::FetchCommitted {
                group,
                member,
                offsets,
                ..
            } => {
                for (p, fetched) in offsets {
                    let Some(acks) = acked_commits.get(&(group.as_str(), p)) else {
                        continue;
                    };
                    let Some(required) = committed_at(acks, e.invoke_ms) else {
                        continue;
                    };
                    if fetched.is_none_or(|f| f < required.offset) {
                        let got = fetched.map_or("no committed offset".into(), |f| f.to_string());
                        tallies.add("committed-offset-lost", (e.index, 0), || {
                            format!(
                                "group {group} committed {p} at {} (acknowledged at {} s, \
                                 history line {}), but member {member}'s OffsetFetch sent at \
                                 {} s found {got}",
                                required.offset,
                                Secs(required.complete_ms),
                                required.index,
                                Secs(e.invoke_ms)
                            )
                        });
                    }
                }
            }
            Op::Send {
                value,
                partition,
                offset: Some(offset),
                ..
            } if e.outcome == Outcome::Ok && view.send_visible(e) != Some(false) => {
                acked.insert(*value, (partition, *offset, e.index, entry_ms(e)));
            }
            Op::Processed {
                group,
                member,
                generation,
                partition,
                offset,
                value,
                sink,
            } => {
                processed
                    .entry((group.as_str(), *value))
                    .or_default()
                    .push(Processing {
                        index: e.index,
                        member,
                        generation: *generation,
                        at_ms: entry_ms(e),
                        sink: *sink,
                    });
                let m = max_processed
                    .entry((group.as_str(), partition))
                    .or_insert(*offset);
                *m = (*m).max(*offset);
            }
            Op::MemberEvent {
                group,
                member,
                event,
            } if event.starts_with("left the group") => {
                tallies.add("member-left", (e.index, 0), || {
                    format!(
                        "member {member} of group {group} {event} at {} s",
                        Secs(entry_ms(e))
                    )
                });
            }
            Op::Assigned {
                group,
                member,
                generation,
                partitions,
            } => {
                let first = *first_generation
                    .entry(group.as_str())
                    .or_insert(*generation);
                if *generation > first && generations_seen.insert((group.as_str(), *generation)) {
                    let why = prepared.get(&(group.as_str(), generation - 1)).copied();
                    let cause = why.map_or("unknown", |(_, c, _)| c.name());
                    *stats
                        .rebalances_by_cause
                        .entry(cause.to_string())
                        .or_default() += 1;
                    tallies.add("rebalance", (e.index, 0), || {
                        let why = why.map_or(String::new(), |(at, cause, reason)| {
                            format!("; {}: {reason}, at {} s", cause.name(), Secs(at))
                        });
                        format!(
                            "group {group} moved to generation {generation} at {} s ({member} \
                             was assigned {}{why})",
                            Secs(entry_ms(e)),
                            partitions
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                }
                assigned_at
                    .entry(group.as_str())
                    .or_default()
                    .push((entry_ms(e), *generation));
                group_topics.extend(partitions.iter().map(|p| (group.as_str(), &*p.topic)));
                // Ownership is per process: a static member that restarts keeps its
                // partitions under a new member id in the same generation (KIP-345).
                for p in partitions {
                    let key = (group.as_str(), *generation, p);
                    match owners.get(&key) {
                        Some((other, first)) if *other != e.process => {
                            let (other, first) = (*other, *first);
                            let me = e.process;
                            tallies.add_lines("double-assignment", (e.index, 0), &[first], || {
                                format!(
                                    "{p} was assigned in generation {generation} of group \
                                     {group} to {other} (history line {first}) and to {me} \
                                     as member {member} (line {})",
                                    e.index
                                )
                            });
                        }
                        Some(_) => {}
                        None => {
                            owners.insert(key, (e.process, e.index));
                        }
                    }
                }
            }
            Op::Committed {
                group,
                generation,
                offsets,
                ..
            } if e.outcome == Outcome::Ok => {
                // A commit sent after a newer generation was assigned must be refused.
                let newer = assigned_at.get(group.as_str()).and_then(|v| {
                    v.iter()
                        .filter(|(t, g)| *t < e.invoke_ms && g > generation)
                        .map(|(_, g)| *g)
                        .max()
                });
                if let Some(newer) = newer {
                    tallies.add("zombie-commit", (e.index, 0), || {
                        format!(
                            "group {group} accepted a commit of generation {generation} sent at \
                             {} s, after generation {newer} had been assigned",
                            Secs(e.invoke_ms)
                        )
                    });
                }
                for (p, offset) in offsets {
                    let key = (group.as_str(), p);
                    let acks = acked_commits.entry(key).or_default();
                    assert!(acks.len() < 10_000_000, "commit list unbounded");
                    acks.push(AckedCommit {
                        invoke_ms: e.invoke_ms,
                        complete_ms: entry_ms(e),
                        offset: *offset,
                        index: e.index,
                    });
                    let m = max_committed.entry(key).or_insert(*offset);
                    *m = (*m).max(*offset);
                    if let Some((g, prev, line)) = last_commit.get(&key).copied() {
                        if g == *generation && *offset < prev {
                            tallies.add_lines("commit-regression", (e.index, 0), &[line], || {
                                format!(
                                    "group {group} committed {p} at {prev} (line {line}) and \
                                     then at {offset} (line {}), both in generation \
                                     {generation}",
                                    e.index
                                )
                            });
                        }
                    }
                    last_commit.insert(key, (*generation, *offset, e.index));
                }
            }
            _ => {}
        }
    }
    let groups: BTreeSet<&str> = processed.keys().map(|(g, _)| *g).collect();
    for group in groups {
        for (value, (p, offset, index, at_ms)) in &acked {
            let times = processed.get(&(group, *value)).map_or(0, Vec::len);
            let reached = max_processed.get(&(group, *p)).is_some_and(|m| m > offset)
                || max_committed.get(&(group, *p)).is_some_and(|c| c > offset);
            if times == 0 && reached {
                let upto = max_processed.get(&(group, *p)).copied().unwrap_or(-1);
                tallies.add("processing-loss", (*index, 0), || {
                    format!(
                        "value {value}, acknowledged at offset {offset} of {p} at {} s, was \
                         never processed by group {group}, which processed {p} up to offset \
                         {upto}",
                        Secs(*at_ms)
                    )
                });
            }
        }
        for ((g, value), runs) in processed.range((group, 0)..=(group, Value::MAX)) {
            debug_assert_eq!(*g, group);
            if runs.len() < 2 {
                continue;
            }
            let (a, b) = (&runs[0], &runs[1]);
            let describe = |what: &str| {
                format!(
                    "value {value} {what} by group {g}: by member {} (generation {}) at {} s \
                     and by member {} (generation {}) at {} s",
                    a.member,
                    a.generation,
                    Secs(a.at_ms),
                    b.member,
                    b.generation,
                    Secs(b.at_ms)
                )
            };
            tallies.add_lines("reprocessing", (b.index, 0), &[a.index], || {
                describe("was processed twice")
            });
            let api: Vec<&Processing> = runs
                .iter()
                .filter(|r| r.sink == Sink::ExternalApi)
                .collect();
            if api.len() >= 2 {
                tallies.add_lines(
                    "duplicate-effect",
                    (api[1].index, 0),
                    &[api[0].index],
                    || describe("reached the external API twice"),
                );
            }
        }
    }
    // The high watermark: the highest any replica holds (the leader's, when it has one).
    let hw: BTreeMap<&TopicPartition, Offset> = snapshot
        .partitions
        .iter()
        .filter_map(|p| {
            let h = p.replicas.iter().map(|r| r.high_watermark).max()?;
            Some((&p.partition, h))
        })
        .collect();
    // The final committed offsets against the acknowledged commits.
    let end_ms = history.entries.iter().map(entry_ms).max().unwrap_or(0) + 1;
    let final_offsets: BTreeMap<(&str, &TopicPartition), Offset> = snapshot
        .committed_offsets
        .iter()
        .map(|(g, p, o)| ((g.as_str(), p), *o))
        .collect();
    for ((group, p), acks) in &acked_commits {
        // Only a group some coordinator has loaded holds offsets to compare.
        let loaded = snapshot.groups.iter().any(|g| g.group == *group);
        let Some(required) = committed_at(acks, end_ms).filter(|_| loaded) else {
            continue;
        };
        let held = final_offsets.get(&(*group, *p)).copied();
        if held.is_none_or(|h| h < required.offset) {
            let got = held.map_or("none".into(), |h| h.to_string());
            tallies.add("committed-offset-lost", (u64::MAX, 0), || {
                format!(
                    "group {group} committed {p} at {} (acknowledged at {} s, history line {}), \
                     but its coordinator holds {got} at the end of the run",
                    required.offset,
                    Secs(required.complete_ms),
                    required.index
                )
            });
        }
    }
    // After the quiet period every partition of a group that consumed is assigned.
    // (Hand-written histories without a snapshot have no end state to check.)
    let consuming: BTreeSet<&str> = first_generation.keys().copied().collect();
    for group in consuming
        .into_iter()
        .filter(|_| !snapshot.partitions.is_empty())
    {
        let Some(g) = snapshot.groups.iter().find(|g| g.group == group) else {
            tallies.add("unassigned-partition", (u64::MAX, 0), || {
                format!("group {group} is not loaded by any coordinator at the end of the run")
            });
            continue;
        };
        let subscribed = snapshot
            .partitions
            .iter()
            .map(|p| &p.partition)
            .filter(|p| group_topics.contains(&(group, &*p.topic)));
        for p in subscribed {
            let owned = g.members.iter().any(|(_, a)| a.contains(p));
            if !owned || g.state != "Stable" {
                tallies.add("unassigned-partition", (u64::MAX, 0), || {
                    format!(
                        "{p} is assigned to no member of group {group} at the end of the run \
                         (group {}, generation {}, {} member(s))",
                        g.state,
                        g.generation,
                        g.members.len()
                    )
                });
            }
        }
    }
    for (group, p, offset) in &snapshot.committed_offsets {
        if let Some(h) = hw.get(p).filter(|h| offset > *h) {
            tallies.add("committed-past-high-watermark", (u64::MAX, 0), || {
                format!(
                    "group {group}'s committed offset for {p} is {offset}, above the high \
                     watermark {h}"
                )
            });
        }
    }
}

/// An acknowledged offset commit of one partition.
#[derive(Clone, Copy)]
pub(super) struct AckedCommit {
    pub(super) invoke_ms: Millis,
    pub(super) complete_ms: Millis,
    pub(super) offset: Offset,
    pub(super) index: u64,
}

/// The commit a read of the committed offset starting at `at_ms` must see at least:
/// of the commits acknowledged before `at_ms`, the last one and those concurrent with
/// it (any of them may have been applied last), the lowest. `None` before any.
pub(super) fn committed_at(acks: &[AckedCommit], at_ms: Millis) -> Option<AckedCommit> {
    let done: Vec<&AckedCommit> = acks.iter().filter(|a| a.complete_ms < at_ms).collect();
    let last = done.iter().max_by_key(|a| (a.complete_ms, a.index))?;
    done.iter()
        .filter(|a| a.complete_ms >= last.invoke_ms)
        .min_by_key(|a| (a.offset, a.index))
        .map(|a| **a)
}
