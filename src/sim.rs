//! The madsim host: runs the sans-IO cores as simulated nodes, carries their messages
//! over madsim's network, applies the nemesis' schedule, and collects the history and
//! the end-of-run snapshot.
//!
//! Everything here is driven by the seed: madsim's own RNG (latencies, scheduling) and
//! named `ChaCha8` streams derived from the seed for the workload and the nemesis.

use crate::actor::{Actor, Millis, Outbox};
use crate::broker::{Broker, Disk};
use crate::bugs::{Bug, Bugs};
use crate::consumer::Consumer;
use crate::controller::{Controller, TopicSpec};
use crate::history::{Entry, History, Op, PartitionSnapshot, ReplicaSnapshot, Snapshot};
use crate::nemesis::{self, Fault, ScheduledFault, Target};
use crate::producer::Producer;
use crate::protocol::*;
use crate::scenario::Scenario;
use crate::workload::{ProducerWorkload, WorkloadPlan};
use madsim::net::{Endpoint, NetSim};
use madsim::runtime::{Handle, Runtime};
use madsim::time::{self, Duration, Instant};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The Endpoint tag every kafkasim message uses.
const TAG: u64 = 0x4b41_464b;
/// The port every node listens on.
const PORT: u16 = 9092;
/// Bound on messages buffered out of order from one sender.
const MAX_REORDER_BUFFER: usize = 10_000;

/// What a finished run produced.
pub struct RunOutput {
    /// Every operation and fault.
    pub history: History,
    /// White-box state after the quiet period.
    pub snapshot: Snapshot,
    /// The faults, as resolved from the seed and the scenario.
    pub faults: Vec<ScheduledFault>,
    /// Simulated run length (ms).
    pub sim_ms: Millis,
    /// Messages the simulated network delivered or dropped.
    pub net_messages: u64,
    /// Records the producers sent.
    pub records_sent: u64,
}

/// A message on the simulated wire: the sender, its incarnation and a per-link
/// sequence number, so that the receiver can restore TCP's in-order delivery.
struct Envelope {
    from: NodeId,
    incarnation: u64,
    seq: u64,
    message: Message,
}

/// TCP's guarantees on top of madsim's datagrams. In order: madsim may reorder two
/// messages of a link (random latency, mailbox order), so a receiver holds a message
/// that arrives early until its predecessors arrive, or until `gap_ms` says they were
/// lost. Retransmission: a message sent while the nemesis cuts the link is not lost but
/// held by the sender and retried with exponential backoff (TCP's RTO, 200 ms doubling
/// to 10 s) until the link heals, unless either end's process dies first.
struct Transport {
    incarnation: u64,
    out_seq: BTreeMap<NodeId, u64>,
    inbound: BTreeMap<NodeId, Inbound>,
    gap_ms: Millis,
    held: BTreeMap<NodeId, Held>,
}

/// Messages waiting for a cut link to heal, with the receiver incarnation they were
/// addressed to (a restarted receiver resets the connection: they are dropped).
struct Held {
    queue: std::collections::VecDeque<(u64, Envelope)>,
    retry_at: Millis,
    backoff_ms: Millis,
}

/// TCP's initial retransmission timeout.
const RTO_MIN_MS: Millis = 200;
/// Cap on the retransmission backoff (Linux caps RTO at 120 s; runs are short).
const RTO_MAX_MS: Millis = 10_000;
/// Bound on messages held for one cut link.
const MAX_HELD: usize = 100_000;

struct Inbound {
    incarnation: u64,
    next: u64,
    held: BTreeMap<u64, (Millis, Message)>,
}

impl Transport {
    fn stamp(&mut self, me: NodeId, to: NodeId, message: Message) -> Envelope {
        let seq = self.out_seq.entry(to).or_insert(0);
        let env = Envelope {
            from: me,
            incarnation: self.incarnation,
            seq: *seq,
            message,
        };
        *seq += 1;
        env
    }

