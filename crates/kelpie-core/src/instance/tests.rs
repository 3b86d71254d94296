use super::*;
use crate::HealthCheck;

fn at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms,
    }
}

fn spec() -> AppSpec {
    AppSpec {
        name: "app".into(),
        script: "/bin/true".into(),
        ..AppSpec::default()
    }
}

/// Drives an instance through inputs at given times and collects every effect.
struct Run {
    spec: AppSpec,
    state: InstanceState,
}

impl Run {
    fn new(spec: AppSpec) -> Self {
        Run {
            spec,
            state: InstanceState::new(at(0)),
        }
    }
    fn feed(&mut self, t: u64, input: Input) -> Vec<Effect> {
        self.state.handle(&self.spec, input, at(t))
    }
    fn online(&mut self, t: u64, pid: u32) {
        assert_eq!(
            self.feed(t, Input::Lifecycle(Lifecycle::Start)),
            vec![Effect::Spawn]
        );
        self.feed(t, Input::Spawned { pid });
        assert_eq!(self.state.status, Status::Online);
    }
    fn crash(&mut self, t: u64, code: i32) -> Vec<Effect> {
        self.feed(
            t,
            Input::Exited {
                code: Some(code),
                signal: None,
            },
        )
    }
}

#[test]
fn a_crash_is_restarted_at_once_and_counted() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    let effects = run.crash(5_000, 1);
    assert_eq!(effects, vec![Effect::KillGroup, Effect::Spawn]);
    assert_eq!(run.state.status, Status::Launching);
    assert_eq!(
        run.state.restart_time, 0,
        "counted once the new process exists"
    );
    run.feed(5_000, Input::Spawned { pid: 11 });
    assert_eq!(run.state.restart_time, 1);
    assert_eq!(run.state.unstable_restarts, 0, "a 5 s run is stable");
    let exit = run.state.exits.back().expect("exit recorded");
    assert_eq!(
        (exit.code, exit.uptime_ms, exit.action.as_str()),
        (Some(1), 5_000, "restart")
    );
}

#[test]
fn short_runs_in_a_row_end_in_errored_after_max_restarts() {
    let mut run = Run::new(AppSpec {
        max_restarts: 3,
        ..spec()
    });
    run.online(0, 10);
    let mut t = 100;
    // The first short run is restarted at once; from the second in a row, the crash loop
    // backs off (100 ms, then 1.5x: see `policy::crash_loop_delay`).
    assert_eq!(run.crash(t, 1), vec![Effect::KillGroup, Effect::Spawn]);
    run.feed(t, Input::Spawned { pid: 11 });
    t += 100;
    assert_eq!(
        run.crash(t, 1),
        vec![Effect::KillGroup, Effect::ArmTimer(100)]
    );
    assert_eq!(run.state.status, Status::WaitingRestart);
    t += 100;
    assert_eq!(run.feed(t, Input::TimerFired), vec![Effect::Spawn]);
    run.feed(t, Input::Spawned { pid: 12 });
    t += 100;
    assert_eq!(run.crash(t, 1), vec![Effect::KillGroup]);
    assert_eq!(run.state.status, Status::Errored);
    assert_eq!(run.state.restart_time, 2);
    assert!(run
        .state
        .exits
        .back()
        .expect("exit")
        .reason
        .contains("3 unstable restarts"));
}

#[test]
fn a_stable_run_resets_the_unstable_count() {
    let mut run = Run::new(AppSpec {
        max_restarts: 2,
        ..spec()
    });
    run.online(0, 10);
    run.crash(100, 1);
    run.feed(100, Input::Spawned { pid: 11 });
    assert_eq!(run.state.unstable_restarts, 1);
    run.crash(5_000, 1);
    assert_eq!(run.state.unstable_restarts, 0);
    run.feed(5_000, Input::Spawned { pid: 12 });
    assert_eq!(run.crash(5_100, 1), vec![Effect::KillGroup, Effect::Spawn]);
}

#[test]
fn max_restarts_zero_never_restarts() {
    let mut run = Run::new(AppSpec {
        max_restarts: 0,
        ..spec()
    });
    run.online(0, 10);
    assert_eq!(run.crash(60_000, 1), vec![Effect::KillGroup]);
    assert_eq!(run.state.status, Status::Errored);
}

