//! Each request answered once its instances have settled and the state is on disk; one that
//! fails changes nothing; the daemon's end on SIGTERM and `kill`.
//!
//! Each test runs under a clock paused from the runtime's start (as the instance's tests):
//! timers fire at exactly the milliseconds asked for.

use super::*;

// Paused from the runtime's start, as the instance's tests: timers fire at exactly the
// milliseconds asked for.
#[tokio::test(start_paused = true)]
async fn start_is_answered_once_the_apps_are_online_and_the_state_is_on_disk() {
    let fake = FakeProcesses::new(|n| ready_after(if n == 0 { 300 } else { 700 }));
    let daemon = Daemon::start(fake);
    let answer = daemon
        .request(start(vec![
            waits_ready(app("api")),
            waits_ready(app("web")),
        ]))
        .await;
    // Both start at once; the answer waits for the slower one's READY=1.
    assert_eq!(daemon.now_ms(), 700);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (0, Event::Started(FIRST_PID + 1))
        ]
    );
    let online = [
        (0, Status::Online, Some(FIRST_PID)),
        (1, Status::Online, Some(FIRST_PID + 1)),
    ];
    assert_eq!(daemon.on_disk(), online);
    assert_eq!(
        listed(&answer),
        [
            (0, "api".into(), Status::Online, Some(FIRST_PID)),
            (1, "web".into(), Status::Online, Some(FIRST_PID + 1)),
        ]
    );
    // The monitor was told which processes to sample.
    let pids: Vec<u32> = daemon.monitor.targets().iter().map(|t| t.pid).collect();
    assert_eq!(pids, [FIRST_PID, FIRST_PID + 1]);
}

#[tokio::test(start_paused = true)]
async fn stop_is_answered_once_the_process_is_gone_and_the_state_is_on_disk() {
    let fake = FakeProcesses::new(|_| stubborn());
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![kill_timeout(2_000, app("api"))]))
        .await;
    assert_eq!(daemon.now_ms(), 0);
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: name("api"),
        }))
        .await;
    // Asked to stop at 1 s, killed at kill_timeout: only then answered, stopped on disk.
    assert_eq!(daemon.now_ms(), 3_000);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (3_000, Event::Signalled(FIRST_PID, SIGKILL)),
            (3_000, Event::Ended(FIRST_PID)),
        ]
    );
    assert_eq!(listed(&answer), [(0, "api".into(), Status::Stopped, None)]);
    assert_eq!(daemon.on_disk(), [(0, Status::Stopped, None)]);
    assert!(
        !daemon.state_on_disk().apps[0].run,
        "a stopped app is not run again"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_is_answered_once_the_new_process_is_online_and_on_disk() {
    let fake = FakeProcesses::new(|n| ready_after(if n == 0 { 0 } else { 400 }));
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![waits_ready(app("api"))])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Restart(kelpie_proto::RestartRequest {
            targets: name("api"),
            update_env: None,
        }))
        .await;
    assert_eq!(daemon.now_ms(), 1_400);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    assert_eq!(
        listed(&answer),
        [(0, "api".into(), Status::Online, Some(FIRST_PID + 1))]
    );
    let state = daemon.state_on_disk();
    assert_eq!(state.apps[0].state.pid, Some(FIRST_PID + 1));
    assert_eq!(state.apps[0].state.restart_time, 1);
}

#[tokio::test(start_paused = true)]
async fn delete_is_answered_once_the_process_is_gone_and_the_app_is_off_disk() {
    let fake = FakeProcesses::new(|_| stubborn());
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![kill_timeout(500, app("api")), app("web")]))
        .await;
    let answer = daemon
        .request(Request::Delete(kelpie_proto::Targets {
            targets: name("api"),
        }))
        .await;
    assert_eq!(daemon.now_ms(), 500);
    assert_eq!(
        listed(&answer),
        [(1, "web".into(), Status::Online, Some(FIRST_PID + 1))]
    );
    assert_eq!(daemon.on_disk(), [(1, Status::Online, Some(FIRST_PID + 1))]);
    // The last app deleted: numbering starts again from 0, on disk too.
    let answer = daemon
        .request(Request::Delete(kelpie_proto::Targets {
            targets: name("web"),
        }))
        .await;
    assert_eq!(
        daemon.now_ms(),
        2_100,
        "web's default kill_timeout is 1.6 s"
    );
    assert!(listed(&answer).is_empty());
    let state = daemon.state_on_disk();
    assert!(state.apps.is_empty());
    assert_eq!(state.next_id, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_fails_changes_nothing() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("api")])).await;
    let on_disk = std::fs::read(daemon.home.state_file()).expect("state.json");
    daemon.at(1_000).await;
    // One target matches nothing: the other is not stopped either.
    let answer = daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: vec![Target::Name("api".into()), Target::Name("nope".into())],
        }))
        .await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::NotFound);
    assert!(error.message.contains("nothing was changed"), "{error:?}");
    // One app of a start is running already: the other is not created.
    let answer = daemon.request(start(vec![app("db"), app("api")])).await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::Conflict);
    assert!(error.message.ends_with("nothing was started"), "{error:?}");
    daemon.at(2_000).await;
    assert_eq!(daemon.events(), [(0, Event::Started(FIRST_PID))]);
    let list = daemon.request(Request::List).await;
    assert_eq!(
        listed(&list),
        [(0, "api".into(), Status::Online, Some(FIRST_PID))]
    );
    let after = std::fs::read(daemon.home.state_file()).expect("state.json");
    assert_eq!(on_disk, after, "state.json was not written again");
}

