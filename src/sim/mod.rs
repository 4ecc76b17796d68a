//! The madsim host: runs the sans-IO cores as simulated madsim nodes (which the nemesis
//! kills, restarts, pauses and resumes), carries their messages on a TCP-like network
//! built on madsim's timers, applies the nemesis' schedule, and collects the history
//! and the end-of-run snapshot.
//!
//! Everything here is driven by the seed: madsim's scheduler and named `ChaCha8`
//! streams derived from the seed for the network, the nemesis and each client.

use crate::actor::{Actor, Channel, Outbox, WallClock};
use crate::app::pipeline::{PipelineFactory, PipelineWorkload};
use crate::app::workload::{
    ConsumerFactory, ConsumerWorkload, ProcessingPlan, ProducerWorkload, WorkloadPlan,
};
use crate::broker::{Broker, Disk, LOG_DIR};
use crate::bugs::{Bug, Bugs};
use crate::client::consumer::Consumer;
use crate::client::producer::Producer;
use crate::controller::Controller;
use crate::history::{
    Entry, GroupSnapshot, History, MarkerSnapshot, Op, PartitionSnapshot, ReplicaSnapshot, Snapshot,
};
use crate::kafka::metadata::{MetadataImage, TopicSpec};
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::*;
use crate::kafka::record::ControlRecordType;
use crate::nemesis::{self, Fault, ScheduledFault, Target};
use crate::scenario::{DiskSpec, Scenario};
use madsim::runtime::{Handle, Runtime};
use madsim::time::{self, Duration, Instant};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

mod faults;
mod net;
use faults::run_faults;
use net::{Arrival, Nanos, Network, Wire, NANOS_PER_MS};

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
    /// Messages the simulated network carried.
    pub net_messages: u64,
    /// Records the producers sent.
    pub records_sent: u64,
    /// Requests the brokers received, by Kafka API name.
    pub broker_requests: BTreeMap<String, u64>,
}

/// What a node's host loop receives.
enum Input {
    /// A message from the network.
    Net(NodeId, Message),
    /// The connections to this node were reset: its process died (or a `reset` fault).
    Reset(NodeId),
}

/// State shared by the host's tasks for one run.
struct Ctx {
    start: Instant,
    history: Mutex<History>,
    incarnations: Mutex<BTreeMap<NodeId, u64>>,
    /// Processes that are down (crashed, not yet restarted).
    down: Mutex<std::collections::BTreeSet<NodeId>>,
    /// Processes whose listeners are closed: not started yet, restarting, or up and
    /// not accepting connections yet ([`Actor::listening`]).
    closed: Mutex<std::collections::BTreeSet<NodeId>>,
    /// Each running node's input channel.
    inboxes: Mutex<BTreeMap<NodeId, tokio::sync::mpsc::UnboundedSender<Input>>>,
    /// The connections and links.
    net: Mutex<Network>,
    /// The wire: the network task delivers what is put here when it is due.
    wire: tokio::sync::mpsc::UnboundedSender<Wire>,
    /// Each node's wall clock, when the scenario sets any (`clocks`, `clock` faults);
    /// `None`: every node keeps true time and the cores are never told.
    clocks: Option<Mutex<BTreeMap<NodeId, WallClock>>>,
}

impl Ctx {
    fn now(&self) -> Millis {
        (Instant::now() - self.start).as_millis() as Millis
    }

    /// Simulated nanoseconds since the start (the network's clock).
    fn now_ns(&self) -> Nanos {
        (Instant::now() - self.start).as_nanos() as Nanos
    }

    /// `node`'s wall clock now, if the scenario sets clocks.
    fn wall_clock(&self, node: NodeId) -> Option<WallClock> {
        let clocks = self.clocks.as_ref()?.lock().expect("no poisoned locks");
        Some(clocks.get(&node).copied().unwrap_or_default())
    }

    /// Steps the wall clock of each of `nodes` by `offset_ms` (a `clock` fault).
    fn step_clocks(&self, nodes: &[NodeId], offset_ms: i64) {
        let mut clocks = self
            .clocks
            .as_ref()
            .expect("a clock fault makes clocks")
            .lock()
            .expect("no poisoned locks");
        for n in nodes {
            clocks.entry(*n).or_default().offset_ms += offset_ms;
        }
    }

