//! What a PM2 user types, run unchanged: targets by script path and `/regex/`, PM2's exit
//! statuses, `prettylist`, `env`, `id`, `-v`, `startOrRestart`/`startOrReload`, PM2 flags that
//! have no effect here, and restart options. Written from PM2's documentation and its observed
//! behaviour (PM2 7), not from its tests.

use super::kelpie;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// A script that runs until stopped (bash is its interpreter, from the extension).
const SLEEPER: &str = "exec sleep 600\n";

#[test]
fn a_script_path_and_a_regex_select_apps() {
    let k = kelpie();
    k.write("app.sh", SLEEPER);
    k.ok(&["start", "app.sh"]);
    let fake = k.fake_app();
    for name in ["echo-1", "echo-2", "echo-3"] {
        k.ok(&["start", &fake, "--name", name]);
    }
    // PM2 matches a path against each app's script, resolved where the command is typed.
    k.ok(&["stop", "app.sh"]);
    assert_eq!(k.status("app"), "stopped");
    k.ok(&["restart", "./app.sh"]);
    assert_eq!(k.status("app"), "online");
    assert!(k.ok(&["describe", "app.sh"]).contains("app"));
    k.ok(&["stop", "/echo-[12]/"]);
    let statuses: Vec<String> = ["echo-1", "echo-2", "echo-3"]
        .iter()
        .map(|n| k.status(n))
        .collect();
    assert_eq!(statuses, ["stopped", "stopped", "online"]);
    let err = k.fails(&["stop", "/nothing-like-this/"]);
    assert!(err.contains("/nothing-like-this/"), "{err}");
    let err = k.fails(&["stop", "/[/"]);
    assert!(err.contains("not a valid regular expression"), "{err}");
    k.ok(&["delete", "app.sh"]);
    assert!(k.jlist().iter().all(|a| a["name"] != "app"));
    let err = k.fails(&["stop", "missing.js"]);
    assert!(err.contains("missing.js"), "{err}");
}

#[test]
fn no_app_matching_exits_non_zero_even_for_all() {
    let k = kelpie();
    for args in [
        &["restart", "all"][..],
        &["stop", "all"],
        &["delete", "all"],
        &["reload", "all"],
        &["restart", "BULLSHIT"],
        &["restart", "666"],
        &["delete", "toto"],
    ] {
        let err = k.fails(args);
        assert!(err.contains("nothing was changed"), "{args:?}: {err}");
    }
    // Reading commands with nothing to show are not errors.
    assert_eq!(k.ok(&["pid"]), "");
    assert_eq!(k.ok(&["jlist"]).trim(), "[]");
}

#[test]
fn a_number_names_an_app_before_an_id() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "455"]);
    k.ok(&["restart", "455"]);
    k.ok(&["restart", "0"]);
    assert_eq!(k.app("455")["pm2_env"]["restart_time"], 2);
    k.ok(&["stop", "455"]);
    assert_eq!(k.status("455"), "stopped");
    k.ok(&["delete", "455"]);
    assert!(k.jlist().is_empty());
}

#[test]
fn prettylist_prints_the_jlist_data_as_node_prints_objects() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "web", "-i", "2"]);
    k.ok(&["stop", "0"]);
    let pretty = k.ok(&["prettylist"]);
    // What PM2 users grep for.
    assert_eq!(pretty.matches("status: 'online'").count(), 1, "{pretty}");
    assert_eq!(pretty.matches("status: 'stopped'").count(), 1, "{pretty}");
    assert_eq!(pretty.matches("restart_time: 0").count(), 2, "{pretty}");
    assert_eq!(pretty.matches("name: 'web'").count(), 4, "{pretty}");
    assert_eq!(pretty.matches("exec_mode: 'fork_mode'").count(), 2);
    assert!(pretty.contains("node_args: []"), "{pretty}");
    assert!(pretty.contains("watch: false"), "{pretty}");
    assert!(pretty.starts_with("[\n  {\n"), "{pretty}");
}

#[test]
fn jlist_counts_one_status_word_per_instance_and_leaves_out_unset_keys() {
    let k = kelpie();
    // An app that exits at once is restarted, and its exits are recorded.
    let crashing = k.write("crash.sh", "sleep 0.2; exit 3\n");
    k.ok(&[
        "start",
        &crashing,
        "--name",
        "crash",
        "--restart-delay",
        "50",
    ]);
    k.wait_for("two restarts", Duration::from_secs(20), || {
        k.app("crash")["pm2_env"]["restart_time"].as_u64() >= Some(2)
    });
    k.ok(&["stop", "crash"]);
    let jlist = k.ok(&["jlist"]);
    assert_eq!(jlist.matches("stopped").count(), 1, "{jlist}");
    assert!(!jlist.contains("null"), "unset keys are left out: {jlist}");
    assert!(!jlist.contains("\"exits\""), "{jlist}");
    // The exits are in describe --json.
    let described: serde_json::Value =
        serde_json::from_str(&k.ok(&["describe", "crash", "--json"])).expect("describe --json");
    let exits = described[0]["pm2_env"]["exits"]
        .as_array()
        .expect("exits in describe --json");
    assert!(exits.len() >= 2, "{described}");
}

#[test]
fn jlist_shows_env_numbers_and_booleans_with_their_type_as_pm2_does() {
    let k = kelpie();
    let fake = k.fake_app();
    let file = k.write(
        "ecosystem.config.js",
        &format!(
            "module.exports = {{ apps: [\n\
             {{ name: 'typed', script: {fake:?}, interpreter: 'none',\n\
               env: {{ PORT: 3000, DEBUG: true, RATIO: 1.5, NAME: 'x', QUOTED: '42', NOTHING: null }} }},\n\
             {{ name: 'profiled', script: {fake:?}, interpreter: 'none',\n\
               env: {{ PORT: 3000, WORKERS: '2' }}, env_production: {{ PORT: '4000', WORKERS: 4 }} }},\n\
             ] }};\n"
        ),
    );
    k.ok(&["start", &file, "--only", "typed"]);
    k.ok(&["start", &file, "--only", "profiled", "--env", "production"]);
    let env = |name: &str| k.app(name)["pm2_env"]["env"].clone();
    let typed = env("typed");
    assert_eq!(typed["PORT"], serde_json::json!(3000), "{typed}");
    assert_eq!(typed["DEBUG"], serde_json::json!(true));
    assert_eq!(typed["RATIO"], serde_json::json!(1.5));
    assert_eq!(typed["NAME"], serde_json::json!("x"));
    assert_eq!(
        typed["QUOTED"],
        serde_json::json!("42"),
        "a string stays a string"
    );
    assert_eq!(
        typed["NOTHING"],
        serde_json::json!("null"),
        "PM2 shows null as text"
    );
    // The profile's values win with their own types.
    let profiled = env("profiled");
    assert_eq!(profiled["PORT"], serde_json::json!("4000"), "{profiled}");
    assert_eq!(profiled["WORKERS"], serde_json::json!(4));
    // The process gets text, as always.
    let pid = k.pid("typed");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ.split(|b| *b == 0).any(|v| v == b"PORT=3000"),
        "the process has PORT=3000"
    );
}

