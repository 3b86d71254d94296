//! Restart counts that are true: one restart per process ended and started again, whatever the
//! cause (a crash, the memory limit, the schedule, a watched file, a failing health check, a
//! reload), in `jlist`'s `restart_time`, `describe` and the list's ↺ column. Each app stamps
//! every process it starts (`fake-app --stamp`), so the count is checked against what ran.

use super::{free_port, kelpie};
use kelpie_testkit::Kelpie;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// Processes an app started: the `<pid> <ns>` lines of its stamp file (not the `allocated …`
/// ones).
fn started(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            words.len() == 2 && words.iter().all(|w| w.parse::<u128>().is_ok())
        })
        .count()
}

fn restart_time(k: &Kelpie, name: &str) -> u64 {
    k.app(name)["pm2_env"]["restart_time"]
        .as_u64()
        .expect("restart_time")
}

/// The ↺ column of the app's row in `kelpie list`.
fn list_restarts(list: &str, name: &str) -> String {
    let row = list
        .lines()
        .find(|line| {
            line.split('│')
                .nth(2)
                .is_some_and(|cell| cell.trim() == name)
        })
        .unwrap_or_else(|| panic!("no row for {name} in:\n{list}"));
    row.split('│')
        .nth(7)
        .expect("the ↺ cell")
        .trim()
        .to_string()
}

#[test]
fn every_cause_counts_one_restart_per_process_ended_and_started_again() {
    let k = kelpie();
    let stamp = |name: &str| -> PathBuf { k.home().join(format!("{name}.stamps")) };
    let arg = |path: PathBuf| path.to_str().expect("utf-8").to_string();
    let watched = tempfile::tempdir().expect("watched dir");
    let port = free_port();
    let health_port = free_port();
    let app = k.fake_app();
    let config = k.write(
        "apps.json",
        &serde_json::json!({"apps": [
            {"name": "crash", "script": app, "args": ["--exit-after", "300", "--exit-code", "1",
                "--stamp", arg(stamp("crash"))], "max_restarts": 1000},
            // Over its limit soon after each start (after stamping it: a process over it at
            // once, as under seed 003's 1K, may be stopped before it writes a line).
            {"name": "memory", "script": app, "args": ["--allocate", "64",
                "--allocate-after", "100", "--stamp", arg(stamp("memory"))],
                "max_memory_restart": "40M", "max_restarts": 1000},
            {"name": "cron", "script": app, "args": ["--stamp", arg(stamp("cron"))],
                "cron_restart": "* * * * * *", "cron_timezone": "UTC"},
            {"name": "watch", "script": app, "args": ["--stamp", arg(stamp("watch"))],
                "watch": [watched.path().to_str().expect("utf-8")], "watch_delay": 100},
            {"name": "health", "script": app, "args": ["--serve", "--fail-after", "1200",
                "--stamp", arg(stamp("health"))], "env": {"PORT": health_port.to_string()},
                "health_check": {"http": "/health", "interval": "200ms", "timeout": "500ms",
                    "failures": 2}},
            {"name": "reload", "script": app, "args": ["--serve", "--stamp", arg(stamp("reload"))],
                "port": port},
        ]})
        .to_string(),
    );
    k.ok(&["start", &config]);
    // Two reloads, three changes of a watched file (each after the last restart).
    // A process may stamp itself after `reload` returns: wait for the first process's stamp
    // before the first reload, and for each new process's before counting.
    k.wait_for("the first stamp", 5 * SECS, || {
        started(&stamp("reload")) >= 1
    });
    for round in 1..=2 {
        k.ok(&["reload", "reload"]);
        k.wait_for("the new process's stamp", 5 * SECS, || {
            started(&stamp("reload")) > round
        });
        assert_eq!(started(&stamp("reload")), round + 1);
    }
    for round in 1..=3 {
        std::fs::write(watched.path().join("app.js"), format!("v{round}")).expect("write");
        k.wait_for("the watch's restart", 10 * SECS, || {
            started(&stamp("watch")) > round
        });
    }
    // The loops run side by side for a while: the crash and memory loops back off alike.
    kelpie_testkit::wait_until("restarts of every cause", 60 * SECS, || {
        let counts: Vec<(&str, usize)> = ["crash", "memory", "cron", "health"]
            .iter()
            .map(|name| (*name, started(&stamp(name))))
            .collect();
        match counts.iter().all(|(_, n)| *n >= 4) {
            true => Ok(()),
            false => Err(format!("processes started so far: {counts:?}")),
        }
    });
    k.ok(&["stop", "all"]);
    let list = k.ok(&["list"]);
    for name in ["crash", "memory", "cron", "watch", "health", "reload"] {
        let processes = started(&stamp(name));
        let counted = restart_time(&k, name);
        assert_eq!(
            counted,
            processes as u64 - 1,
            "{name}: {processes} processes ran, restart_time says {counted} ({:?})",
            k.exits(name)
                .iter()
                .map(|e| format!("{}: {}", e["cause"], e["reason"]))
                .collect::<Vec<_>>()
        );
        assert_eq!(list_restarts(&list, name), counted.to_string(), "{name}");
        let describe = k.ok(&["describe", name]);
        assert!(
            describe
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["restarts", &counted.to_string()]),
            "{name}: {describe}"
        );
    }
}

/// A restart whose spawn fails started nothing again: it counts no restart. (The program
/// removes itself, then exits 1: the restart cannot exec it and the app ends errored.)
#[test]
fn a_restart_that_cannot_start_its_program_counts_none() {
    let k = kelpie();
    let program = k.write_script("vanishing", "#!/bin/sh\nsleep 0.5\nrm -- \"$0\"\nexit 1\n");
    k.ok(&[
        "start",
        &program,
        "--interpreter",
        "none",
        "--name",
        "vanishing",
    ]);
    k.wait_for("the failed restart", 10 * SECS, || {
        k.status("vanishing") == "errored"
    });
    let causes: Vec<String> = k
        .exits("vanishing")
        .iter()
        .map(|e| e["cause"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(causes, ["crash", "spawn"], "{:?}", k.exits("vanishing"));
    assert_eq!(restart_time(&k, "vanishing"), 0, "no process started again");
    assert_eq!(list_restarts(&k.ok(&["list"]), "vanishing"), "0");
}