    fn receive(&mut self, now: Millis, env: Envelope, deliver: &mut Vec<(NodeId, Message)>) {
        let inb = self.inbound.entry(env.from).or_insert(Inbound {
            incarnation: env.incarnation,
            next: 0,
            held: BTreeMap::new(),
        });
        if inb.incarnation != env.incarnation {
            // The sender restarted: a new connection.
            *inb = Inbound {
                incarnation: env.incarnation,
                next: 0,
                held: BTreeMap::new(),
            };
        }
        if env.seq < inb.next {
            return; // arrived after its gap was given up on: TCP would have dropped it
        }
        assert!(
            inb.held.len() < MAX_REORDER_BUFFER,
            "reorder buffer overflow"
        );
        inb.held.insert(env.seq, (now, env.message));
        Self::drain(env.from, inb, deliver);
    }

    fn drain(from: NodeId, inb: &mut Inbound, deliver: &mut Vec<(NodeId, Message)>) {
        while let Some((_, m)) = inb.held.remove(&inb.next) {
            deliver.push((from, m));
            inb.next += 1;
        }
    }

    /// Gives up on gaps older than `gap_ms` (the missing messages were dropped).
    fn expire(&mut self, now: Millis, deliver: &mut Vec<(NodeId, Message)>) {
        for (from, inb) in self.inbound.iter_mut() {
            if let Some((&seq, &(arrived, _))) = inb.held.iter().next() {
                if arrived + self.gap_ms <= now {
                    inb.next = seq;
                    Self::drain(*from, inb, deliver);
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Millis> {
        let gaps = self
            .inbound
            .values()
            .filter_map(|i| i.held.values().next().map(|(t, _)| t + self.gap_ms));
        gaps.chain(self.held.values().map(|h| h.retry_at)).min()
    }

    /// Queues `env` for `to` if the link is cut or older messages still wait for it;
    /// returns it back if it can go now.
    fn hold_or_pass(
        &mut self,
        now: Millis,
        ctx: &Ctx,
        me: NodeId,
        to: NodeId,
        env: Envelope,
    ) -> Option<Envelope> {
        if !self.held.contains_key(&to) && ctx.link_up(me, to) {
            return Some(env);
        }
        let h = self.held.entry(to).or_insert(Held {
            queue: Default::default(),
            retry_at: now + RTO_MIN_MS,
            backoff_ms: RTO_MIN_MS,
        });
        assert!(h.queue.len() < MAX_HELD, "retransmission queue overflow");
        h.queue.push_back((ctx.incarnation(to), env));
        None
    }

    /// Retransmits what waits for links that healed; backs off on those still cut.
    fn retransmit(&mut self, now: Millis, ctx: &Ctx, me: NodeId) -> Vec<(NodeId, Envelope)> {
        let mut out = Vec::new();
        let due: Vec<NodeId> = self
            .held
            .iter()
            .filter(|(_, h)| h.retry_at <= now)
            .map(|(n, _)| *n)
            .collect();
        for to in due {
            if ctx.link_up(me, to) {
                let h = self.held.remove(&to).expect("listed");
                let current = ctx.incarnation(to);
                out.extend(
                    h.queue
                        .into_iter()
                        .filter(|(inc, _)| *inc == current)
                        .map(|(_, e)| (to, e)),
                );
            } else {
                let h = self.held.get_mut(&to).expect("listed");
                h.backoff_ms = (h.backoff_ms * 2).min(RTO_MAX_MS);
                h.retry_at = now + h.backoff_ms;
            }
        }
        out
    }
}

/// What a node's host loop receives.
enum Input {
    /// A message from the network.
    Net(Envelope),
    /// The connection to this node was reset: its process died.
    Reset(NodeId),
}

/// State shared by the host's tasks for one run.
struct Ctx {
    start: Instant,
    history: Mutex<History>,
    incarnations: Mutex<BTreeMap<NodeId, u64>>,
    gap_ms: Millis,
    /// Directed links the nemesis has cut, with how many faults cut each.
    cut: Mutex<BTreeMap<(NodeId, NodeId), u32>>,
    /// Processes that are down (crashed, not yet restarted).
    down: Mutex<std::collections::BTreeSet<NodeId>>,
    /// Each running node's input channel, for connection resets.
    inboxes: Mutex<BTreeMap<NodeId, tokio::sync::mpsc::UnboundedSender<Input>>>,
}

impl Ctx {
    fn now(&self) -> Millis {
        (Instant::now() - self.start).as_millis() as Millis
    }

    fn next_incarnation(&self, node: NodeId) -> u64 {
        let mut m = self.incarnations.lock().expect("no poisoned locks");
        let e = m.entry(node).or_insert(0);
        *e += 1;
        *e
    }

    fn incarnation(&self, node: NodeId) -> u64 {
        self.incarnations
            .lock()
            .expect("no poisoned locks")
            .get(&node)
            .copied()
            .unwrap_or(0)
    }

    fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self
            .cut
            .lock()
            .expect("no poisoned locks")
            .contains_key(&(from, to))
    }

    /// Cuts (or, with `heal`, restores) every directed link from `a` to `b`.
    fn cut_links(&self, pairs: &[(NodeId, NodeId)], heal: bool) {
        let mut cut = self.cut.lock().expect("no poisoned locks");
        for &p in pairs {
            if heal {
                if let Some(n) = cut.get_mut(&p) {
                    *n -= 1;
                    if *n == 0 {
                        cut.remove(&p);
                    }
                }
            } else {
                *cut.entry(p).or_insert(0) += 1;
            }
        }
    }

    fn is_down(&self, node: NodeId) -> bool {
        self.down.lock().expect("no poisoned locks").contains(&node)
    }

    /// A process died: its host resets every connection to it.
    fn crash(&self, node: NodeId) {
        self.down.lock().expect("no poisoned locks").insert(node);
        for (n, tx) in self.inboxes.lock().expect("no poisoned locks").iter() {
            if *n != node {
                let _ = tx.send(Input::Reset(node));
            }
        }
    }

    fn record(&self, entries: Vec<Entry>) {
        let mut h = self.history.lock().expect("no poisoned locks");
        for e in entries {
            h.push(e);
        }
    }
}

fn ip_of(node: NodeId) -> IpAddr {
    IpAddr::V4(match node {
        NodeId::Controller => Ipv4Addr::new(10, 0, 0, 1),
        NodeId::Broker(b) => Ipv4Addr::new(10, 0, 1, b as u8),
        NodeId::Producer(i) => Ipv4Addr::new(10, 0, 2, i as u8 + 1),
        NodeId::Consumer(i) => Ipv4Addr::new(10, 0, 3, i as u8 + 1),
        NodeId::Nemesis => Ipv4Addr::new(10, 0, 9, 1),
    })
}

fn addr_of(node: NodeId) -> SocketAddr {
    SocketAddr::new(ip_of(node), PORT)
}

async fn flush(
    ep: &Endpoint,
    me: NodeId,
    tr: &mut Transport,
    ctx: &Ctx,
    out: &mut Outbox,
    resets: &mut Vec<NodeId>,
) {
    ctx.record(std::mem::take(&mut out.history));
    let now = ctx.now();
    let mut ready = tr.retransmit(now, ctx, me);
    for (to, message) in std::mem::take(&mut out.sends) {
        if ctx.is_down(to) {
            // The peer's host is up but its process is not: connection refused.
            if !resets.contains(&to) {
                resets.push(to);
            }
            continue;
        }
        let env = tr.stamp(me, to, message);
        if let Some(env) = tr.hold_or_pass(now, ctx, me, to, env) {
            ready.push((to, env));
        }
    }
    for (to, env) in ready {
        // A send to a dead node vanishes, as on a real network.
        let _ = ep.send_to_raw(addr_of(to), TAG, Box::new(env)).await;
    }
}

/// Drives one sans-IO core: delivers messages in per-link order, fires its timers,
/// sends what it asks to send and records what it asks to record.
async fn drive<A: Actor + 'static>(
    me: NodeId,
    actor: Arc<Mutex<A>>,
    ctx: Arc<Ctx>,
    incarnation: u64,
) {
    let ep = Arc::new(
        Endpoint::bind(addr_of(me))
            .await
            .expect("each node binds its own address once"),
    );
    // A dedicated receiving task: `recv_from_raw` loses a message taken from the mailbox
    // if it is cancelled (by a timer) during its internal delay, so it is never
    // cancelled; the channel it feeds is cancel-safe.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
    ctx.inboxes
        .lock()
        .expect("no poisoned locks")
        .insert(me, tx.clone());
    let receiver = ep.clone();
    madsim::task::spawn(async move {
        while let Ok((payload, _)) = receiver.recv_from_raw(TAG).await {
            let env = payload
                .downcast::<Envelope>()
                .expect("only kafkasim envelopes on the wire");
            if tx.send(Input::Net(*env)).is_err() {
                break;
            }
        }
    });
    let mut resets = Vec::new();
    let mut tr = Transport {
        incarnation,
        out_seq: BTreeMap::new(),
        inbound: BTreeMap::new(),
        gap_ms: ctx.gap_ms,
        held: BTreeMap::new(),
    };
    let mut out = Outbox::default();
    actor
        .lock()
        .expect("no poisoned locks")
        .on_start(ctx.now(), &mut out);
    flush(&ep, me, &mut tr, &ctx, &mut out, &mut resets).await;
    let mut delivered = Vec::new();
    let mut sleep: Option<(Millis, std::pin::Pin<Box<time::Sleep>>)> = None;
    loop {
        let now = ctx.now();
        let timer = actor.lock().expect("no poisoned locks").next_timer();
        let deadline = match (timer, tr.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let received = match deadline {
            _ if !resets.is_empty() => None,
            Some(d) if d <= now => None,
            Some(d) => {
                // One timer per deadline, not per wake-up: a timer created for each
                // message would stay in madsim's heap until it expired.
                if sleep.as_ref().is_none_or(|(t, _)| *t != d) {
                    sleep = Some((
                        d,
                        Box::pin(time::sleep_until(ctx.start + Duration::from_millis(d))),
                    ));
                }
                let timer = &mut sleep.as_mut().expect("just set").1;
                let got = std::future::poll_fn(|cx| {
                    if let std::task::Poll::Ready(input) = rx.poll_recv(cx) {
                        return std::task::Poll::Ready(input);
                    }
                    timer.as_mut().poll(cx).map(|_| None)
                })
                .await;
                if got.is_none() {
                    sleep = None;
                }
                got
            }
            None => rx.recv().await,
        };
        let now = ctx.now();
        let mut inputs: Vec<Input> = received.into_iter().collect();
        // Take everything else already here, so one wake-up handles a burst.
        while let Ok(input) = rx.try_recv() {
            inputs.push(input);
        }
        for input in inputs {
            match input {
                Input::Net(env) => tr.receive(now, env, &mut delivered),
                Input::Reset(peer) => {
                    if !resets.contains(&peer) {
                        resets.push(peer);
                    }
                }
            }
        }
        tr.expire(now, &mut delivered);
        {
            let mut a = actor.lock().expect("no poisoned locks");
            for peer in resets.drain(..) {
                a.on_disconnect(now, peer, &mut out);
            }
            for (from, message) in delivered.drain(..) {
                a.on_message(now, from, message, &mut out);
            }
            if a.next_timer().is_some_and(|t| t <= now) {
                a.on_timer(now, &mut out);
            }
        }
        // `flush` also retransmits what waited for healed links.
        flush(&ep, me, &mut tr, &ctx, &mut out, &mut resets).await;
    }
}

/// Runs one scenario with one seed to the end and returns what it produced.
/// Panics inside the simulated system propagate to the caller (a finding).
pub fn run(scenario: &Scenario, seed: u64, extra_bugs: &[Bug]) -> RunOutput {
    let [lo, hi] = scenario.network.latency_ms;
    let mut config = madsim::Config::default();
    config.net.send_latency =
        Duration::from_millis(lo)..Duration::from_millis(hi) + Duration::from_micros(1);
    let rt = Runtime::with_seed_and_config(seed, config);
    let scenario = Arc::new(scenario.clone());
    let extra = extra_bugs.to_vec();
    rt.block_on(async move { supervise(scenario, seed, extra).await })
}

fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    // A named stream: adding draws to one stream never shifts another.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(seed ^ h)
}

struct Nodes {
    ids: BTreeMap<NodeId, madsim::task::NodeId>,
}

impl Nodes {
    fn id(&self, n: NodeId) -> madsim::task::NodeId {
        self.ids[&n]
    }
}

async fn supervise(sc: Arc<Scenario>, seed: u64, extra_bugs: Vec<Bug>) -> RunOutput {
    let handle = Handle::current();
    let [lo, hi] = sc.network.latency_ms;
    let ctx = Arc::new(Ctx {
        start: Instant::now(),
        history: Mutex::new(History::default()),
        incarnations: Mutex::new(BTreeMap::new()),
        gap_ms: hi - lo + 2,
        cut: Mutex::new(BTreeMap::new()),
        down: Mutex::new(Default::default()),
        inboxes: Mutex::new(BTreeMap::new()),
    });
    let mut bugs = sc.bug_switches();
    bugs.extend(extra_bugs);
    let bugs = Bugs::of(&bugs);
    let broker_ids: Vec<BrokerId> = (1..=sc.cluster.brokers).collect();
    let topics: Vec<TopicSpec> = sc
        .topics
        .iter()
        .map(|t| TopicSpec {
            name: Arc::from(t.name.as_str()),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
        })
        .collect();
    let topic_names: Vec<Arc<str>> = topics.iter().map(|t| t.name.clone()).collect();
    let mut nodes = Nodes {
        ids: BTreeMap::new(),
    };

    // Controller.
    let controller = Arc::new(Mutex::new(Controller::new(
        sc.cluster.config.clone(),
        broker_ids.clone(),
        topics.clone(),
    )));
    {
        let (c, x) = (controller.clone(), ctx.clone());
        let n = handle
            .create_node()
            .name("controller")
            .ip(ip_of(NodeId::Controller))
            .init(move || {
                let (c, x) = (c.clone(), x.clone());
                async move {
                    let inc = x.next_incarnation(NodeId::Controller);
                    drive(NodeId::Controller, c, x, inc).await
                }
            })
            .build();
        nodes.ids.insert(NodeId::Controller, n.id());
    }

    // Brokers: the Broker object outlives its node, so a restart keeps the disk.
    let mut brokers = BTreeMap::new();
    for &b in &broker_ids {
        let broker = Arc::new(Mutex::new(Broker::new(
            b,
            sc.cluster.config.clone(),
            bugs,
            0,
            Disk::default(),
        )));
        brokers.insert(b, broker.clone());
        let x = ctx.clone();
        let me = NodeId::Broker(b);
        let n = handle
            .create_node()
            .name(me.to_string())
            .ip(ip_of(me))
            .init(move || {
                let (br, x) = (broker.clone(), x.clone());
                async move {
                    let inc = x.next_incarnation(me);
                    br.lock().expect("no poisoned locks").restart(inc);
                    drive(me, br, x, inc).await
                }
            })
            .build();
        nodes.ids.insert(me, n.id());
    }

    // Producers with their workload.
    let interval_us = (1_000_000.0 / sc.workload.rate_per_sec).max(1.0) as u64;
    let mut producers = Vec::new();
    for i in 0..sc.producers.count {
        let me = NodeId::Producer(i);
        let producer = Producer::new(
            i,
            sc.producers.config.clone(),
            broker_ids.clone(),
            seed ^ (0x5052_4f44 + u64::from(i)),
        );
        let plan = WorkloadPlan {
            topics: topic_names.clone(),
            keys: sc.workload.keys,
            interval_us,
            start_ms: sc.workload.start_ms,
            end_ms: sc.workload_end_ms(),
        };
        let wl = Arc::new(Mutex::new(ProducerWorkload::new(
            i,
            producer,
            plan,
            seed ^ (0x574c_0000 + u64::from(i)),
        )));
        producers.push(wl.clone());
        let x = ctx.clone();
        let n = handle
            .create_node()
            .name(me.to_string())
            .ip(ip_of(me))
            .init(move || {
                let (w, x) = (wl.clone(), x.clone());
                async move { drive(me, w, x, 1).await }
            })
            .build();
        nodes.ids.insert(me, n.id());
    }

    // Consumers.
    let mut consumers = Vec::new();
    for i in 0..sc.consumers.count {
        let me = NodeId::Consumer(i);
        let c = Arc::new(Mutex::new(Consumer::new(
            i,
            sc.consumers.config.clone(),
            broker_ids.clone(),
            topic_names.clone(),
            seed ^ (0x434f_4e53 + u64::from(i)),
        )));
        consumers.push(c.clone());
        let x = ctx.clone();
        let start = Duration::from_millis(sc.consumers.start_ms);
        let n = handle
            .create_node()
            .name(me.to_string())
            .ip(ip_of(me))
            .init(move || {
                let (c, x) = (c.clone(), x.clone());
                async move {
                    time::sleep_until(x.start + start).await;
                    drive(me, c, x, 1).await
                }
            })
            .build();
        nodes.ids.insert(me, n.id());
    }

    // The nemesis' admin client.
    let nemesis_node = handle
        .create_node()
        .name("nemesis")
        .ip(ip_of(NodeId::Nemesis))
        .build();
    nodes.ids.insert(NodeId::Nemesis, nemesis_node.id());

    // The fault schedule: drawn from the seed, plus the scenario's explicit faults.
    let plan = nemesis::DrawSpec {
        kinds: &sc.nemesis.faults,
        brokers: sc.cluster.brokers,
        producers: sc.producers.count,
        topics: &sc.topics_and_partitions(),
        window_ms: (sc.workload.start_ms, sc.workload_end_ms()),
        interval_ms: sc.nemesis.interval_ms,
        duration_ms: sc.nemesis.duration_ms,
    };
    let mut faults = nemesis::draw(&mut stream(seed, "nemesis"), &plan);
    faults.extend(sc.nemesis.schedule.iter().cloned());
    faults.sort_by_key(|f| f.at_ms);

    // Timeline: (time, start?, fault index).
    let mut timeline: Vec<(Millis, bool, usize)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        timeline.push((f.at_ms, true, i));
        if !matches!(f.fault, Fault::MoveLeader { .. }) {
            timeline.push((f.at_ms + f.duration_ms, false, i));
        }
    }
    timeline.sort_by_key(|&(t, start, i)| (t, start, i));
    let net = NetSim::current();
    let all_nodes: Vec<NodeId> = nodes.ids.keys().copied().collect();
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
            let resolve = |target: &Target| -> Vec<NodeId> {
                match target {
                    Target::Node(n) => vec![*n],
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
                }
            };
            let groups: Vec<Vec<NodeId>> = match &f.fault {
                Fault::Crash { target } | Fault::Pause { target } | Fault::Isolate { target } => {
                    vec![resolve(target)]
                }
                Fault::Partition { groups } => groups
                    .iter()
                    .map(|g| g.iter().flat_map(&resolve).collect())
                    .collect(),
                Fault::OneWay { from, to } => vec![resolve(from), resolve(to)],
                Fault::MoveLeader { .. } => vec![],
            };
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
                    ctx.inboxes.lock().expect("no poisoned locks").remove(n);
                    ctx.crash(*n);
                }),
                Fault::Pause { .. } => groups[0].iter().for_each(|n| handle.pause(nodes.id(*n))),
                Fault::Isolate { .. } | Fault::Partition { .. } | Fault::OneWay { .. } => {
                    ctx.cut_links(&cut_pairs(&f.fault, &groups, &all_nodes), false)
                }
                Fault::MoveLeader { partition } => {
                    desc = match image.partitions.get(partition) {
                        Some(reg) => match reg.leader.and_then(|l| {
                            reg.replicas
                                .iter()
                                .find(|r| **r != l && reg.isr.contains(r))
                                .copied()
                        }) {
                            Some(target) => {
                                let mut replicas = vec![target];
                                replicas.extend(reg.replicas.iter().filter(|r| **r != target));
                                let env = Envelope {
                                    from: NodeId::Nemesis,
                                    incarnation: admin_seq,
                                    seq: 0,
                                    message: Message::Request {
                                        correlation_id: admin_seq,
                                        request: Request::AlterPartitionReassignments(
                                            AlterPartitionReassignmentsRequest {
                                                tp: partition.clone(),
                                                replicas,
                                            },
                                        ),
                                    },
                                };
                                admin_seq += 1;
                                nemesis_node.spawn(async move {
                                    let ep =
                                        Endpoint::bind(SocketAddr::new(ip_of(NodeId::Nemesis), 0))
                                            .await
                                            .expect("ephemeral port");
                                    let _ = ep
                                        .send_to_raw(
                                            addr_of(NodeId::Controller),
                                            TAG,
                                            Box::new(env),
                                        )
                                        .await;
                                });
                                format!(
                                    "move leader of {partition} from broker-{} to broker-{target}",
                                    reg.leader.unwrap_or(0)
                                )
                            }
                            None => format!(
                                "move leader of {partition}: no other in-sync replica (skipped)"
                            ),
                        },
                        None => format!("move leader of {partition}: unknown partition (skipped)"),
                    };
                }
            }
            ctx.record(vec![Entry::instant(
                NodeId::Nemesis,
                now,
                Op::FaultStart { fault: desc },
            )]);
            resolved.insert(i, groups);
        } else {
            let groups = resolved.remove(&i).unwrap_or_default();
            match &f.fault {
                Fault::Crash { .. } => groups[0].iter().for_each(|n| {
                    ctx.down.lock().expect("no poisoned locks").remove(n);
                    handle.restart(nodes.id(*n));
                }),
                Fault::Pause { .. } => groups[0].iter().for_each(|n| handle.resume(nodes.id(*n))),
                Fault::Isolate { .. } | Fault::Partition { .. } | Fault::OneWay { .. } => {
                    ctx.cut_links(&cut_pairs(&f.fault, &groups, &all_nodes), true)
                }
                Fault::MoveLeader { .. } => {}
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

    // The quiet period, then the end of the run.
    let end = sc.end_ms();
    time::sleep_until(ctx.start + Duration::from_millis(end)).await;
    let now = ctx.now();
    for n in nodes.ids.values() {
        handle.pause(*n);
    }
    let mut records_sent = 0;
    for p in &producers {
        let mut out = Outbox::default();
        let mut p = p.lock().expect("no poisoned locks");
        p.finish(now, &mut out);
        records_sent += p.sent();
        ctx.record(out.history);
    }
    let snapshot = take_snapshot(&controller, &brokers, &consumers);
    for n in nodes.ids.values() {
        handle.kill(*n);
    }
    // Let madsim drop the killed nodes' tasks before the runtime goes (MADSIM_NOTES).
    time::sleep(Duration::from_millis(1)).await;
    let history = std::mem::take(&mut *ctx.history.lock().expect("no poisoned locks"));
    RunOutput {
        history,
        snapshot,
        faults,
        sim_ms: end,
        net_messages: net.stat().msg_count,
        records_sent,
    }
}

/// The directed links a network fault cuts.
fn cut_pairs(fault: &Fault, groups: &[Vec<NodeId>], all: &[NodeId]) -> Vec<(NodeId, NodeId)> {
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
        Fault::OneWay { .. } => {
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

fn take_snapshot(
    controller: &Arc<Mutex<Controller>>,
    brokers: &BTreeMap<BrokerId, Arc<Mutex<Broker>>>,
    consumers: &[Arc<Mutex<Consumer>>],
) -> Snapshot {
    let image = controller
        .lock()
        .expect("no poisoned locks")
        .image()
        .clone();
    let mut partitions = Vec::new();
    for (tp, reg) in &image.partitions {
        let replicas = reg
            .replicas
            .iter()
            .map(|b| {
                let broker = brokers[b].lock().expect("no poisoned locks");
                let log = broker.disk().logs.get(tp);
                ReplicaSnapshot {
                    broker: *b,
                    log_end_offset: log.map_or(0, |l| l.log_end_offset()),
                    high_watermark: broker.high_watermark(tp),
                    records: log.map(|l| l.records()).unwrap_or_default(),
                }
            })
            .collect();
        partitions.push(PartitionSnapshot {
            partition: tp.clone(),
            leader: reg.leader,
            isr: reg.isr.clone(),
            replicas,
        });
    }
    let mut consumer_positions = Vec::new();
    for (i, c) in consumers.iter().enumerate() {
        for (tp, pos) in c.lock().expect("no poisoned locks").positions() {
            consumer_positions.push((i as u32, tp, pos));
        }
    }
    Snapshot {
        partitions,
        consumer_positions,
    }
}