#[test]
fn pm_exec_path_is_the_absolute_path_of_a_command() {
    let k = kelpie();
    k.ok(&["start", "sleep", "--", "600"]);
    let path = k.app("sleep")["pm2_env"]["pm_exec_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(path.starts_with('/') && path.ends_with("/sleep"), "{path}");
}

#[test]
fn jlist_shows_a_discarded_log_as_pm2_does() {
    let k = kelpie();
    let file = k.write(
        "null.json",
        &format!(
            r#"{{"apps": [{{"name": "quiet", "script": "{app}", "out_file": "NULL", "error_file": "NULL"}}]}}"#,
            app = k.fake_app()
        ),
    );
    k.ok(&["start", &file]);
    let env = &k.app("quiet")["pm2_env"];
    assert_eq!(env["pm_out_log_path"], "/dev/null", "{env}");
    assert_eq!(env["pm_err_log_path"], "/dev/null", "{env}");
    assert!(!k.dir.path().join("NULL").exists(), "no file named NULL");
}

fn has_node() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn jlist_shows_an_mjs_scripts_interpreter_as_pm2_does() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed");
    }
    let k = kelpie();
    let body = "setInterval(() => {}, 1000);\n";
    let mjs = k.write("app.mjs", body);
    let js = k.write("app.js", body);
    let file = k.write(
        "esm.json",
        &format!(
            r#"{{"apps": [
                {{"name": "esm", "script": "{mjs}"}},
                {{"name": "cjs", "script": "{js}"}},
                {{"name": "named", "script": "{mjs}", "interpreter": "node"}}
            ]}}"#
        ),
    );
    k.ok(&["start", &file]);
    // PM2 7: `.mjs` is not in its table of extensions, so the Node that runs PM2 runs it, shown
    // by its absolute path; `.js` is, shown `node`; an interpreter the app names, as named.
    let esm = &k.app("esm")["pm2_env"];
    let shown = esm["exec_interpreter"].as_str().unwrap_or_default();
    assert!(shown.starts_with('/') && shown.ends_with("/node"), "{esm}");
    assert_eq!(k.app("cjs")["pm2_env"]["exec_interpreter"], "node");
    assert_eq!(k.app("named")["pm2_env"]["exec_interpreter"], "node");
    k.wait_for("esm online", Duration::from_secs(5), || {
        k.status("esm") == "online"
    });
}

#[test]
fn jlist_shows_a_command_lines_args_as_pm2_does() {
    let k = kelpie();
    let file = k.write(
        "line.json",
        r#"{"apps": [{"name": "line", "script": "sleep 600", "args": "start"}]}"#,
    );
    k.ok(&["start", &file]);
    // PM2 7 shows (and runs) the shell with `-c <line>` alone: the file's `args` are dropped.
    let env = &k.app("line")["pm2_env"];
    assert_eq!(env["args"], serde_json::json!(["-c", "sleep 600"]), "{env}");
    assert_eq!(env["exec_interpreter"], "none", "{env}");
    k.wait_for("line online", Duration::from_secs(5), || {
        k.status("line") == "online"
    });
}