    fn net(&self) -> std::sync::MutexGuard<'_, Network> {
        self.net.lock().expect("no poisoned locks")
    }

    /// Puts wires on the network.
    fn put(&self, wires: Vec<Wire>) {
        for w in wires {
            let _ = self.wire.send(w);
        }
    }

    /// Tells each `(node, peer)`'s node that its connections to `peer` broke.
    fn notify_resets(&self, resets: &[(NodeId, NodeId)]) {
        let inboxes = self.inboxes.lock().expect("no poisoned locks");
        for (node, peer) in resets {
            if let Some(tx) = inboxes.get(node) {
                let _ = tx.send(Input::Reset(*peer));
            }
        }
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

    fn is_down(&self, node: NodeId) -> bool {
        self.down.lock().expect("no poisoned locks").contains(&node)
    }

    /// Whether a connection to `node` is refused: its process is down, or up with its
    /// listeners closed.
    fn refuses(&self, node: NodeId) -> bool {
        self.is_down(node)
            || self
                .closed
                .lock()
                .expect("no poisoned locks")
                .contains(&node)
    }

    /// Opens or closes `node`'s listeners.
    fn set_listening(&self, node: NodeId, listening: bool) {
        let mut closed = self.closed.lock().expect("no poisoned locks");
        if listening {
            closed.remove(&node);
        } else {
            closed.insert(node);
        }
    }

    /// A process died: its host resets every connection to it. Its kernel keeps
    /// sending what the process had written unless `kernel_alive` is false (a power
    /// loss).
    fn crash(&self, node: NodeId, kernel_alive: bool) {
        self.down.lock().expect("no poisoned locks").insert(node);
        // Its next process starts with its listeners closed.
        self.set_listening(node, false);
        {
            let mut inboxes = self.inboxes.lock().expect("no poisoned locks");
            inboxes.remove(&node);
            for tx in inboxes.values() {
                let _ = tx.send(Input::Reset(node));
            }
        }
        let incarnation = self.incarnation(node);
        self.net().process_died(node, incarnation, kernel_alive);
    }

    /// A message reached its receiver's host.
    fn deliver(&self, wire: Wire) {
        let live = |n: NodeId| {
            if self.is_down(n) {
                return None; // crashed, not restarted yet
            }
            let incarnations = self.incarnations.lock().expect("no poisoned locks");
            incarnations.get(&n).copied() // `None`: not started yet
        };
        let arrival = self.net().arrive(wire, live);
        let inboxes = self.inboxes.lock().expect("no poisoned locks");
        match arrival {
            Arrival::Deliver { to, from, message } => {
                if let Some(tx) = inboxes.get(&to) {
                    let _ = tx.send(Input::Net(from, message));
                }
            }
            Arrival::Reset { notify, peer } => {
                if let Some(tx) = inboxes.get(&notify) {
                    let _ = tx.send(Input::Reset(peer));
                }
            }
            Arrival::Drop => {}
        }
    }

    /// Restarts an application after a crash with `restart`, which records what the
    /// old process had in flight as indefinite.
    fn after_crash(&self, restart: impl FnOnce(Millis, &mut Outbox)) {
        let mut lost = Outbox::default();
        restart(self.now(), &mut lost);
        self.record(lost.history);
    }

    fn record(&self, entries: Vec<Entry>) {
        let mut h = self.history.lock().expect("no poisoned locks");
        for e in entries {
            h.push(e);
        }
    }
}

/// The network: delivers each message when its latency has passed and retransmits
/// what cut links held. One task and one pending timer for the whole cluster;
/// deliveries due at the same instant go in the order they were sent.
async fn network(ctx: Arc<Ctx>, mut wire: tokio::sync::mpsc::UnboundedReceiver<Wire>) {
    let mut pending: BTreeMap<(Nanos, u64), Wire> = BTreeMap::new();
    let mut seq = 0u64;
    let mut timer: Option<(Nanos, std::pin::Pin<Box<time::Sleep>>)> = None;
    loop {
        let retransmit = ctx.net().next_retransmit_ms().map(|ms| ms * 1_000_000);
        let next = match (pending.keys().next().map(|k| k.0), retransmit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let got = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(w) = wire.poll_recv(cx) {
                return std::task::Poll::Ready(Some(w));
            }
            if let Some(at) = next {
                if timer.as_ref().is_none_or(|(t, _)| *t != at) {
                    let deadline = ctx.start + Duration::from_nanos(at);
                    timer = Some((at, Box::pin(time::sleep_until(deadline))));
                }
                let t = &mut timer.as_mut().expect("just set").1;
                return t.as_mut().poll(cx).map(|_| None);
            }
            std::task::Poll::Pending
        })
        .await;
        let mut arrived = Vec::new();
        match got {
            Some(Some(w)) => arrived.push(w),
            Some(None) => return,
            None => {}
        }
        while let Ok(w) = wire.try_recv() {
            arrived.push(w);
        }
        let now = ctx.now_ns();
        let (wires, resets) = ctx.net().retransmit(now);
        ctx.notify_resets(&resets);
        for w in arrived.into_iter().chain(wires) {
            assert!(pending.len() < 10_000_000, "network queue overflow");
            pending.insert((w.deliver_at, seq), w);
            seq += 1;
        }
        while let Some(entry) = pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            ctx.deliver(entry.remove());
        }
    }
}

