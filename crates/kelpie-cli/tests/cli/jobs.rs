//! Periodic jobs (`autorestart: false` with `cron_restart`, PM2's way to run a backup or a
//! report): the real daemon runs them at every tick of their schedule, on the real clock; a
//! user's stop pauses the schedule and a start resumes it; `list`, `describe`, `jlist` and
//! `events` show when a job runs next and how its runs ended. When runs happen, to the
//! millisecond, is the in-process tests' (paused clock): the instance's (every tick, a tick
//! during a run or a stop, a paused schedule over 600 ticks, a start running the job at once,
//! DST) and the supervisor's (a paused job brought back by `resurrect` runs at no tick).

use super::kelpie;
use kelpie_testkit::Kelpie;
use serde_json::Value;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// A job that appends the time it ran (ms since the epoch) to `runs.txt` and exits with `code`;
/// its ecosystem file, on a `*/2 * * * * *` schedule (every even second).
fn job(k: &Kelpie, code: i32) -> String {
    let runs = k.dir.path().join("runs.txt");
    k.write(
        "job.sh",
        &format!(
            "echo \"$(date +%s%3N)\" >> '{}'\necho ran\nexit {code}\n",
            runs.display()
        ),
    );
    k.write(
        "jobs.json",
        r#"{"apps": [{"name": "job", "script": "job.sh", "autorestart": false,
             "cron_restart": "*/2 * * * * *", "cron_timezone": "UTC"}]}"#,
    )
}

/// When each run started (ms since the epoch), oldest first.
fn runs(k: &Kelpie) -> Vec<u64> {
    std::fs::read_to_string(k.dir.path().join("runs.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn schedule(k: &Kelpie) -> Value {
    k.app("job")["pm2_env"]["schedule"].clone()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

#[test]
fn a_periodic_job_runs_at_every_tick_and_says_when_it_runs_next() {
    let k = kelpie();
    let file = job(&k, 0);
    k.ok(&["start", &file]);
    // Run at once, then by the schedule.
    let all = kelpie_testkit::wait_until("three runs by the schedule", 30 * SECS, || {
        let all = runs(&k);
        match all.len() >= 4 {
            true => Ok(all),
            false => Err(format!("runs {all:?}")),
        }
    });
    let scheduled = &all[1..];
    for at in scheduled {
        // Each started on an even second of the real clock (the shell writes its time down a
        // little later).
        assert!(
            at % 2_000 < 1_500,
            "not on an even second: {at} in {scheduled:?}"
        );
    }
    // Once at every tick: each run in the tick after the one before.
    let ticks: Vec<u64> = scheduled.iter().map(|at| at / 2_000).collect();
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "not one run per tick: {scheduled:?}"
    );
    k.wait_for("the job between runs", 10 * SECS, || {
        k.status("job") == "stopped"
    });
    let schedule = schedule(&k);
    let next = schedule["next_run_at"].as_u64().expect("next_run_at");
    assert!(
        next > now_ms() - 2_000 && next <= now_ms() + 2_100,
        "{schedule}"
    );
    assert_eq!(next % 2_000, 0, "an even second: {schedule}");
    assert_eq!(schedule["paused"], false);
    assert_eq!(schedule["failed_runs"], 0);
    assert_eq!(schedule["last_run"]["exit_code"], 0, "{schedule}");
    assert_eq!(schedule["last_run"]["cause"], "exit", "{schedule}");
    let list = k.ok(&["list"]);
    assert!(
        list.contains("schedule") && list.contains("last ok"),
        "{list}"
    );
    let describe = k.ok(&["describe", "job"]);
    for row in [
        "next run",
        "last run",
        "exit 0 after",
        "failed runs in a row",
    ] {
        assert!(describe.contains(row), "{row}\n{describe}");
    }
    // Each run's end is an event.
    let events = k.ok(&["events"]);
    assert!(
        events.matches("scheduled: exited with code 0").count() >= 3,
        "{events}"
    );
    k.ok(&["delete", "job"]);
}

#[test]
fn a_stop_pauses_the_schedule_and_a_start_resumes_it() {
    let k = kelpie();
    let file = job(&k, 0);
    k.ok(&["start", &file]);
    k.wait_for("two runs", 10 * SECS, || runs(&k).len() >= 2);
    k.ok(&["stop", "job"]);
    // Paused: no next run armed (that its ticks then start nothing is the instance's test).
    let paused = schedule(&k);
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["next_run_at"], Value::Null, "{paused}");
    assert!(k.ok(&["list"]).contains("paused"));
    let before = runs(&k).len();
    // Kept across save and resurrect: still paused, nothing armed (the supervisor's test: it
    // runs at no tick).
    k.ok(&["save"]);
    k.ok(&["delete", "job"]);
    k.ok(&["resurrect"]);
    let resurrected = schedule(&k);
    assert_eq!(resurrected["paused"], true, "{resurrected}");
    assert_eq!(resurrected["next_run_at"], Value::Null, "{resurrected}");
    // `start` runs it (at once: the instance's test) and resumes the schedule.
    k.ok(&["start", "job"]);
    k.wait_for(
        "a run at the start and two by the schedule",
        30 * SECS,
        || runs(&k).len() >= before + 3,
    );
    assert_eq!(schedule(&k)["paused"], false);
    k.ok(&["delete", "job"]);
}

#[test]
fn a_job_whose_runs_fail_shows_it_without_reading_logs() {
    let k = kelpie();
    let file = job(&k, 3);
    k.ok(&["start", &file]);
    k.wait_for("three failed runs", 30 * SECS, || {
        schedule(&k)["failed_runs"].as_u64() >= Some(3)
    });
    let schedule = schedule(&k);
    assert_eq!(schedule["last_run"]["exit_code"], 3, "{schedule}");
    assert_eq!(schedule["last_run"]["cause"], "crash", "{schedule}");
    let list = k.ok(&["list"]);
    assert!(list.contains("last exit 3 ("), "{list}");
    assert!(list.contains(" failed)"), "{list}");
    let describe = k.ok(&["describe", "job"]);
    assert!(describe.contains("runs failed)"), "{describe}");
    k.ok(&["delete", "job"]);
}