#[test]
fn jlist_shows_the_interpreter_of_programs_on_path_and_extensionless_scripts_as_pm2_does() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed");
    }
    let k = kelpie();
    let dir = k.dir.path();
    // express's `bin/www`: an executable text script without an extension.
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    let www = dir.join("bin/www");
    std::fs::write(&www, "#!/usr/bin/env node\nsetInterval(() => {}, 1000);\n").expect("write");
    let mut mode = std::fs::metadata(&www).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&www, mode).expect("chmod");
    // A text program found on PATH (`npm`, `ts-node`): a Node script with its `#!` line.
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).expect("mkdir");
    let tool = tools.join("ts-tool");
    std::fs::write(&tool, "#!/usr/bin/env node\nsetInterval(() => {}, 1000);\n").expect("write");
    std::fs::set_permissions(&tool, std::fs::metadata(&www).expect("meta").permissions())
        .expect("chmod");
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let file = k.write(
        "programs.json",
        r#"{"apps": [
            {"name": "www", "script": "bin/www"},
            {"name": "tool", "script": "ts-tool", "args": "start"},
            {"name": "sleeper", "script": "sleep", "args": "600"}
        ]}"#,
    );
    let out = k
        .command(&["start", &file])
        .env("PATH", &path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // PM2 7: a text script PM2 has no extension for runs with the Node that runs PM2 (its
    // absolute path); a binary, itself (`none`). (Read with the same PATH: the listing has
    // the apps' programs looked up where the CLI runs.)
    let listed = k
        .command(&["jlist"])
        .env("PATH", &path)
        .output()
        .expect("jlist");
    let list: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    let app = |name: &str| -> serde_json::Value {
        list.iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    for name in ["www", "tool"] {
        let env = &app(name)["pm2_env"];
        let shown = env["exec_interpreter"].as_str().unwrap_or_default();
        assert!(shown.starts_with('/') && shown.ends_with("/node"), "{env}");
    }
    let tool_env = &app("tool")["pm2_env"];
    assert_eq!(
        tool_env["pm_exec_path"],
        tool.display().to_string(),
        "{tool_env}"
    );
    assert_eq!(tool_env["args"], serde_json::json!(["start"]), "{tool_env}");
    let sleeper = &app("sleeper")["pm2_env"];
    assert_eq!(sleeper["exec_interpreter"], "none", "{sleeper}");
    for name in ["www", "tool", "sleeper"] {
        k.wait_for("online", Duration::from_secs(5), || {
            k.status(name) == "online"
        });
    }
}

#[test]
fn env_id_version_and_update_pm2() {
    let k = kelpie();
    let file = k.write(
        "ecosystem.config.json",
        &format!(
            r#"{{"apps": [{{"name": "api", "script": "{}", "instances": 2,
                "env": {{"API_TOKEN": "s3cret", "MODE": "prod"}}}}]}}"#,
            k.fake_app()
        ),
    );
    k.ok(&["start", &file]);
    let env = k.ok(&["env", "0"]);
    assert!(env.contains("MODE: prod"), "{env}");
    assert!(
        env.contains("API_TOKEN: ****") && !env.contains("s3cret"),
        "{env}"
    );
    let env = k.ok(&["env", "api", "--show-secrets"]);
    assert!(env.contains("API_TOKEN: s3cret"), "{env}");
    assert_eq!(k.ok(&["id", "api"]).trim(), "[ 0, 1 ]");
    assert_eq!(k.ok(&["id", "nope"]).trim(), "[]");
    for flag in ["-v", "--version", "-V"] {
        // Bare, as `pm2 --version` prints it: scripts read it as it is.
        assert_eq!(
            k.ok(&[flag]),
            format!("{}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
    let pid = k.pid("api");
    k.ok(&["updatePM2"]);
    assert_eq!(k.pid("api"), pid, "update must not restart apps");
}

#[test]
fn start_or_restart_and_start_or_reload_an_ecosystem_file() {
    let k = kelpie();
    let fake = k.fake_app();
    let file = k.write(
        "all.json",
        &format!(
            r#"{{"apps": [{{"name": "a", "script": "{fake}"}}, {{"name": "b", "script": "{fake}", "instances": 2}}]}}"#
        ),
    );
    let restarts = |k: &kelpie_testkit::Kelpie| -> Vec<u64> {
        k.jlist()
            .iter()
            .map(|a| a["pm2_env"]["restart_time"].as_u64().unwrap_or(99))
            .collect()
    };
    k.ok(&["startOrRestart", &file]);
    assert_eq!(restarts(&k), [0, 0, 0]);
    k.ok(&["startOrRestart", &file]);
    assert_eq!(restarts(&k), [1, 1, 1]);
    k.ok(&["startOrReload", &file]);
    assert_eq!(restarts(&k), [2, 2, 2]);
    k.ok(&["startOrGracefulReload", &file]);
    assert_eq!(restarts(&k), [3, 3, 3]);
    let err = k.fails(&["startOrRestart", &fake]);
    assert!(err.contains("ecosystem file"), "{err}");
}

#[test]
fn pm2_flags_without_effect_are_accepted_with_one_note() {
    let k = kelpie();
    let out = k.command(&[
        "start",
        &k.fake_app(),
        "--name",
        "api",
        "-x",
        "--disable-source-map-support",
        "--no-vizion",
        "--no-automation",
        "-p",
        "api.pid",
        "-c",
        "0 3 * * *",
    ]);
    let out = { out }.output().expect("run kelpie");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("no effect")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(notes[0].contains("-x"), "{stderr}");
    // These have an effect now (a Node app runs without source maps; the pid file is written).
    assert!(
        !notes[0].contains("source-map") && !notes[0].contains("--pid"),
        "{stderr}"
    );
    assert_eq!(k.status("api"), "online");
    let pid_file = k.dir.path().join("api-0.pid");
    k.wait_for("the pid file", std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p == k.pid("api").to_string())
    });
    assert_eq!(k.app("api")["pm2_env"]["cron_restart"], "0 3 * * *");
}

