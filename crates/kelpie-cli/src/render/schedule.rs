//! How a scheduled app (`cron_restart`) is shown: when it runs next (or that a user's stop
//! paused its schedule), how its last run ended, and how many runs in a row failed. Used by
//! `list`'s `schedule` column and `describe`'s schedule rows.

use super::format::{short_duration, utc};
use kelpie_core::{Cause, ExitRecord};
use kelpie_proto::ProcessInfo;

/// `list`'s column: `in 42s · last ok`, `in 5m · last exit 2 (3 failed)`, `paused · last ok`;
/// `None` for an app without a schedule.
pub(super) fn column(p: &ProcessInfo, now_ms: u64) -> Option<String> {
    p.spec.cron_restart.as_ref()?;
    let state = &p.state;
    let next = match (state.stopped_by_user, state.next_run_ms) {
        (true, _) => "paused".to_string(),
        (false, Some(at)) => format!("in {}", short_duration(at.saturating_sub(now_ms))),
        (false, None) => "never".to_string(),
    };
    let last = match state.exits.back() {
        Some(exit) if ended_well(exit) => "last ok".to_string(),
        Some(exit) => format!("last {}", outcome(exit)),
        None => return Some(next),
    };
    let failed = match state.failed_runs {
        0 | 1 => String::new(),
        n => format!(" ({n} failed)"),
    };
    Some(format!("{next} · {last}{failed}"))
}

/// `describe`'s rows for a scheduled app: next run, last run, failed runs in a row.
pub(super) fn rows(p: &ProcessInfo) -> Vec<(&'static str, String)> {
    if p.spec.cron_restart.is_none() {
        return Vec::new();
    }
    let state = &p.state;
    let next = match (state.stopped_by_user, state.next_run_ms) {
        (true, _) => "paused: stopped by a user (`start` or `restart` resumes it)".to_string(),
        (false, Some(at)) => utc(at),
        (false, None) => "never (the schedule matches no future time)".to_string(),
    };
    let last = state.exits.back().map_or_else(
        || "-".to_string(),
        |exit| {
            format!(
                "{} after {}, ended {}",
                outcome(exit),
                run_time(exit.uptime_ms),
                utc(exit.at_ms)
            )
        },
    );
    let failed = match state.failed_runs {
        0 => "0".to_string(),
        n => format!("{n} (the last {n} runs failed)"),
    };
    vec![
        ("next run", next),
        ("last run", last),
        ("failed runs in a row", failed),
    ]
}

/// How a run ended, in a few words: `exit 0`, `exit 2`, `SIGKILL`, `restarted by its schedule`.
pub(super) fn outcome(exit: &ExitRecord) -> String {
    match (exit.cause, exit.code, exit.signal.as_deref()) {
        (Cause::Spawn, ..) => "could not start".into(),
        (Cause::Cron, ..) => "still running at the next tick, restarted".into(),
        (Cause::User, ..) => "stopped by a user".into(),
        (_, _, Some(signal)) => signal.to_string(),
        (_, Some(code), None) => format!("exit {code}"),
        (_, None, None) => "ended".into(),
    }
}

/// A run ended on its own with code 0.
fn ended_well(exit: &ExitRecord) -> bool {
    exit.cause == Cause::Exit
}

/// A run's length, to the tenth of a second below a minute.
fn run_time(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        short_duration(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_core::{AppSpec, InstanceState};

    fn job(state: InstanceState) -> ProcessInfo {
        ProcessInfo {
            pm_id: 0,
            instance: 0,
            spec: AppSpec {
                name: "backup".into(),
                cron_restart: Some("0 3 * * *".into()),
                autorestart: false,
                ..AppSpec::default()
            },
            state,
            memory: 0,
            cpu: 0.0,
            uptime_ms: 0,
            out_log: String::new(),
            err_log: String::new(),
            username: String::new(),
            log_files: Vec::new(),
            status_text: None,
            metrics: Default::default(),
            sdk: Default::default(),
            counters: None,
        }
    }

    fn exit(code: i32, cause: Cause) -> ExitRecord {
        ExitRecord {
            at_ms: 1_700_000_000_000,
            code: Some(code),
            uptime_ms: 1_300,
            cause,
            ..ExitRecord::default()
        }
    }

    #[test]
    fn the_column_says_when_and_how_the_last_run_went() {
        let mut state = InstanceState::default();
        state.next_run_ms = Some(1_000_042_000);
        assert_eq!(
            column(&job(state.clone()), 1_000_000_000).as_deref(),
            Some("in 42s")
        );
        state.exits.push_back(exit(0, Cause::Exit).into());
        assert_eq!(
            column(&job(state.clone()), 1_000_000_000).as_deref(),
            Some("in 42s · last ok")
        );
        state.exits.push_back(exit(2, Cause::Crash).into());
        state.failed_runs = 3;
        assert_eq!(
            column(&job(state.clone()), 1_000_000_000).as_deref(),
            Some("in 42s · last exit 2 (3 failed)")
        );
        state.stopped_by_user = true;
        assert_eq!(
            column(&job(state), 1_000_000_000).as_deref(),
            Some("paused · last exit 2 (3 failed)")
        );
        let mut unscheduled = job(InstanceState::default());
        unscheduled.spec.cron_restart = None;
        assert_eq!(column(&unscheduled, 0), None);
    }

    #[test]
    fn describe_gives_the_last_runs_code_length_and_time() {
        let mut state = InstanceState::default();
        state.next_run_ms = Some(1_700_000_060_000);
        state.exits.push_back(exit(2, Cause::Crash).into());
        state.failed_runs = 2;
        let rows = rows(&job(state));
        assert_eq!(rows[0], ("next run", "2023-11-14T22:14:20Z".to_string()));
        assert_eq!(
            rows[1],
            (
                "last run",
                "exit 2 after 1.3s, ended 2023-11-14T22:13:20Z".to_string()
            )
        );
        assert_eq!(
            rows[2],
            (
                "failed runs in a row",
                "2 (the last 2 runs failed)".to_string()
            )
        );
    }
}