/// Hands what a core asked for to the network: its history entries to the run's
/// history, its requests and answers to its connections, its closes.
fn flush(me: NodeId, ctx: &Ctx, out: &mut Outbox, resets: &mut Vec<NodeId>) {
    if !out.history.is_empty() {
        ctx.record(std::mem::take(&mut out.history));
    }
    let now = ctx.now_ns();
    let incarnation = ctx.incarnation(me);
    for (channel, peer) in std::mem::take(&mut out.disconnects) {
        ctx.net().close(me, incarnation, peer, channel);
    }
    for (channel, to, message) in out.take_sends() {
        let wires = match message {
            Message::Request { .. } if ctx.refuses(to) => {
                // The peer's host is up but its process is not, or does not listen yet:
                // connection refused.
                if !resets.contains(&to) {
                    resets.push(to);
                }
                continue;
            }
            Message::Request { .. } => {
                let to_incarnation = ctx.incarnation(to);
                ctx.net()
                    .request(now, me, incarnation, to, to_incarnation, channel, message)
            }
            Message::Response { .. } => ctx.net().respond(now, me, message),
        };
        ctx.put(wires);
    }
}

/// Drives one sans-IO core: delivers its messages and connection resets, fires its
/// timers, sends what it asks to send and records what it asks to record.
async fn drive<A: Actor + 'static>(me: NodeId, actor: Arc<Mutex<A>>, ctx: Arc<Ctx>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
    ctx.inboxes
        .lock()
        .expect("no poisoned locks")
        .insert(me, tx);
    let mut out = Outbox::default();
    let mut resets = Vec::new();
    {
        let mut a = actor.lock().expect("no poisoned locks");
        if let Some(clock) = ctx.wall_clock(me) {
            a.set_wall_clock(clock);
        }
        a.on_start(ctx.now(), &mut out);
        ctx.set_listening(me, a.listening());
    }
    flush(me, &ctx, &mut out, &mut resets);
    if halt(me, &actor, &ctx) {
        return;
    }
    let mut delivered = Vec::new();
    let mut sleep: Option<(Millis, std::pin::Pin<Box<time::Sleep>>)> = None;
    let mut spins = 0u32;
    loop {
        let now = ctx.now();
        let timer = actor.lock().expect("no poisoned locks").next_timer();
        let deadline = timer;
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
                Input::Net(from, message) => delivered.push((from, message)),
                Input::Reset(peer) => {
                    if !resets.contains(&peer) {
                        resets.push(peer);
                    }
                }
            }
        }
        {
            let mut a = actor.lock().expect("no poisoned locks");
            if let Some(clock) = ctx.wall_clock(me) {
                a.set_wall_clock(clock);
            }
            for peer in resets.drain(..) {
                a.on_disconnect(now, peer, &mut out);
            }
            for (from, message) in delivered.drain(..) {
                a.on_message(now, from, message, &mut out);
            }
            if a.next_timer().is_some_and(|t| t <= now) {
                a.on_timer(now, &mut out);
            }
            ctx.set_listening(me, a.listening());
        }
        flush(me, &ctx, &mut out, &mut resets);
        if halt(me, &actor, &ctx) {
            return;
        }
        // A core whose timer stays in the past would spin without simulated time
        // passing: bound the iterations that do not wait.
        if deadline.is_some_and(|d| d <= now) {
            spins += 1;
            assert!(
                spins < 100_000,
                "{me}: next_timer stays in the past ({deadline:?} at {now})"
            );
        } else {
            spins = 0;
        }
    }
}

/// Whether the core halted its process (`Exit.halt(1)`): the process dies as in a
/// crash (its kernel sends what it had written, the step's answers included) and its
/// node takes no more steps until the nemesis restarts it.
fn halt<A: Actor>(me: NodeId, actor: &Mutex<A>, ctx: &Ctx) -> bool {
    let halted = actor.lock().expect("no poisoned locks").halted();
    if halted {
        ctx.crash(me, true);
    }
    halted
}