#[test]
fn restart_takes_start_options_and_stop_turns_watching_off() {
    let k = kelpie();
    k.write("app.sh", SLEEPER);
    k.ok(&["start", "app.sh", "--watch"]);
    let watch = |k: &kelpie_testkit::Kelpie, name: &str| k.app(name)["pm2_env"]["watch"].clone();
    assert_eq!(watch(&k, "app"), true);
    k.ok(&["stop", "app"]);
    assert_eq!(watch(&k, "app"), false);
    k.ok(&["start", "app"]);
    assert_eq!(watch(&k, "app"), false, "a stopped app stays unwatched");
    k.ok(&["restart", "app.sh", "--watch"]);
    assert_eq!(watch(&k, "app"), true);
    // Start settings PM2's restart accepts without applying: a note, not a usage error.
    let out = k.run(&[
        "restart",
        "app",
        "--no-vizion",
        "--disable-source-map-support",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("kept as the app was started: --no-vizion, --disable-source-map-support"),
        "{err}"
    );
    assert_eq!(k.app("app")["pm2_env"]["vizion"], true);
    k.ok(&["restart", "app.sh", "--watch"]);
    assert_eq!(watch(&k, "app"), false);
    k.ok(&["restart", "app", "--interpreter-args=--norc --noprofile"]);
    assert_eq!(
        k.app("app")["pm2_env"]["node_args"],
        serde_json::json!(["--norc", "--noprofile"])
    );
    k.ok(&["reload", "app", "--node-args=null"]);
    // Cleared with null, the key is gone, as under PM2 (its scenario greps prettylist for it).
    assert!(k.app("app")["pm2_env"].get("node_args").is_none());
    assert!(!k.ok(&["prettylist"]).contains("node_args"));
    k.ok(&["reload", "app", "--node-args=--norc"]);
    assert_eq!(
        k.app("app")["pm2_env"]["node_args"],
        serde_json::json!(["--norc"])
    );
    k.ok(&["reload", "app", "--node-args=null"]);
    k.ok(&["restart", "0", "--name=renamed"]);
    k.ok(&["reset", "all"]);
    k.ok(&["restart", "renamed"]);
    assert_eq!(k.app("renamed")["pm2_env"]["restart_time"], 1);
    assert_eq!(k.status("renamed"), "online");
    // The rename is what is saved.
    k.ok(&["save"]);
    k.ok(&["kill"]);
    k.ok(&["resurrect"]);
    assert_eq!(k.status("renamed"), "online");
    let err = k.fails(&["restart", "renamed", "--name", "bad\nname"]);
    assert!(err.contains("control character"), "{err}");
}

/// PM2's `restart <app> --no-autorestart` (PM2 applies a start flag given to `restart`; users
/// ask for "a way to cancel autorestart" of a running app, PM2 issue 5745): the apps named
/// restart, and from then on stay down when they exit; `reload` and `start` of an app in the list
/// take it too, and `save` keeps it.
#[test]
fn restart_with_no_autorestart_leaves_the_app_down_at_its_next_exit() {
    let k = kelpie();
    let app = k.fake_app();
    // Each run ends with code 1 after 3 s (a stable run: it is restarted each time).
    let exits = ["--", "--exit-after", "3000", "--exit-code", "1"];
    for name in ["job", "other"] {
        k.ok(&[&["start", app.as_str(), "--name", name][..], &exits].concat());
    }
    let restarts = |name: &str| {
        k.app(name)["pm2_env"]["restart_time"]
            .as_u64()
            .expect("count")
    };
    let autorestart = |name: &str| k.app(name)["pm2_env"]["autorestart"].clone();
    assert_eq!(autorestart("job"), true);

    let out = k.run(&["restart", "job", "--no-autorestart"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Taken by `restart`, not removed as a PM2 option it does not use.
    assert!(!err.contains("--no-autorestart"), "{err}");
    assert_eq!(autorestart("job"), false);
    assert_eq!(autorestart("other"), true, "only the app named");
    assert_eq!(k.status("job"), "online", "it was restarted");
    let job_restarts = restarts("job");
    let other_restarts = restarts("other");
    k.wait_for("job's exit", Duration::from_secs(15), || {
        k.status("job") == "stopped"
    });
    k.wait_for("other's exit and restart", Duration::from_secs(15), || {
        restarts("other") > other_restarts
    });
    assert_eq!(
        restarts("job"),
        job_restarts,
        "not restarted after its exit"
    );

    // `save` keeps it: the app comes back with it off.
    k.ok(&["save"]);
    k.ok(&["kill"]);
    k.ok(&["resurrect"]);
    assert_eq!(autorestart("job"), false);
    assert_eq!(autorestart("other"), true);

    // `reload` takes it (a fork app's reload is a restart), and `start` of an app in the list.
    k.ok(&["reload", "other", "--no-autorestart"]);
    assert_eq!(autorestart("other"), false);
    k.wait_for("other's exit", Duration::from_secs(15), || {
        k.status("other") == "stopped"
    });
    k.ok(&["start", &app, "--name", "third"]);
    k.ok(&["start", "third", "--no-autorestart"]);
    assert_eq!(autorestart("third"), false);
    assert_eq!(restarts("third"), 1);
    assert_eq!(k.status("third"), "online");
}

#[test]
fn a_name_with_a_control_character_is_refused() {
    let k = kelpie();
    let err = k.fails(&["start", &k.fake_app(), "--name", "two\nlines"]);
    assert!(err.contains("control character"), "{err}");
    let err = k.fails(&["start", &k.fake_app(), "--name", "all"]);
    assert!(err.contains("`all`"), "{err}");
    assert!(k.jlist().is_empty());
}

#[test]
fn start_says_when_a_log_file_cannot_be_opened_and_why() {
    let k = kelpie();
    // A directory cannot be opened as a log file, whoever runs the test (root included).
    let dir = k.write("logdir", "");
    std::fs::remove_file(&dir).expect("rm");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = k
        .command(&["start", &k.fake_app(), "--name", "api", "-o", &dir])
        .output()
        .expect("run kelpie");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app `api` (id 0): its out log is not written")
            && stderr.contains("Is a directory (os error 21)"),
        "{stderr}"
    );
    assert_eq!(k.status("api"), "online");
}

#[test]
fn start_of_an_existing_app_takes_a_new_name_and_watch() {
    let k = kelpie();
    k.write("app.sh", SLEEPER);
    k.ok(&["start", "app.sh"]);
    k.ok(&["stop", "app.sh"]);
    k.ok(&["start", "app.sh", "--watch"]);
    assert_eq!(k.app("app")["pm2_env"]["watch"], true);
    assert_eq!(k.status("app"), "online");
    k.ok(&["start", "0", "--name=renamed"]);
    assert_eq!(k.app("renamed")["pm2_env"]["restart_time"], 1);
    k.ok(&["start", "renamed", "--interpreter-args=--norc"]);
    let app = k.app("renamed");
    assert_eq!(app["pm2_env"]["node_args"], serde_json::json!(["--norc"]));
    assert_eq!(app["pm2_env"]["restart_time"], 2);
}

#[test]
fn a_json_file_holding_javascript_expressions_loads_as_under_pm2() {
    let k = kelpie();
    k.write("app.sh", SLEEPER);
    // PM2 evaluates `.json` files as JavaScript: comments, unquoted keys, expressions.
    let file = k.write(
        "expressions.json",
        "// apps\n[{\n  name : 'joined',\n  script : ['./app', '.sh'].join(''),\n  instances : 1 + 1\n}]\n",
    );
    k.ok(&["start", &file]);
    assert_eq!(k.jlist().len(), 2);
    assert_eq!(k.status("joined"), "online");
    // A file neither JSON5 nor JavaScript can read is a syntax error with its position.
    let bad = k.write("bad.json", "{\"apps\": [{\"name\": \"x\",, }]}\n");
    let err = k.fails(&["start", &bad]);
    assert!(err.contains("bad.json:1:"), "{err}");
}

#[test]
fn scaling_down_removes_the_oldest_instances_and_up_reuses_their_indexes() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "w", "-i", "4"]);
    let indexes = |k: &kelpie_testkit::Kelpie| -> Vec<u64> {
        let mut found: Vec<u64> = k
            .jlist()
            .iter()
            .map(|p| p["pm2_env"]["NODE_APP_INSTANCE"].as_u64().unwrap_or(99))
            .collect();
        found.sort();
        found
    };
    k.ok(&["scale", "w", "2"]);
    assert_eq!(indexes(&k), [2, 3]);
    let ids: Vec<u64> = k
        .jlist()
        .iter()
        .filter_map(|p| p["pm_id"].as_u64())
        .collect();
    assert_eq!(ids, [2, 3], "the oldest instances went");
    k.ok(&["scale", "w", "4"]);
    assert_eq!(indexes(&k), [0, 1, 2, 3]);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "piped"]);
    // As with `kelpie jlist | head -c 10` when head is gone before kelpie writes.
    for args in [
        &["ping"][..],
        &["id", "piped"],
        &["jlist"],
        &["list"],
        &["prettylist"],
        &["describe", "piped"],
        &["restart", "piped"],
        &["conf"],
    ] {
        let mut child = k
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kelpie");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("kelpie");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked") && !stderr.contains("error"),
            "kelpie {args:?}: {:?}\n{stderr}",
            out.status
        );
    }
}

