//! The nemesis applied: resolving a fault's target in the controller's image, and
//! starting and ending each fault of the schedule on the nodes, links and disks.

use super::*;
/// The nodes a fault's target names now: a node, or the leader, followers or
/// coordinator of a partition in the controller's current image.
fn resolve_target(image: &MetadataImage, target: &Target) -> Vec<NodeId> {
    match target {
        Target::Node(n) => vec![*n],
        Target::AllBrokers => image.brokers.keys().map(|b| NodeId::Broker(*b)).collect(),
        Target::LeaderOf(tp) => image
            .partitions
            .get(tp)
            .and_then(|r| r.leader)
            .map(NodeId::Broker)
            .into_iter()
            .collect(),
        Target::FollowersOf(tp) => image
            .partitions
            .get(tp)
            .map(|r| {
                r.replicas
                    .iter()
                    .filter(|b| Some(**b) != r.leader)
                    .map(|b| NodeId::Broker(*b))
                    .collect()
            })
            .unwrap_or_default(),
        Target::CoordinatorOf(key) | Target::TxnCoordinatorOf(key) => {
            let topic = match target {
                Target::CoordinatorOf(_) => crate::coordinator::group::OFFSETS_TOPIC,
                _ => crate::coordinator::txn::TRANSACTION_STATE_TOPIC,
            };
            let partitions = image.topics.get(topic).copied().unwrap_or(1);
            let partition = crate::coordinator::shared::partition_for_group(key, partitions);
            let tp = TopicPartition::new(topic, partition);
            image
                .partitions
                .get(&tp)
                .and_then(|r| r.leader)
                .map(NodeId::Broker)
                .into_iter()
                .collect()
        }
    }
}

/// Asks the controller, as an admin client would (`AlterPartitionReassignments`, its
/// answer not awaited), to move `partition`'s leadership to another in-sync replica;
/// returns the fault's description for the history.
fn move_leader(
    ctx: &Ctx,
    image: &MetadataImage,
    partition: &TopicPartition,
    admin_seq: &mut u64,
) -> String {
    match image.partitions.get(partition) {
        Some(reg) => match reg.leader.and_then(|l| {
            reg.replicas
                .iter()
                .find(|r| **r != l && reg.isr.contains(r))
                .copied()
        }) {
            Some(target) => {
                let mut replicas = vec![target];
                replicas.extend(reg.replicas.iter().filter(|r| **r != target));
                let message = Message::Request {
                    correlation_id: *admin_seq,
                    request: Request::AlterPartitionReassignments(
                        AlterPartitionReassignmentsRequest {
                            tp: partition.clone(),
                            replicas,
                        },
                    ),
                };
                *admin_seq += 1;
                // The admin client's request; its answer is not awaited.
                admin_send(ctx, NodeId::Controller, message);
                format!(
                    "move leader of {partition} from broker-{} to broker-{target}",
                    reg.leader.unwrap_or(0)
                )
            }
            None => format!("move leader of {partition}: no other in-sync replica (skipped)"),
        },
        None => format!("move leader of {partition}: unknown partition (skipped)"),
    }
}

/// Sends the admin client's request to `to` if the link is up; its answer is not
/// awaited (and, sent to the nemesis, dropped).
fn admin_send(ctx: &Ctx, to: NodeId, message: Message) {
    if ctx.refuses(to) {
        return; // connection refused: the admin client's request is not sent
    }
    let mut net = ctx.net();
    if net.link_up(NodeId::Nemesis, to) {
        let incarnation = ctx.incarnation(to);
        let wires = net.request(
            ctx.now_ns(),
            NodeId::Nemesis,
            0,
            to,
            incarnation,
            Channel::Main,
            message,
        );
        drop(net);
        ctx.put(wires);
    }
}