#[test]
fn no_autorestart_and_stop_exit_codes_leave_the_app_stopped() {
    let cases = [
        (
            AppSpec {
                autorestart: false,
                ..spec()
            },
            1,
        ),
        (
            AppSpec {
                stop_exit_codes: vec![3],
                ..spec()
            },
            3,
        ),
    ];
    for (spec, code) in cases {
        let mut run = Run::new(spec);
        run.online(0, 10);
        assert_eq!(run.crash(5_000, code), vec![Effect::KillGroup]);
        assert_eq!(run.state.status, Status::Stopped);
        assert_eq!(run.state.restart_time, 0);
    }
}

#[test]
fn restart_delay_waits_then_spawns() {
    let mut run = Run::new(AppSpec {
        restart_delay_ms: 2_000,
        ..spec()
    });
    run.online(0, 10);
    assert_eq!(
        run.crash(5_000, 1),
        vec![Effect::KillGroup, Effect::ArmTimer(2_000)]
    );
    assert_eq!(run.state.status, Status::WaitingRestart);
    assert_eq!(run.feed(7_000, Input::TimerFired), vec![Effect::Spawn]);
    run.feed(7_000, Input::Spawned { pid: 11 });
    assert_eq!(run.state.restart_time, 1);
}

#[test]
fn a_restart_whose_spawn_fails_counts_no_restart() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    assert_eq!(run.crash(5_000, 1), vec![Effect::KillGroup, Effect::Spawn]);
    run.feed(
        5_000,
        Input::SpawnFailed {
            error: "fork: Resource temporarily unavailable".into(),
        },
    );
    assert_eq!(run.state.status, Status::Errored);
    assert_eq!(run.state.restart_time, 0, "nothing was started again");
    // A later start is no restart either, and the one after its crash counts one.
    run.feed(6_000, Input::Lifecycle(Lifecycle::Start));
    run.feed(6_000, Input::Spawned { pid: 11 });
    assert_eq!(run.state.restart_time, 0);
    run.crash(12_000, 1);
    run.feed(12_000, Input::Spawned { pid: 12 });
    assert_eq!(run.state.restart_time, 1);
}

#[test]
fn exponential_backoff_grows_and_resets_after_thirty_seconds_up() {
    let mut run = Run::new(AppSpec {
        exp_backoff_restart_delay_ms: Some(100),
        max_restarts: 100,
        ..spec()
    });
    run.online(0, 10);
    let mut delays = Vec::new();
    let mut t = 0;
    for _ in 0..4 {
        t += 10;
        let effects = run.crash(t, 1);
        let Some(Effect::ArmTimer(delay)) = effects.last().cloned() else {
            panic!("{effects:?}")
        };
        delays.push(delay);
        t += delay;
        run.feed(t, Input::TimerFired);
        run.feed(t, Input::Spawned { pid: 11 });
    }
    assert_eq!(delays, vec![100, 150, 225, 337]);
    // A run of more than 30 s starts the backoff again from its initial delay.
    t += 31_000;
    assert_eq!(run.crash(t, 1).last(), Some(&Effect::ArmTimer(100)));
}

#[test]
fn stop_signals_the_group_and_completes_when_the_group_is_gone() {
    let mut run = Run::new(AppSpec {
        kill_signal: "SIGTERM".into(),
        kill_timeout_ms: 500,
        ..spec()
    });
    run.online(0, 10);
    let effects = run.feed(1_000, Input::Lifecycle(Lifecycle::Stop));
    assert_eq!(
        effects,
        vec![Effect::SignalGroup("SIGTERM".into()), Effect::ArmTimer(500)]
    );
    assert_eq!(run.state.status, Status::Stopping);
    assert_eq!(
        run.feed(
            1_100,
            Input::Exited {
                code: None,
                signal: Some("SIGTERM".into())
            }
        ),
        vec![Effect::WatchGroup]
    );
    assert_eq!(run.state.status, Status::Stopping, "children may still run");
    assert_eq!(run.feed(1_500, Input::TimerFired), vec![Effect::KillGroup]);
    assert_eq!(run.feed(1_510, Input::GroupGone), vec![Effect::CancelTimer]);
    assert_eq!(run.state.status, Status::Stopped);
    assert_eq!(run.state.restart_time, 0, "a stop is not a restart");
}

