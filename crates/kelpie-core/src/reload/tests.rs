use super::*;
use crate::instance::Cause;

fn spec() -> AppSpec {
    AppSpec {
        name: "app".into(),
        script: "/bin/true".into(),
        listen_timeout_ms: 3_000,
        ..AppSpec::default()
    }
}

/// Online as process 10, on a socket a new process can share.
fn serving() -> Serving {
    Serving {
        status: Status::Online,
        pid: Some(10),
        has_process: true,
        reloadable: true,
    }
}

fn why(cause: Cause, detail: &str) -> Why {
    Why {
        cause,
        detail: detail.into(),
        from_start: false,
    }
}

/// A reload under way, started by a user.
fn under_way() -> ReloadState {
    let mut reload = ReloadState::default();
    reload.ask(&spec(), serving(), None);
    assert!(reload.under_way());
    reload
}

#[test]
fn a_reload_asked_for_starts_a_candidate_only_where_one_can_share_the_port() {
    // listen_timeout is 3 s; a running new process is waited for 30 s.
    let start = ReloadPlan::StartCandidate {
        ready_within_ms: 30_000,
    };
    let table = [
        (serving(), start),
        (
            Serving {
                reloadable: false,
                ..serving()
            },
            ReloadPlan::Restart,
        ),
        (
            Serving {
                has_process: false,
                ..serving()
            },
            ReloadPlan::Restart,
        ),
    ];
    let not_online = [
        Status::Launching,
        Status::Stopping,
        Status::Stopped,
        Status::WaitingRestart,
        Status::Errored,
    ]
    .map(|status| {
        (
            Serving {
                status,
                ..serving()
            },
            ReloadPlan::Restart,
        )
    });
    for (serving, plan) in table.into_iter().chain(not_online) {
        let mut reload = ReloadState::default();
        let asked = reload.ask(&spec(), serving, None);
        assert_eq!(asked, plan, "{serving:?}");
        let started = matches!(plan, ReloadPlan::StartCandidate { .. });
        assert_eq!(reload.under_way(), started, "{serving:?}");
    }
}

#[test]
fn a_second_reload_is_refused_while_one_is_under_way() {
    let mut reload = under_way();
    assert_eq!(
        reload.ask(&spec(), serving(), None),
        ReloadPlan::Refuse("a reload of this instance is already in progress".into())
    );
    assert!(reload.under_way(), "the first goes on");
}

#[test]
fn a_candidate_that_cannot_start_ends_the_reload_with_its_error() {
    let mut reload = under_way();
    assert_eq!(
        reload.launch_failed("fake: not found"),
        "the new process could not start: fake: not found"
    );
    assert!(!reload.under_way());
    assert_eq!(
        reload.ask(&spec(), serving(), None),
        ReloadPlan::StartCandidate {
            ready_within_ms: 30_000
        },
        "another may be asked for"
    );
}

#[test]
fn an_automatic_restart_is_a_reload_only_of_an_online_app_that_can_reload_and_asks_to() {
    let cron = why(Cause::Cron, "cron_restart `0 * * * *` (UTC)");
    let reload = AutoRestartPlan::Reload(cron.clone());
    let restart = AutoRestartPlan::Restart(cron.clone());
    let launching = Serving {
        status: Status::Launching,
        ..serving()
    };
    let cannot = Serving {
        reloadable: false,
        ..serving()
    };
    // (what runs, reload asked for, of which pid) -> plan
    let table = [
        (serving(), true, None, reload.clone()),
        (serving(), true, Some(10), reload),
        (serving(), false, None, restart.clone()),
        (cannot, true, None, restart.clone()),
        (launching, true, None, restart.clone()),
        (launching, false, Some(10), restart),
        // Another process than the one it was meant for.
        (serving(), true, Some(9), AutoRestartPlan::Ignore),
    ];
    for (serving, asks_reload, of_pid, plan) in table {
        let mut state = ReloadState::default();
        let planned = state.auto_restart(serving, cron.clone(), asks_reload, of_pid);
        assert_eq!(
            planned, plan,
            "{serving:?} reload {asks_reload} of {of_pid:?}"
        );
        assert!(!state.under_way(), "deciding starts nothing");
    }
}

#[test]
fn an_automatic_restart_is_ignored_when_nothing_runs() {
    for status in [
        Status::Stopping,
        Status::Stopped,
        Status::WaitingRestart,
        Status::Errored,
    ] {
        let serving = Serving {
            status,
            pid: None,
            ..serving()
        };
        let mut state = ReloadState::default();
        let plan = state.auto_restart(serving, why(Cause::Memory, "rss"), true, None);
        assert_eq!(plan, AutoRestartPlan::Ignore, "{status:?}");
    }
}

