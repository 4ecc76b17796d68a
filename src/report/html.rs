//! The report a person looks at: one self-contained `index.html` per seed, beside
//! `report.json` (`runner::write_report`).
//!
//! [`render`] is pure: a function of the seed's [`SeedReport`] and [`History`], without
//! the wall-clock time, so the same seed gives the same file byte for byte. Nothing is
//! loaded from anywhere (a Content-Security-Policy forbids it): inline CSS, an inline
//! SVG timeline, and a few lines of inline JavaScript that only highlight an example's
//! marks on hover and check the page's own links (attributes on `<html>` that the
//! browser test reads).
//!
//! The timeline has one lane per process (controller, brokers, producers, consumers,
//! nemesis) over simulated time. Operations are drawn as a density per pixel column,
//! so a long run stays small; faults as shaded spans (crash, pause, isolate and clock
//! steps on the lanes they hit, network faults as a band over every lane); leader and
//! ISR changes as marks on the controller lane; and each history line an anomaly
//! example involves as a mark that links to that line in the history excerpt below.
//! Below the timeline: the anomalies with their examples in plain words, the history
//! lines they involve with a few lines of context, the faults and the run's figures.
//!
//! Operations are shown from their serialized form (the `f` tag and the fields), so a
//! new `Op` variant needs no change here.

use crate::check;
use crate::history::{Entry, History, Op, Outcome};
use crate::kafka::protocol::NodeId;
use crate::nemesis::Target;
use crate::report::SeedReport;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Width of the lane labels, left of the plot (px).
const LABEL_W: u64 = 150;
/// Width of the plot: one density column per pixel.
const PLOT_W: u64 = 1180;
/// Space right of the plot (px).
const RIGHT_PAD: u64 = 24;
/// Height of a lane (px).
const LANE_H: u64 = 30;
/// Height of one row of fault bars in the nemesis lane (px).
const FAULT_ROW_H: u64 = 13;
/// Rows of fault bars at most (overlapping faults beyond share the last row).
const MAX_FAULT_ROWS: usize = 4;
/// Height of the time axis below the lanes (px).
const AXIS_H: u64 = 26;
/// History lines shown before and after each line an anomaly involves.
const CONTEXT: u64 = 3;
/// Details of a context row longer than this are folded into a `<details>` element.
const DETAILS_INLINE: usize = 320;
/// One color per anomaly kind, in the report's (alphabetical) order of kinds.
const PALETTE: &[&str] = &[
    "#d62728", "#9467bd", "#e377c2", "#8c564b", "#17becf", "#bcbd22", "#1f77b4", "#7f7f7f",
];

/// Renders the report of one seed as a self-contained HTML page.
pub fn render(report: &SeedReport, history: &History) -> String {
    let model = Model::new(report, history);
    let mut page = String::with_capacity(256 * 1024);
    head(&mut page, report);
    header(&mut page, report, &model);
    timeline(&mut page, history, &model);
    anomalies(&mut page, report, history, &model);
    history_excerpt(&mut page, history, &model);
    faults_table(&mut page, &model);
    stats(&mut page, report);
    page.push_str("<script>");
    page.push_str(SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    page
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------- model

/// A fault from its `FaultStart` to its `FaultEnd`.
struct FaultSpan {
    /// The start's description (`crash leader:orders-0 -> broker-1`).
    what: String,
    /// The fault's first word (`crash`, `pause`, `isolate`, `partition`, `drop`, ...).
    verb: String,
    /// The nodes the fault resolved to when it started.
    nodes: Vec<NodeId>,
    start_ms: u64,
    start_line: u64,
    /// `None` while no `FaultEnd` matched it.
    end: Option<(u64, u64)>,
    /// Row of its bar in the nemesis lane.
    row: usize,
}

impl FaultSpan {
    /// Lasts no time: an instant action such as a leader move (no resolved targets
    /// and no end).
    fn instant(&self) -> bool {
        self.end.is_none() && !self.what.contains(" -> ")
    }

    /// Its end on the timeline: the `FaultEnd`, or the end of the run.
    fn end_ms(&self, run_end_ms: u64) -> u64 {
        match self.end {
            Some((ms, _)) => ms,
            None if self.instant() => self.start_ms,
            None => run_end_ms,
        }
    }

    /// A fault that hits the nodes it names (their lanes are shaded; it may have
    /// resolved to none, e.g. the leader of a partition that had none), as opposed to
    /// a network fault between groups of nodes (a band over every lane).
    fn node_fault(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "crash"
                | "power-loss"
                | "corrupt"
                | "disk-full"
                | "log-dir-failure"
                | "pause"
                | "isolate"
                | "clock"
        )
    }
}

/// One history line an anomaly example involves, placed on the timeline.
struct Mark {
    line: u64,
    kind: usize,
    example: usize,
    lane: usize,
    at_ms: u64,
}

/// What the page shows, gathered once.
struct Model<'r> {
    /// The run's simulated length (ms), at least 1.
    end_ms: u64,
    /// Lanes in display order (`NodeId`'s order: controller, brokers, producers,
    /// consumers, nemesis).
    lanes: Vec<NodeId>,
    /// Anomaly kinds in the report's order; the index is the kind's color.
    kinds: Vec<&'r str>,
    marks: Vec<Mark>,
    /// History line -> the (kind, example) pairs that involve it.
    involved: BTreeMap<u64, Vec<(usize, usize)>>,
    /// History lines shown in the excerpt (involved lines and their context).
    shown: BTreeSet<u64>,
    faults: Vec<FaultSpan>,
    /// Rows of fault bars used in the nemesis lane.
    fault_rows: usize,
}