#[test]
fn restart_stops_then_spawns_and_resets_unstable_counters() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.crash(100, 1);
    run.feed(100, Input::Spawned { pid: 11 });
    assert_eq!(run.state.unstable_restarts, 1);
    let effects = run.feed(2_000, Input::Lifecycle(Lifecycle::Restart));
    assert_eq!(
        effects,
        vec![Effect::SignalGroup("SIGINT".into()), Effect::ArmTimer(1600)]
    );
    assert_eq!(run.state.unstable_restarts, 0);
    run.feed(
        2_010,
        Input::Exited {
            code: Some(0),
            signal: None,
        },
    );
    assert_eq!(
        run.feed(2_020, Input::GroupGone),
        vec![Effect::CancelTimer, Effect::Spawn]
    );
    run.feed(2_020, Input::Spawned { pid: 13 });
    assert_eq!(run.state.restart_time, 2);
}

#[test]
fn stop_during_waiting_restart_cancels_the_restart() {
    let mut run = Run::new(AppSpec {
        restart_delay_ms: 1_000,
        ..spec()
    });
    run.online(0, 10);
    run.crash(5_000, 1);
    assert_eq!(
        run.feed(5_100, Input::Lifecycle(Lifecycle::Stop)),
        vec![Effect::CancelTimer]
    );
    assert_eq!(run.state.status, Status::Stopped);
    assert_eq!(run.feed(6_000, Input::TimerFired), Vec::<Effect>::new());
}

#[test]
fn a_failed_spawn_is_errored_with_the_reason() {
    let mut run = Run::new(spec());
    run.feed(0, Input::Lifecycle(Lifecycle::Start));
    run.feed(
        0,
        Input::SpawnFailed {
            error: "No such file or directory".into(),
        },
    );
    assert_eq!(run.state.status, Status::Errored);
    assert!(run
        .state
        .exits
        .back()
        .expect("exit")
        .reason
        .contains("No such file"));
    // Starting it again tries again.
    assert_eq!(
        run.feed(10, Input::Lifecycle(Lifecycle::Start)),
        vec![Effect::Spawn]
    );
}

#[test]
fn commands_on_settled_states_do_nothing() {
    let mut run = Run::new(spec());
    assert!(run.feed(0, Input::Lifecycle(Lifecycle::Stop)).is_empty());
    run.online(0, 10);
    assert!(run.feed(0, Input::Lifecycle(Lifecycle::Start)).is_empty());
    assert!(
        run.feed(0, Input::GroupGone).is_empty(),
        "a stray report changes nothing"
    );
}

#[test]
fn restored_state_is_stopped_and_keeps_counters() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.crash(5_000, 1);
    run.feed(5_000, Input::Spawned { pid: 11 });
    let json = serde_json::to_string(&run.state).expect("serialize");
    let restored: InstanceState = serde_json::from_str::<InstanceState>(&json)
        .expect("decode")
        .restored();
    assert_eq!(restored.status, Status::Stopped);
    assert_eq!(restored.pid, None);
    assert_eq!(restored.restart_time, 1);
    assert_eq!(restored.exits.len(), 1);
}

#[test]
fn a_restart_in_progress_wants_to_run_and_a_stop_does_not() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    assert!(run.state.wants_to_run());
    run.feed(10, Input::Lifecycle(Lifecycle::Restart));
    assert_eq!(run.state.status, Status::Stopping);
    assert!(run.state.wants_to_run());
    run.feed(20, Input::Lifecycle(Lifecycle::Stop));
    assert!(!run.state.wants_to_run());
}

#[test]
fn a_started_process_is_online_once_ready() {
    let mut run = Run::new(AppSpec {
        listen_timeout_ms: 3000,
        ..spec()
    });
    run.feed(0, Input::Lifecycle(Lifecycle::Start));
    assert_eq!(
        run.feed(10, Input::Started { pid: 7 }),
        vec![Effect::ArmTimer(3000)]
    );
    assert_eq!(run.state.status, Status::Launching);
    assert_eq!(run.state.pid, Some(7));
    assert!(run.state.wants_to_run());
    assert_eq!(run.feed(500, Input::Ready), vec![Effect::CancelTimer]);
    assert_eq!(run.state.status, Status::Online);
    assert_eq!(
        run.feed(600, Input::Ready),
        Vec::new(),
        "a second ready changes nothing"
    );
}