#[test]
fn instance_counts_are_bounded_everywhere_and_a_refusal_changes_nothing() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "api"]);
    let err = k.fails(&["scale", "api", "4000000000"]);
    assert!(err.contains("at most 9999"), "{err}");
    let err = k.fails(&["scale", "api", "+9999"]);
    assert!(err.contains("at most 9999"), "{err}");
    assert_eq!(k.jlist().len(), 1, "nothing was created");
    let err = k.fails(&["start", &fake, "--name", "many", "-i", "10000"]);
    assert!(err.contains("at most 9999"), "{err}");
    let config = k.write(
        "ecosystem.json",
        r#"{"apps": [{"name": "huge", "script": "x.sh", "instances": 4000000000}]}"#,
    );
    let err = k.fails(&["start", &config]);
    assert!(
        err.contains("huge") && err.contains("instances") && err.contains("at most 9999"),
        "{err}"
    );
    assert_eq!(k.jlist().len(), 1, "nothing was created");
    // A log tail has one bound too, the same as over HTTP (`/api/logs?lines=`).
    let err = k.fails(&["logs", "api", "--nostream", "--lines", "10001"]);
    assert!(err.contains("at most 10000"), "{err}");
    k.ok(&["logs", "api", "--nostream", "--lines", "10000"]);
}

#[test]
fn exit_statuses_tell_the_kind_of_failure() {
    let k = kelpie();
    let status = |args: &[&str]| k.run(args).status.code();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "api"]);
    k.ok(&["start", &fake, "--name", "other"]);
    assert_eq!(status(&["restart", "nope"]), Some(3), "no such app");
    assert_eq!(
        status(&["start", &fake, "--name", "api"]),
        Some(5),
        "conflict: the name runs"
    );
    assert_eq!(
        status(&["restart", "other", "--name", "api"]),
        Some(5),
        "conflict: the new name is taken"
    );
    assert_eq!(
        status(&["restart", "api", "--no-such-flag"]),
        Some(2),
        "usage"
    );
    let config = k.write(
        "bad.json",
        r#"{"apps": [{"name": "x", "instances": "lots"}]}"#,
    );
    assert_eq!(status(&["start", &config]), Some(4), "invalid config");
    // A home that cannot exist (under a file): no daemon can be reached or started.
    let file = k.write("not-a-dir", "");
    let out = k
        .command(&["ping"])
        .env("KELPIE_HOME", format!("{file}/home"))
        .output()
        .expect("kelpie");
    assert_eq!(
        out.status.code(),
        Some(6),
        "unreachable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An error names its cause once: a cause is either in the message or a `source`, never both
/// (the CLI prints the whole chain).
#[test]
fn an_error_says_its_cause_once() {
    let k = kelpie();
    let out = k.run(&["start", "absent.json"]);
    assert_eq!(out.status.code(), Some(4), "a config that cannot be read");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "kelpie: error: cannot read absent.json: No such file or directory (os error 2)"
    );
    // A cause from the regex crate, from a message built in kelpie-proto.
    let out = k.run(&["stop", "/(unclosed/"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("unclosed group").count(),
        1,
        "the regex's complaint once: {stderr}"
    );
}

#[test]
fn instance_var_and_increment_var_are_in_jlist_as_in_pm2() {
    let k = kelpie();
    k.write("app.sh", SLEEPER);
    let file = k.write(
        "ecosystem.json",
        r#"{"apps": [{"name": "w", "script": "app.sh", "instances": 2, "instance_var": "APP_ID",
                      "increment_var": "WORKER_PORT", "env": {"WORKER_PORT": "7100", "MODE": "x"}}]}"#,
    );
    k.ok(&["start", &file]);
    let mut seen = Vec::new();
    for app in k.jlist() {
        let env = &app["pm2_env"];
        // The index under the app's own variable name, and no NODE_APP_INSTANCE beside it.
        assert!(env.get("NODE_APP_INSTANCE").is_none(), "{env}");
        let index = env["APP_ID"].as_u64().expect("APP_ID is a number");
        // The incremented value is a number, at the top of pm2_env and in its env, as in PM2.
        assert_eq!(env["WORKER_PORT"], 7100 + index, "{env}");
        assert_eq!(env["env"]["WORKER_PORT"], 7100 + index, "{env}");
        assert_eq!(env["env"]["MODE"], "x");
        // And it is what the process has.
        let pid = app["pid"].as_u64().expect("pid");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        for var in [
            format!("APP_ID={index}"),
            format!("WORKER_PORT={}", 7100 + index),
        ] {
            assert!(vars.contains(&var.as_bytes()), "{var} in the process");
        }
        seen.push(index);
    }
    seen.sort();
    assert_eq!(seen, [0, 1]);
}