#[tokio::test(start_paused = true)]
async fn scale_starts_new_instances_and_removes_the_oldest() {
    let fake = FakeProcesses::new(|_| ready_after(200));
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![waits_ready(app("web"))])).await;
    assert_eq!(daemon.now_ms(), 200);
    let answer = daemon
        .request(Request::Scale(kelpie_proto::ScaleRequest {
            name: "web".into(),
            count: kelpie_proto::ScaleCount::Up(2),
        }))
        .await;
    assert_eq!(daemon.now_ms(), 400);
    assert_eq!(
        starts_of(&daemon.events()),
        [(0, FIRST_PID), (200, FIRST_PID + 1), (200, FIRST_PID + 2)]
    );
    assert_eq!(
        listed(&answer),
        [
            (0, "web".into(), Status::Online, Some(FIRST_PID)),
            (1, "web".into(), Status::Online, Some(FIRST_PID + 1)),
            (2, "web".into(), Status::Online, Some(FIRST_PID + 2)),
        ]
    );
    let state = daemon.state_on_disk();
    let instances: Vec<(u32, u32)> = state.apps.iter().map(|a| (a.pm_id, a.instance)).collect();
    assert_eq!(instances, [(0, 0), (1, 1), (2, 2)]);
    assert!(state.apps.iter().all(|a| a.spec.instances == 3));
    // Down to one: the oldest two go.
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Scale(kelpie_proto::ScaleRequest {
            name: "web".into(),
            count: kelpie_proto::ScaleCount::To(1),
        }))
        .await;
    assert_eq!(daemon.now_ms(), 1_000);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (1_000, Event::Ended(FIRST_PID + 1)),
        ]
    );
    assert_eq!(
        listed(&answer),
        [(2, "web".into(), Status::Online, Some(FIRST_PID + 2))]
    );
    assert_eq!(daemon.on_disk(), [(2, Status::Online, Some(FIRST_PID + 2))]);
    assert_eq!(daemon.state_on_disk().apps[0].spec.instances, 1);
}

#[tokio::test(start_paused = true)]
async fn a_saved_list_comes_back_with_resurrect_running_what_ran() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let web = AppSpec {
        instances: 2,
        ..app("web")
    };
    daemon.request(start(vec![app("api"), web])).await;
    daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: name("api"),
        }))
        .await;
    let saved = daemon
        .request(Request::Save(kelpie_proto::SaveRequest { force: false }))
        .await;
    assert!(matches!(saved, Response::Done(_)), "{saved:?}");
    daemon
        .request(Request::Delete(kelpie_proto::Targets {
            targets: vec![Target::All],
        }))
        .await;
    assert!(daemon.state_on_disk().apps.is_empty());
    daemon.at(1_000).await;
    let answer = daemon.request(Request::Resurrect).await;
    assert_eq!(daemon.now_ms(), 1_000);
    // Numbered from 0 again; api was stopped when saved, so it stays so.
    assert_eq!(
        listed(&answer),
        [
            (0, "api".into(), Status::Stopped, None),
            (1, "web".into(), Status::Online, Some(FIRST_PID + 3)),
            (2, "web".into(), Status::Online, Some(FIRST_PID + 4)),
        ]
    );
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Stopped, None),
            (1, Status::Online, Some(FIRST_PID + 3)),
            (2, Status::Online, Some(FIRST_PID + 4)),
        ]
    );
    // Again: the apps are there, nothing is added.
    let again = daemon.request(Request::Resurrect).await;
    let Response::Started { notes, .. } = &again else {
        panic!("{again:?}")
    };
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(starts_of(&daemon.events()).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_job_stopped_when_saved_comes_back_paused_with_resurrect_and_runs_at_no_tick() {
    crate::clock::test_wall::set("2026-11-23T12:59:58Z".parse().expect("time"));
    // A job every second, each run 100 ms.
    let fake = FakeProcesses::new(|_| Behaviour {
        exits_after: Some((Duration::from_millis(100), 0)),
        ..Behaviour::default()
    });
    let daemon = Daemon::start(fake);
    let job = AppSpec {
        autorestart: false,
        cron_restart: Some("* * * * * *".into()),
        cron_timezone: Some("UTC".into()),
        ..app("job")
    };
    daemon.request(start(vec![job])).await;
    daemon.at(2_500).await;
    assert_eq!(
        starts_of(&daemon.events()).len(),
        3,
        "at 0, 1 000, 2 000 ms"
    );
    daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: name("job"),
        }))
        .await;
    daemon
        .request(Request::Save(kelpie_proto::SaveRequest { force: false }))
        .await;
    daemon
        .request(Request::Delete(kelpie_proto::Targets {
            targets: vec![Target::All],
        }))
        .await;
    let answer = daemon.request(Request::Resurrect).await;
    assert_eq!(listed(&answer), [(0, "job".into(), Status::Stopped, None)]);
    let resurrected = &daemon.state_on_disk().apps[0].state;
    assert!(resurrected.stopped_by_user, "{resurrected:?}");
    assert_eq!(resurrected.next_run_ms, None, "{resurrected:?}");
    // Ten minutes of ticks.
    daemon.at(602_500).await;
    assert_eq!(
        starts_of(&daemon.events()).len(),
        3,
        "a paused job ran after resurrect"
    );
}