/// Runs one scenario with one seed to the end and returns what it produced.
/// Panics inside the simulated system propagate to the caller (a finding).
pub fn run(scenario: &Scenario, seed: u64, extra_bugs: &[Bug]) -> RunOutput {
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
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

/// The run's fault schedule: faults drawn from the seed's `nemesis` stream plus the
/// scenario's explicit ones, in start order (a stable sort: drawn before explicit at
/// equal times). Pure: listing these faults explicitly, with nothing drawn, gives the
/// same schedule, which is how `shrink` makes a seed's faults editable.
pub fn fault_schedule(sc: &Scenario, seed: u64) -> Vec<ScheduledFault> {
    let plan = nemesis::DrawSpec {
        kinds: &sc.nemesis.faults,
        brokers: sc.cluster.brokers,
        producers: sc.producers.count,
        consumers: sc.consumers.count,
        pipelines: sc.pipelines.as_ref().map_or(0, |p| p.instance_count()),
        topics: &sc.topics_and_partitions(),
        window_ms: (sc.workload.start_ms, sc.workload_end_ms()),
        interval_ms: sc.nemesis.interval_ms,
        duration_ms: sc.nemesis.duration_ms,
    };
    let mut faults = nemesis::draw(&mut stream(seed, "nemesis"), &plan);
    faults.extend(sc.nemesis.schedule.iter().cloned());
    faults.sort_by_key(|f| f.at_ms);
    faults
}

struct Nodes {
    ids: BTreeMap<NodeId, madsim::task::NodeId>,
}

impl Nodes {
    fn id(&self, n: NodeId) -> madsim::task::NodeId {
        self.ids[&n]
    }
}

/// The brokers, shared by their nodes and the host (which reads their disks).
type Brokers = BTreeMap<BrokerId, Arc<Mutex<Broker>>>;

/// What spawning a run's nodes needs.
struct Env<'a> {
    handle: &'a Handle,
    ctx: &'a Arc<Ctx>,
    sc: &'a Scenario,
    seed: u64,
    bugs: Bugs,
    broker_ids: Vec<BrokerId>,
    topic_names: Vec<Arc<str>>,
}

/// Creates the node `me` that runs `actor`. Each time the node starts (again, after a
/// crash) it waits until `start` past the run's start, if given, takes its next
/// incarnation, lets `on_start` ready the actor for it, and drives the actor.
fn spawn_node<A, F>(
    env: &Env,
    nodes: &mut Nodes,
    me: NodeId,
    start: Option<Duration>,
    actor: Arc<Mutex<A>>,
    on_start: F,
) where
    A: Actor + 'static,
    F: Fn(&Mutex<A>, &Ctx, u64) + Send + Sync + 'static,
{
    let x = env.ctx.clone();
    // Closed until its first step says otherwise.
    x.set_listening(me, false);
    let on_start = Arc::new(on_start);
    let n = env
        .handle
        .create_node()
        .name(me.to_string())
        .init(move || {
            let (a, x, on_start) = (actor.clone(), x.clone(), on_start.clone());
            async move {
                if let Some(start) = start {
                    time::sleep_until(x.start + start).await;
                }
                let incarnation = x.next_incarnation(me);
                on_start(&a, &x, incarnation);
                drive(me, a, x).await
            }
        })
        .build();
    nodes.ids.insert(me, n.id());
}

/// Spawns the controller node.
fn spawn_controller(env: &Env, topics: &[TopicSpec], nodes: &mut Nodes) -> Arc<Mutex<Controller>> {
    let sc = env.sc;
    let broker_ids = &env.broker_ids;
    let controller = Arc::new(Mutex::new(Controller::new(
        sc.cluster.config.clone(),
        broker_ids.clone(),
        topics.to_vec(),
        env.bugs,
    )));
    let ready = |_: &Mutex<Controller>, _: &Ctx, _| {};
    spawn_node(
        env,
        nodes,
        NodeId::Controller,
        None,
        controller.clone(),
        ready,
    );
    controller
}