#[test]
fn the_daemon_writes_its_pid_where_kelpies_or_pm2s_variable_says() {
    let k = kelpie();
    let dir = k.home().join("run");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let pm2_file = dir.join("pm2.pid");
    let kelpie_file = dir.join("kelpie.pid");
    // PM2's variable alone, then with Kelpie's own, which wins.
    for (variables, pid_file) in [
        (vec![("PM2_PID_FILE_PATH", &pm2_file)], &pm2_file),
        (
            vec![
                ("PM2_PID_FILE_PATH", &pm2_file),
                ("KELPIE_PID_FILE", &kelpie_file),
            ],
            &kelpie_file,
        ),
    ] {
        let with_variables = |args: &[&str]| {
            let out = k
                .command(args)
                .envs(variables.iter().copied())
                .output()
                .expect("kelpie");
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let pong = with_variables(&["ping"]);
        let pid: u32 = std::fs::read_to_string(pid_file)
            .expect("the pid file is where the variable says")
            .trim()
            .parse()
            .expect("a pid");
        k.track(pid);
        assert!(pong.contains(&format!("pid {pid},")), "{pong}");
        for elsewhere in [
            k.home().join("kelpie.pid"),
            pm2_file.clone(),
            kelpie_file.clone(),
        ] {
            assert!(
                elsewhere == *pid_file || !elsewhere.exists(),
                "{} is not written as well",
                elsewhere.display()
            );
        }
        with_variables(&["kill"]);
        k.wait_for("the daemon to end", Duration::from_secs(10), || {
            !kelpie_testkit::alive(pid)
        });
        assert!(!pid_file.exists(), "the daemon removed its pid file");
    }
}

#[test]
fn plus_and_link_say_what_kelpie_offers_locally() {
    let k = kelpie();
    for words in [
        &["plus"][..],
        &["link", "secret", "public"],
        &["link", "delete"],
    ] {
        let said = k.ok(words);
        assert!(
            said.contains("PM2's hosted dashboard")
                && said.contains("kelpie web")
                && said.contains("kelpie errors"),
            "{words:?}: {said}"
        );
    }
}

#[test]
fn env_prints_the_environment_the_process_was_given_and_update_env_changes_it() {
    let k = kelpie();
    // Started with FOO=bar in the shell, no config env at all (issue 72: `env` printed nothing).
    let out = k
        .command(&["start", &k.fake_app(), "--name", "shell"])
        .env("FOO", "bar")
        .output()
        .expect("start");
    assert!(out.status.success(), "{out:?}");
    let env = k.ok(&["env", "shell"]);
    for line in [
        "FOO: bar",
        "name: shell",
        "pm_id: 0",
        "NODE_APP_INSTANCE: 0",
    ] {
        assert!(env.lines().any(|l| l == line), "{line}: {env}");
    }
    let out = k
        .command(&["restart", "shell", "--update-env"])
        .env("FOO", "baz")
        .output()
        .expect("restart");
    assert!(out.status.success(), "{out:?}");
    assert!(k.ok(&["env", "0"]).lines().any(|l| l == "FOO: baz"));
    // What the process really has.
    let environ = std::fs::read(format!("/proc/{}/environ", k.pid("shell"))).expect("environ");
    assert!(String::from_utf8_lossy(&environ).contains("FOO=baz"));
    let out = k.run(&["env", "99"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn pm2_verbs_kelpie_answers_otherwise_say_what_to_use() {
    let k = kelpie();
    for (words, says) in [
        (&["profile:cpu"][..], "kelpie profile cpu <app>"),
        (&["profile:mem", "5000"][..], "kelpie profile heap <app>"),
        (&["deepUpdate"][..], "kelpie update"),
    ] {
        let said = k.ok(words);
        assert!(said.contains(says), "{words:?}: {said}");
    }
    k.ok(&["start", &k.fake_app(), "--name", "reported"]);
    let report = k.ok(&["report"]);
    for part in [
        "Kelpie report",
        "--- Daemon",
        "--- System",
        "reported",
        "kelpie.log",
    ] {
        assert!(report.contains(part), "{part}: {report}");
    }
    // resurrect says which apps came back stopped, as they were saved.
    k.ok(&["start", &k.fake_app(), "--name", "idle"]);
    k.ok(&["stop", "idle"]);
    k.ok(&["save"]);
    k.ok(&["kill"]);
    let said = k.ok(&["resurrect"]);
    assert!(said.contains("resurrected and started (ids: 0)"), "{said}");
    assert!(
        said.contains("resurrected stopped, as they were saved (ids: 1"),
        "{said}"
    );
}

#[test]
fn pm2_options_on_verbs_that_do_not_use_them_are_named_and_the_verb_runs() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "api-gateway"]);
    let pid = k.pid("api-gateway");
    // Seed 002's "graceful stop".
    let out = k.run(&["stop", "api-gateway", "--wait-ready"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`stop` does not use --wait-ready: ignored"),
        "{stderr}"
    );
    assert_eq!(k.status("api-gateway"), "stopped");
    assert!(!kelpie_testkit::alive(pid));
    // Values go with their option; the targets stay.
    let out = k.run(&["delete", "api-gateway", "-i", "4", "--kill-timeout=3000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(k.jlist().is_empty());
    // A typo is still an error.
    let out = k.run(&["list", "--wiat-ready"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn env_variables_on_a_script_and_a_profile_on_restart_by_name_do_what_the_guides_mean() {
    let k = kelpie();
    // Seed 001: variables on a script.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "app",
        "--env",
        "NODE_ENV=development,env1=13,env2=32",
    ]);
    let env = k.app("app")["pm2_env"]["env"].clone();
    assert_eq!(env["NODE_ENV"], "development", "{env}");
    assert_eq!(env["env1"], "13");
    assert_eq!(env["env2"], "32");
    // Seed 002: switch a running app to a profile of the file it came from.
    let file = k.write(
        "ecosystem.json",
        &serde_json::json!({"apps": [{"name": "api-gateway", "script": k.fake_app(),
            "env": {"MODE": "development"}, "env_production": {"MODE": "production"}}]})
        .to_string(),
    );
    k.ok(&["start", &file]);
    assert_eq!(
        k.app("api-gateway")["pm2_env"]["env"]["MODE"],
        "development"
    );
    let pid = k.pid("api-gateway");
    let said = k.ok(&["restart", "api-gateway", "--env", "production"]);
    assert!(said.contains("restarted with env_production"), "{said}");
    assert_eq!(k.app("api-gateway")["pm2_env"]["env"]["MODE"], "production");
    assert_ne!(k.pid("api-gateway"), pid, "restarted");
    // An app not from a file cannot take a profile: said, nothing changes.
    let err = k.fails(&["restart", "app", "--env", "production"]);
    assert!(
        err.contains("was not started from an ecosystem file"),
        "{err}"
    );
}

/// A link named `pm2` to the kelpie binary: the drop-in. Its home is `$PM2_HOME` (else
/// `~/.pm2`) and its files have PM2's names, so scripts, monitors and backups written for PM2
/// (`kill $(cat ~/.pm2/pm2.pid)`, `~/.pm2/dump.pm2`, `~/.pm2/logs/`) find them.
#[test]
fn run_as_pm2_kelpie_keeps_pm2s_home_and_file_names() {
    let k = kelpie();
    let pm2 = k.dir.path().join("pm2");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kelpie"), &pm2).expect("link pm2");
    let user_home = tempfile::tempdir().expect("user home");
    let run = |args: &[&str]| {
        std::process::Command::new(&pm2)
            .args(args)
            .env_remove("KELPIE_HOME")
            .env("PM2_HOME", k.home())
            .env("HOME", user_home.path())
            .current_dir(k.dir.path())
            .output()
            .expect("run pm2")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "pm2 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    k.write("app.sh", "echo started; exec sleep 600\n");
    ok(&["start", "app.sh", "--name", "api"]);
    let pid: u32 = std::fs::read_to_string(k.home().join("pm2.pid"))
        .expect("the daemon's pid in pm2.pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(
        k.home().join("pm2.log").is_file(),
        "the daemon logs to pm2.log"
    );
    assert!(!k.home().join("kelpie.pid").exists() && !k.home().join("kelpie.log").exists());
    // The same daemon answers `kelpie` pointed at that home with PM2's names.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .arg("jlist")
        .env("KELPIE_HOME", k.home())
        .env("KELPIE_FILE_NAMES", "pm2")
        .output()
        .expect("kelpie jlist");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"api\""));
    k.wait_for(
        "the app's line in logs/api-out.log",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(k.home().join("logs/api-out.log"))
                .is_ok_and(|log| log.contains("started"))
        },
    );
    // The app sees the same home, so a `pm2` it runs reaches this daemon.
    let app_pid = k.pid("api");
    let environ = std::fs::read(format!("/proc/{app_pid}/environ")).expect("app environ");
    assert!(environ
        .split(|b| *b == 0)
        .any(|var| var == b"KELPIE_FILE_NAMES=pm2"));

    ok(&["save"]);
    assert!(k.home().join("dump.pm2").is_file());
    ok(&["save"]);
    assert!(k.home().join("dump.pm2.bak").is_file());
    assert!(!k.home().join("dump.json").exists());
    ok(&["set", "mymodule:key1", "val1"]);
    let conf = std::fs::read_to_string(k.home().join("module_conf.json")).expect("module_conf");
    assert!(conf.contains("key1"));
    ok(&["delete", "all"]);
    ok(&["resurrect"]);
    assert_eq!(k.status("api"), "online");

    // Without PM2_HOME, the home is ~/.pm2, and a boot unit keeps the names.
    let unit = std::process::Command::new(&pm2)
        .args(["startup", "systemd", "--print"])
        .env_remove("KELPIE_HOME")
        .env_remove("PM2_HOME")
        .env("HOME", user_home.path())
        .output()
        .expect("pm2 startup");
    let unit = String::from_utf8_lossy(&unit.stdout);
    let pm2_home = user_home.path().join(".pm2");
    for line in [
        format!("Environment=KELPIE_HOME={}", pm2_home.display()),
        "Environment=KELPIE_FILE_NAMES=pm2".to_string(),
        format!("StandardOutput=append:{}/pm2.log", pm2_home.display()),
    ] {
        assert!(unit.contains(&line), "{line} missing from:\n{unit}");
    }
    assert!(!pm2_home.exists(), "printing a unit starts no daemon");
    // PM2's `--hp` is the user's home directory, as PM2 prints it: the home is its `.pm2`.
    let unit = std::process::Command::new(&pm2)
        .args(["startup", "systemd", "--print", "--hp", "/home/www"])
        .env_remove("KELPIE_HOME")
        .env_remove("PM2_HOME")
        .env("HOME", user_home.path())
        .output()
        .expect("pm2 startup --hp");
    let unit = String::from_utf8_lossy(&unit.stdout);
    assert!(
        unit.contains("Environment=KELPIE_HOME=/home/www/.pm2\n"),
        "{unit}"
    );

    ok(&["kill"]);
    k.wait_for("the daemon to exit", Duration::from_secs(5), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
}

/// The drop-in never shares PM2's home with a PM2 daemon that still runs there (they would
/// write the same pid file and dump): it says so and starts nothing.
#[test]
fn run_as_pm2_kelpie_refuses_a_home_where_pm2_runs() {
    let k = kelpie();
    let pm2 = k.dir.path().join("pm2");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kelpie"), &pm2).expect("link pm2");
    // What a running PM2 daemon has in its home: a socket that answers.
    let _pm2_daemon =
        std::os::unix::net::UnixListener::bind(k.home().join("rpc.sock")).expect("bind rpc.sock");
    let out = std::process::Command::new(&pm2)
        .args(["start", "app.sh"])
        .env_remove("KELPIE_HOME")
        .env("PM2_HOME", k.home())
        .current_dir(k.dir.path())
        .output()
        .expect("run pm2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a PM2 daemon runs in") && stderr.contains("pm2 kill"),
        "{stderr}"
    );
    assert!(!k.home().join("pm2.pid").exists(), "no daemon was started");
}

/// The names in the rows of a `list` table, top to bottom.
fn listed_names(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|line| line.split('│').nth(2))
        .map(|cell| cell.trim().to_string())
        .filter(|name| name != "name")
        .collect()
}

#[test]
fn list_sort_orders_the_rows_by_pm2s_fields() {
    let k = kelpie();
    let fake = k.fake_app();
    // Ids 0, 1, 2 in an order no field but id gives: bravo is restarted once then stopped,
    // alpha holds 64 MiB and is restarted twice (started last), charlie burns a core in its
    // own namespace.
    k.ok(&["start", &fake, "--name", "bravo"]);
    k.ok(&["start", &fake, "--name", "alpha", "--", "--allocate", "64"]);
    k.ok(&[
        "start",
        &fake,
        "--name",
        "charlie",
        "--namespace",
        "aaa",
        "--",
        "--burn",
    ]);
    // Each restart in a later millisecond than the start before it: the sort by uptime (the
    // start time, in ms) has an order to find.
    after_the_last_start(&k);
    k.ok(&["restart", "bravo"]);
    for _ in 0..2 {
        after_the_last_start(&k);
        k.ok(&["restart", "alpha"]);
    }
    k.ok(&["stop", "bravo"]);
    // On a loaded 2-core CI machine charlie's burn gets what the scheduler leaves it: it only
    // has to be clearly busier than idle alpha for the cpu sort to be decided.
    kelpie_testkit::wait_until(
        "alpha's 64 MiB and charlie's busy core",
        Duration::from_secs(60),
        || {
            let list = k.jlist();
            let memory = |p: &serde_json::Value| p["monit"]["memory"].as_u64().unwrap_or(0);
            let cpu = |p: &serde_json::Value| p["monit"]["cpu"].as_f64().unwrap_or(0.0);
            if memory(&list[1]) > 60 << 20
                && cpu(&list[2]) >= 5.0
                && cpu(&list[2]) > cpu(&list[1]) + 2.0
                && memory(&list[2]) > 0
                && memory(&list[2]) < memory(&list[1])
            {
                return Ok(());
            }
            Err(format!(
                "alpha {} bytes {}% cpu, charlie {} bytes {}% cpu",
                memory(&list[1]),
                cpu(&list[1]),
                memory(&list[2]),
                cpu(&list[2])
            ))
        },
    );
    let sorted = |args: &[&str]| listed_names(&k.ok(args));
    // Without --sort, by id.
    assert_eq!(sorted(&["list"]), ["bravo", "alpha", "charlie"]);
    for (sort, expected) in [
        ("name", ["alpha", "bravo", "charlie"]),
        ("name:asc", ["alpha", "bravo", "charlie"]),
        ("name:desc", ["charlie", "bravo", "alpha"]),
        ("NAME:DESC", ["charlie", "bravo", "alpha"]),
        ("id", ["bravo", "alpha", "charlie"]),
        ("id:desc", ["charlie", "alpha", "bravo"]),
        // Equal namespaces stay in id order, either way.
        ("namespace", ["charlie", "bravo", "alpha"]),
        ("namespace:desc", ["bravo", "alpha", "charlie"]),
        ("memory:desc", ["alpha", "charlie", "bravo"]),
        ("memory", ["bravo", "charlie", "alpha"]),
        // PM2 sorts `uptime` by start time: the longest-running first.
        ("uptime", ["charlie", "bravo", "alpha"]),
        ("uptime:desc", ["alpha", "bravo", "charlie"]),
        ("restarts", ["charlie", "bravo", "alpha"]),
        ("restarts:desc", ["alpha", "bravo", "charlie"]),
        ("status", ["alpha", "charlie", "bravo"]),
        ("status:desc", ["bravo", "alpha", "charlie"]),
    ] {
        let out = k.run(&["list", "--sort", sort]);
        assert!(out.status.success(), "--sort {sort}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, "", "--sort {sort}");
        let names = listed_names(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(names, expected, "--sort {sort}");
    }
    // The busiest first; a stopped app's pid is 0.
    assert_eq!(sorted(&["list", "--sort", "cpu:desc"])[0], "charlie");
    assert_eq!(sorted(&["list", "--sort", "pid"])[0], "bravo");
    let mut by_pid = [("alpha", k.pid("alpha")), ("charlie", k.pid("charlie"))];
    by_pid.sort_by_key(|(_, pid)| std::cmp::Reverse(*pid));
    let by_pid: Vec<&str> = by_pid
        .iter()
        .map(|(name, _)| *name)
        .chain(["bravo"])
        .collect();
    assert_eq!(sorted(&["list", "--sort", "pid:desc"]), by_pid);
    // PM2's other names for the list take it too.
    for verb in ["ls", "status", "ps", "l"] {
        assert_eq!(
            sorted(&[verb, "--sort", "name:desc"]),
            ["charlie", "bravo", "alpha"],
            "{verb}"
        );
    }
    // PM2 ignores a field it does not know, silently: Kelpie lists by id and says why.
    let out = k.run(&["list", "--sort", "bogus:desc"]);
    assert!(out.status.success());
    assert_eq!(
        listed_names(&String::from_utf8_lossy(&out.stdout)),
        ["bravo", "alpha", "charlie"]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`bogus` is not a field to sort by (name, namespace, id, pid, cpu, memory, uptime, status, restarts)"),
        "{stderr}"
    );
    let out = k.run(&["list", "--sort", "name:down"]);
    assert!(out.status.success());
    assert_eq!(
        listed_names(&String::from_utf8_lossy(&out.stdout)),
        ["alpha", "bravo", "charlie"]
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`down` is not an order (asc, desc)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `list --watch` sorts each table it draws: the first two, once drawn (without a terminal,
    // each is followed by a blank line).
    let watch = Drawn::start(k.command(&[
        "list",
        "--watch",
        "--interval",
        "200ms",
        "--sort",
        "name:desc",
    ]));
    let tables = kelpie_testkit::wait_until("two tables of list --watch", 20 * SECS, || {
        let tables = watch.output();
        match tables.matches("\n\n").count() >= 2 {
            true => Ok(tables),
            false => Err(tables),
        }
    });
    drop(watch);
    for table in tables.split("\n\n").take(2) {
        assert_eq!(
            listed_names(table),
            ["charlie", "bravo", "alpha"],
            "{tables}"
        );
    }
}

/// A command running in the background, what it printed so far kept; killed when dropped.
struct Drawn {
    child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drawn {
    fn start(mut command: std::process::Command) -> Drawn {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdout = child.stdout.take().expect("stdout");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
                sink.lock()
                    .expect("output")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Drawn { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }
}

impl Drop for Drawn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until the wall clock is past the start of every app's process (ms since the epoch).
fn after_the_last_start(k: &kelpie_testkit::Kelpie) {
    let last = k
        .jlist()
        .iter()
        .filter_map(|app| app["pm2_env"]["pm_uptime"].as_u64())
        .max()
        .unwrap_or(0);
    k.wait_for("the clock past the last start", 5 * SECS, || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|now| now.as_millis() as u64 > last)
    });
}

#[test]
fn applying_a_file_again_keeps_the_count_scale_set_and_follows_a_changed_instances() {
    let k = kelpie();
    let write = |instances: u32| {
        k.write(
            "ecosystem.config.json",
            &format!(
                r#"{{"apps": [{{"name": "api", "script": "{}", "instances": {instances},
                   "exec_mode": "fork", "env": {{"STAGE": "dev"}},
                   "env_production": {{"STAGE": "prod"}}}}]}}"#,
                k.fake_app()
            ),
        )
    };
    let file = write(2);
    // Each instance's status and STAGE, in id order.
    let api = || -> Vec<(String, String)> {
        k.jlist()
            .iter()
            .filter(|p| p["name"] == "api")
            .map(|p| {
                (
                    p["pm2_env"]["status"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["pm2_env"]["env"]["STAGE"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let all = |stage: &str, count: usize| vec![("online".to_string(), stage.to_string()); count];
    k.ok(&["start", &file]);
    k.ok(&["scale", "api", "4"]);
    // As in PM2, whose restarts never change the count: every instance restarted with the
    // profile, none removed.
    k.ok(&["restart", &file, "--env", "production"]);
    assert_eq!(api(), all("prod", 4));
    k.ok(&["restart", "api", "--env", "production"]);
    assert_eq!(api(), all("prod", 4));
    k.ok(&["reload", &file]);
    assert_eq!(api(), all("dev", 4));
    k.ok(&["start", &file, "--env", "production"]);
    assert_eq!(api(), all("prod", 4));
    k.ok(&["scale", "api", "1"]);
    k.ok(&["restart", &file]);
    assert_eq!(api(), all("dev", 1));
    // A file whose `instances` changed is followed (PM2 would keep 1).
    let file = write(3);
    k.ok(&["restart", &file]);
    assert_eq!(api(), all("dev", 3));
    k.ok(&["scale", "api", "+1"]);
    k.ok(&["reload", &file, "--env", "production"]);
    assert_eq!(api(), all("prod", 4));
}
