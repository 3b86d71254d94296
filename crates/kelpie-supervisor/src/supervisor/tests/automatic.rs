//! What the supervisor does without a command: the debounced write of a change, restarts on
//! the monitor's readings and on a watched app's changes.
//!
//! Each test runs under a clock paused from the runtime's start (as the instance's tests):
//! timers fire at exactly the milliseconds asked for.

use super::*;

use super::super::persistence::{write_wait, PERSIST_DEBOUNCE, PERSIST_LAZILY};

/// How long after a change it is written, in ms: `debounce`, or longer when the daemon's last
/// write was slow. That write's cost is measured on the real clock (an fsync on a loaded
/// machine can take tens of ms), so a test that assumed `debounce` alone would fail there.
fn written_after_ms(daemon: &Daemon, debounce: Duration) -> u64 {
    write_wait(debounce, daemon.persister.last_write()).as_millis() as u64
}

/// Wait until `state.json` satisfies `done`, without letting virtual time pass (the persister
/// thread is writing it: a real thread, on the real clock, on a machine that may be loaded).
async fn until_on_disk(daemon: &Daemon, what: &str, done: impl Fn(&StateFile) -> bool) {
    let at = daemon.now_ms();
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !done(&daemon.state_on_disk()) {
        assert!(
            std::time::Instant::now() < give_up,
            "never on disk: {what}; {:?}",
            daemon.on_disk()
        );
        // Lets the daemon's tasks run, never idle (so no virtual time passes).
        tokio::task::yield_now().await;
    }
    assert_eq!(daemon.now_ms(), at, "written later than {at} ms: {what}");
}

fn reading(pid: u32, memory_mb: u64, cpu_percent: f64) -> Reading {
    Reading {
        pm_id: 0,
        pid,
        usage: kelpie_core::limits::Usage {
            memory_bytes: memory_mb << 20,
            cpu_percent,
            processes: 1,
        },
        cpu_seconds: 0.0,
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_is_written_five_seconds_later() {
    // The first process crashes at 500 ms and is restarted at once; the second runs. A new
    // daemon would do nothing else with the instance (it runs): its new pid and counters wait.
    let fake = FakeProcesses::new(|n| Behaviour {
        exits_after: (n == 0).then_some((Duration::from_millis(500), 1)),
        ..Behaviour::default()
    });
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("api")])).await;
    daemon.at(599).await;
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (500, Event::Ended(FIRST_PID)),
            // What it may have left in its group.
            (500, Event::Signalled(FIRST_PID, SIGKILL)),
            (500, Event::Started(FIRST_PID + 1)),
        ]
    );
    assert_eq!(PERSIST_LAZILY, Duration::from_secs(5));
    let lazily = written_after_ms(&daemon, PERSIST_LAZILY);
    daemon.at(500 + lazily - 1).await;
    assert_eq!(daemon.on_disk(), [(0, Status::Online, Some(FIRST_PID))]);
    daemon.at(500 + lazily).await;
    until_on_disk(&daemon, "the restart", |state| {
        state.apps[0].state.pid == Some(FIRST_PID + 1)
    })
    .await;
    let state = daemon.state_on_disk();
    assert_eq!(state.apps[0].state.restart_time, 1);
    assert_eq!(
        state.apps[0].state.exits.back().map(|e| e.cause),
        Some(Cause::Crash)
    );
}

