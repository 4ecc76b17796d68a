//! The HTML report in a real browser: Debian's headless chromium opens the
//! `index.html` of a seed with a lost write, runs the page's script and takes a
//! screenshot. The page must render (its script ran, the timeline has its width), carry
//! one timeline mark per history line an anomaly example involves, and every link to a
//! history line must lead to a visible row.
//!
//! chromium is installed by `scripts/install-chromium.sh` (`.ci/run` calls it); when it
//! is missing the test runs that script, and fails with the reason if it still cannot
//! start the browser.

use kafkasim::drive::runner;
use kafkasim::report::SeedReport;
use kafkasim::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// A scenario and seed with a lost write (and an inconsistent offset).
const SCENARIO: &str = "scenarios/acks-1-leader-crash.json";
const SEED: u64 = 2;
/// How long one browser run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kafkasim-html-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The browser, installed by the project's script if it is missing.
fn chromium() -> &'static Path {
    let path = Path::new(CHROMIUM);
    if !path.exists() {
        let script = root().join("scripts/install-chromium.sh");
        let status = Command::new("bash").arg(&script).status();
        assert!(
            path.exists(),
            "{CHROMIUM} is missing and `bash {}` did not install it ({status:?}); this test \
             needs Debian's chromium: apt-get install -y chromium",
            script.display()
        );
    }
    path
}

/// Runs chromium headless on a file with extra arguments; returns its stdout.
fn browse(page: &Path, args: &[String], profile: &Path) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    // Read both pipes on threads so a chatty browser never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().expect("stdout reader").unwrap_or_default();
    let err = err.join().expect("stderr reader").unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}):\n{err}");
    out
}

/// The value of attribute `name` on the dumped page's `<html>` element.
fn html_attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find("<html")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Runs the seed and writes its report files into `dir`; returns the report and the
/// path of `index.html`.
fn report_in(dir: &Path) -> (SeedReport, PathBuf) {
    let scenario = Scenario::load(&root().join(SCENARIO)).expect("the scenario loads");
    let (report, out) = runner::run_seed(&scenario, SEED, &[]);
    let (out, _) = out.expect("the seed ran without a panic");
    assert!(
        report.anomalies.contains_key("lost-write"),
        "seed {SEED} of {SCENARIO} no longer loses a write: pick another seed ({:?})",
        report.anomalies
    );
    let json = runner::write_report(dir, &report, Some((&out.history, &out.snapshot)))
        .expect("report written");
    let html = json.with_file_name(runner::HTML_REPORT);
    assert!(html.exists(), "{} written", html.display());
    (report, html)
}

#[test]
fn report_renders_in_chromium_and_its_anomaly_links_work() {
    let dir = tmp("browser");
    let (report, page) = report_in(&dir);
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 3 << 20, "index.html is {size} bytes");

    let lines: Vec<u64> = report
        .example_lines
        .values()
        .flatten()
        .flatten()
        .copied()
        .collect();
    assert!(!lines.is_empty(), "the lost write names its history line");

    let window = "--window-size=1400,1000".to_string();
    let dom = browse(
        &page,
        &["--dump-dom".into(), window.clone()],
        &dir.join("profile-dom"),
    );
    let attr = |name: &str| {
        html_attribute(&dom, name)
            .unwrap_or_else(|| panic!("the page's script did not set {name}; DOM:\n{dom:.2000}"))
    };
    assert_eq!(attr("data-rendered"), "yes");
    assert_eq!(
        attr("data-anomaly-marks"),
        lines.len().to_string(),
        "one timeline mark per involved line"
    );
    let links: usize = attr("data-line-links").parse().unwrap();
    assert!(links >= 2 * lines.len(), "{links} links to history lines");
    assert_eq!(
        attr("data-broken-links"),
        "0",
        "links without a visible row"
    );
    let width: u64 = attr("data-timeline-width").parse().unwrap();
    assert!(width > 1000, "the timeline is {width} px wide");
    for line in &lines {
        assert!(dom.contains(&format!("id=\"line-{line}\"")), "row {line}");
    }

    let shot = dir.join("report.png");
    browse(
        &page,
        &[format!("--screenshot={}", shot.display()), window],
        &dir.join("profile-shot"),
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1400, 1000), "the window's size");
    // A blank or unstyled page compresses to a few kilobytes.
    assert!(png.len() > 40_000, "screenshot of {} bytes", png.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A power loss of every broker: each broker's lane is shaded as powered off, carries a
/// mark for the page cache it lost (with each partition's old and new log end in its
/// tooltip) and one for what recovery cut off on restart.
#[test]
fn disk_faults_and_recoveries_are_on_the_broker_lanes() {
    let dir = tmp("disk");
    let scenario = Scenario::load(&root().join("scenarios/power-loss-all-default-flush.json"))
        .expect("the scenario loads");
    let (report, out) = runner::run_seed(&scenario, 0, &[]);
    let (out, _) = out.expect("the seed ran without a panic");
    let json = runner::write_report(&dir, &report, Some((&out.history, &out.snapshot)))
        .expect("report written");
    let html = std::fs::read_to_string(json.with_file_name(runner::HTML_REPORT)).unwrap();
    let count = |needle: &str| html.matches(needle).count();
    assert_eq!(
        count("<rect class=\"shade power-loss\""),
        3,
        "one shaded lane per broker"
    );
    assert_eq!(count("<path class=\"disk\""), 3, "one loss mark per broker");
    assert!(
        count("<rect class=\"recov\"") >= 1,
        "recovery cut a torn write"
    );
    assert!(html.contains("power loss took the page cache at 40.000 s"));
    assert!(
        html.contains("orders-0: log end "),
        "the tooltip names each partition"
    );
}