/// Asks `partition`'s leader, as `Admin.deleteRecords` would (`DeleteRecords` with
/// `default.api.timeout.ms`, 60 s; its answer not awaited), to move the log start to
/// `offset`; returns the fault's description for the history.
fn delete_records(
    ctx: &Ctx,
    image: &MetadataImage,
    partition: &TopicPartition,
    offset: nemesis::RecordsBefore,
    admin_seq: &mut u64,
) -> String {
    let Some(leader) = image.partitions.get(partition).and_then(|r| r.leader) else {
        return format!("delete records of {partition} before {offset}: no leader (skipped)");
    };
    let to = NodeId::Broker(leader);
    let offset_value = match offset {
        nemesis::RecordsBefore::HighWatermark => DELETE_RECORDS_HIGH_WATERMARK,
        nemesis::RecordsBefore::Offset(o) => o as Offset,
    };
    let message = Message::Request {
        correlation_id: *admin_seq,
        request: Request::DeleteRecords(DeleteRecordsRequest {
            partitions: vec![(partition.clone(), offset_value)],
            timeout_ms: 60_000,
        }),
    };
    *admin_seq += 1;
    admin_send(ctx, to, message);
    format!("delete records of {partition} before {offset} -> {to}")
}

/// Applies the fault schedule: each fault starts and ends at its time, on the nodes
/// its target names when it starts, and is recorded in the history.
pub(super) async fn run_faults(
    handle: &Handle,
    ctx: &Arc<Ctx>,
    (controller, brokers): (&Arc<Mutex<Controller>>, &Brokers),
    nodes: &Nodes,
    (faults, seed, disk): (&[ScheduledFault], u64, &DiskSpec),
) {
    let mut disk_rng = stream(seed, "disk");
    // Timeline: (time, start?, fault index).
    let mut timeline: Vec<(Millis, bool, usize)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        timeline.push((f.at_ms, true, i));
        if !f.fault.is_instant() {
            timeline.push((f.at_ms + f.duration_ms, false, i));
        }
    }
    timeline.sort_by_key(|&(t, start, i)| (t, start, i));
    let mut all_nodes: Vec<NodeId> = nodes.ids.keys().copied().collect();
    all_nodes.push(NodeId::Nemesis);
    let mut resolved: BTreeMap<usize, Vec<Vec<NodeId>>> = BTreeMap::new();
    let mut admin_seq = 0u64;
    for (t, start, i) in timeline {
        time::sleep_until(ctx.start + Duration::from_millis(t)).await;
        let f = &faults[i];
        let now = ctx.now();
        if start {
            let image = controller
                .lock()
                .expect("no poisoned locks")
                .image()
                .clone();
            let resolve = |target: &Target| resolve_target(&image, target);
            let groups: Vec<Vec<NodeId>> = match &f.fault {
                Fault::Crash { target }
                | Fault::PowerLoss { target }
                | Fault::Corrupt { target }
                | Fault::DiskFull { target }
                | Fault::LogDirFailure { target }
                | Fault::Pause { target }
                | Fault::Isolate { target }
                | Fault::Clock { target, .. } => vec![resolve(target)],
                Fault::Partition { groups } => groups
                    .iter()
                    .map(|g| g.iter().flat_map(&resolve).collect())
                    .collect(),
                Fault::OneWay { from, to }
                | Fault::Delay { from, to }
                | Fault::Slow { from, to, .. }
                | Fault::Reset {
                    between: [from, to],
                } => vec![resolve(from), resolve(to)],
                Fault::MoveLeader { .. } | Fault::DeleteRecords { .. } => vec![],
            };
            let mut disk_losses = Vec::new();
            let mut desc = format!(
                "{} -> {}",
                f.fault,
                groups
                    .iter()
                    .map(|g| g
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(","))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            match &f.fault {
                Fault::Crash { .. } => groups[0].iter().for_each(|n| {
                    handle.kill(nodes.id(*n));
                    ctx.crash(*n, true);
                }),
                Fault::PowerLoss { .. } => groups[0].iter().for_each(|n| {
                    handle.kill(nodes.id(*n));
                    ctx.crash(*n, false);
                    if let NodeId::Broker(b) = n {
                        let lost = power_loss(&brokers[b], now, disk, &mut disk_rng);
                        disk_losses.extend(lost.into_iter().map(|op| Entry::instant(*n, now, op)));
                    }
                }),
                Fault::Corrupt { .. } => groups[0].iter().for_each(|n| {
                    handle.kill(nodes.id(*n));
                    ctx.crash(*n, true);
                    if let NodeId::Broker(b) = n {
                        let op = corrupt(&brokers[b], &mut disk_rng);
                        disk_losses.extend(op.map(|op| Entry::instant(*n, now, op)));
                    }
                }),
                // The broker finds out at its next write (and halts then).
                Fault::DiskFull { .. } => groups[0].iter().for_each(|n| {
                    if let NodeId::Broker(b) = n {
                        let mut broker = brokers[b].lock().expect("no poisoned locks");
                        broker.set_disk_full(true);
                    }
                }),
                Fault::LogDirFailure { .. } => groups[0].iter().for_each(|n| {
                    handle.kill(nodes.id(*n));
                    ctx.crash(*n, true);
                    if let NodeId::Broker(b) = n {
                        let op = Op::LogDirFailure {
                            error: format!(
                                "Disk error in dir {LOG_DIR}: Input/output error (the disk \
                                 failed); halting broker because dir {LOG_DIR} is offline"
                            ),
                        };
                        disk_losses.push(Entry::instant(*n, now, op));
                        let lost = power_loss(&brokers[b], now, disk, &mut disk_rng);
                        disk_losses.extend(lost.into_iter().map(|op| Entry::instant(*n, now, op)));
                    }
                }),
                Fault::Pause { .. } => groups[0].iter().for_each(|n| handle.pause(nodes.id(*n))),
                Fault::Isolate { .. }
                | Fault::Partition { .. }
                | Fault::OneWay { .. }
                | Fault::Delay { .. }
                | Fault::Slow { .. } => link_fault(ctx, f, &groups, &all_nodes, false),
                Fault::Reset { .. } => {
                    let mut told = Vec::new();
                    for a in &groups[0] {
                        for b in groups[1].iter().filter(|b| *b != a) {
                            told.extend(ctx.net().reset_between(*a, *b));
                        }
                    }
                    ctx.notify_resets(&told);
                }
                Fault::MoveLeader { partition } => {
                    desc = move_leader(ctx, &image, partition, &mut admin_seq);
                }
                Fault::DeleteRecords { partition, offset } => {
                    desc = delete_records(ctx, &image, partition, *offset, &mut admin_seq);
                }
                Fault::Clock { offset_ms, .. } => ctx.step_clocks(&groups[0], *offset_ms),
            }
            ctx.record(vec![Entry::instant(
                NodeId::Nemesis,
                now,
                Op::FaultStart { fault: desc },
            )]);
            // What each power-lost or corrupted broker's logs lost, after the fault.
            ctx.record(std::mem::take(&mut disk_losses));
            resolved.insert(i, groups);
        } else {
            let groups = resolved.remove(&i).unwrap_or_default();
            match &f.fault {
                Fault::Crash { .. }
                | Fault::PowerLoss { .. }
                | Fault::Corrupt { .. }
                | Fault::LogDirFailure { .. } => groups[0].iter().for_each(|n| {
                    ctx.down.lock().expect("no poisoned locks").remove(n);
                    handle.restart(nodes.id(*n));
                }),
                // The disk has room again: a broker that halted starts again.
                Fault::DiskFull { .. } => groups[0].iter().for_each(|n| {
                    let NodeId::Broker(b) = n else { return };
                    let halted = {
                        let mut broker = brokers[b].lock().expect("no poisoned locks");
                        broker.set_disk_full(false);
                        broker.halted()
                    };
                    if halted {
                        ctx.down.lock().expect("no poisoned locks").remove(n);
                        handle.restart(nodes.id(*n));
                    }
                }),
                Fault::Pause { .. } => groups[0].iter().for_each(|n| handle.resume(nodes.id(*n))),
                Fault::Isolate { .. }
                | Fault::Partition { .. }
                | Fault::OneWay { .. }
                | Fault::Delay { .. }
                | Fault::Slow { .. } => link_fault(ctx, f, &groups, &all_nodes, true),
                Fault::Clock { offset_ms, .. } => ctx.step_clocks(&groups[0], -offset_ms),
                Fault::MoveLeader { .. } | Fault::DeleteRecords { .. } | Fault::Reset { .. } => {}
            }
            ctx.record(vec![Entry::instant(
                NodeId::Nemesis,
                now,
                Op::FaultEnd {
                    fault: f.fault.to_string(),
                },
            )]);
        }
    }
}