#[tokio::test(start_paused = true)]
async fn an_app_that_stops_running_by_itself_is_written_100_ms_later() {
    // Its process exits at 500 ms and is not restarted: a new daemon must not start it again.
    let fake = FakeProcesses::new(|_| Behaviour {
        exits_after: Some((Duration::from_millis(500), 0)),
        ..Behaviour::default()
    });
    let daemon = Daemon::start(fake);
    let api = AppSpec {
        autorestart: false,
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    daemon.at(599).await;
    assert_eq!(daemon.on_disk(), [(0, Status::Online, Some(FIRST_PID))]);
    // Written 100 ms after its group is seen empty (a few ms after the exit), not a second.
    assert_eq!(PERSIST_DEBOUNCE, Duration::from_millis(100));
    daemon
        .at(600 + written_after_ms(&daemon, PERSIST_DEBOUNCE))
        .await;
    until_on_disk(&daemon, "the app stopped", |state| {
        !state.apps[0].run && state.apps[0].state.status == Status::Stopped
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_reading_over_max_memory_restart_restarts_that_process() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let api = AppSpec {
        max_memory_restart: Some(100 << 20),
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    daemon.at(1_000).await;
    // Under the limit, then over it.
    let sent = daemon.readings.send(vec![reading(FIRST_PID, 90, 0.0)]);
    assert!(sent.is_ok());
    daemon.at(2_000).await;
    let sent = daemon.readings.send(vec![reading(FIRST_PID, 150, 0.0)]);
    assert!(sent.is_ok());
    daemon.at(3_000).await;
    // A late reading of the process that was replaced restarts nothing.
    let sent = daemon.readings.send(vec![reading(FIRST_PID, 150, 0.0)]);
    assert!(sent.is_ok());
    daemon.at(4_000).await;
    assert_eq!(
        since(daemon.events(), 1),
        [
            (2_000, Event::Signalled(FIRST_PID, SIGINT)),
            (2_000, Event::Ended(FIRST_PID)),
            (2_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    daemon
        .at(2_000 + written_after_ms(&daemon, PERSIST_LAZILY))
        .await;
    until_on_disk(&daemon, "the restart", |state| {
        !state.apps[0].state.exits.is_empty()
    })
    .await;
    let state = daemon.state_on_disk();
    let exit = state.apps[0].state.exits.back().expect("an exit");
    assert_eq!(exit.cause, Cause::Memory);
    assert_eq!(exit.pid, Some(FIRST_PID));
    assert!(
        exit.reason.contains("over max_memory_restart 100.0 MB"),
        "{exit:?}"
    );
    assert_eq!(state.apps[0].state.pid, Some(FIRST_PID + 1));
    // The list shows the last reading of the current process only.
    let list = daemon.request(Request::List).await;
    let Response::Processes(processes) = list else {
        panic!("{list:?}")
    };
    assert_eq!(processes[0].memory, 0);
}

#[tokio::test(start_paused = true)]
async fn cpu_over_max_cpu_for_its_window_restarts_the_process() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let api = AppSpec {
        max_cpu: Some(50),
        max_cpu_window_ms: 3_000,
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    for second in 1..=4 {
        daemon.at(second * 1_000).await;
        let sent = daemon.readings.send(vec![reading(FIRST_PID, 10, 80.0)]);
        assert!(sent.is_ok());
    }
    daemon.at(5_000).await;
    // Over since 1 s: the window is over at 4 s.
    assert_eq!(
        since(daemon.events(), 1),
        [
            (4_000, Event::Signalled(FIRST_PID, SIGINT)),
            (4_000, Event::Ended(FIRST_PID)),
            (4_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    // A restart is written lazily.
    daemon
        .at(4_000 + written_after_ms(&daemon, PERSIST_LAZILY))
        .await;
    until_on_disk(&daemon, "the restart", |state| {
        !state.apps[0].state.exits.is_empty()
    })
    .await;
    let state = daemon.state_on_disk();
    let exit = state.apps[0].state.exits.back().expect("an exit");
    assert_eq!(exit.cause, Cause::Cpu);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_restarts_a_watched_app_and_a_stop_ends_watching_until_restart_watch() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let watched = tempfile::tempdir().expect("watched directory");
    let path = watched.path().display().to_string();
    let api = AppSpec {
        watch: vec![path.clone()],
        cwd: path.clone(),
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    let burst = |changes| Command::FilesChanged {
        name: "api".into(),
        burst: crate::watch::WatchBurst {
            first_path: watched.path().join("index.js"),
            changes,
        },
    };
    daemon.at(1_000).await;
    assert!(daemon.commands.send(burst(3)).await.is_ok());
    daemon.at(2_000).await;
    assert_eq!(
        since(daemon.events(), 1),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    // Stopped, it is no longer watched: a burst does nothing.
    daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: name("api"),
        }))
        .await;
    // The stop's answer came once the state was on disk, with the restart's exit before the
    // stop's.
    let state = daemon.state_on_disk();
    let exits = &state.apps[0].state.exits;
    let exit = &exits[exits.len() - 2];
    assert_eq!(exit.cause, Cause::Watch);
    assert!(
        exit.reason.contains("index.js and 2 more changed"),
        "{exit:?}"
    );
    assert!(daemon.commands.send(burst(1)).await.is_ok());
    daemon.at(3_000).await;
    assert_eq!(starts_of(&daemon.events()).len(), 2);
    assert_eq!(daemon.on_disk(), [(0, Status::Stopped, None)]);
    // Started again (`kelpie start api` restarts it), it stays unwatched, as in PM2.
    let restart = || {
        Request::Restart(kelpie_proto::RestartRequest {
            targets: name("api"),
            update_env: None,
        })
    };
    daemon.request(restart()).await;
    assert!(daemon.state_on_disk().apps[0].spec.watch.is_empty());
    assert!(daemon.commands.send(burst(1)).await.is_ok());
    daemon.at(4_000).await;
    assert_eq!(starts_of(&daemon.events()).len(), 3);
    // `restart --watch` watches its directory again.
    let watch_again = Request::Change(kelpie_proto::ChangeRequest {
        targets: name("api"),
        changes: kelpie_proto::SpecChanges {
            toggle_watch: true,
            ..kelpie_proto::SpecChanges::default()
        },
    });
    daemon.request(watch_again).await;
    daemon.request(restart()).await;
    assert_eq!(daemon.state_on_disk().apps[0].spec.watch, [path]);
    daemon.at(5_000).await;
    assert!(daemon.commands.send(burst(1)).await.is_ok());
    daemon.at(6_000).await;
    assert_eq!(
        starts_of(&daemon.events()),
        [
            (0, FIRST_PID),
            (1_000, FIRST_PID + 1),
            (3_000, FIRST_PID + 2),
            (4_000, FIRST_PID + 3),
            (5_000, FIRST_PID + 4),
        ]
    );
}
