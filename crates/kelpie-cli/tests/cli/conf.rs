//! The configuration store (`set`, `get`, `unset`, `multiset`, `conf`), pm2-logrotate's keys
//! applied to running apps at once, `<app>.<key>` in an app's environment, and `install`.

use super::kelpie;
use super::logs::archives;
use kelpie_testkit::Kelpie;
use std::path::PathBuf;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// The stdout log file of app `name`, as `jlist` reports it.
fn out_log(k: &Kelpie, name: &str) -> PathBuf {
    PathBuf::from(
        k.app(name)["pm2_env"]["pm_out_log_path"]
            .as_str()
            .expect("out log path"),
    )
}

fn conf_file(k: &Kelpie) -> serde_json::Value {
    let text = std::fs::read_to_string(k.home().join("module_conf.json")).expect("conf file");
    serde_json::from_str(&text).expect("the file is JSON")
}

#[test]
fn set_get_unset_multiset_and_conf_behave_like_pm2() {
    let k = kelpie();
    // As under PM2, `unset` writes the store even when nothing changes: scripts look for it.
    k.ok(&["unset", "all"]);
    assert_eq!(conf_file(&k), serde_json::json!({}));
    let out = k.ok(&["set", "pm2-logrotate:max_size", "10M"]);
    assert!(out.contains("Setting changed"), "{out}");
    assert!(out.contains("Module: pm2-logrotate"), "{out}");
    assert!(
        out.contains("$ kelpie set pm2-logrotate:max_size 10M"),
        "{out}"
    );
    assert_eq!(
        conf_file(&k),
        serde_json::json!({"pm2-logrotate": {"max_size": "10M"}})
    );
    // One key: PM2's sentence; a section: its lines; nothing: everything.
    assert_eq!(
        k.ok(&["get", "pm2-logrotate:max_size"]).trim(),
        "Value for module pm2-logrotate key max_size: 10M"
    );
    let section = k.ok(&["get", "pm2-logrotate"]);
    assert!(
        section.contains("$ kelpie set pm2-logrotate:max_size 10M")
            && section.contains("Copy/Paste"),
        "{section}"
    );
    // A missing key: non-zero, nothing on stdout (as PM2), and a message.
    let missing = k.run(&["get", "pm2-logrotate:retain"]);
    assert!(!missing.status.success());
    assert!(missing.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no value for `pm2-logrotate:retain`")
    );

    // multiset: pairs, a quoted value with spaces; `.` and `:` are the same section.
    k.ok(&[
        "multiset",
        "pm2-logrotate.retain 5 pm2-logrotate:rotateInterval \"0 * * * *\" plain 7",
    ]);
    let all = k.ok(&["get"]);
    for line in [
        "$ kelpie set pm2-logrotate:retain 5",
        "$ kelpie set pm2-logrotate:rotateInterval '0 * * * *'",
        "$ kelpie set plain 7",
    ] {
        assert!(all.contains(line), "{line} in {all}");
    }
    assert_eq!(k.ok(&["get", "plain"]).trim(), "7");

    // conf: key + value sets, a key gets, nothing lists (and `config` is the same command).
    k.ok(&["conf", "pm2-logrotate:compress", "false"]);
    assert_eq!(
        k.ok(&["config", "pm2-logrotate:compress"]).trim(),
        "Value for module pm2-logrotate key compress: false"
    );
    assert!(k
        .ok(&["conf"])
        .contains("$ kelpie set pm2-logrotate:compress false"));

    // unset: a key, a missing key (fine, as in PM2), then everything.
    k.ok(&["unset", "pm2-logrotate:retain"]);
    k.ok(&["unset", "pm2-logrotate:retain"]);
    assert!(k.ok(&["get"]).lines().all(|l| !l.contains("retain")));
    assert!(conf_file(&k)["pm2-logrotate"].get("retain").is_none());
    k.ok(&["unset", "all"]);
    assert_eq!(conf_file(&k), serde_json::json!({}));
    assert_eq!(k.ok(&["get"]).trim(), "");
}

#[test]
fn bad_values_are_refused_and_change_nothing() {
    let k = kelpie();
    k.ok(&["set", "pm2-logrotate:max_size", "1M"]);
    let before = conf_file(&k);
    for (args, says) in [
        (
            vec!["set", "pm2-logrotate:max_size", "lots"],
            "expected a size",
        ),
        (
            vec!["set", "pm2-logrotate:compress", "yes"],
            "true or false",
        ),
        (vec!["set", "pm2-logrotate:retain", "-2"], "rotated files"),
        (
            vec!["set", "pm2-logrotate:rotateInterval", "0 0 * * 1"],
            "evenly spaced times of every day",
        ),
        (
            vec!["set", "pm2-logrotate:max_sise", "1M"],
            "did you mean `max_size`",
        ),
        (vec!["set", "pm2-logrotate", "1M"], "set one of its keys"),
        // One bad pair: none of them is set.
        (
            vec![
                "multiset",
                "pm2-logrotate:retain 3 pm2-logrotate:max_size huge",
            ],
            "expected a size",
        ),
        (vec!["multiset", "pm2-logrotate:retain"], "has no value"),
    ] {
        let error = k.fails(&args);
        assert!(error.contains(says), "{args:?}: {error}");
    }
    assert_eq!(conf_file(&k), before);
}