impl<'r> Model<'r> {
    fn new(report: &'r SeedReport, history: &History) -> Model<'r> {
        let entries = &history.entries;
        let last_ms = entries.iter().map(entry_ms).max().unwrap_or(0);
        let end_ms = report.stats.sim_ms.max(last_ms).max(1);
        let mut faults = fault_spans(history);
        let fault_rows = assign_fault_rows(&mut faults, end_ms);

        let mut nodes: BTreeSet<NodeId> = BTreeSet::from([NodeId::Controller, NodeId::Nemesis]);
        for e in entries {
            nodes.insert(e.process);
            match &e.op {
                Op::PartitionChange { leader, isr, .. } => {
                    nodes.extend(leader.iter().chain(isr).map(|b| NodeId::Broker(*b)));
                }
                Op::ObserveHighWatermark { broker, .. } => {
                    nodes.insert(*broker);
                }
                _ => {}
            }
        }
        nodes.extend(faults.iter().flat_map(|f| f.nodes.iter().copied()));
        let lanes: Vec<NodeId> = nodes.into_iter().collect();

        let kinds: Vec<&str> = report.anomalies.keys().map(String::as_str).collect();
        let mut marks = Vec::new();
        let mut involved: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
        for (k, kind) in kinds.iter().enumerate() {
            let Some(per_example) = report.example_lines.get(*kind) else {
                continue;
            };
            for (x, lines) in per_example.iter().enumerate() {
                for &line in lines {
                    let Some(e) = line_entry(history, line) else {
                        continue;
                    };
                    involved.entry(line).or_default().push((k, x));
                    let lane = lanes
                        .binary_search(&e.process)
                        .expect("every process has a lane");
                    marks.push(Mark {
                        line,
                        kind: k,
                        example: x,
                        lane,
                        at_ms: entry_ms(e),
                    });
                }
            }
        }
        let len = entries.len() as u64;
        let shown = involved
            .keys()
            .flat_map(|&l| l.saturating_sub(CONTEXT)..(l + CONTEXT + 1).min(len))
            .collect();
        Model {
            end_ms,
            lanes,
            kinds,
            marks,
            involved,
            shown,
            faults,
            fault_rows,
        }
    }

    /// The x coordinate of a time.
    fn x(&self, ms: u64) -> u64 {
        LABEL_W + ms.min(self.end_ms) * PLOT_W / self.end_ms
    }

    /// The density column of a time.
    fn column(&self, ms: u64) -> usize {
        (ms.min(self.end_ms) * PLOT_W / self.end_ms).min(PLOT_W - 1) as usize
    }

    /// Each lane's top and height.
    fn lane_geometry(&self) -> Vec<(u64, u64)> {
        let mut y = 4;
        self.lanes
            .iter()
            .map(|n| {
                let h = match n {
                    NodeId::Nemesis => LANE_H.max(self.fault_rows as u64 * FAULT_ROW_H + 8),
                    _ => LANE_H,
                };
                let lane = (y, h);
                y += h;
                lane
            })
            .collect()
    }

    /// The color of an anomaly kind.
    fn color(&self, kind: usize) -> &'static str {
        PALETTE[kind % PALETTE.len()]
    }

    /// A link to a history line if the excerpt shows it, else the bare number.
    fn line_ref(&self, line: u64) -> String {
        if self.shown.contains(&line) {
            format!("<a href=\"#line-{line}\">{line}</a>")
        } else {
            line.to_string()
        }
    }
}

/// The entry at a history line, if the history has it.
fn line_entry(history: &History, line: u64) -> Option<&Entry> {
    let e = history.entries.get(usize::try_from(line).ok()?)?;
    (e.index == line).then_some(e)
}

/// The time an entry completed, or was invoked if it never completed (the checker's
/// time of an entry).
fn entry_ms(e: &Entry) -> u64 {
    e.complete_ms.unwrap_or(e.invoke_ms)
}