#[tokio::test(start_paused = true)]
async fn kill_stops_every_app_forgets_them_and_ends_the_supervisor() {
    let fake = FakeProcesses::new(|_| stubborn());
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![app("api"), kill_timeout(700, app("web"))]))
        .await;
    daemon.at(1_000).await;
    let answer = daemon.request(Request::Kill).await;
    // Answered once both are gone (the last at web's kill_timeout), then the loop ends.
    assert_eq!(daemon.now_ms(), 2_600);
    assert!(matches!(answer, Response::Done(_)), "{answer:?}");
    let ended = daemon.run.await.expect("the supervisor's task");
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(daemon.fake.elapsed_ms(), 2_600);
    assert_eq!(
        since(daemon.fake.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (1_700, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (1_700, Event::Ended(FIRST_PID + 1)),
            (2_600, Event::Signalled(FIRST_PID, SIGKILL)),
            (2_600, Event::Ended(FIRST_PID)),
        ]
    );
    let bytes = std::fs::read(daemon.home.state_file()).expect("state.json");
    let state: StateFile = serde_json::from_slice(&bytes).expect("parses");
    assert!(state.apps.is_empty());
}

#[tokio::test(start_paused = true)]
async fn setting_an_apps_section_restarts_it_with_the_value_in_its_environment() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("api"), app("web")])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Conf(kelpie_proto::ConfRequest::Set {
            pairs: vec![("api:GREETING".into(), "hello".into())],
        }))
        .await;
    let Response::Conf { restarted, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(restarted, &[0]);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Started(FIRST_PID + 2)),
        ]
    );
    let state = daemon.state_on_disk();
    let env = &state.apps[0].spec.env;
    assert!(
        env.iter().any(|(k, v)| k == "GREETING" && v == "hello"),
        "{env:?}"
    );
    let conf = std::fs::read_to_string(daemon.home.conf_file()).expect("module_conf.json");
    assert!(conf.contains("GREETING"), "{conf}");
    // Started again from scratch, it gets its section from the store.
    daemon
        .request(Request::Delete(kelpie_proto::Targets {
            targets: name("api"),
        }))
        .await;
    daemon.request(start(vec![app("api")])).await;
    let state = daemon.state_on_disk();
    let api = state
        .apps
        .iter()
        .find(|a| a.spec.name == "api")
        .expect("api");
    // Each key, and the whole section as JSON under the app's name, as PM2 gives them.
    let expected = [("GREETING", "hello"), ("api", r#"{"GREETING":"hello"}"#)]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(api.spec.env, expected.into());
}

#[tokio::test(start_paused = true)]
async fn sigterm_stops_every_app_and_keeps_the_state_as_it_was() {
    let fake = FakeProcesses::new(|n| match n {
        0 => Behaviour::default(),
        _ => stubborn(),
    });
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![app("api"), kill_timeout(3_000, app("worker"))]))
        .await;
    let before = daemon.state_on_disk();
    daemon.at(1_000).await;
    assert!(daemon.signals.send(DaemonSignal::Term).is_ok());
    let ended = daemon.run.await.expect("the supervisor's task");
    assert!(ended.is_ok(), "{ended:?}");
    // Ends once the last process is gone (killed at worker's kill_timeout).
    assert_eq!(daemon.fake.elapsed_ms(), 4_000);
    assert_eq!(
        since(daemon.fake.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (4_000, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (4_000, Event::Ended(FIRST_PID + 1)),
        ]
    );
    // The next daemon starts both again.
    let bytes = std::fs::read(daemon.home.state_file()).expect("state.json");
    let after: StateFile = serde_json::from_slice(&bytes).expect("parses");
    let summary = |state: &StateFile| -> Vec<(u32, Status, Option<u32>, bool)> {
        state
            .apps
            .iter()
            .map(|a| (a.pm_id, a.state.status, a.state.pid, a.run))
            .collect()
    };
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(
        summary(&after),
        [
            (0, Status::Online, Some(FIRST_PID), true),
            (1, Status::Online, Some(FIRST_PID + 1), true),
        ]
    );
}