/// Spawns the broker nodes. Brokers: the Broker object outlives its node, so a restart keeps the disk.
fn spawn_brokers(env: &Env, nodes: &mut Nodes) -> Brokers {
    let sc = env.sc;
    let broker_ids = &env.broker_ids;
    let bugs = env.bugs;
    let mut brokers = BTreeMap::new();
    // Each machine's page cache flusher wakes at its own phase.
    let mut phases = stream(env.seed, "writeback");
    for &b in broker_ids {
        let broker = Arc::new(Mutex::new(Broker::new(
            b,
            sc.cluster.config.clone(),
            bugs,
            0,
            Disk::new(sc.disk.writeback(phases.gen())),
        )));
        brokers.insert(b, broker.clone());
        let restart = |br: &Mutex<Broker>, _: &Ctx, incarnation| {
            br.lock().expect("no poisoned locks").restart(incarnation);
        };
        spawn_node(env, nodes, NodeId::Broker(b), None, broker, restart);
    }
    brokers
}

/// Spawns the producer nodes, each with its workload.
fn spawn_producers(env: &Env, nodes: &mut Nodes) -> Vec<Arc<Mutex<ProducerWorkload>>> {
    let sc = env.sc;
    let broker_ids = &env.broker_ids;
    let topic_names = &env.topic_names;
    let seed = env.seed;
    let bugs = env.bugs;
    let interval_us = (1_000_000.0 / sc.workload.rate_per_sec).max(1.0) as u64;
    let mut producers = Vec::new();
    for i in 0..sc.producers.count {
        let me = NodeId::Producer(i);
        // Each process incarnation is a new `KafkaProducer` (a new producer id); the
        // first keeps the seed the runs before producer crashes had.
        let (config, bootstrap) = (sc.producers.config.clone(), broker_ids.clone());
        let build = move |incarnation: u64| {
            let process_seed = (seed ^ (0x5052_4f44 + u64::from(i))).wrapping_add(
                incarnation
                    .saturating_sub(1)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            Producer::new(i, config.clone(), bugs, bootstrap.clone(), process_seed)
        };
        // Producers write every topic but the pipelines' outputs.
        let output = sc.pipelines.as_ref().map(|p| p.output.as_str());
        let plan = WorkloadPlan {
            topics: topic_names
                .iter()
                .filter(|t| Some(&***t) != output)
                .cloned()
                .collect(),
            keys: sc.workload.keys,
            headers: sc.workload.headers,
            interval_us,
            start_ms: sc.workload.start_ms,
            end_ms: sc.workload_end_ms(),
            close_ms: sc.end_ms(),
            resend_unacked_after_crash: sc.workload.resend_unacked_after_crash,
        };
        let wl = Arc::new(Mutex::new(ProducerWorkload::new(
            i,
            Box::new(build),
            plan,
            seed ^ (0x574c_0000 + u64::from(i)),
        )));
        producers.push(wl.clone());
        let restart = |w: &Mutex<ProducerWorkload>, x: &Ctx, incarnation| {
            if incarnation > 1 {
                // A new process with a new producer.
                x.after_crash(|now, out| {
                    let mut w = w.lock().expect("no poisoned locks");
                    w.restart(now, incarnation, out)
                });
            }
        };
        spawn_node(env, nodes, me, None, wl, restart);
    }
    producers
}

/// Spawns the consumer nodes. Consumers: assign mode, or group members with their application loop.
fn spawn_consumers(env: &Env, nodes: &mut Nodes) -> Vec<ConsumerNode> {
    let sc = env.sc;
    let broker_ids = &env.broker_ids;
    let topic_names = &env.topic_names;
    let seed = env.seed;
    let bugs = env.bugs;
    let group_id = &sc.consumers.config.group_id;
    let mut consumers = Vec::new();
    for i in 0..sc.consumers.count {
        let me = NodeId::Consumer(i);
        let seed_i = seed ^ (0x434f_4e53 + u64::from(i));
        let start = Duration::from_millis(sc.consumers.start_ms);
        match &group_id {
            None => {
                let (config, brokers, topics) = (
                    sc.consumers.config.clone(),
                    broker_ids.clone(),
                    topic_names.clone(),
                );
                let probe = sc.consumers.timestamp_lookups.clone();
                // The consumer of a process incarnation: a crashed process comes back
                // with a new consumer, its positions from `auto.offset.reset`.
                let build = move |incarnation: u64| {
                    let seed = seed_i ^ (incarnation - 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let mut consumer =
                        Consumer::new(i, config.clone(), brokers.clone(), topics.clone(), seed)
                            .with_bugs(bugs);
                    if let Some(probe) = &probe {
                        consumer.set_timestamp_probe(probe.every_ms, probe.lag_ms);
                    }
                    consumer
                };
                let c = Arc::new(Mutex::new(build(1)));
                consumers.push(ConsumerNode::Assign(c.clone()));
                let restart = move |c: &Mutex<Consumer>, _: &Ctx, incarnation| {
                    if incarnation > 1 {
                        *c.lock().expect("no poisoned locks") = build(incarnation);
                    }
                };
                spawn_node(env, nodes, me, Some(start), c, restart);
            }
            Some(group) => {
                let mut config = sc.consumers.config.clone();
                if let Some(instance) = &config.group_instance_id {
                    config.group_instance_id = Some(format!("{instance}-{i}"));
                }
                let factory = ConsumerFactory {
                    index: i,
                    config,
                    bootstrap: broker_ids.clone(),
                    topics: topic_names.clone(),
                    seed: seed_i,
                    bugs,
                };
                let plan = ProcessingPlan {
                    mode: sc.processing.mode,
                    time_ms: sc.processing.time_ms,
                    sink: sc.processing.sink,
                    group: group.clone(),
                    slow: sc
                        .processing
                        .slow
                        .as_ref()
                        .filter(|s| s.consumer == i)
                        .map(|s| (s.from_ms, s.to_ms, s.time_ms)),
                };
                let w = Arc::new(Mutex::new(ConsumerWorkload::new(factory, plan)));
                consumers.push(ConsumerNode::Group(w.clone()));
                // Each start is a new process (a crashed member comes back as one).
                let restart = |w: &Mutex<ConsumerWorkload>, _: &Ctx, incarnation| {
                    w.lock().expect("no poisoned locks").restart(incarnation);
                };
                spawn_node(env, nodes, me, Some(start), w, restart);
            }
        }
    }
    consumers
}

/// Spawns the pipeline nodes. Pipelines: a consumer and a producer in one process each.
fn spawn_pipelines(env: &Env, nodes: &mut Nodes) -> Vec<Arc<Mutex<PipelineWorkload>>> {
    let sc = env.sc;
    let broker_ids = &env.broker_ids;
    let seed = env.seed;
    let bugs = env.bugs;
    let mut pipelines = Vec::new();
    if let Some(spec) = &sc.pipelines {
        for i in 0..spec.instance_count() {
            let me = NodeId::Pipeline(i);
            let factory = PipelineFactory {
                index: i,
                spec: spec.clone(),
                bootstrap: broker_ids.clone(),
                bugs,
                transaction_version: u8::try_from(sc.cluster.config.transaction_version)
                    .expect("validated: 0 to 2"),
                seed: seed ^ (0x5049_0000 + u64::from(i)),
                close_ms: sc.end_ms(),
            };
            let w = Arc::new(Mutex::new(PipelineWorkload::new(factory)));
            pipelines.push(w.clone());
            let start = Duration::from_millis(spec.start_ms(i));
            let restart = |w: &Mutex<PipelineWorkload>, x: &Ctx, incarnation| {
                if incarnation > 1 {
                    // A new process with new clients, the same `transactional.id`.
                    x.after_crash(|now, out| {
                        let mut w = w.lock().expect("no poisoned locks");
                        w.restart(now, incarnation, out)
                    });
                }
            };
            spawn_node(env, nodes, me, Some(start), w, restart);
        }
    }
    pipelines
}

async fn supervise(sc: Arc<Scenario>, seed: u64, extra_bugs: Vec<Bug>) -> RunOutput {
    let handle = Handle::current();
    let [lo, hi] = sc.network.latency_ms;
    let (wire_tx, wire_rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        start: Instant::now(),
        history: Mutex::new(History::default()),
        incarnations: Mutex::new(BTreeMap::new()),
        down: Mutex::new(Default::default()),
        closed: Mutex::new(Default::default()),
        inboxes: Mutex::new(BTreeMap::new()),
        net: Mutex::new(Network::new(
            stream(seed, "network"),
            (lo * 1000, hi * 1000),
        )),
        wire: wire_tx,
        clocks: clocks(&sc),
    });
    let network_task = madsim::task::spawn(network(ctx.clone(), wire_rx));
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
            config: t.config.clone(),
        })
        .collect();
    let topic_names: Vec<Arc<str>> = topics.iter().map(|t| t.name.clone()).collect();
    let group_id = sc.consumers.config.group_id.clone();
    let mut topics = topics;
    if (group_id.is_some() && sc.consumers.count > 0) || sc.pipelines.is_some() {
        // Kafka creates `__consumer_offsets` on the first FindCoordinator; here it is
        // created with the workload topics when the scenario has a group.
        topics.push(crate::coordinator::group::offsets_topic_spec(
            &sc.cluster.config,
            broker_ids.len(),
        ));
    }
    let transactional = sc
        .pipelines
        .as_ref()
        .is_some_and(|p| p.mode == crate::scenario::PipelineMode::ExactlyOnce);
    if transactional {
        // Kafka creates `__transaction_state` on the first transactional FindCoordinator.
        topics.push(crate::coordinator::txn::transaction_state_topic_spec(
            &sc.cluster.config,
            broker_ids.len(),
        ));
    }
    let mut nodes = Nodes {
        ids: BTreeMap::new(),
    };

    let env = Env {
        handle: &handle,
        ctx: &ctx,
        sc: &sc,
        seed,
        bugs,
        broker_ids: broker_ids.clone(),
        topic_names: topic_names.clone(),
    };
    let controller = spawn_controller(&env, &topics, &mut nodes);
    let brokers = spawn_brokers(&env, &mut nodes);
    let producers = spawn_producers(&env, &mut nodes);
    let consumers = spawn_consumers(&env, &mut nodes);
    let pipelines = spawn_pipelines(&env, &mut nodes);

    let faults = fault_schedule(&sc, seed);

    let disk = &sc.disk;
    run_faults(
        &handle,
        &ctx,
        (&controller, &brokers),
        &nodes,
        (&faults, seed, disk),
    )
    .await;

    // The quiet period; at its end the applications close their producers (see
    // `CLOSE_PERIOD_MS`), then the run ends.
    let end = sc.end_ms() + CLOSE_PERIOD_MS;
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
    for w in &pipelines {
        let mut out = Outbox::default();
        let mut w = w.lock().expect("no poisoned locks");
        w.finish(now, &mut out);
        records_sent += w.sent();
        ctx.record(out.history);
    }
    let mut snapshot = take_snapshot(&controller, &brokers, &consumers);
    snapshot.end_ms = end;
    snapshot.transaction_abort_after_ms = sc
        .pipelines
        .as_ref()
        .filter(|p| p.mode == crate::scenario::PipelineMode::ExactlyOnce)
        .map_or(0, |p| {
            p.producer.transaction_timeout_ms
                + sc.cluster
                    .config
                    .transaction_abort_timed_out_transaction_cleanup_interval_ms
        });
    if ctx.clocks.is_some() {
        snapshot.time_retention_ms = time_retention_ms(&sc);
    }
    for n in nodes.ids.values() {
        handle.kill(*n);
    }
    network_task.abort();
    // Let madsim drop the killed nodes' tasks before the runtime goes (MADSIM_NOTES).
    time::sleep(Duration::from_millis(1)).await;
    let history = std::mem::take(&mut *ctx.history.lock().expect("no poisoned locks"));
    let (net_messages, broker_requests) = {
        let net = ctx.net();
        let requests = net
            .broker_requests
            .iter()
            .map(|(api, n)| (api.to_string(), *n))
            .collect::<BTreeMap<String, u64>>();
        (net.messages, requests)
    };
    RunOutput {
        history,
        snapshot,
        faults,
        sim_ms: end,
        net_messages,
        records_sent,
        broker_requests,
    }
}