#[test]
fn not_ready_in_time_counts_as_online_with_a_note() {
    let mut run = Run::new(AppSpec {
        wait_ready: true,
        ..spec()
    });
    run.feed(0, Input::Lifecycle(Lifecycle::Start));
    run.feed(10, Input::Started { pid: 7 });
    assert_eq!(run.feed(3010, Input::TimerFired), Vec::new());
    assert_eq!(run.state.status, Status::Online);
    assert!(run
        .state
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("listen_timeout")));
}

#[test]
fn a_node_main_module_still_running_at_listen_timeout_is_online_without_a_note() {
    let mut run = Run::new(AppSpec {
        interpreter: Some("node".into()),
        ..spec()
    });
    run.feed(0, Input::Lifecycle(Lifecycle::Start));
    run.feed(10, Input::Started { pid: 7 });
    assert_eq!(run.feed(3010, Input::TimerFired), Vec::new());
    assert_eq!(run.state.status, Status::Online);
    assert_eq!(run.state.last_error, None);
}

#[test]
fn a_stop_while_waiting_for_ready_stops_the_process() {
    let mut run = Run::new(spec());
    run.feed(0, Input::Lifecycle(Lifecycle::Start));
    run.feed(10, Input::Started { pid: 7 });
    let effects = run.feed(20, Input::Lifecycle(Lifecycle::Stop));
    assert_eq!(
        effects,
        vec![Effect::SignalGroup("SIGINT".into()), Effect::ArmTimer(1600)]
    );
    // The kill_timeout timer must not be mistaken for the ready timeout.
    assert_eq!(run.feed(1620, Input::TimerFired), vec![Effect::KillGroup]);
    assert_eq!(run.state.status, Status::Stopping);
}

#[test]
fn a_reload_replaces_the_pid_and_counts_a_restart() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.state.unstable_restarts = 2;
    assert_eq!(
        run.feed(60_000, Input::Replaced { pid: 11, why: None }),
        Vec::new()
    );
    assert_eq!(run.state.status, Status::Online);
    assert_eq!(run.state.pid, Some(11));
    assert_eq!(run.state.restart_time, 1);
    assert_eq!(run.state.unstable_restarts, 0);
    let last = run.state.exits.back().expect("recorded");
    assert_eq!(last.action, "reload");
    assert_eq!(last.uptime_ms, 60_000);
    // The new process's uptime starts now.
    let effects = run.crash(60_500, 1);
    assert_eq!(effects, vec![Effect::KillGroup, Effect::Spawn]);
    assert_eq!(run.state.unstable_restarts, 1, "a 500 ms run is unstable");
}

fn why(cause: Cause, detail: &str) -> Why {
    Why {
        cause,
        detail: detail.into(),
        from_start: false,
    }
}

#[test]
fn an_automatic_restart_stops_then_starts_and_records_its_cause() {
    let mut run = Run::new(AppSpec {
        max_restarts: 3,
        ..spec()
    });
    run.online(0, 10);
    run.crash(100, 1);
    run.feed(100, Input::Spawned { pid: 11 });
    assert_eq!(run.state.unstable_restarts, 1);
    let created = run.state.created_at_ms;
    let effects = run.feed(
        5_000,
        Input::AutoRestart(why(Cause::Health, "health check failed 3 times in a row")),
    );
    assert_eq!(
        effects,
        vec![Effect::SignalGroup("SIGINT".into()), Effect::ArmTimer(1600)]
    );
    assert_eq!(run.state.status, Status::Stopping);
    assert_eq!(
        run.state.restart_time, 1,
        "counted once the new process starts"
    );
    assert_eq!(
        run.state.unstable_restarts, 1,
        "not a user's restart: counters kept"
    );
    assert_eq!(run.state.created_at_ms, created);
    run.feed(
        5_100,
        Input::Exited {
            code: None,
            signal: Some("SIGINT".into()),
        },
    );
    let exit = run.state.exits.back().expect("exit recorded");
    assert_eq!(
        (exit.cause, exit.reason.as_str(), exit.action.as_str()),
        (
            Cause::Health,
            "health check failed 3 times in a row",
            "restart"
        )
    );
    assert_eq!(
        run.feed(5_100, Input::GroupGone),
        vec![Effect::CancelTimer, Effect::Spawn]
    );
    run.feed(5_100, Input::Spawned { pid: 12 });
    assert_eq!(run.state.restart_time, 2);
}