/// Cuts a broker's power at `now` (its process is already dead): its disk keeps the
/// platter, each log's first lost batch torn with `torn_write_probability`. Returns
/// what each log lost, for the history.
fn power_loss(
    broker: &Mutex<Broker>,
    now: Millis,
    disk: &DiskSpec,
    rng: &mut ChaCha8Rng,
) -> Vec<Op> {
    let mut broker = broker.lock().expect("no poisoned locks");
    let torn = || {
        rng.gen_bool(disk.torn_write_probability)
            .then(|| rng.gen_range(0..1000))
    };
    broker
        .power_loss(now, torn)
        .into_iter()
        .map(|(partition, loss)| Op::LogPowerLoss {
            partition,
            log_end_offset: loss.log_end_offset,
            durable_end_offset: loss.durable_end_offset,
            torn: loss.torn,
        })
        .collect()
}

/// Flips a bit on a broker's disk (its process is already dead), drawn from the
/// run's `disk` stream. Returns what flipped, for the history.
fn corrupt(broker: &Mutex<Broker>, rng: &mut ChaCha8Rng) -> Option<Op> {
    let mut broker = broker.lock().expect("no poisoned locks");
    let (partition, c) = broker.corrupt(|n| rng.gen_range(0..n))?;
    Some(Op::LogCorrupted {
        partition,
        base_offset: c.base_offset,
        last_offset: c.last_offset,
        byte: c.byte as u64,
        bit: c.bit,
    })
}