#[test]
fn logrotate_keys_rotate_running_apps_at_once_and_survive_a_daemon_restart() {
    let k = kelpie();
    // kelpie.toml says never by size: the store, set last, wins over it.
    std::fs::create_dir_all(k.home()).expect("home");
    std::fs::write(k.home().join("kelpie.toml"), "[logs]\nmax_size = \"0\"\n").expect("toml");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "ticker",
        "--",
        "--tick",
        "5",
    ]);
    let log = out_log(&k, "ticker");
    let pid = k.pid("ticker");
    k.wait_for("the log to pass 2K", 10 * SECS, || {
        std::fs::metadata(&log).map_or(0, |m| m.len()) > 2048
    });
    assert!(archives(&log).is_empty(), "kelpie.toml: never by size");

    let out = k.ok(&[
        "multiset",
        "pm2-logrotate:max_size 1K pm2-logrotate:compress false",
    ]);
    assert!(out.contains("at 1K"), "{out}");
    k.wait_for("a rotation at 1K", 10 * SECS, || archives(&log).len() >= 2);
    let mut rotated = archives(&log);
    rotated.sort();
    assert!(
        rotated
            .iter()
            .all(|p| p.to_string_lossy().ends_with(".log")),
        "compress false: {rotated:?}"
    );
    // The first one is the file as it was when the limit was set (already past it).
    for archive in &rotated[1..] {
        let size = std::fs::metadata(archive).map_or(0, |m| m.len());
        assert!(size <= 1024, "{} is {size} bytes", archive.display());
    }
    // Applied to the running app: same process, never restarted.
    assert_eq!(k.pid("ticker"), pid);
    assert_eq!(k.app("ticker")["pm2_env"]["restart_time"], 0);

    // `reloadLogs` reads kelpie.toml again; the store stays over it.
    k.ok(&["reloadLogs"]);
    let count = archives(&log).len();
    k.wait_for("rotations go on at 1K", 10 * SECS, || {
        archives(&log).len() > count
    });

    // A new daemon reads the store: the value is there and applies to new apps.
    k.ok(&["kill"]);
    assert_eq!(
        k.ok(&["get", "pm2-logrotate:max_size"]).trim(),
        "Value for module pm2-logrotate key max_size: 1K"
    );
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "later",
        "--",
        "--tick",
        "5",
    ]);
    let later = out_log(&k, "later");
    k.wait_for("a rotation at 1K after a restart", 10 * SECS, || {
        !archives(&later).is_empty()
    });

    // Unset: back to kelpie.toml's never by size.
    k.ok(&["unset", "pm2-logrotate:max_size"]);
    let settled = archives(&later).len();
    let size_now = std::fs::metadata(&later).map_or(0, |m| m.len());
    k.wait_for("the live file to grow past 2K", 10 * SECS, || {
        std::fs::metadata(&later).map_or(0, |m| m.len()) > size_now + 2048
    });
    assert!(
        archives(&later).len() <= settled + 1,
        "no more rotation by size"
    );
}

#[test]
fn an_app_key_goes_into_the_apps_environment_and_restarts_it() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "echo",
        "--",
        "--print-env",
        "config_var",
        "--print-env",
        "echo",
        "--tick",
        "1000",
    ]);
    let log = out_log(&k, "echo");
    k.wait_for("the first start", 5 * SECS, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("config_var unset"))
    });
    let out = k.ok(&["set", "echo.config_var", "false"]);
    assert!(out.contains("echo restarted"), "{out}");
    k.wait_for("the restarted process's output", 5 * SECS, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("config_var=false"))
    });
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("echo={\"config_var\":\"false\"}"), "{text}");
    let app = k.app("echo");
    assert_eq!(app["pm2_env"]["restart_time"], 1);
    assert_eq!(app["pm2_env"]["env"]["config_var"], "false");

    // An app started later under that name gets the section too.
    k.ok(&["delete", "echo"]);
    std::fs::remove_file(&log).expect("remove log");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "echo",
        "--",
        "--print-env",
        "config_var",
        "--tick",
        "1000",
    ]);
    let log = out_log(&k, "echo");
    // A start, its first line and a new log file took more than 5 s once in a clean-clone CI
    // run (265 tests on 2 cores): this wait allows for such a load.
    k.wait_for("the new start", 15 * SECS, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("config_var=false"))
    });
    // A section no app is named after restarts nothing.
    let out = k.ok(&["set", "nobody.key", "1"]);
    assert!(!out.contains("restarted"), "{out}");
    assert_eq!(k.app("echo")["pm2_env"]["restart_time"], 0);
}

#[test]
fn install_pm2_logrotate_says_rotation_is_built_in_and_other_modules_fail() {
    let k = kelpie();
    let out = k.ok(&["install", "pm2-logrotate"]);
    assert!(out.contains("built into Kelpie"), "{out}");
    assert!(
        out.contains("kelpie set pm2-logrotate:max_size 10M"),
        "{out}"
    );
    assert!(out.contains("kelpie.toml"), "{out}");
    k.ok(&["module:install", "pm2-logrotate"]);
    k.ok(&["uninstall", "pm2-logrotate"]);
    // pm2-server-monit's host figures are built in too.
    let out = k.ok(&["install", "pm2-server-monit"]);
    assert!(out.contains("built into Kelpie"), "{out}");
    assert!(
        out.contains("kelpie list") && out.contains("node_cpu_seconds_total"),
        "{out}"
    );
    k.ok(&["uninstall", "pm2-server-monit"]);
    let error = k.fails(&["install", "pm2-prometheus-exporter"]);
    assert!(error.contains("no module system"), "{error}");
    assert!(
        error.contains("kelpie web") && error.contains("/metrics"),
        "{error}"
    );
    let error = k.fails(&["install", "some-module"]);
    assert!(error.contains("kelpie start"), "{error}");
    k.fails(&["uninstall", "some-module"]);
    // None of these needed the daemon.
    assert!(k.daemon_pid().is_none());
}
