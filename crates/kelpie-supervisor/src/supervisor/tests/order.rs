//! `depends_on`: starts in order once the apps depended on are up, stops in reverse, gives up
//! (at 120 s, or at once on a dependency that will not come up), and yields to a user's stop.
//!
//! Each test runs under a clock paused from the runtime's start (as the instance's tests):
//! timers fire at exactly the milliseconds asked for.

use super::*;

/// db, counted as online only once it says READY=1 (its listen_timeout is ten minutes).
fn slow_db() -> AppSpec {
    AppSpec {
        listen_timeout_ms: 600_000,
        ..waits_ready(app("db"))
    }
}

/// Its health is probed every `interval_ms` (by the fake: it always answers).
fn health_checked(interval_ms: u64, spec: AppSpec) -> AppSpec {
    AppSpec {
        health_check: Some(kelpie_core::HealthCheck {
            interval_ms,
            ..kelpie_core::HealthCheck::default()
        }),
        ..spec
    }
}

fn failures(response: &Response) -> &[String] {
    match response {
        Response::Started { failures, .. } => failures,
        other => panic!("not a start's answer: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn depends_on_starts_an_app_once_its_dependency_is_up_and_stops_it_first() {
    // db says READY=1 after 500 ms; api (pid 2) ignores its stop signal.
    let fake = FakeProcesses::new(|n| match n {
        0 => ready_after(500),
        _ => stubborn(),
    });
    let daemon = Daemon::start(fake);
    let api = kill_timeout(1_000, depends_on("db", app("api")));
    // In the order the CLI sends them (kelpie-config puts dependencies first).
    let answer = daemon
        .request(start(vec![waits_ready(app("db")), api]))
        .await;
    assert_eq!(daemon.now_ms(), 500);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (500, Event::Started(FIRST_PID + 1))
        ]
    );
    let Response::Started { failures, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Online, Some(FIRST_PID)),
            (1, Status::Online, Some(FIRST_PID + 1)),
        ]
    );
    // Stopped in reverse order: db only once api is gone (killed at its kill_timeout).
    daemon.at(2_000).await;
    daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: vec![Target::All],
        }))
        .await;
    assert_eq!(daemon.now_ms(), 3_000);
    assert_eq!(
        since(daemon.events(), 2_000),
        [
            (2_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (3_000, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (3_000, Event::Ended(FIRST_PID + 1)),
            (3_000, Event::Signalled(FIRST_PID, SIGINT)),
            (3_000, Event::Ended(FIRST_PID)),
        ]
    );
    assert_eq!(
        daemon.on_disk(),
        [(0, Status::Stopped, None), (1, Status::Stopped, None)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_naming_an_app_before_its_dependency_still_starts_the_dependency_first() {
    // The first process started (db) says READY=1 after 500 ms.
    let fake = FakeProcesses::new(|n| match n {
        0 => ready_after(500),
        _ => Behaviour::default(),
    });
    let daemon = Daemon::start(fake);
    let answer = daemon
        .request(start(vec![
            depends_on("db", app("api")),
            waits_ready(app("db")),
        ]))
        .await;
    assert!(failures(&answer).is_empty(), "{answer:?}");
    assert_eq!(daemon.now_ms(), 500);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (500, Event::Started(FIRST_PID + 1))
        ]
    );
    // db was registered first, so it has the first id.
    let list = listed(&daemon.request(Request::List).await);
    assert_eq!(
        list,
        [
            (0, "db".to_string(), Status::Online, Some(FIRST_PID)),
            (1, "api".to_string(), Status::Online, Some(FIRST_PID + 1)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn depends_on_a_health_checked_app_waits_until_it_is_healthy() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let answer = daemon
        .request(start(vec![
            health_checked(700, app("db")),
            depends_on("db", app("api")),
        ]))
        .await;
    // db is online at once but healthy only at its first probe: api starts then.
    assert_eq!(daemon.now_ms(), 700);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (700, Event::Probed(FIRST_PID)),
            (700, Event::Started(FIRST_PID + 1)),
        ]
    );
    assert_eq!(
        listed(&answer),
        [
            (0, "db".into(), Status::Online, Some(FIRST_PID)),
            (1, "api".into(), Status::Online, Some(FIRST_PID + 1)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_is_stopped_or_errored_fails_the_starts_waiting_for_it() {
    // Every process crashes 10 ms after its start.
    let fake = FakeProcesses::new(|_| Behaviour {
        exits_after: Some((Duration::from_millis(10), 1)),
        ..Behaviour::default()
    });
    let daemon = Daemon::start(fake);
    // db is registered, not started: b, which needs it, and a, which needs b, fail at once.
    let db = AppSpec {
        autostart: false,
        ..app("db")
    };
    let answer = daemon
        .request(start(vec![
            db,
            depends_on("db", app("b")),
            depends_on("b", app("a")),
        ]))
        .await;
    assert_eq!(daemon.now_ms(), 0);
    assert_eq!(
        failures(&answer),
        [
            "app `b` was not started: `db` (id 0), which it depends on, is stopped",
            "app `a` was not started: `b` (id 1), which it depends on, is stopped",
        ]
    );
    assert!(daemon.events().is_empty(), "nothing was started");
    // A dependency that ends errored (never ready, crashing): the start says so once it has.
    let broken = AppSpec {
        max_restarts: 2,
        ..waits_ready(app("broken"))
    };
    let answer = daemon
        .request(start(vec![broken, depends_on("broken", app("user"))]))
        .await;
    assert_eq!(daemon.now_ms(), 20);
    assert_eq!(
        failures(&answer),
        ["app `user` was not started: `broken` (id 3), which it depends on, is errored"]
    );
    assert_eq!(
        starts_of(&daemon.events()),
        [(0, FIRST_PID), (10, FIRST_PID + 1)]
    );
    let list = daemon.request(Request::List).await;
    let statuses: Vec<(String, Status)> = listed(&list)
        .into_iter()
        .map(|(_, name, status, _)| (name, status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("db".into(), Status::Stopped),
            ("b".into(), Status::Stopped),
            ("a".into(), Status::Stopped),
            ("broken".into(), Status::Errored),
            ("user".into(), Status::Stopped),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_or_an_unknown_dependency_is_refused_and_adds_nothing() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("p")])).await;
    daemon.request(start(vec![depends_on("p", app("q"))])).await;
    let before = std::fs::read(daemon.home.state_file()).expect("state.json");
    let answer = daemon
        .request(Request::Start(kelpie_proto::StartRequest {
            apps: vec![depends_on("q", app("p"))],
            force: true,
            from_file: false,
        }))
        .await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::Conflict);
    assert_eq!(
        error.message,
        "depends_on has a cycle: p -> q -> p\nnothing was started"
    );
    // An app depending on one the daemon does not know, nor started with it.
    let answer = daemon
        .request(start(vec![depends_on("nobody", app("lonely"))]))
        .await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::Conflict);
    assert_eq!(
        error.message,
        "app `lonely` depends on `nobody`, which is neither started with it nor known to the daemon\nnothing was started"
    );
    assert_eq!(starts_of(&daemon.events()).len(), 2);
    let after = std::fs::read(daemon.home.state_file()).expect("state.json");
    assert_eq!(before, after);
}

#[tokio::test(start_paused = true)]
async fn a_start_waiting_for_its_dependencies_gives_up_at_120_s() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let _db = daemon.send(start(vec![slow_db()])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(start(vec![depends_on("db", app("api"))]))
        .await;
    assert_eq!(daemon.now_ms(), 121_000);
    let Response::Started { failures, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(
        failures,
        &["app `api` was not started: the apps it depends on were not up within 120 s"]
    );
    // api was never started; it is registered, stopped, on disk.
    assert_eq!(daemon.events(), [(0, Event::Started(FIRST_PID))]);
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Launching, Some(FIRST_PID)),
            (1, Status::Stopped, None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_users_stop_cancels_a_start_still_waiting_for_its_dependencies() {
    // db says READY=1 at 10 s (well within its listen_timeout).
    let fake = FakeProcesses::new(|_| ready_after(10_000));
    let daemon = Daemon::start(fake);
    let _db = daemon.send(start(vec![slow_db()])).await;
    // Once db is launching (a start sent before would find it stopped, and fail at once).
    daemon.at(100).await;
    let api = daemon.send(start(vec![depends_on("db", app("api"))])).await;
    daemon.at(1_000).await;
    let stop = daemon
        .request(Request::Stop(kelpie_proto::Targets {
            targets: name("api"),
        }))
        .await;
    assert_eq!(daemon.now_ms(), 1_000, "nothing to wait for");
    assert_eq!(
        listed(&stop),
        [
            (0, "db".into(), Status::Launching, Some(FIRST_PID)),
            (1, "api".into(), Status::Stopped, None),
        ]
    );
    // db comes up: the start that waited has nothing left to do, and says nothing failed.
    let answer = answered(api).await;
    assert_eq!(daemon.now_ms(), 10_000);
    let Response::Started { failures, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert!(failures.is_empty(), "{failures:?}");
    daemon.at(20_000).await;
    assert_eq!(daemon.events(), [(0, Event::Started(FIRST_PID))]);
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Online, Some(FIRST_PID)),
            (1, Status::Stopped, None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_app_still_stopping_holds_back_the_app_it_depends_on() {
    // db (pid 1) stops at once; api (pid 2), which depends on it, only at its kill_timeout.
    let fake = FakeProcesses::new(|n| match n {
        0 => Behaviour::default(),
        _ => stubborn(),
    });
    let daemon = Daemon::start(fake);
    let api = kill_timeout(2_000, depends_on("db", app("api")));
    daemon.request(start(vec![app("db"), api])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Delete(kelpie_proto::Targets {
            targets: vec![Target::All],
        }))
        .await;
    // api left the table at once but its process was leaving until 3 s: db went only then.
    assert_eq!(daemon.now_ms(), 3_000);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (3_000, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (3_000, Event::Ended(FIRST_PID + 1)),
            (3_000, Event::Signalled(FIRST_PID, SIGINT)),
            (3_000, Event::Ended(FIRST_PID)),
        ]
    );
    assert!(listed(&answer).is_empty());
    assert!(daemon.state_on_disk().apps.is_empty());
}
