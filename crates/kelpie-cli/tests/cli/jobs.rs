//! Periodic jobs (`autorestart: false` with `cron_restart`, PM2's way to run a backup or a
//! report): the real daemon runs them at every tick of their schedule, on the real clock; a
//! user's stop pauses the schedule and a start resumes it; `list`, `describe`, `jlist` and
//! `events` show when a job runs next and how its runs ended. (Edge cases to the millisecond,
//! a tick during a run or a stop, DST, are the instance's in-process tests.)

use super::kelpie;
use kelpie_testkit::Kelpie;
use serde_json::Value;
use std::time::{Duration, Instant};

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
    k.wait_for("the first run", Duration::from_secs(5), || {
        !runs(&k).is_empty()
    });
    let first = runs(&k)[0];
    // 7.5 s after the first run: every even second in between started it again.
    std::thread::sleep(
        Duration::from_millis(7_500)
            .saturating_sub(Duration::from_millis(now_ms().saturating_sub(first))),
    );
    let scheduled: Vec<u64> = runs(&k).into_iter().skip(1).collect();
    assert!(
        (3..=4).contains(&scheduled.len()),
        "runs by the schedule within 7.5 s: {scheduled:?} (first at {first})"
    );
    for at in &scheduled {
        // Each started on an even second (the shell writes its time down a little later).
        assert!(
            at % 2_000 < 1_500,
            "not on an even second: {at} in {scheduled:?}"
        );
    }
    k.wait_for("the job between runs", Duration::from_secs(5), || {
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
    k.wait_for("two runs", Duration::from_secs(6), || runs(&k).len() >= 2);
    k.ok(&["stop", "job"]);
    let paused = schedule(&k);
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["next_run_at"], Value::Null, "{paused}");
    assert!(k.ok(&["list"]).contains("paused"));
    let before = runs(&k).len();
    std::thread::sleep(Duration::from_millis(4_500));
    assert_eq!(runs(&k).len(), before, "a stopped job ran: {:?}", runs(&k));
    // Kept across save and resurrect: still paused.
    k.ok(&["save"]);
    k.ok(&["delete", "job"]);
    k.ok(&["resurrect"]);
    assert_eq!(schedule(&k)["paused"], true);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(runs(&k).len(), before, "a resurrected paused job ran");
    // `start` runs it at once and resumes the schedule.
    k.ok(&["start", "job"]);
    let started = Instant::now();
    k.wait_for("two runs after start", Duration::from_secs(6), || {
        runs(&k).len() >= before + 3
    });
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(schedule(&k)["paused"], false);
    k.ok(&["delete", "job"]);
}

#[test]
fn a_job_whose_runs_fail_shows_it_without_reading_logs() {
    let k = kelpie();
    let file = job(&k, 3);
    k.ok(&["start", &file]);
    k.wait_for("three failed runs", Duration::from_secs(10), || {
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
