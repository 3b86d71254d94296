//! Crash forensics and what apps publish: `events`, the exits in `describe`/`jlist`, and
//! `STATUS=` / `X_KELPIE_METRIC=` sent on `NOTIFY_SOCKET`, with real processes.

use super::kelpie;
use serde_json::Value;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

fn events_json(k: &kelpie_testkit::Kelpie, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str::<Value>(&k.ok(&all))
        .expect("events --json is JSON")
        .as_array()
        .cloned()
        .expect("an array")
}

#[test]
fn a_crash_is_listed_with_its_code_and_last_lines_of_stderr() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "crasher",
        "--no-autorestart",
        "--",
        "--print-err",
        "30",
        "--err-line",
        "fatal: cannot open config.yaml",
        "--exit-after",
        "300",
        "--exit-code",
        "3",
    ]);
    let pid = k.pid("crasher");
    k.wait_for("the crash with its stderr", 10 * SECS, || {
        events_json(&k, &["crasher"])
            .first()
            .is_some_and(|e| e["stderr_tail"].as_array().is_some_and(|t| !t.is_empty()))
    });
    let events = events_json(&k, &["crasher"]);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["name"], "crasher");
    assert_eq!(event["pm_id"], 0);
    assert_eq!(event["pid"], pid);
    assert_eq!(event["code"], 3);
    assert_eq!(event["signal"], Value::Null);
    assert_eq!(event["oom"], Value::Null);
    assert_eq!(event["cause"], "crash");
    assert_eq!(event["action"], "stopped");
    assert!(event["uptime_ms"].as_u64().is_some_and(|ms| ms >= 250));
    let tail: Vec<&str> = event["stderr_tail"]
        .as_array()
        .expect("tail")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The last 20 lines, the newest last: 19 of the numbered ones, then the fatal one.
    assert_eq!(tail.len(), 20, "{tail:?}");
    assert_eq!(tail[0], "error line 11");
    assert_eq!(tail[19], "fatal: cannot open config.yaml");

    // The same in describe (the last lines) and in jlist's exit history.
    let describe = k.ok(&["describe", "crasher"]);
    assert!(
        describe.contains("stderr | fatal: cannot open config.yaml"),
        "{describe}"
    );
    assert!(describe.contains("code 3"), "{describe}");
    let exits = k.app("crasher")["pm2_env"]["exits"].clone();
    assert_eq!(
        exits[0]["stderr_tail"][19],
        "fatal: cannot open config.yaml"
    );
    assert_eq!(exits[0]["pid"], pid);

    // The text form, with and without stderr.
    let text = k.ok(&["events"]);
    assert!(
        text.contains(&format!("crasher (0)  pid {pid}  code 3")),
        "{text}"
    );
    assert!(!text.contains("fatal:"), "{text}");
    let text = k.ok(&["events", "--stderr"]);
    assert!(
        text.contains("stderr | fatal: cannot open config.yaml"),
        "{text}"
    );
}

#[test]
fn events_across_apps_come_oldest_first_and_lines_keeps_the_newest() {
    let k = kelpie();
    for name in ["a", "b"] {
        k.ok(&[
            "start",
            &k.fake_app(),
            "--name",
            name,
            "--",
            "--exit-after",
            "200",
            "--exit-code",
            "1",
        ]);
    }
    k.wait_for("several crashes", 10 * SECS, || {
        events_json(&k, &[]).len() >= 6
    });
    k.ok(&["stop", "all"]);
    let events = events_json(&k, &[]);
    let times: Vec<u64> = events.iter().filter_map(|e| e["at_ms"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let names: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let last_two = events_json(&k, &["--lines", "2"]);
    assert_eq!(last_two.len(), 2);
    assert_eq!(last_two[1], events[events.len() - 1]);
    assert_eq!(last_two[1]["cause"], "user", "the stop is the newest");
    let only_a = events_json(&k, &["a"]);
    assert!(only_a.iter().all(|e| e["name"] == "a"));
    k.fails(&["events", "nope"]);
}

#[test]
fn status_and_metrics_sent_on_the_notify_socket_are_shown() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "pub",
        "--",
        "--notify",
        "STATUS=warming up",
        "--notify",
        "STATUS=serving 12 clients\\nX_KELPIE_METRIC=queue_depth=7\\nX_KELPIE_METRIC=hit_ratio=0.93",
        "--notify",
        "X_KELPIE_METRIC=bad-name=1\\nX_KELPIE_METRIC=not_a_number=abc",
    ]);
    k.wait_for("the status and metrics", 10 * SECS, || {
        let app = k.app("pub");
        app["pm2_env"]["status_text"] == "serving 12 clients"
            && app["pm2_env"]["metrics"]["hit_ratio"] == 0.93
    });
    let env = k.app("pub")["pm2_env"].clone();
    assert_eq!(env["metrics"]["queue_depth"], 7.0);
    assert_eq!(
        env["metrics"].as_object().map(|m| m.len()),
        Some(2),
        "bad names and values are refused: {env}"
    );
    assert_eq!(env["axm_monitor"]["queue_depth"]["value"], 7.0);

    let list = k.ok(&["list"]);
    assert!(list.contains("app status"), "{list}");
    assert!(list.contains("serving 12 clients"), "{list}");
    let describe = k.ok(&["describe", "pub"]);
    assert!(describe.contains("serving 12 clients"), "{describe}");
    assert!(describe.contains("queue_depth"), "{describe}");
    assert!(describe.contains("hit_ratio"), "{describe}");
    assert!(
        std::fs::read_to_string(k.home().join("kelpie.log"))
            .unwrap_or_default()
            .contains("bad-name"),
        "a bad metric is said in the daemon log"
    );

    // Metrics are the running process's: gone once it stops; its status text stays.
    k.ok(&["stop", "pub"]);
    let env = k.app("pub")["pm2_env"].clone();
    assert_eq!(
        env["metrics"].as_object().map(|m| m.len()),
        Some(0),
        "{env}"
    );
    assert_eq!(env["status_text"], "serving 12 clients");
}

#[test]
fn an_app_without_status_keeps_the_usual_table() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "plain"]);
    let list = k.ok(&["list"]);
    assert!(!list.contains("app status"), "{list}");
}