#[test]
fn an_automatic_restart_during_a_reload_waits_for_its_end() {
    let mut reload = under_way();
    let late = why(Cause::Watchdog, "no WATCHDOG=1 within watchdog (1 s)");
    assert_eq!(
        reload.auto_restart(serving(), late, true, None),
        AutoRestartPlan::Defer
    );
    // Ignored as ever when it was meant for another process: nothing deferred.
    let mut other = under_way();
    let plan = other.auto_restart(serving(), why(Cause::Cpu, "cpu"), true, Some(9));
    assert_eq!(plan, AutoRestartPlan::Ignore);
    let abandoned = other.give_up(&spec(), GiveUp::Late, Some(10));
    assert_eq!(abandoned.map(|a| a.restart), Some(None));
}

#[test]
fn a_restart_deferred_during_a_reload_goes_with_the_old_process_when_the_reload_succeeds() {
    let mut reload = under_way();
    let late = why(Cause::Watchdog, "silent");
    reload.auto_restart(serving(), late, false, None);
    assert_eq!(
        reload.promoted(11),
        Some(Input::Replaced { pid: 11, why: None })
    );
    assert!(!reload.under_way());
    // Nothing is left over for the next reload.
    reload.ask(&spec(), serving(), None);
    let abandoned = reload.give_up(&spec(), GiveUp::Late, Some(11));
    assert_eq!(abandoned.map(|a| a.restart), Some(None));
}

#[test]
fn a_restart_deferred_during_a_reload_is_carried_out_on_the_old_process_when_it_fails() {
    let mut reload = under_way();
    let first = why(Cause::Memory, "tree RSS 300 MB over 200 MB");
    let last = why(Cause::Watchdog, "silent");
    reload.auto_restart(serving(), first, true, None);
    reload.auto_restart(serving(), last.clone(), true, None);
    let abandoned = reload.give_up(&spec(), GiveUp::Late, Some(10));
    assert_eq!(
        abandoned.and_then(|a| a.restart),
        Some(last),
        "the last one asked for"
    );
    assert!(!reload.under_way());
}

#[test]
fn an_automatic_reload_records_its_cause_when_its_candidate_takes_over() {
    let mut reload = ReloadState::default();
    let cpu = why(Cause::Cpu, "CPU 180% over max_cpu 100% for 10 s");
    reload.ask(&spec(), serving(), Some(cpu.clone()));
    assert_eq!(
        reload.promoted(11),
        Some(Input::Replaced {
            pid: 11,
            why: Some(cpu)
        })
    );
    assert_eq!(reload.promoted(12), None, "no reload is under way any more");
}

#[test]
fn a_candidate_is_given_up_at_its_exit_its_deadline_or_a_command_and_says_why() {
    let table = [
        (
            GiveUp::Exited("exit code 1".into()),
            "the new process exited (exit code 1) before it was ready",
        ),
        (
            GiveUp::Late,
            "the new process was not ready within 30000 ms (listen_timeout is 3000 ms; a reload waits longer while its new process runs, since the old one serves meanwhile)",
        ),
        (
            GiveUp::Command(Lifecycle::Stop),
            "interrupted by a stop command",
        ),
        (
            GiveUp::Command(Lifecycle::Restart),
            "interrupted by a restart command",
        ),
        (
            GiveUp::Shutdown,
            "the app is being deleted or the daemon is stopping",
        ),
        (
            GiveUp::OldExited,
            "the running process exited during the reload",
        ),
    ];
    for (reason, why) in table {
        let mut reload = under_way();
        let abandoned = reload.give_up(&spec(), reason.clone(), Some(10));
        assert_eq!(
            abandoned,
            Some(Abandoned {
                why: why.into(),
                answer: format!("{why}; it was stopped and the old process (pid 10) keeps running"),
                restart: None,
            }),
            "{reason:?}"
        );
        assert!(!reload.under_way());
    }
}

#[test]
fn nothing_is_given_up_without_a_reload_and_an_old_process_without_a_pid_is_said_so() {
    let mut reload = ReloadState::default();
    assert_eq!(reload.give_up(&spec(), GiveUp::Late, Some(10)), None);
    let mut reload = under_way();
    let answer = reload
        .give_up(&spec(), GiveUp::OldExited, None)
        .map(|a| a.answer);
    assert_eq!(
        answer.as_deref(),
        Some("the running process exited during the reload; it was stopped and the old process (pid -) keeps running")
    );
}

#[test]
fn a_failed_automatic_reload_becomes_a_restart_with_the_same_cause() {
    let health = why(
        Cause::Health,
        "health check failed 3 times in a row: HTTP 500",
    );
    assert_eq!(
        after_failed_reload(health, "the new process exited (exit code 1) before it was ready"),
        why(
            Cause::Health,
            "health check failed 3 times in a row: HTTP 500; the reload failed (the new process exited (exit code 1) before it was ready)"
        )
    );
}