#[test]
fn a_stop_during_an_automatic_restarts_stop_is_no_restart() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.feed(5_000, Input::AutoRestart(why(Cause::Memory, "over")));
    run.feed(5_010, Input::Lifecycle(Lifecycle::Stop));
    run.feed(
        5_020,
        Input::Exited {
            code: None,
            signal: Some("SIGINT".into()),
        },
    );
    run.feed(5_020, Input::GroupGone);
    assert_eq!(run.state.status, Status::Stopped);
    assert_eq!(run.state.restart_time, 0, "no process was started again");
}

#[test]
fn an_automatic_restart_of_an_instance_without_a_process_does_nothing() {
    let mut run = Run::new(spec());
    assert_eq!(
        run.feed(0, Input::AutoRestart(why(Cause::Cron, "cron"))),
        Vec::new()
    );
    assert_eq!(run.state.status, Status::Stopped);
    run.online(0, 10);
    run.feed(10, Input::Lifecycle(Lifecycle::Stop));
    assert_eq!(
        run.feed(20, Input::AutoRestart(why(Cause::Watch, "a.js changed"))),
        Vec::new(),
        "a stop in progress is not turned into a restart"
    );
}

#[test]
fn a_users_command_wins_over_an_automatic_restart_in_progress() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.feed(10, Input::AutoRestart(why(Cause::Health, "HTTP 500")));
    run.feed(20, Input::Lifecycle(Lifecycle::Stop));
    run.feed(
        30,
        Input::Exited {
            code: Some(0),
            signal: None,
        },
    );
    let exit = run.state.exits.back().expect("exit recorded");
    assert_eq!((exit.cause, exit.action.as_str()), (Cause::User, "stopped"));
    run.feed(30, Input::GroupGone);
    assert_eq!(run.state.status, Status::Stopped);
}

#[test]
fn exits_on_their_own_are_crashes_or_clean_exits() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.crash(5_000, 3);
    assert_eq!(run.state.exits.back().map(|e| e.cause), Some(Cause::Crash));
    run.feed(5_000, Input::Spawned { pid: 11 });
    run.crash(9_000, 0);
    assert_eq!(run.state.exits.back().map(|e| e.cause), Some(Cause::Exit));
}

#[test]
fn an_automatic_reload_records_its_cause() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.feed(
        1_000,
        Input::Replaced {
            pid: 11,
            why: Some(why(Cause::Cpu, "CPU 180% over max_cpu 100% for 10 s")),
        },
    );
    let exit = run.state.exits.back().expect("exit recorded");
    assert_eq!((exit.cause, exit.action.as_str()), (Cause::Cpu, "reload"));
    assert!(exit.reason.starts_with("CPU 180%"), "{}", exit.reason);
}

#[test]
fn health_starts_over_with_each_process_and_is_cleared_at_exit() {
    let mut run = Run::new(AppSpec {
        health_check: Some(HealthCheck::default()),
        ..spec()
    });
    run.online(0, 10);
    assert_eq!(run.state.health, Some(Health::Starting));
    run.state.health = Some(Health::Unhealthy);
    run.crash(5_000, 1);
    assert_eq!(run.state.health, None);
    run.feed(5_000, Input::Spawned { pid: 11 });
    assert_eq!(run.state.health, Some(Health::Starting));
    let mut plain = Run::new(spec());
    plain.online(0, 10);
    assert_eq!(plain.state.health, None);
}

