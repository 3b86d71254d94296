//! Automatic restarts: resource limits, schedules, watched files, health checks, the watchdog,
//! and start order. Each trigger is checked with real processes, and each restart must say why.

use super::kelpie;
use kelpie_testkit::{alive, Kelpie};
use std::path::Path;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// `(pid, unix time in ns)` lines written by `fake-app --stamp`.
fn stamps(path: &Path) -> Vec<(u32, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (pid, ns) = line.split_once(' ')?;
            Some((pid.parse().ok()?, ns.parse().ok()?))
        })
        .collect()
}

/// The causes of the app's recorded exits, oldest first (from `describe --json`-less output:
/// the jlist's exit history).
fn causes(k: &Kelpie, name: &str) -> Vec<String> {
    k.app(name)["pm2_env"]["exits"]
        .as_array()
        .map(|exits| {
            exits
                .iter()
                .filter_map(|e| e["cause"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_child_over_the_memory_limit_restarts_the_app_within_two_seconds() {
    let k = kelpie();
    let stamp = k.home().join("stamps");
    let children = k.home().join("children");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "fat",
        "--max-memory-restart",
        "60M",
        "--",
        "--stamp",
        stamp.to_str().expect("utf-8"),
        "--spawn-children",
        "1",
        "--children-file",
        children.to_str().expect("utf-8"),
        "--child-allocate",
        "100",
        "--allocate-after",
        "1000",
    ]);
    let first = k.pid("fat");
    let child = k.children(&children, 1)[0];
    k.wait_for("a restart", 6 * SECS, || stamps(&stamp).len() >= 2);
    let lines = stamps(&stamp);
    let (started, restarted) = (lines[0].1, lines[1].1);
    // The child crosses the limit about 1 s after the app started.
    let after_crossing_ms = (restarted - started) / 1_000_000 - 1000;
    assert!(
        after_crossing_ms < 2000,
        "restarted {after_crossing_ms} ms after crossing the limit"
    );
    assert_ne!(lines[1].0, first);
    k.wait_for("the old child gone", 3 * SECS, || !alive(child));
    assert_eq!(
        causes(&k, "fat").first().map(String::as_str),
        Some("memory")
    );
    let describe = k.ok(&["describe", "fat"]);
    assert!(
        describe.contains("memory") && describe.contains("over max_memory_restart 60.0 MB"),
        "{describe}"
    );
}

#[test]
fn sustained_cpu_over_max_cpu_restarts_the_app() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "hot",
        "--max-cpu",
        "50",
        "--max-cpu-window",
        "1500",
        "--",
        "--burn",
    ]);
    let first = k.pid("hot");
    k.wait_for("a restart for cpu", 8 * SECS, || k.pid("hot") != first);
    assert_eq!(causes(&k, "hot").first().map(String::as_str), Some("cpu"));
}

#[test]
fn an_app_whose_watchdog_goes_silent_is_restarted() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "dog",
        "--watchdog",
        "1",
        "--",
        "--watchdog",
        "200",
        "--hang-after",
        "1000",
    ]);
    let first = k.pid("dog");
    // It pings for a second (no restart meanwhile), then hangs: restarted about 1 s later.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(k.pid("dog"), first, "restarted while it was still pinging");
    k.wait_for("a restart for the watchdog", 5 * SECS, || {
        let pid = k.pid("dog");
        pid != 0 && pid != first
    });
    assert_eq!(
        causes(&k, "dog").first().map(String::as_str),
        Some("watchdog")
    );
}

#[test]
fn an_app_that_never_pings_is_not_watched() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "quiet", "--watchdog", "1"]);
    let first = k.pid("quiet");
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(k.pid("quiet"), first);
}