/// The nodes' wall clocks at the start, if the scenario sets any (a `clocks` section
/// or a `clock` fault).
fn clocks(sc: &Scenario) -> Option<Mutex<BTreeMap<NodeId, WallClock>>> {
    let stepped = sc
        .nemesis
        .schedule
        .iter()
        .any(|f| matches!(f.fault, Fault::Clock { .. }));
    if sc.clocks.is_empty() && !stepped {
        return None;
    }
    let clocks = sc
        .clocks
        .iter()
        .map(|(name, c)| {
            let node = match name.parse() {
                Ok(Target::Node(n)) => n,
                _ => panic!("validated: clock `{name}` names a node"),
            };
            let clock = WallClock {
                offset_ms: c.offset_ms,
                drift_ppm: c.drift_ppm,
            };
            (node, clock)
        })
        .collect();
    Some(Mutex::new(clocks))
}

/// The `retention.ms` of each topic that retention keeps by time only (no
/// `retention.bytes`): its own setting, else the brokers'.
fn time_retention_ms(sc: &Scenario) -> BTreeMap<String, i64> {
    let broker = &sc.cluster.config;
    sc.topics
        .iter()
        .filter_map(|t| {
            let ms = t.config.retention_ms.unwrap_or(broker.retention_ms());
            let bytes = t
                .config
                .retention_bytes
                .unwrap_or(broker.log_retention_bytes);
            (ms >= 0 && bytes < 0).then(|| (t.name.clone(), ms))
        })
        .collect()
}