/// Starts (or, with `end`, ends) a fault on links: a cut, a delay or a slow path.
fn link_fault(ctx: &Ctx, f: &ScheduledFault, groups: &[Vec<NodeId>], all: &[NodeId], end: bool) {
    let pairs = link_pairs(&f.fault, groups, all);
    let mut net = ctx.net();
    match f.fault {
        Fault::Delay { .. } => {
            let until = (f.at_ms + f.duration_ms) * NANOS_PER_MS;
            net.delay_links(&pairs, until, end)
        }
        Fault::Slow {
            latency_ms: [lo, hi],
            ..
        } => net.slow_links(&pairs, (lo * 1000, hi * 1000), end),
        _ => net.cut_links(&pairs, end),
    }
}

/// The directed links a network fault cuts, delays or slows.
fn link_pairs(fault: &Fault, groups: &[Vec<NodeId>], all: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let mut pairs = Vec::new();
    match fault {
        Fault::Isolate { .. } => {
            for a in &groups[0] {
                for b in all.iter().filter(|b| *b != a) {
                    pairs.push((*a, *b));
                    pairs.push((*b, *a));
                }
            }
        }
        Fault::Partition { .. } => {
            for a in &groups[0] {
                for b in groups[1].iter().filter(|b| *b != a) {
                    pairs.push((*a, *b));
                    pairs.push((*b, *a));
                }
            }
        }
        Fault::OneWay { .. } | Fault::Delay { .. } | Fault::Slow { .. } => {
            for a in &groups[0] {
                for b in groups[1].iter().filter(|b| *b != a) {
                    pairs.push((*a, *b));
                }
            }
        }
        _ => {}
    }
    pairs
}