#[test]
fn an_adopted_state_keeps_its_process_and_counts_uptime_from_its_real_start() {
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.crash(5_000, 1);
    run.feed(5_000, Input::Spawned { pid: 11 });
    // Persisted, then read by a daemon whose monotonic clock says 100 s and whose wall clock is
    // 60 s after the process started.
    let json = serde_json::to_string(&run.state).expect("serialize");
    let decoded: InstanceState = serde_json::from_str(&json).expect("decode");
    let now = Now {
        mono_ms: 100_000,
        wall_ms: 1_700_000_000_000 + 65_000,
    };
    let mut adopted = decoded.clone().adopted(now).expect("online with a pid");
    assert_eq!(
        (adopted.status, adopted.pid, adopted.restart_time),
        (Status::Online, Some(11), 1)
    );
    // It crashes at once: it had run 60 s, a stable run, so it is restarted without counting
    // as unstable.
    let later = Now {
        mono_ms: 100_000,
        wall_ms: now.wall_ms,
    };
    let effects = adopted.handle(
        &spec(),
        Input::Exited {
            code: Some(1),
            signal: None,
        },
        later,
    );
    assert_eq!(effects, vec![Effect::KillGroup, Effect::Spawn]);
    assert_eq!(adopted.exits.back().map(|e| e.uptime_ms), Some(60_000));
    assert_eq!(adopted.unstable_restarts, 0);
    // Only an online state with a process can be adopted.
    assert!(decoded.restored().adopted(now).is_none());
}

#[test]
fn forensics_are_added_to_the_record_of_the_process_that_ended() {
    use crate::forensics::{OomEvidence, OomKill};
    let mut run = Run::new(spec());
    run.online(0, 10);
    run.feed(
        5_000,
        Input::Exited {
            code: None,
            signal: Some("SIGKILL".into()),
        },
    );
    // Restarted at once: the new process runs while the old one's forensics come in.
    run.feed(5_001, Input::Spawned { pid: 11 });
    assert_eq!(run.state.exits.back().and_then(|e| e.pid), Some(10));
    let seen = OomEvidence {
        cgroup_kills: None,
        system_rose: Some(true),
    };
    assert!(run.state.record_oom(10, seen));
    assert!(run
        .state
        .record_stderr_tail(10, vec!["out of memory?".into()]));
    assert!(!run.state.record_stderr_tail(99, vec![]), "no such exit");
    let exit = run.state.exits.back().expect("recorded");
    assert_eq!(exit.oom, Some(OomKill::Likely));
    assert!(exit.reason.contains("OOM"), "{}", exit.reason);
    assert_eq!(exit.stderr_tail, ["out of memory?"]);

    // A stop's SIGKILL (kill_timeout) is Kelpie's, never the OOM killer's.
    run.feed(6_000, Input::Lifecycle(Lifecycle::Stop));
    run.feed(
        7_600,
        Input::Exited {
            code: None,
            signal: Some("SIGKILL".into()),
        },
    );
    assert!(run.state.record_oom(11, seen));
    assert_eq!(run.state.exits.back().and_then(|e| e.oom), None);

    let json = serde_json::to_value(run.state.exits.front().expect("first")).expect("json");
    assert_eq!(json["oom"], "likely");
    assert_eq!(json["pid"], 10);
    assert_eq!(json["stderr_tail"][0], "out of memory?");
}

fn job() -> AppSpec {
    AppSpec {
        autorestart: false,
        cron_restart: Some("0 * * * *".into()),
        ..spec()
    }
}

#[test]
fn a_periodic_job_that_ended_is_started_by_its_schedule() {
    let mut run = Run::new(job());
    run.online(0, 10);
    assert_eq!(run.crash(1_000, 0), vec![Effect::KillGroup]);
    assert_eq!(run.state.status, Status::Stopped);
    let exit = run.state.exits.back().expect("recorded");
    assert_eq!(exit.action, "scheduled");
    assert_eq!(exit.cause, Cause::Exit);
    assert!(
        exit.reason.contains("runs again on its schedule"),
        "{}",
        exit.reason
    );
    assert!(run.state.waits_for_schedule(&run.spec));
    assert_eq!(run.feed(60_000, Input::ScheduledStart), vec![Effect::Spawn]);
    assert_eq!(run.state.status, Status::Launching);
    run.feed(60_000, Input::Spawned { pid: 12 });
    assert_eq!(run.state.restart_time, 1);
    assert!(!run.state.waits_for_schedule(&run.spec));
}