/// How long the applications' `KafkaProducer.close()` may take at the end of the
/// quiet period (Kafka's `close(Duration)`): flushing, and aborting a transaction still
/// open, while the cluster and the consumers keep running. What is unfinished when it
/// expires is forced, as `close(timeout)` does (recorded as pending at the end).
pub const CLOSE_PERIOD_MS: Millis = 10_000;

/// Partitions of `__consumer_offsets` in the image.
fn reg_count(image: &MetadataImage) -> u32 {
    image
        .topics
        .get(crate::coordinator::group::OFFSETS_TOPIC)
        .copied()
        .unwrap_or(1)
}

/// A consumer node: an assign-mode consumer, or a group member's application.
enum ConsumerNode {
    Assign(Arc<Mutex<Consumer>>),
    Group(Arc<Mutex<ConsumerWorkload>>),
}

impl ConsumerNode {
    fn positions(&self) -> Vec<(TopicPartition, Offset)> {
        match self {
            ConsumerNode::Assign(c) => c.lock().expect("no poisoned locks").positions(),
            ConsumerNode::Group(w) => w.lock().expect("no poisoned locks").consumer().positions(),
        }
    }
}

fn take_snapshot(
    controller: &Arc<Mutex<Controller>>,
    brokers: &BTreeMap<BrokerId, Arc<Mutex<Broker>>>,
    consumers: &[ConsumerNode],
) -> Snapshot {
    let image = controller
        .lock()
        .expect("no poisoned locks")
        .image()
        .clone();
    let mut partitions = Vec::new();
    for (tp, reg) in &image.partitions {
        if tp.topic.starts_with("__") {
            continue; // internal topics hold no workload values
        }
        let replicas = reg
            .replicas
            .iter()
            .map(|b| {
                let broker = brokers[b].lock().expect("no poisoned locks");
                let log = broker.disk().logs.get(tp);
                let high_watermark = broker.high_watermark(tp);
                let markers = log.map(|l| l.markers()).unwrap_or_default();
                ReplicaSnapshot {
                    txn_batches: log.map(|l| l.transactional_batches()).unwrap_or_default(),
                    markers: markers
                        .into_iter()
                        .map(|m| MarkerSnapshot {
                            offset: m.offset,
                            producer_id: m.producer_id,
                            producer_epoch: m.producer_epoch,
                            committed: m.marker.control_type == ControlRecordType::Commit,
                            timestamp: m.timestamp,
                        })
                        .collect(),
                    last_stable_offset: log
                        .map_or(high_watermark, |l| l.last_stable_offset(high_watermark)),
                    broker: *b,
                    log_end_offset: log.map_or(0, |l| l.log_end_offset()),
                    high_watermark,
                    records: log.map(|l| l.records()).unwrap_or_default(),
                    corrupt: log.map(|l| l.corrupt_batches()).unwrap_or_default(),
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
        for (tp, pos) in c.positions() {
            consumer_positions.push((i as u32, tp, pos));
        }
    }
    // Each group and its offsets as the coordinator leading its partition holds them.
    let mut committed_offsets = Vec::new();
    let mut groups = Vec::new();
    for (tp, reg) in &image.partitions {
        if &*tp.topic != crate::coordinator::group::OFFSETS_TOPIC {
            continue;
        }
        let Some(leader) = reg.leader else { continue };
        let broker = brokers[&leader].lock().expect("no poisoned locks");
        let ours = |group: &str| {
            crate::coordinator::shared::partition_for_group(group, reg_count(&image))
                == tp.partition
        };
        for ((group, p), offset) in broker.committed_offsets() {
            if ours(&group) {
                committed_offsets.push((group.to_string(), p, offset));
            }
        }
        for g in broker.groups() {
            if ours(&g.group_id) {
                groups.push(GroupSnapshot {
                    group: g.group_id.to_string(),
                    state: format!("{:?}", g.state),
                    generation: g.generation,
                    members: g
                        .members
                        .into_iter()
                        .map(|m| (m.member_id.to_string(), m.assignment))
                        .collect(),
                });
            }
        }
    }
    committed_offsets.sort();
    committed_offsets.dedup();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Snapshot {
        partitions,
        consumer_positions,
        committed_offsets,
        groups,
        ..Snapshot::default()
    }
}