/// Simulated time in seconds with three decimals, as the checker writes it.
fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Pairs each `FaultStart` with the first open one its `FaultEnd` names (the end
/// carries the fault as scheduled, the start adds ` -> ` and the nodes it resolved to).
fn fault_spans(history: &History) -> Vec<FaultSpan> {
    let mut spans: Vec<FaultSpan> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for e in &history.entries {
        match &e.op {
            Op::FaultStart { fault } => {
                let nodes = fault
                    .rsplit_once(" -> ")
                    .map(|(_, hit)| {
                        hit.split([',', '|'])
                            .filter_map(|t| match t.trim().parse::<Target>() {
                                Ok(Target::Node(n)) => Some(n),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                open.push(spans.len());
                spans.push(FaultSpan {
                    what: fault.clone(),
                    verb: fault.split(' ').next().unwrap_or_default().to_string(),
                    nodes,
                    start_ms: entry_ms(e),
                    start_line: e.index,
                    end: None,
                    row: 0,
                });
            }
            Op::FaultEnd { fault } => {
                let names = |s: &FaultSpan| {
                    s.what
                        .strip_prefix(fault.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
                };
                if let Some(pos) = open.iter().position(|&i| names(&spans[i])) {
                    let i = open.remove(pos);
                    spans[i].end = Some((entry_ms(e), e.index));
                }
            }
            _ => {}
        }
    }
    spans
}

/// Gives each fault bar the first row free at its start; returns the rows used.
fn assign_fault_rows(faults: &mut [FaultSpan], end_ms: u64) -> usize {
    let mut row_end: Vec<u64> = Vec::new();
    for f in faults.iter_mut() {
        let end = f.end_ms(end_ms);
        let row = match row_end.iter().position(|&e| e < f.start_ms) {
            Some(r) => r,
            None if row_end.len() < MAX_FAULT_ROWS => {
                row_end.push(0);
                row_end.len() - 1
            }
            None => MAX_FAULT_ROWS - 1,
        };
        row_end[row] = row_end[row].max(end);
        f.row = row;
    }
    row_end.len().max(1)
}

/// Whether an entry is an operation drawn in its lane's density (faults, leader
/// changes and end-of-run metrics have marks of their own or none).
fn is_operation(op: &Op) -> bool {
    !matches!(
        op,
        Op::FaultStart { .. }
            | Op::FaultEnd { .. }
            | Op::PartitionChange { .. }
            | Op::LogPowerLoss { .. }
            | Op::LogCorrupted { .. }
            | Op::LogDirFailure { .. }
            | Op::LogRecovered { .. }
            | Op::ProducerMetrics(_)
    )
}

// ---------------------------------------------------------------- sections

fn head(page: &mut String, report: &SeedReport) {
    let title = format!(
        "kafkasim: {} seed {}: {}",
        report.scenario,
        report.seed,
        report.verdict.to_uppercase()
    );
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
}

fn header(page: &mut String, report: &SeedReport, model: &Model) {
    let verdict = report.verdict.as_str();
    let class = match verdict {
        "pass" => "pass",
        _ => "fail",
    };
    let _ = write!(
        page,
        "<header>\n<h1>{} <span class=\"seed\">seed {}</span> \
         <span class=\"verdict {class}\">{}</span></h1>\n<table class=\"facts\">\n",
        escape(&report.scenario),
        report.seed,
        escape(&verdict.to_uppercase())
    );
    let mut fact = |name: &str, html: String| {
        let _ = writeln!(page, "<tr><th>{name}</th><td>{html}</td></tr>");
    };
    if report.violated.is_empty() {
        fact(
            "invariants",
            "all held (anomalies below, if any, are expected or tolerated)".into(),
        );
    } else {
        fact(
            "violated",
            format!(
                "<span class=\"bad\">{}</span>",
                escape(&report.violated.join(", "))
            ),
        );
    }
    if let Some(p) = &report.panic {
        fact("panic", format!("<pre class=\"panic\">{}</pre>", escape(p)));
    }
    fact(
        "scenario file",
        escape(&report.scenario_path.display().to_string()),
    );
    if !report.bugs.is_empty() {
        fact("bug switches", escape(&report.bugs.join(", ")));
    }
    fact(
        "trace hash",
        format!("<code>{}</code>", escape(&report.trace_hash)),
    );
    fact(
        "reproduce",
        format!(
            "<code class=\"cmd\">{}</code>",
            escape(&report.repro_command())
        ),
    );
    fact(
        "run",
        format!(
            "{} s simulated, {} history lines, {} faults",
            secs(model.end_ms),
            report.stats.operations,
            model.faults.len()
        ),
    );
    page.push_str("</table>\n<nav><a href=\"#timeline\">timeline</a> · ");
    let _ = write!(
        page,
        "<a href=\"#anomalies\">anomalies ({})</a> · <a href=\"#history\">history lines</a> · \
         <a href=\"#faults\">faults</a> · <a href=\"#stats\">figures</a></nav>\n</header>\n",
        report.anomalies.len()
    );
}

fn timeline(page: &mut String, history: &History, model: &Model) {
    let geometry = model.lane_geometry();
    let plot_bottom = geometry.last().map_or(4, |(y, h)| y + h);
    let width = LABEL_W + PLOT_W + RIGHT_PAD;
    let height = plot_bottom + AXIS_H;
    page.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    legend(page, model);
    let _ = writeln!(
        page,
        "<svg class=\"timeline\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"timeline of the run\">"
    );
    // Lane backgrounds and labels.
    let counts = lane_counts(history, model);
    for (i, (node, (y, h))) in model.lanes.iter().zip(&geometry).enumerate() {
        let fill = if i % 2 == 0 { "#f7f8fa" } else { "#ffffff" };
        let ops: u64 = counts[i]
            .0
            .iter()
            .chain(&counts[i].1)
            .map(|&c| u64::from(c))
            .sum();
        let _ = write!(
            page,
            "<rect x=\"0\" y=\"{y}\" width=\"{width}\" height=\"{h}\" fill=\"{fill}\"/>\
             <text class=\"lane\" x=\"8\" y=\"{}\">{}</text>",
            y + h / 2 + 1,
            escape(&node.to_string())
        );
        if ops > 0 {
            let _ = write!(
                page,
                "<text class=\"ops\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{ops}</text>",
                LABEL_W - 8,
                y + h / 2 + 1
            );
        }
        page.push('\n');
    }
    axis_grid(page, model, plot_bottom);
    fault_shading(page, model, &geometry, plot_bottom);
    // Operation density, per lane: all operations, then those that failed or whose
    // outcome is unknown on top.
    for (i, (node, (y, h))) in model.lanes.iter().zip(&geometry).enumerate() {
        let (ok, not_ok) = &counts[i];
        let total: Vec<u32> = ok.iter().zip(not_ok).map(|(a, b)| a + b).collect();
        let full = full_scale(&total);
        let base = y + h - 3;
        let room = h - 8;
        for (cs, class) in [(&total, lane_class(node)), (not_ok, "notok")] {
            if let Some(d) = density_path(cs, full, base, room) {
                let _ = writeln!(page, "<path class=\"{class}\" d=\"{d}\"/>");
            }
        }
    }
    fault_bars(page, model, &geometry);
    partition_changes(page, history, model, &geometry);
    disk_events(page, history, model, &geometry);
    anomaly_marks(page, history, model, &geometry);
    page.push_str("</svg>\n</section>\n");
}

fn legend(page: &mut String, model: &Model) {
    page.push_str(
        "<div class=\"legend\">\
         <span><i class=\"sw producer\"></i>operations (density)</span>\
         <span><i class=\"sw notok\"></i>failed or indefinite</span>\
         <span><i class=\"sw crash\"></i>crash</span>\
         <span><i class=\"sw power-loss\"></i>power loss</span>\
         <span><i class=\"sw corrupt\"></i>corrupt</span>\
         <span><i class=\"sw disk-full\"></i>disk full</span>\
         <span><i class=\"sw log-dir-failure\"></i>disk failed</span>\
         <span><i class=\"sw pause\"></i>pause</span>\
         <span><i class=\"sw isolate\"></i>isolate</span>\
         <span><i class=\"sw clock\"></i>clock step</span>\
         <span><i class=\"sw net\"></i>network fault</span>\
         <span><b class=\"lc\">◆</b>leader change</span>\
         <span><b class=\"ic\">○</b>ISR change</span>\
         <span><b class=\"disk\">▼</b>page cache lost</span>\
         <span><b class=\"corr\">◆</b>bit flipped on disk</span>\
         <span><b class=\"ldf\">✖</b>log dir offline, broker halted</span>\
         <span><b class=\"recov\">■</b>log recovery truncated</span>",
    );
    for (k, kind) in model.kinds.iter().enumerate() {
        let _ = write!(
            page,
            "<span><b style=\"color:{}\">●</b>{}</span>",
            model.color(k),
            escape(kind)
        );
    }
    page.push_str("</div>\n");
}

/// Per lane: operations per column that succeeded and that did not (fail or info).
fn lane_counts(history: &History, model: &Model) -> Vec<(Vec<u32>, Vec<u32>)> {
    let columns = PLOT_W as usize;
    let mut counts = vec![(vec![0u32; columns], vec![0u32; columns]); model.lanes.len()];
    for e in history.entries.iter().filter(|e| is_operation(&e.op)) {
        let Ok(lane) = model.lanes.binary_search(&e.process) else {
            continue;
        };
        let c = model.column(entry_ms(e));
        match e.outcome {
            Outcome::Ok => counts[lane].0[c] += 1,
            _ => counts[lane].1[c] += 1,
        }
    }
    counts
}

/// The CSS class of a lane's density.
fn lane_class(node: &NodeId) -> &'static str {
    match node {
        NodeId::Producer(_) => "producer",
        NodeId::Consumer(_) => "consumer",
        _ => "other",
    }
}

/// The count drawn at full height in a lane: twice the median of its non-empty
/// columns, so that a steady rate fills most of the lane and a burst (retries
/// completing together) does not flatten everything else.
fn full_scale(counts: &[u32]) -> u32 {
    let mut busy: Vec<u32> = counts.iter().copied().filter(|&c| c > 0).collect();
    busy.sort_unstable();
    busy.get(busy.len() / 2).map_or(0, |m| m * 2)
}

/// A step-shaped area (one step per pixel column) whose height grows with the square
/// root of the count (exact in IEEE arithmetic, so the page is the same everywhere),
/// up to `room` at `full`; `None` when every count is zero.
fn density_path(counts: &[u32], full: u32, base: u64, room: u64) -> Option<String> {
    if full == 0 || counts.iter().all(|&c| c == 0) {
        return None;
    }
    let scale = |c: u32| -> u64 {
        if c == 0 {
            0
        } else {
            let share = (f64::from(c) / f64::from(full)).min(1.0);
            1 + ((room - 1) as f64 * share.sqrt()).round() as u64
        }
    };
    let mut d = format!("M{LABEL_W},{base}");
    let mut prev = 0;
    for (i, &c) in counts.iter().enumerate() {
        let h = scale(c);
        if h != prev {
            let _ = write!(d, "H{}V{}", LABEL_W + i as u64, base - h);
            prev = h;
        }
    }
    let _ = write!(d, "H{}V{base}Z", LABEL_W + counts.len() as u64);
    Some(d)
}

/// Vertical grid lines and the time axis.
fn axis_grid(page: &mut String, model: &Model, plot_bottom: u64) {
    const STEPS_MS: &[u64] = &[
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 1_800_000, 3_600_000,
    ];
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|s| model.end_ms / s <= 14)
        .unwrap_or(3_600_000);
    let mut t = 0;
    while t <= model.end_ms {
        let x = model.x(t);
        let label = if step >= 1000 {
            format!("{} s", t / 1000)
        } else {
            format!("{}.{} s", t / 1000, (t % 1000) / 100)
        };
        let _ = writeln!(
            page,
            "<line class=\"grid\" x1=\"{x}\" y1=\"4\" x2=\"{x}\" y2=\"{plot_bottom}\"/>\
             <text class=\"tick\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            plot_bottom + 17
        );
        t += step;
    }
}

/// Node faults shade the lanes they hit; network faults are a band over every lane.
fn fault_shading(page: &mut String, model: &Model, geometry: &[(u64, u64)], plot_bottom: u64) {
    for f in model.faults.iter().filter(|f| !f.instant()) {
        let (x1, x2) = (model.x(f.start_ms), model.x(f.end_ms(model.end_ms)));
        let w = (x2 - x1).max(2);
        let title = escape(&fault_title(f, model.end_ms));
        if f.node_fault() {
            let class = escape(&f.verb);
            for n in &f.nodes {
                let Ok(lane) = model.lanes.binary_search(n) else {
                    continue;
                };
                let (y, h) = geometry[lane];
                let _ = write!(
                    page,
                    "<rect class=\"shade {class}\" x=\"{x1}\" y=\"{y}\" width=\"{w}\" \
                     height=\"{h}\"><title>{title}</title></rect>"
                );
                if w > 44 {
                    let _ = write!(
                        page,
                        "<text class=\"shadelabel\" x=\"{}\" y=\"{}\">{}</text>",
                        x1 + 4,
                        y + 11,
                        escape(&participle(&f.verb))
                    );
                }
                page.push('\n');
            }
        } else {
            let _ = writeln!(
                page,
                "<rect class=\"shade net\" x=\"{x1}\" y=\"4\" width=\"{w}\" \
                 height=\"{}\"><title>{title}</title></rect>",
                plot_bottom - 4
            );
        }
    }
}

/// `crash` -> `crashed`, for the label in a shaded lane.
fn participle(verb: &str) -> String {
    match verb {
        "crash" => "crashed".into(),
        "power-loss" => "powered off".into(),
        "corrupt" => "crashed (disk corrupt)".into(),
        "disk-full" => "disk full".into(),
        "log-dir-failure" => "disk failed".into(),
        "pause" => "paused".into(),
        "isolate" => "isolated".into(),
        "clock" => "clock stepped".into(),
        other => other.to_string(),
    }
}

/// A fault's tooltip: what, from when to when, history lines.
fn fault_title(f: &FaultSpan, run_end_ms: u64) -> String {
    let missed = if f.node_fault() && f.nodes.is_empty() {
        " (it hit no node)"
    } else {
        ""
    };
    let when = match f.end {
        Some((ms, line)) => format!(
            "from {} s to {} s (lines {} to {line})",
            secs(f.start_ms),
            secs(ms),
            f.start_line
        ),
        None if f.instant() => format!("at {} s (line {})", secs(f.start_ms), f.start_line),
        None => format!(
            "from {} s until the end at {} s (line {})",
            secs(f.start_ms),
            secs(run_end_ms),
            f.start_line
        ),
    };
    format!("{}{missed} {when}", f.what)
}

/// Every fault as a bar (or, for instant ones, a diamond) in the nemesis lane.
fn fault_bars(page: &mut String, model: &Model, geometry: &[(u64, u64)]) {
    let Ok(lane) = model.lanes.binary_search(&NodeId::Nemesis) else {
        return;
    };
    let (y, _) = geometry[lane];
    for f in &model.faults {
        let top = y + 4 + f.row as u64 * FAULT_ROW_H;
        let title = escape(&fault_title(f, model.end_ms));
        let x1 = model.x(f.start_ms);
        if f.instant() {
            let cy = top + FAULT_ROW_H / 2 - 1;
            let _ = writeln!(
                page,
                "<path class=\"instant\" d=\"M{x1},{}l5,5l-5,5l-5,-5Z\"><title>{title}</title></path>",
                cy - 5
            );
            continue;
        }
        let w = (model.x(f.end_ms(model.end_ms)) - x1).max(2);
        let class = if f.node_fault() {
            escape(&f.verb)
        } else {
            "net".into()
        };
        let _ = write!(
            page,
            "<rect class=\"bar {class}\" x=\"{x1}\" y=\"{top}\" width=\"{w}\" height=\"{}\" \
             rx=\"2\"><title>{title}</title></rect>",
            FAULT_ROW_H - 2
        );
        // What it hit, if it fits (about 6 px a character).
        let label = match f.what.rsplit_once(" -> ") {
            Some((_, hit)) if f.node_fault() && !f.nodes.is_empty() => format!("{} {hit}", f.verb),
            Some((what, _)) => what.to_string(),
            None => f.what.clone(),
        };
        let fits = (w.saturating_sub(6) / 6) as usize;
        if fits >= 6 {
            let text: String = if label.chars().count() > fits {
                let mut t: String = label.chars().take(fits - 1).collect();
                t.push('…');
                t
            } else {
                label
            };
            let _ = write!(
                page,
                "<text class=\"barlabel\" x=\"{}\" y=\"{}\">{}</text>",
                x1 + 3,
                top + FAULT_ROW_H - 4,
                escape(&text)
            );
        }
        page.push('\n');
    }
}

/// Leader changes (◆; red when unclean) and ISR-only changes (○) on the controller's
/// lane, and a small triangle on the new leader's lane.
fn partition_changes(page: &mut String, history: &History, model: &Model, geometry: &[(u64, u64)]) {
    let Ok(controller) = model.lanes.binary_search(&NodeId::Controller) else {
        return;
    };
    let (cy_top, ch) = geometry[controller];
    let cy = cy_top + ch / 2;
    // Per partition: the last leader seen (the initial election is not in the history:
    // a first change with epoch 0 kept the initial leader).
    let mut leaders: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for e in &history.entries {
        let Op::PartitionChange {
            partition,
            leader,
            leader_epoch,
            isr,
            elr,
            unclean,
        } = &e.op
        else {
            continue;
        };
        let key = partition.to_string();
        let moved = match leaders.insert(key.clone(), *leader) {
            Some(prev) => prev != *leader,
            None => *leader_epoch > 0,
        };
        let x = model.x(entry_ms(e));
        let isr_text = isr
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let leader_text = leader.map_or("none".to_string(), |l| format!("broker-{l}"));
        let elr_text = if elr.is_empty() {
            String::new()
        } else {
            let members: Vec<String> = elr.iter().map(|b| b.to_string()).collect();
            format!(", ELR [{}]", members.join(","))
        };
        let title = escape(&format!(
            "{key}: leader {leader_text} (epoch {leader_epoch}), ISR [{isr_text}]{elr_text}{} at {} s (line {})",
            if *unclean { ", unclean election" } else { "" },
            secs(entry_ms(e)),
            e.index
        ));
        if moved {
            let class = if *unclean { "lc unclean" } else { "lc" };
            let _ = write!(
                page,
                "<path class=\"{class}\" d=\"M{x},{}l5,6l-5,6l-5,-6Z\"><title>{title}</title></path>",
                cy - 6
            );
            let new_leader =
                leader.and_then(|l| model.lanes.binary_search(&NodeId::Broker(l)).ok());
            if let Some(lane) = new_leader {
                let (y, _) = geometry[lane];
                let _ = write!(
                    page,
                    "<path class=\"lead\" d=\"M{},{}h8l-4,6Z\"><title>{title}</title></path>",
                    x - 4,
                    y + 2
                );
            }
        } else {
            let _ = write!(
                page,
                "<circle class=\"ic\" cx=\"{x}\" cy=\"{cy}\" r=\"3.5\"><title>{title}</title></circle>"
            );
        }
        page.push('\n');
    }
}

/// What a disk mark on a broker's lane shows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DiskMark {
    /// A power loss took the page cache.
    PowerLoss,
    /// A bit flipped in a stored batch.
    Corrupt,
    /// The log directory went offline and the broker halted.
    LogDirFailure,
    /// Recovery cut the log on start.
    Recovery,
}

/// On each broker's lane, what its disk lost in a power loss (a red triangle), the
/// batch a `corrupt` fault flipped a bit in (a purple diamond), the moment its log
/// directory went offline and it halted (a black cross) and what recovery cut
/// off when it started again (a green square): one mark per broker and moment, its
/// tooltip listing the partitions.
fn disk_events(page: &mut String, history: &History, model: &Model, geometry: &[(u64, u64)]) {
    // (lane, ms, kind) -> the partitions' lines
    let mut marks: BTreeMap<(usize, u64, DiskMark), Vec<String>> = BTreeMap::new();
    for e in &history.entries {
        let (kind, text) = match &e.op {
            Op::LogPowerLoss {
                partition,
                log_end_offset,
                durable_end_offset,
                torn,
            } => (
                DiskMark::PowerLoss,
                format!(
                    "{partition}: log end {log_end_offset} -> {durable_end_offset}{} (line {})",
                    if *torn { ", torn write" } else { "" },
                    e.index
                ),
            ),
            Op::LogCorrupted {
                partition,
                base_offset,
                last_offset,
                byte,
                bit,
            } => (
                DiskMark::Corrupt,
                format!(
                    "{partition}: batch {base_offset}..={last_offset}, bit {bit} of byte {byte} (line {})",
                    e.index
                ),
            ),
            Op::LogDirFailure { error } => (
                DiskMark::LogDirFailure,
                format!("{error} (line {})", e.index),
            ),
            Op::LogRecovered {
                partition,
                from,
                log_end_offset,
                reason,
            } => (
                DiskMark::Recovery,
                format!(
                    "{partition}: validated from {from}, log end {log_end_offset}: {reason} (line {})",
                    e.index
                ),
            ),
            _ => continue,
        };
        let Ok(lane) = model.lanes.binary_search(&e.process) else {
            continue;
        };
        marks
            .entry((lane, entry_ms(e), kind))
            .or_default()
            .push(text);
    }
    for ((lane, ms, kind), lines) in marks {
        let (y, h) = geometry[lane];
        let x = model.x(ms);
        let what = match kind {
            DiskMark::PowerLoss => "power loss took the page cache",
            DiskMark::Corrupt => "a bit flipped on the disk",
            DiskMark::LogDirFailure => "log directory offline, broker halted",
            DiskMark::Recovery => "log recovery truncated",
        };
        let title = escape(&format!("{what} at {} s\n{}", secs(ms), lines.join("\n")));
        let _ = match kind {
            DiskMark::Recovery => writeln!(
                page,
                "<rect class=\"recov\" x=\"{}\" y=\"{}\" width=\"8\" height=\"8\"><title>{title}</title></rect>",
                x - 4,
                y + h - 12
            ),
            DiskMark::PowerLoss => writeln!(
                page,
                "<path class=\"disk\" d=\"M{},{}h10l-5,9Z\"><title>{title}</title></path>",
                x - 5,
                y + 2
            ),
            DiskMark::Corrupt => writeln!(
                page,
                "<path class=\"corr\" d=\"M{},{}l5,5l-5,5l-5,-5Z\"><title>{title}</title></path>",
                x,
                y + 2
            ),
            DiskMark::LogDirFailure => writeln!(
                page,
                "<path class=\"ldf\" d=\"M{},{}l8,8m0,-8l-8,8\"><title>{title}</title></path>",
                x - 4,
                y + 2
            ),
        };
    }
}

/// One linked mark per history line an anomaly example involves.
fn anomaly_marks(page: &mut String, history: &History, model: &Model, geometry: &[(u64, u64)]) {
    // Marks at one spot (a line two examples involve) side by side.
    let mut at_spot: BTreeMap<(usize, u64), u64> = BTreeMap::new();
    for m in &model.marks {
        let (y, h) = geometry[m.lane];
        let x = model.x(m.at_ms);
        let nth = at_spot.entry((m.lane, x)).or_insert(0);
        let cx = x + *nth * 9;
        *nth += 1;
        let color = model.color(m.kind);
        let what = line_entry(history, m.line).map_or_else(String::new, |e| {
            format!(": {} by {} at {} s", op_name(e), e.process, secs(m.at_ms))
        });
        let _ = writeln!(
            page,
            "<a class=\"amark\" href=\"#line-{line}\" data-line=\"{line}\" data-kind=\"{kind}\">\
             <title>{kind}, example {ex}: line {line}{what}</title>\
             <line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{color}\"/>\
             <circle cx=\"{cx}\" cy=\"{}\" r=\"5.5\" fill=\"{color}\"/></a>",
            y + 1,
            y + h - 1,
            y + h / 2,
            line = m.line,
            kind = escape(model.kinds[m.kind]),
            ex = m.example + 1,
            what = escape(&what),
        );
    }
}

fn anomalies(page: &mut String, report: &SeedReport, history: &History, model: &Model) {
    let _ = writeln!(
        page,
        "<section id=\"anomalies\">\n<h2>Anomalies and client events</h2>"
    );
    if report.anomalies.is_empty() {
        page.push_str("<p class=\"none\">None: the checker found nothing to report.</p>\n");
    }
    for (k, kind) in model.kinds.iter().enumerate() {
        let count = report.anomalies.get(*kind).copied().unwrap_or(0);
        let (tag, class) = if report.violated.iter().any(|v| v == kind) {
            ("violates an invariant", "bad")
        } else if report.excused.contains_key(*kind) {
            ("Kafka's own in this run (see the report's excused)", "meh")
        } else if check::kinds::EVENT_KINDS.contains(kind) {
            ("client event", "meh")
        } else {
            ("expected or tolerated here", "meh")
        };
        let _ = write!(
            page,
            "<article class=\"anomaly\" id=\"anomaly-{id}\" style=\"border-left-color:{color}\">\n\
             <h3><b style=\"color:{color}\">●</b> {id} <span class=\"count\">× {count}</span> \
             <span class=\"tag {class}\">{tag}</span></h3>\n<p class=\"desc\">{desc}</p>\n<ol>\n",
            id = escape(kind),
            color = model.color(k),
            desc = escape(check::kinds::describe(kind)),
        );
        let examples = report.examples.get(*kind).map_or(&[][..], Vec::as_slice);
        let lines = report
            .example_lines
            .get(*kind)
            .map_or(&[][..], Vec::as_slice);
        for (x, text) in examples.iter().enumerate() {
            let involved: &[u64] = lines.get(x).map_or(&[], Vec::as_slice);
            let _ = write!(
                page,
                "<li data-lines=\"{}\">{}",
                involved
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                escape(text)
            );
            if !involved.is_empty() {
                page.push_str("<ul class=\"lines\">");
                for &line in involved {
                    let what = line_entry(history, line).map_or_else(String::new, |e| {
                        format!(
                            " {} by {} at {} s",
                            op_name(e),
                            e.process,
                            secs(entry_ms(e))
                        )
                    });
                    let _ = write!(
                        page,
                        "<li>line {}<span class=\"dim\">{}</span></li>",
                        model.line_ref(line),
                        escape(&what)
                    );
                }
                page.push_str("</ul>");
            }
            page.push_str("</li>\n");
        }
        if count > examples.len() as u64 {
            let _ = writeln!(
                page,
                "<p class=\"dim\">The first {} of {count} in history order.</p>",
                examples.len()
            );
        }
        page.push_str("</ol>\n</article>\n");
    }
    page.push_str("</section>\n");
}

fn history_excerpt(page: &mut String, history: &History, model: &Model) {
    let _ = writeln!(
        page,
        "<section id=\"history\">\n<h2>History lines involved</h2>\n<p class=\"dim\">Each \
         line an example involves, with {CONTEXT} lines of context either side \
         ({} of {} lines of <code>history.jsonl</code>; its line N is entry N, from 0).</p>",
        model.shown.len(),
        history.entries.len()
    );
    if model.shown.is_empty() {
        page.push_str("<p class=\"none\">No anomaly involves a history line.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<table class=\"history\">\n<thead><tr><th>line</th><th>time (s)</th><th>process</th>\
         <th>operation</th><th>outcome</th><th>details</th></tr></thead>\n<tbody>\n",
    );
    let mut prev: Option<u64> = None;
    for &line in &model.shown {
        let gap = match prev {
            None => line,
            Some(p) => line - p - 1,
        };
        if gap > 0 {
            let _ = writeln!(
                page,
                "<tr class=\"gap\"><td colspan=\"6\">⋯ {gap} line{} not shown ⋯</td></tr>",
                if gap == 1 { "" } else { "s" }
            );
        }
        prev = Some(line);
        let Some(e) = line_entry(history, line) else {
            continue;
        };
        history_row(page, e, model);
    }
    let rest = history.entries.len() as u64 - prev.map_or(0, |p| p + 1);
    if rest > 0 {
        let _ = writeln!(
            page,
            "<tr class=\"gap\"><td colspan=\"6\">⋯ {rest} more line{} ⋯</td></tr>",
            if rest == 1 { "" } else { "s" }
        );
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

fn history_row(page: &mut String, e: &Entry, model: &Model) {
    let tags = model.involved.get(&e.index);
    let class = if tags.is_some() { "inv" } else { "ctx" };
    let time = match e.complete_ms {
        Some(c) if c != e.invoke_ms => format!("{} → {}", secs(e.invoke_ms), secs(c)),
        Some(c) => secs(c),
        None => format!("{} → never", secs(e.invoke_ms)),
    };
    let (outcome_class, outcome) = match &e.outcome {
        Outcome::Ok => ("ok", "ok".to_string()),
        Outcome::Fail { error } => ("fail", format!("fail: {error}")),
        Outcome::Info { reason } => ("info", format!("info: {reason}")),
    };
    let _ = write!(
        page,
        "<tr id=\"line-{line}\" class=\"{class}\"><td class=\"ln\"><a href=\"#line-{line}\">{line}</a></td>\
         <td class=\"t\">{time}</td><td>{}</td><td class=\"op\">{}</td>\
         <td class=\"{outcome_class}\">{}</td><td class=\"det\">",
        escape(&e.process.to_string()),
        escape(&op_name(e)),
        escape(&outcome),
        line = e.index,
    );
    for &(k, x) in tags.into_iter().flatten() {
        let _ = write!(
            page,
            "<a class=\"badge\" href=\"#anomaly-{kind}\" style=\"background:{}\">{kind} #{}</a> ",
            model.color(k),
            x + 1,
            kind = escape(model.kinds[k]),
        );
    }
    // Context rows fold long details; an involved row shows them whole (the record an
    // example is about may sit anywhere in a poll).
    let text = details(e);
    if tags.is_none() && text.chars().count() > DETAILS_INLINE {
        let short: String = text.chars().take(DETAILS_INLINE / 2).collect();
        let _ = write!(
            page,
            "<details><summary>{} …</summary>{}</details>",
            escape(&short),
            escape(&text)
        );
    } else {
        page.push_str(&escape(&text));
    }
    page.push_str("</td></tr>\n");
}

/// The operation's name: its `f` tag in `history.jsonl` (`send`, `poll`, ...).
fn op_name(e: &Entry) -> String {
    match serde_json::to_value(&e.op) {
        Ok(Json::Object(map)) => map
            .get("f")
            .and_then(Json::as_str)
            .unwrap_or("?")
            .to_string(),
        _ => "?".into(),
    }
}

/// The operation's fields in words, from its serialized form (`partition=orders-1
/// offset=88 ...`); a poll's records as `offset:value`.
fn details(e: &Entry) -> String {
    let Ok(Json::Object(map)) = serde_json::to_value(&e.op) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in &map {
        if k == "f" {
            continue;
        }
        let text = match (&e.op, k.as_str()) {
            (Op::Poll { records, .. }, "records") => format!(
                "[{}]",
                records
                    .iter()
                    .map(|r| match &r.key {
                        Some(key) => format!("{}:{} ({key})", r.offset, r.value),
                        None => format!("{}:{}", r.offset, r.value),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => compact(v),
        };
        parts.push(format!("{k}={text}"));
    }
    parts.join("  ")
}

/// A JSON value in few characters: strings bare, `{"broker":2}` as `broker-2` (how
/// the history writes a process), other objects as `{k=v ...}`.
fn compact(v: &Json) -> String {
    match v {
        Json::Null => "-".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(compact).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(map) => match map.iter().next() {
            Some((k, Json::Number(n))) if map.len() == 1 => format!("{k}-{n}"),
            _ => format!(
                "{{{}}}",
                map.iter()
                    .map(|(k, v)| format!("{k}={}", compact(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        },
    }
}

fn faults_table(page: &mut String, model: &Model) {
    page.push_str("<section id=\"faults\">\n<h2>Faults</h2>\n");
    if model.faults.is_empty() {
        page.push_str("<p class=\"none\">No faults were injected.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<table class=\"plain\">\n<thead><tr><th>from (s)</th><th>to (s)</th><th>fault</th>\
         <th>lines</th></tr></thead>\n<tbody>\n",
    );
    for f in &model.faults {
        let (to, lines) = match f.end {
            Some((ms, line)) => (
                secs(ms),
                format!("{}, {}", model.line_ref(f.start_line), model.line_ref(line)),
            ),
            None if f.instant() => ("-".into(), model.line_ref(f.start_line)),
            None => ("end of run".into(), model.line_ref(f.start_line)),
        };
        let _ = writeln!(
            page,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{to}</td><td>{}</td><td>{lines}</td></tr>",
            secs(f.start_ms),
            escape(&f.what)
        );
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

fn stats(page: &mut String, report: &SeedReport) {
    let s = &report.stats;
    let c = &s.check;
    let p = &s.producer;
    let rows: [(&str, String); 12] = [
        ("simulated time", format!("{} s", secs(s.sim_ms))),
        ("history lines", s.operations.to_string()),
        ("records sent", s.records_sent.to_string()),
        (
            "sends",
            format!(
                "{} ({} acknowledged, {} failed, {} indefinite)",
                c.sends, c.acked, c.failed, c.indefinite
            ),
        ),
        (
            "polls",
            format!("{} ({} records read)", c.polls, c.records_read),
        ),
        ("faults", s.faults.to_string()),
        ("network messages", s.net_messages.to_string()),
        ("records per batch", format!("{:.1}", p.records_per_batch)),
        ("batch size (bytes)", format!("{:.0}", p.batch_size_avg)),
        ("compression rate", format!("{:.3}", p.compression_rate)),
        (
            "send latency (ms)",
            format!(
                "p50 {}, p99 {}, max {}",
                p.latency_p50_ms, p.latency_p99_ms, p.latency_max_ms
            ),
        ),
        (
            "producer retries",
            format!(
                "{} batches retried, {} epoch bumps",
                p.metrics.retried_batches, p.metrics.epoch_bumps
            ),
        ),
    ];
    page.push_str("<section id=\"stats\">\n<h2>Figures</h2>\n<table class=\"plain\">\n");
    let q = &s.pipeline;
    let pipeline_rows = [
        (
            "pipeline outputs",
            format!("{} ({:.1} per second)", q.outputs, q.outputs_per_sec),
        ),
        (
            "transactions",
            format!(
                "{} committed ({:.1} outputs each), {} aborted",
                q.transactions,
                q.outputs_per_txn(),
                q.aborted
            ),
        ),
        (
            "commit latency (ms)",
            format!("p50 {}, p99 {}", q.commit_p50_ms, q.commit_p99_ms),
        ),
        (
            "broker requests per 1000 outputs",
            format!(
                "{:.0} ({:.0} of the transaction APIs)",
                q.requests_per_1000_outputs(),
                q.txn_requests_per_1000_outputs()
            ),
        ),
    ];
    let pipeline_rows = if q.outputs > 0 {
        &pipeline_rows[..]
    } else {
        &[]
    };
    for (name, value) in rows.iter().chain(pipeline_rows) {
        let _ = writeln!(page, "<tr><th>{name}</th><td>{}</td></tr>", escape(value));
    }
    page.push_str(
        "</table>\n<p class=\"dim\">Written by kafkasim from <code>report.json</code> and \
         <code>history.jsonl</code> beside this file; the same seed gives the same page.</p>\n\
         </section>\n",
    );
}

/// The page's style: system fonts only.
const STYLE: &str = "\
:root{--fg:#1d2330;--dim:#667085;--line:#e4e7ec;--bad:#c0262d;--ok:#1f7a3a}
*{box-sizing:border-box}
body{margin:0 auto;padding:18px 22px 60px;max-width:1420px;color:var(--fg);
font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}
h1{font-size:22px;margin:0 0 10px}h2{font-size:18px;margin:28px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:0 0 4px}
code,pre,.t,.ln,.det{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12.5px}
.seed{color:var(--dim);font-weight:500}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-size:15px;vertical-align:3px}
.verdict.pass{background:var(--ok)}.verdict.fail{background:var(--bad)}
table.facts th,table.plain th{text-align:left;color:var(--dim);font-weight:500;padding:2px 16px 2px 0;vertical-align:top}
table.facts td,table.plain td{padding:2px 12px 2px 0}
code.cmd{background:#f2f4f7;padding:2px 6px;border-radius:3px;user-select:all}
.bad{color:var(--bad);font-weight:600}.dim{color:var(--dim)}.none{color:var(--dim);font-style:italic}
pre.panic{margin:0;white-space:pre-wrap;color:var(--bad)}
nav{margin-top:8px;color:var(--dim)}nav a{color:#2453a6}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:0 0 8px;color:#344054;font-size:13px}
.legend span{white-space:nowrap}.legend b{margin-right:5px}
.sw{display:inline-block;width:14px;height:10px;margin-right:5px;border-radius:2px;vertical-align:-1px}
.sw.producer{background:#4c78a8}.sw.notok{background:#f58518}.sw.crash{background:#f4a8a8}
.sw.power-loss{background:#c9a0a0}.sw.corrupt{background:#c9a0c9}.sw.pause{background:#f6d88a}.sw.isolate{background:#d7b8e6}.sw.net{background:#b9d3f0}.sw.clock{background:#a8dcd1}.sw.disk-full{background:#d9c08c}.sw.log-dir-failure{background:#b0a8a0}
b.lc{color:#344054}b.ic{color:#667085}b.disk{color:#8b0000}b.corr{color:#6a1b9a}b.recov{color:#2e7d32}b.ldf{color:#111}
svg.timeline{display:block;width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
svg text{font-family:system-ui,'DejaVu Sans',sans-serif}
text.lane{font-size:13px;fill:#1d2330;dominant-baseline:middle}
text.ops{font-size:10.5px;fill:#98a2b3;dominant-baseline:middle}
text.tick{font-size:11px;fill:#667085}
line.grid{stroke:#e4e7ec;stroke-width:1}
path.producer{fill:#4c78a8}path.consumer{fill:#54a24b}path.other{fill:#98a2b3}path.notok{fill:#f58518}
rect.shade{opacity:.55}rect.shade.crash{fill:#f4a8a8}rect.shade.power-loss{fill:#c9a0a0}rect.shade.corrupt{fill:#c9a0c9}rect.shade.pause{fill:#f6d88a}
rect.shade.isolate{fill:#d7b8e6}rect.shade.clock{fill:#a8dcd1}rect.shade.disk-full{fill:#d9c08c}rect.shade.log-dir-failure{fill:#b0a8a0}rect.shade.net{fill:#b9d3f0;opacity:.35}
text.shadelabel{font-size:10px;fill:#7a2a2a;font-style:italic}
rect.bar{opacity:.9}rect.bar.crash{fill:#e45756}rect.bar.power-loss{fill:#8b0000}rect.bar.corrupt{fill:#6a1b9a}rect.bar.pause{fill:#e0a800}
rect.bar.isolate{fill:#a05fc0}rect.bar.clock{fill:#2a9d8f}rect.bar.disk-full{fill:#a07a20}rect.bar.log-dir-failure{fill:#5a524a}rect.bar.net{fill:#4c78a8}
text.barlabel{font-size:9.5px;fill:#fff}
path.instant{fill:#2a9d8f}path.lc{fill:#344054}path.lc.unclean{fill:#d62728}
path.lead{fill:#2a9d8f}circle.ic{fill:#fff;stroke:#667085;stroke-width:1.3}
path.disk{fill:#8b0000}path.corr{fill:#6a1b9a}rect.recov{fill:#2e7d32}path.ldf{stroke:#111;stroke-width:2.5;fill:none}
a.amark line{stroke-width:1.5;opacity:.7}a.amark circle{stroke:#fff;stroke-width:1.5}
a.amark:hover circle,a.amark.hl circle{stroke:#000;stroke-width:3}
a.amark.hl line{stroke-width:4;opacity:1}
article.anomaly{border-left:5px solid #999;padding:6px 12px;margin:0 0 14px;background:#fafbfc}
.count{color:var(--dim);font-weight:500;margin-left:4px}
.tag{font-size:12px;font-weight:500;padding:1px 7px;border-radius:9px;margin-left:6px}
.tag.bad{background:#fde3e3;color:var(--bad)}.tag.meh{background:#eef0f3;color:#475467}
p.desc{margin:2px 0 6px;color:#475467}
article ol{margin:4px 0;padding-left:22px}article ol>li{margin:4px 0}
ul.lines{margin:2px 0 0;padding-left:18px;font-size:13px}
table.history{border-collapse:collapse;width:100%;font-size:13px}
table.history th{text-align:left;color:var(--dim);font-weight:500;border-bottom:1px solid var(--line);padding:3px 8px}
table.history td{padding:3px 8px;border-bottom:1px solid #f0f2f5;vertical-align:top}
table.history td{white-space:nowrap}table.history td.det{white-space:normal;word-break:break-word}
tr.inv{background:#fff8e6}tr.inv td.ln{font-weight:700}tr.ctx td{color:#475467}
tr.gap td{color:var(--dim);text-align:center;font-style:italic;background:#fafbfc}
tr:target td{background:#ffe58a}
td.fail{color:var(--bad)}td.info{color:#b54708}
a.badge{display:inline-block;color:#fff;border-radius:3px;padding:0 5px;margin-right:4px;
font-family:system-ui,'DejaVu Sans',sans-serif;font-size:11.5px;text-decoration:none}
details summary{cursor:pointer}
";

/// Hover highlighting of an example's marks, and a self-check of the page written on
/// `<html>` (for the browser test): that it ran, how many anomaly marks and links to
/// history lines it has, how many of those links point nowhere, and the timeline's
/// rendered width.
const SCRIPT: &str = "
(function () {
  var root = document.documentElement;
  var links = document.querySelectorAll('a[href^=\"#line-\"]');
  var broken = 0;
  links.forEach(function (a) {
    var t = document.getElementById(a.getAttribute('href').slice(1));
    if (!t || t.getClientRects().length === 0) { broken++; }
  });
  var marks = document.querySelectorAll('svg.timeline a.amark');
  var svg = document.querySelector('svg.timeline');
  root.setAttribute('data-line-links', String(links.length));
  root.setAttribute('data-broken-links', String(broken));
  root.setAttribute('data-anomaly-marks', String(marks.length));
  root.setAttribute('data-timeline-width',
    String(svg ? Math.round(svg.getBoundingClientRect().width) : 0));
  document.querySelectorAll('li[data-lines]').forEach(function (li) {
    var lines = li.getAttribute('data-lines').split(' ');
    li.addEventListener('mouseenter', function () {
      marks.forEach(function (m) {
        if (lines.indexOf(m.getAttribute('data-line')) >= 0) { m.classList.add('hl'); }
      });
    });
    li.addEventListener('mouseleave', function () {
      marks.forEach(function (m) { m.classList.remove('hl'); });
    });
  });
  root.setAttribute('data-rendered', 'yes');
})();
";

#[cfg(test)]
mod tests;