#[test]
fn a_users_stop_pauses_the_schedule_until_start_or_restart() {
    let mut run = Run::new(job());
    run.online(0, 10);
    run.crash(1_000, 0);
    // Stopped by the user while it waited for its schedule: the schedule is paused.
    run.feed(2_000, Input::Lifecycle(Lifecycle::Stop));
    assert!(run.state.stopped_by_user);
    assert!(!run.state.waits_for_schedule(&run.spec));
    assert!(run.feed(60_000, Input::ScheduledStart).is_empty());
    assert_eq!(run.state.status, Status::Stopped);
    // `start` runs it and resumes the schedule.
    run.online(61_000, 11);
    assert!(!run.state.stopped_by_user);
    run.crash(62_000, 0);
    assert_eq!(
        run.feed(120_000, Input::ScheduledStart),
        vec![Effect::Spawn]
    );
    // A stop while it runs pauses it too; `restart` resumes it.
    run.feed(120_001, Input::Spawned { pid: 12 });
    run.feed(121_000, Input::Lifecycle(Lifecycle::Stop));
    run.feed(
        121_001,
        Input::Exited {
            code: None,
            signal: Some("SIGINT".into()),
        },
    );
    run.feed(121_002, Input::GroupGone);
    assert_eq!(run.state.status, Status::Stopped);
    assert!(run.feed(180_000, Input::ScheduledStart).is_empty());
    assert_eq!(
        run.feed(181_000, Input::Lifecycle(Lifecycle::Restart)),
        vec![Effect::Spawn]
    );
    assert!(!run.state.stopped_by_user);
}

#[test]
fn failed_runs_are_counted_in_a_row_and_a_good_run_clears_them() {
    let mut run = Run::new(job());
    run.online(0, 10);
    run.crash(1_000, 3);
    assert_eq!(run.state.failed_runs, 1);
    assert_eq!(run.state.exits.back().map(|e| e.cause), Some(Cause::Crash));
    run.feed(60_000, Input::ScheduledStart);
    run.feed(
        60_000,
        Input::SpawnFailed {
            error: "ENOENT".into(),
        },
    );
    assert_eq!(run.state.failed_runs, 2);
    assert_eq!(run.state.status, Status::Errored);
    // An errored job (here: it could not be spawned) is tried again at the next tick.
    assert_eq!(
        run.feed(120_000, Input::ScheduledStart),
        vec![Effect::Spawn]
    );
    run.feed(120_000, Input::Spawned { pid: 11 });
    run.crash(121_000, 0);
    assert_eq!(run.state.failed_runs, 0);
}

#[test]
fn a_scheduled_start_is_ignored_while_a_process_runs_or_a_restart_waits() {
    let mut run = Run::new(AppSpec {
        restart_delay_ms: 5_000,
        cron_restart: Some("* * * * *".into()),
        ..spec()
    });
    run.online(0, 10);
    assert!(run.feed(1_000, Input::ScheduledStart).is_empty());
    assert_eq!(run.state.status, Status::Online);
    run.crash(2_000, 1);
    assert_eq!(run.state.status, Status::WaitingRestart);
    assert!(run.feed(3_000, Input::ScheduledStart).is_empty());
    assert_eq!(run.state.status, Status::WaitingRestart);
}

#[test]
fn the_new_fields_stay_out_of_the_state_file_until_they_mean_something() {
    let state = InstanceState::new(at(0));
    let json = serde_json::to_string(&state).expect("serialize");
    assert!(!json.contains("stopped_by_user"), "{json}");
    assert!(!json.contains("failed_runs"), "{json}");
    assert!(!json.contains("next_run_ms"), "{json}");
    // A state file written before these fields reads with their defaults.
    let old: InstanceState = serde_json::from_str(r#"{"status":"stopped"}"#).expect("old state");
    assert!(!old.stopped_by_user);
    assert_eq!(old.failed_runs, 0);
}

#[test]
fn a_memory_limit_hit_right_after_each_start_is_a_crash_loop_that_ends_errored() {
    let mut run = Run::new(AppSpec {
        max_restarts: 3,
        max_memory_restart: Some(1024),
        ..spec()
    });
    let over = || Why {
        cause: Cause::Memory,
        detail: "tree RSS 30.0 MB over max_memory_restart 1.0 KB".into(),
        from_start: true,
    };
    let mut t = 0;
    let mut pid = 10;
    run.online(t, pid);
    // Over the limit a second after each start: restarted, later and later, then given up.
    for round in 1..=3u32 {
        t += 1_000;
        run.feed(t, Input::AutoRestart(over()));
        run.feed(
            t,
            Input::Exited {
                code: None,
                signal: Some("SIGINT".into()),
            },
        );
        let effects = run.feed(t, Input::GroupGone);
        let exit = run.state.exits.back().expect("recorded").clone();
        assert!(
            exit.reason.contains("below the app's start-up memory")
                && exit.reason.contains("30.0 MB")
                && exit.reason.contains("1.0 KB"),
            "{}",
            exit.reason
        );
        if round < 3 {
            let delay = crate::policy::crash_loop_delay(round);
            if delay == 0 {
                assert_eq!(effects, vec![Effect::CancelTimer, Effect::Spawn]);
            } else {
                assert_eq!(effects, vec![Effect::CancelTimer, Effect::ArmTimer(delay)]);
                assert_eq!(run.state.status, Status::WaitingRestart);
                t += delay;
                run.feed(t, Input::TimerFired);
            }
            pid += 1;
            run.feed(t, Input::Spawned { pid });
            // One restart per process ended and started again, delayed or not.
            assert_eq!(run.state.restart_time, round, "round {round}");
        } else {
            assert_eq!(run.state.restart_time, 2, "giving up is no restart");
            assert_eq!(run.state.status, Status::Errored, "{:?}", run.state);
            assert_eq!(exit.action, "errored");
            assert!(exit.reason.contains("max_restarts is 3"), "{}", exit.reason);
        }
    }
    // A limit reached after a long run is an ordinary restart, not part of a loop.
    let mut run = Run::new(AppSpec {
        max_memory_restart: Some(1024),
        ..spec()
    });
    run.online(0, 10);
    run.feed(
        60_000,
        Input::AutoRestart(Why {
            from_start: false,
            ..over()
        }),
    );
    run.feed(
        60_000,
        Input::Exited {
            code: None,
            signal: Some("SIGINT".into()),
        },
    );
    assert_eq!(
        run.feed(60_000, Input::GroupGone),
        vec![Effect::CancelTimer, Effect::Spawn]
    );
    assert!(!run
        .state
        .exits
        .back()
        .expect("exit")
        .reason
        .contains("start-up memory"));
}

#[test]
fn a_leak_found_after_start_up_is_restarted_at_once_and_one_within_min_uptime_is_unstable() {
    let grew = || Why {
        cause: Cause::Memory,
        detail: "memory 160.0 MB (1 process) over max_memory_restart 150.0 MB".into(),
        from_start: false,
    };
    let stop = |run: &mut Run, t: u64| {
        run.feed(t, Input::AutoRestart(grew()));
        run.feed(
            t,
            Input::Exited {
                code: None,
                signal: Some("SIGINT".into()),
            },
        );
        run.feed(t, Input::GroupGone)
    };
    // Read under the limit, then over it 1.8 s after its start (min_uptime is 1 s): a leak.
    for round in 0..3u64 {
        let mut run = Run::new(AppSpec {
            max_memory_restart: Some(150 << 20),
            ..spec()
        });
        run.state.unstable_restarts = round as u32;
        run.online(0, 10);
        assert_eq!(
            stop(&mut run, 1_800),
            vec![Effect::CancelTimer, Effect::Spawn],
            "restarted at once"
        );
        assert_eq!(
            run.state.unstable_restarts, 0,
            "a stable run starts the count again"
        );
        let reason = &run.state.exits.back().expect("exit").reason;
        assert!(!reason.contains("start-up memory"), "{reason}");
    }
    // Over it 500 ms after its start, within min_uptime: an unstable run, as a crash then.
    let mut run = Run::new(AppSpec {
        max_memory_restart: Some(150 << 20),
        ..spec()
    });
    run.online(0, 10);
    stop(&mut run, 500);
    assert_eq!(run.state.unstable_restarts, 1);
    let reason = &run.state.exits.back().expect("exit").reason;
    assert!(reason.contains("within min_uptime"), "{reason}");
}
