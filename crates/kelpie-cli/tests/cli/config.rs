//! Ecosystem files (every format), smart start, environment rules, and bad input that changes
//! nothing.

use super::{free_port, kelpie};
use kelpie_testkit::Kelpie;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

fn has_node() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every bad input must leave the list as it was.
fn assert_nothing_started(k: &Kelpie) {
    if k.home().join("kelpie.sock").exists() {
        assert!(
            k.jlist().is_empty(),
            "nothing may be started by a bad command"
        );
    }
}

#[test]
fn json_yaml_and_toml_files_start_their_apps_with_only() {
    let k = kelpie();
    let app = k.fake_app();
    let json = k.write(
        "apps.json",
        &format!(r#"{{"apps":[{{"name":"a","script":"{app}"}},{{"name":"b","script":"{app}"}}]}}"#),
    );
    let yaml = k.write(
        "apps.yaml",
        &format!("apps:\n  - name: c\n    script: {app}\n    namespace: yml\n"),
    );
    let toml = k.write(
        "apps.toml",
        &format!("[[apps]]\nname = \"d\"\nscript = \"{app}\"\nkillTimeout = \"2s\"\n"),
    );
    k.ok(&["start", &json, "--only", "b"]);
    k.ok(&["start", &yaml]);
    k.ok(&["start", &toml]);
    let names: Vec<String> = k
        .jlist()
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().into())
        .collect();
    assert_eq!(names, ["b", "c", "d"]);
    assert_eq!(k.app("c")["pm2_env"]["namespace"], "yml");
    assert_eq!(
        k.app("d")["pm2_env"]["kill_timeout"],
        2000,
        "camelCase and units are understood"
    );
    let err = k.fails(&["start", &json, "--only", "zz"]);
    assert!(err.contains("zz"), "{err}");
    // stop/delete accept the file as a target.
    k.ok(&["stop", &yaml]);
    assert_eq!(k.status("c"), "stopped");
}

#[test]
fn a_js_file_with_profiles_and_smart_start_that_applies_the_new_config() {
    if !has_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let k = kelpie();
    let app = k.fake_app();
    let write = |vars: &str| {
        k.write(
            "ecosystem.config.js",
            &format!(
                "module.exports = {{ apps: [{{ name: 'api', script: '{app}', args: ['--print-env', 'A', '--print-env', 'B'],\n  env: {{ {vars} }}, env_production: {{ A: 'prod' }} }}] }};\n"
            ),
        )
    };
    let file = write("A: 'dev', B: 'bee'");
    k.ok(&["start", &file, "--env", "production"]);
    k.wait_for("first run", Duration::from_secs(5), || {
        k.log("api-out.log").contains("B=bee")
    });
    assert!(
        k.log("api-out.log").contains("A=prod"),
        "env_production wins over env"
    );
    let first = k.pid("api");
    // Same file again, with B removed: the running app is restarted with the new config, and B
    // really disappears.
    write("A: 'dev'");
    let out = k.ok(&["start", &file]);
    assert!(out.contains("restarted"), "{out}");
    assert_ne!(k.pid("api"), first);
    k.wait_for("second run", Duration::from_secs(5), || {
        k.log("api-out.log").contains("B unset")
    });
    assert!(
        k.log("api-out.log").ends_with("A=dev\nB unset\n"),
        "{}",
        k.log("api-out.log")
    );
}

#[test]
fn update_env_replaces_the_inherited_environment() {
    let k = kelpie();
    let app = k.fake_app();
    k.command(&[
        "start",
        &app,
        "--name",
        "env",
        "--",
        "--print-env",
        "FROM_SHELL",
    ])
    .env("FROM_SHELL", "one")
    .output()
    .expect("start");
    k.wait_for("first run", Duration::from_secs(5), || {
        k.log("env-out.log").contains("FROM_SHELL=one")
    });
    // A plain restart keeps the environment the app was started with.
    k.command(&["restart", "env"])
        .env("FROM_SHELL", "two")
        .output()
        .expect("restart");
    k.wait_for("second run", Duration::from_secs(5), || {
        k.log("env-out.log").matches("FROM_SHELL=one").count() == 2
    });
    // --update-env takes this shell's environment, and a variable gone from it is gone.
    k.command(&["restart", "env", "--update-env"])
        .env_remove("FROM_SHELL")
        .output()
        .expect("restart");
    k.wait_for("third run", Duration::from_secs(5), || {
        k.log("env-out.log").contains("FROM_SHELL unset")
    });
}

#[test]
fn filter_env_keeps_shell_variables_from_the_app_at_every_start() {
    let k = kelpie();
    let app = k.fake_app();
    let print = [
        "--print-env",
        "SECRET_TOKEN",
        "--print-env",
        "PUBLIC_NAME",
        "--print-env",
        "MODE",
    ];
    // The flag (repeatable: texts a name contains) for one app, `true` in a file for another.
    let mut flags = vec![
        "start",
        &app,
        "--name",
        "flag",
        "--filter-env",
        "SECRET",
        "--",
    ];
    flags.extend(print);
    k.command(&flags)
        .env("SECRET_TOKEN", "t0ps3cret")
        .env("PUBLIC_NAME", "shown")
        .output()
        .expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ecosystem.config.json");
    let ecosystem = serde_json::json!({"apps": [{
        "name": "none", "script": app, "filter_env": true, "env": {"MODE": "own"},
        "args": print,
    }]});
    std::fs::write(&file, ecosystem.to_string()).expect("write file");
    k.command(&["start", &file.display().to_string()])
        .env("SECRET_TOKEN", "t0ps3cret")
        .env("PUBLIC_NAME", "shown")
        .output()
        .expect("start the file");
    k.wait_for("both print", Duration::from_secs(5), || {
        k.log("flag-out.log").contains("MODE") && k.log("none-out.log").contains("MODE")
    });
    let flag = k.log("flag-out.log");
    assert!(
        flag.contains("SECRET_TOKEN unset") && flag.contains("PUBLIC_NAME=shown"),
        "{flag}"
    );
    // `true`: nothing inherited; the app's own `env` is never filtered.
    let none = k.log("none-out.log");
    assert!(
        none.contains("SECRET_TOKEN unset")
            && none.contains("PUBLIC_NAME unset")
            && none.contains("MODE=own"),
        "{none}"
    );
    // --update-env brings a new shell's variables: the filter still applies.
    k.command(&["restart", "flag", "--update-env"])
        .env("SECRET_TOKEN", "n3w")
        .env("PUBLIC_NAME", "again")
        .output()
        .expect("restart");
    k.wait_for("restarted", Duration::from_secs(5), || {
        k.log("flag-out.log").contains("PUBLIC_NAME=again")
    });
    assert!(
        !k.log("flag-out.log").contains("n3w"),
        "{}",
        k.log("flag-out.log")
    );
    // A value that is none of the shapes is refused, naming the field, and starts nothing.
    let bad = serde_json::json!({"apps": [{"name": "bad", "script": app, "filter_env": 3}]});
    std::fs::write(&file, bad.to_string()).expect("write file");
    let out = k.fails(&["start", &file.display().to_string()]);
    assert!(
        out.contains(
            "field `filter_env`: expected true, a variable's name or a list of texts, got 3"
        ),
        "{out}"
    );
    assert_eq!(k.jlist().len(), 2);
}

#[test]
fn env_files_reach_the_app_under_env_and_their_secrets_stay_masked() {
    let k = kelpie();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".env"),
        "# the app's settings\nexport GREETING='hello from .env'\nDB_PASSWORD=\"hunter2\"\nMODE=file\n",
    )
    .expect("write .env");
    // A file's app and a flag: both read the dotenv file relative to the app's directory.
    let file = dir.path().join("ecosystem.config.json");
    let app = k.fake_app();
    let print = [
        "--print-env",
        "GREETING",
        "--print-env",
        "DB_PASSWORD",
        "--print-env",
        "MODE",
    ];
    let ecosystem = serde_json::json!({"apps": [{
        "name": "from-file", "script": app, "cwd": dir.path(), "env_file": ".env",
        "env": {"MODE": "env"}, "args": print,
    }]});
    std::fs::write(&file, ecosystem.to_string()).expect("write file");
    k.ok(&["start", &file.display().to_string()]);
    let cwd = dir.path().display().to_string();
    let mut flags = vec![
        "start",
        &app,
        "--name",
        "from-flag",
        "--cwd",
        &cwd,
        "--env-file",
        ".env",
        "--",
    ];
    flags.extend(print);
    k.ok(&flags);
    for (name, mode) in [("from-file", "MODE=env"), ("from-flag", "MODE=file")] {
        k.wait_for(name, Duration::from_secs(5), || {
            k.log(&format!("{name}-out.log")).contains("MODE=")
        });
        let log = k.log(&format!("{name}-out.log"));
        assert!(
            log.contains("GREETING=hello from .env")
                && log.contains("DB_PASSWORD=hunter2")
                && log.contains(mode),
            "{name}: {log}"
        );
    }
    // What the app got from the file is shown like any variable: secret-looking names masked.
    let jlist = k.jlist();
    let flagged = jlist
        .iter()
        .find(|a| a["name"] == "from-flag")
        .expect("from-flag listed");
    let env = &flagged["pm2_env"]["env"];
    assert_eq!(env["GREETING"], "hello from .env", "{env}");
    assert_eq!(env["DB_PASSWORD"], "****", "{env}");

    // A missing file is an error naming it, and nothing more is started.
    let out = k.fails(&["start", &app, "--name", "nope", "--env-file", "missing.env"]);
    assert!(
        out.contains("field `env_file`: cannot read") && out.contains("missing.env"),
        "{out}"
    );
    assert_eq!(k.jlist().len(), 2);
}

#[test]
fn kelpie_variables_are_set_for_each_app() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "vars",
        "--",
        "--print-env",
        "pm_id",
        "--print-env",
        "KELPIE_HOME",
        "--print-env",
        "name",
    ]);
    k.wait_for("printed", Duration::from_secs(5), || {
        k.log("vars-out.log").contains("name=vars")
    });
    let log = k.log("vars-out.log");
    assert!(
        log.contains("pm_id=0") && log.contains(&format!("KELPIE_HOME={}", k.home().display())),
        "{log}"
    );
}

#[test]
fn bad_files_give_precise_errors_and_start_nothing() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["ping"]);
    let cases: Vec<(String, &[&str])> = vec![
        (k.write("syntax.json", "{\"apps\": [\n  {\"name\": \"a\"\n   \"script\": \"x\"}]}"), &["syntax.json:3:4"]),
        (k.write("badtype.json", &format!(r#"{{apps:[{{name:'a',script:'{app}',error:{{error_threshold:50}}}}]}}"#)),
            &["badtype.json", "app `a`", "field `error`", "expected a non-empty string"]),
        (k.write("json5.json", "{apps: [\n  {name: 'a'\n   script: 'x'}]}"), &["json5.json:3:4", "expected `,` or `}`"]),
        (k.write("unit.json", &format!(r#"{{"apps":[{{"name":"a","script":"{app}","max_memory_restart":"lots"}}]}}"#)),
            &["unit.json", "app `a`", "`max_memory_restart`", "\"lots\""]),
        (k.write("dupes.json", &format!(r#"{{"apps":[{{"name":"a","script":"{app}"}},{{"name":"a","script":"{app}"}}]}}"#)),
            &["dupes.json", "`a`", "unique"]),
        (k.write("missing.json", r#"{"apps":[{"name":"a","script":"/no/such/app.js"}]}"#), &["missing.json", "/no/such/app.js", "not found"]),
        (k.write("bad.yaml", "apps:\n  - name: a\n   script: b\n"), &["bad.yaml:3"]),
        (k.write("bad.toml", "[[apps]]\nname = \"a\nscript = 1\n"), &["bad.toml:2"]),
    ];
    for (file, expected) in cases {
        let err = k.fails(&["start", &file]);
        for needle in expected {
            assert!(
                err.contains(needle),
                "error for {file} lacks {needle:?}:\n{err}"
            );
        }
        assert_nothing_started(&k);
    }
    let err = k.fails(&["start", "/no/such/script.py"]);
    assert!(err.contains("/no/such/script.py"), "{err}");
    assert_nothing_started(&k);
}

#[test]
fn bad_log_flags_are_refused_and_start_nothing() {
    let k = kelpie();
    let app = k.fake_app();
    let err = k.fails(&["start", &app, "--log-rotate-interval", "10s"]);
    assert!(
        err.contains("field `log_rotate_interval`: expected at least 1 minute"),
        "{err}"
    );
    assert_nothing_started(&k);
    // A log type PM2 writes raw lines for is run the same way, with a word.
    let out = k
        .command(&["start", &app, "--log-type", "xml"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "field `log_type`: expected \"raw\" or \"json\", got \"xml\"; lines are written raw"
        ),
        "{err}"
    );
}

#[test]
fn real_files_pm2_runs_are_run_with_their_log_names_and_only_a_broken_app_is_refused() {
    let k = kelpie();
    let app = k.fake_app();
    // Shaped like real ones: two aliases of one field, PM2's `log_type: "format"`, an
    // `instances: 1` app (whose logs PM2 numbers), and a cluster command line with nowhere to
    // share its port (PM2 starts it and it crash-loops).
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [
  {{"name": "api", "script": "{app}", "instances": 1, "exec_mode": "fork",
    "merge_logs": true, "combine_logs": true, "log_type": "format"}},
  {{"name": "one", "script": "{app}", "instances": 1, "exec_mode": "fork"}},
  {{"name": "worker", "script": "{app}", "exec_mode": "cluster", "instances": 2}}
]}}"#
        ),
    );
    let out = k.command(&["start", &file]).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a refused app fails the command:\n{err}"
    );
    assert!(
        err.contains("app `worker`") && err.contains("not started; the file's other apps are"),
        "{err}"
    );
    assert!(
        err.contains("`combine_logs` and `merge_logs` both set `merge_logs` (to the same value)"),
        "{err}"
    );
    assert_eq!(names(&k), ["api", "one"]);
    k.wait_for("both online", Duration::from_secs(5), || {
        k.status("api") == "online" && k.status("one") == "online"
    });
    // PM2's names: `-<pm_id>` for an app that asked for instances, unless merged.
    let logs = k.home().join("logs");
    let one_id = k.app("one")["pm_id"].as_u64().expect("id");
    assert!(logs.join(format!("one-out-{one_id}.log")).exists());
    assert!(logs.join("api-out.log").exists(), "merged: no number");
    assert!(!logs.join("one-out.log").exists());
    // --strict keeps all of it an error, and starts nothing more.
    k.ok(&["delete", "all"]);
    let err = k.fails(&["start", &file, "--strict"]);
    assert!(err.contains("app `worker`"), "{err}");
    assert_nothing_started(&k);
}

#[test]
fn bad_health_issue_flags_are_refused_and_start_nothing() {
    let k = kelpie();
    let app = k.fake_app();
    let err = k.fails(&[
        "start",
        &app,
        "--health-http",
        "https://localhost/health",
        "--nice",
        "40",
        "--watchdog",
        "500ms",
    ]);
    for expected in [
        "field `health_check.http`: https is not supported: check the app over http on localhost",
        "field `nice`: expected a nice value from -20 (highest priority) to 19 (lowest), got \"40\"",
        "field `watchdog`: expected at least 1 second, got \"500ms\"",
    ] {
        assert!(err.contains(expected), "{err}");
    }
    assert_nothing_started(&k);

    // `--watch src` (without `=`) reads `src` as a second script: say how to watch it.
    let marker = k.write("marker", "");
    let src = std::path::Path::new(&marker).with_file_name("src");
    std::fs::create_dir(&src).expect("mkdir");
    let err = k.fails(&["start", &app, "--watch", "src"]);
    assert!(err.contains("to watch it, write --watch=src"), "{err}");
    assert_nothing_started(&k);
}

#[test]
fn a_depends_on_cycle_is_refused_and_starts_nothing() {
    let k = kelpie();
    let app = k.fake_app();
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps":[{{"name":"api","script":"{app}","depends_on":"worker"}},
                         {{"name":"worker","script":"{app}","depends_on":["api"]}}]}}"#
        ),
    );
    let err = k.fails(&["start", &file]);
    assert!(
        err.contains("ecosystem.json: depends_on has a cycle: api -> worker -> api"),
        "{err}"
    );
    assert_nothing_started(&k);
}

#[test]
fn unsupported_pm2_fields_warn_once_and_the_app_still_starts() {
    let k = kelpie();
    let app = k.fake_app();
    let file = k.write(
        "w.json",
        &format!(r#"{{"apps":[{{"name":"a","script":"{app}","automation":true,"treekill":true}},{{"name":"b","script":"{app}","automation":true}}]}}"#),
    );
    let out = k.run(&["start", &file]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("`automation` is not supported yet").count(),
        1,
        "{err}"
    );
    assert!(err.contains("`treekill`"), "{err}");
    assert_eq!(k.jlist().len(), 2);
}

#[test]
fn a_js_file_without_node_is_a_clear_error() {
    let k = kelpie();
    let file = k.write("ecosystem.config.js", "module.exports = { apps: [] };\n");
    let out = k
        .command(&["start", &file])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs Node.js") && err.contains("ecosystem.config.js"),
        "{err}"
    );
}

#[test]
fn init_writes_an_example_that_starts() {
    if !has_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let k = kelpie();
    k.ok(&["init"]);
    assert!(k.dir.path().join("ecosystem.config.js").exists());
    let err = k.fails(&["init"]);
    assert!(err.contains("already exists"), "{err}");
    // PM2's template names are taken (`pm2 init simple`), and never write over a user's file.
    let err = k.fails(&["init", "simple"]);
    assert!(err.contains("already exists"), "{err}");
    let text = std::fs::read_to_string(k.dir.path().join("ecosystem.config.js")).expect("example");
    assert!(text.contains("env_production"), "{text}");
    // It starts as written (with the example app it names, written beside it), and serves.
    k.ok(&["start", "ecosystem.config.js"]);
    k.wait_for("api online", Duration::from_secs(10), || {
        k.status("api") == "online"
    });
    // A number in the file, so a number in jlist, as PM2 shows it.
    let port = k.app("api")["pm2_env"]["env"]["PORT"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("PORT");
    k.wait_for("the example app answering", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    k.ok(&["delete", "all"]);
}

/// `kelpie args…` run in `cwd` with `input` on its standard input.
fn run_with_stdin(k: &Kelpie, args: &[&str], cwd: &Path, input: &str) -> Output {
    let mut child = k
        .command(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kelpie");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for kelpie")
}

fn names(k: &Kelpie) -> Vec<String> {
    k.jlist()
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn unknown_fields_warn_naming_file_app_and_field_and_the_app_still_starts() {
    let k = kelpie();
    let app = k.fake_app();
    let file = k.write(
        "typo.json",
        &format!(
            "// written for PM2\n{{\n  apps: [{{ name: 'a', script: '{app}', max_memroy_restart: '1G', colour: 'blue', }}],\n  extra: 1,\n}}\n"
        ),
    );
    let out = k.run(&["start", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [
            format!("kelpie: warning: {file}: unknown top-level key `extra` is ignored (kelpie reads `apps`, `deploy` and `static`)"),
            format!("kelpie: warning: {file}: app `a`: unknown field `colour` is ignored"),
            format!("kelpie: warning: {file}: app `a`: unknown field `max_memroy_restart` is ignored (did you mean `max_memory_restart`?)"),
        ],
        "{err}"
    );
    assert_eq!(k.status("a"), "online");
    assert!(
        k.app("a")["pm2_env"]["max_memory_restart"].is_null(),
        "a misspelt field sets nothing: {}",
        k.app("a")["pm2_env"]
    );
}

#[test]
fn strict_mode_refuses_warnings_starts_nothing_and_exits_non_zero() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["ping"]);
    let file = k.write(
        "typo.json",
        &format!(r#"{{"apps":[{{"name":"a","script":"{app}","max_memroy_restart":"1G"}},{{"name":"b","script":"{app}","automation":true}}]}}"#),
    );
    let err = k.fails(&["start", &file, "--strict"]);
    for needle in [
        format!("{file}: app `a`: unknown field `max_memroy_restart` is ignored (did you mean `max_memory_restart`?)"),
        format!("{file}: app `b`: `automation` is not supported yet by kelpie and is ignored"),
        "strict mode (--strict, or `strict = true` in kelpie.toml)".to_string(),
    ] {
        assert!(err.contains(&needle), "lacks {needle:?}:\n{err}");
    }
    assert_nothing_started(&k);

    // The same from kelpie.toml, without the flag.
    std::fs::write(k.home().join("kelpie.toml"), "strict = true\n").expect("write kelpie.toml");
    let err = k.fails(&["start", &file]);
    assert!(err.contains("unknown field `max_memroy_restart`"), "{err}");
    assert_nothing_started(&k);

    // A clean file starts in strict mode, and invalid values stay errors either way.
    let clean = k.write(
        "clean.json",
        &format!(r#"{{"apps":[{{"name":"c","script":"{app}"}}]}}"#),
    );
    k.ok(&["start", &clean, "--strict"]);
    assert_eq!(names(&k), ["c"]);
    std::fs::write(k.home().join("kelpie.toml"), "").expect("write kelpie.toml");
    let out = k.run(&["start", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&k), ["c", "a", "b"]);
}

#[test]
fn a_json5_file_with_deploy_env_and_append_env_to_name_starts_as_pm2_would() {
    let k = kelpie();
    let app = k.fake_app();
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{
  apps: [{{
    name: 'web',
    script: '{app}',
    args: ['--print-env', 'A', '--print-env', 'B', '--print-env', 'C'],
    append_env_to_name: true,
    env: {{ A: 'env', B: 'env' }},
    env_dev: {{ A: 'env_dev' }},
  }}],
  deploy: {{
    dev: {{ user: 'node', host: '127.0.0.1', ref: 'origin/main', env: {{ A: 'deploy', B: 'deploy', C: 'deploy' }} }},
  }},
}}"#
        ),
    );
    let out = k.run(&["start", &file, "--env", "dev"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&k), ["web-dev"]);
    k.wait_for("the env printed", Duration::from_secs(5), || {
        k.log("web-dev-out.log").contains("C=")
    });
    let log = k.log("web-dev-out.log");
    // As PM2 7 does: env_<env> over deploy.<env>.env over env.
    assert!(log.ends_with("\nA=env_dev\nB=deploy\nC=deploy\n"), "{log}");

    // Without --env: the name as written, and no deploy env.
    let out = k.run(&["start", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&k), ["web-dev", "web"]);
    k.wait_for("the env printed", Duration::from_secs(5), || {
        k.log("web-out.log").contains("C ")
    });
    let log = k.log("web-out.log");
    assert!(log.ends_with("\nA=env\nB=env\nC unset\n"), "{log}");
}

#[test]
fn a_piped_ecosystem_file_starts_and_deletes_its_apps_with_dash() {
    let k = kelpie();
    // A relative script resolves against the current directory, where the file is not.
    let project = k.dir.path().join("project");
    std::fs::create_dir(&project).expect("mkdir");
    std::os::unix::fs::symlink(k.fake_app(), project.join("server")).expect("symlink");
    let all = "{apps: [\n  {name: 'one', script: './server'},\n  {name: 'two', script: 'server', bogus: 1},\n]}\n";
    let out = run_with_stdin(&k, &["start", "-"], &project, all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("kelpie: warning: <stdin>: app `two`: unknown field `bogus` is ignored"),
        "{err}"
    );
    assert_eq!(names(&k), ["one", "two"]);
    let script = project.join("server").display().to_string();
    assert_eq!(k.app("one")["pm2_env"]["pm_exec_path"], script.as_str());
    assert_eq!(k.status("two"), "online");

    // stop, restart and delete `-` act on the apps the piped file names.
    let other = k.write(
        "other.json",
        &format!(
            r#"{{"apps":[{{"name":"other","script":"{}"}}]}}"#,
            k.fake_app()
        ),
    );
    k.ok(&["start", &other]);
    let out = run_with_stdin(&k, &["stop", "-"], &project, all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (k.status("one"), k.status("two")),
        ("stopped".into(), "stopped".into())
    );
    assert_eq!(k.status("other"), "online");
    let out = run_with_stdin(&k, &["restart", "-"], &project, all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(k.status("one"), "online");
    let out = run_with_stdin(&k, &["delete", "-"], &project, all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&k), ["other"]);

    // A broken piped file names <stdin>, line and column, and changes nothing.
    let out = run_with_stdin(
        &k,
        &["start", "-"],
        &project,
        "{apps: [\n  {name: 'x' script: 'server'}]}",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<stdin>:2:14: expected `,` or `}`"), "{err}");
    assert_eq!(names(&k), ["other"]);
}

#[test]
fn the_http_block_of_pm2_templates_is_an_http_health_check() {
    let k = kelpie();
    let app = k.fake_app();
    let (good, picky) = (free_port(), free_port());
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{apps: [
  {{name: 'good', script: '{app}', args: ['--serve'], env: {{PORT: {good}}},
    http: {{port: {good}, path: '/health', expect_status: 200, interval: 200}}}},
  {{name: 'picky', script: '{app}', args: ['--serve'], env: {{PORT: {picky}}},
    http: {{port: {picky}, path: '/health', expect_status: 204, interval: 200, failures: 2}}}},
]}}"#
        ),
    );
    k.ok(&["start", &file]);
    let first = k.pid("picky");
    k.wait_for("good healthy", Duration::from_secs(5), || {
        k.app("good")["pm2_env"]["health"] == "healthy"
    });
    // picky answers 200 where 204 is expected: restarted for its health.
    k.wait_for("picky restarted", Duration::from_secs(8), || {
        let pid = k.pid("picky");
        pid != 0 && pid != first
    });
    let describe = k.ok(&["describe", "picky"]);
    assert!(
        describe.contains(&format!(
            "HTTP 200 from http://127.0.0.1:{picky}/health (expected 204)"
        )),
        "{describe}"
    );
    assert_eq!(
        k.app("good")["pm2_env"]["restart_time"],
        0,
        "{}",
        k.app("good")
    );

    let bad = k.write(
        "bad.json",
        &format!(
            "{{apps: [{{name: 'b', script: '{app}', http: {{port: 'x', expect_staus: 200}}}}]}}"
        ),
    );
    let err = k.fails(&["start", &bad]);
    for needle in [
        "bad.json: app `b`: field `http`: unknown key `expect_staus` (did you mean `expect_status`?)",
        "bad.json: app `b`: field `http.port`: expected a port number",
    ] {
        assert!(err.contains(needle), "lacks {needle:?}:\n{err}");
    }
    assert_eq!(names(&k), ["good", "picky"]);
}

#[test]
fn pid_files_hold_each_instances_pid_while_it_runs() {
    let k = kelpie();
    let app = k.fake_app();
    let given = k.dir.path().join("run/one.pid");
    k.ok(&[
        "start",
        &app,
        "--name",
        "one",
        "--pid",
        given.to_str().expect("utf-8"),
    ]);
    // As PM2 names it (its own e2e scenario checks `ls echo-0.pid`): the instance's id before
    // `.pid`, even for one instance in fork mode.
    let pid_file = k.dir.path().join("run/one-0.pid");
    assert!(!given.exists());
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    k.wait_for("the pid file", Duration::from_secs(5), || {
        read(&pid_file) == k.pid("one").to_string()
    });
    k.ok(&["restart", "one"]);
    k.wait_for("the new pid", Duration::from_secs(5), || {
        read(&pid_file) == k.pid("one").to_string()
    });
    k.ok(&["stop", "one"]);
    k.wait_for("the pid file gone", Duration::from_secs(5), || {
        !pid_file.exists()
    });

    // From a file, two instances: `api-<id>.pid` each.
    let file = k.write(
        "pids.json",
        &format!(
            r#"{{"apps": [{{"name": "api", "script": "{app}", "instances": 2, "exec_mode": "fork", "pid_file": "pids/api.pid"}}]}}"#
        ),
    );
    k.ok(&["start", &file]);
    for app in k.jlist().iter().filter(|a| a["name"] == "api") {
        let id = app["pm_id"].as_u64().expect("id");
        let path = k.dir.path().join(format!("pids/api-{id}.pid"));
        assert_eq!(app["pm2_env"]["pm_pid_path"], path.display().to_string());
        k.wait_for("each instance's pid file", Duration::from_secs(5), || {
            read(&path).parse::<u64>().ok() == app["pid"].as_u64()
        });
    }
}

#[test]
fn command_lines_and_text_scripts_run_as_pm2_runs_them() {
    let k = kelpie();
    let app = k.fake_app();
    // A command line with `interpreter: none` and `node_args`: run by a shell as written, its
    // node options in NODE_OPTIONS for the Node processes it starts (bash would refuse them).
    std::fs::write(
        k.dir.path().join("www"),
        "#!/usr/bin/env node\nsetInterval(() => {}, 1000);\n",
    )
    .expect("write");
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [
  {{"name": "cmd", "script": "{app} --print-env NODE_OPTIONS --tick 100000", "exec_interpreter": "none",
    "node_args": "--max-old-space-size=64", "env": {{"NODE_OPTIONS": "--no-warnings"}}}},
  {{"name": "www", "script": "./www"}}
]}}"#
        ),
    );
    let out = k.command(&["start", &file]).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("through NODE_OPTIONS"), "{err}");
    let log = k.home().join("logs/cmd-out.log");
    k.wait_for("the command line's output", Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("NODE_OPTIONS=--no-warnings --max-old-space-size=64"))
    });
    assert_eq!(k.status("cmd"), "online");
    // A text script that lost its execute bit runs with the program of its #! line; jlist
    // shows it as PM2 does, run by the Node that runs PM2 (its absolute path).
    let www = k.app("www");
    let shown = www["pm2_env"]["exec_interpreter"]
        .as_str()
        .unwrap_or_default();
    assert!(shown.starts_with('/') && shown.ends_with("/node"), "{www}");
    k.wait_for("www online", Duration::from_secs(5), || {
        k.status("www") == "online"
    });
}

#[test]
fn a_command_lines_node_options_that_node_options_refuses_are_dropped_with_a_warning() {
    if !has_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let k = kelpie();
    k.write(
        "app.js",
        "console.log('NODE_OPTIONS=' + process.env.NODE_OPTIONS);\nsetInterval(() => {}, 1000);\n",
    );
    // A real file's shape (`npm run start:prod` there): a command line, `node_args` Node takes
    // in NODE_OPTIONS and `interpreter_args: '--harmony'`, which it refuses there (Node would
    // exit at once, every start).
    let file = k.write(
        "ecosystem.config.js",
        "module.exports = { apps: [\n\
           { name: 'cmd', script: 'node app.js', node_args: ['--max-old-space-size=512', '--harmony'] },\n\
           { name: 'prod', script: 'node app.js', node_args: ['--max-old-space-size=512'], interpreter_args: '--harmony' },\n\
         ] };\n",
    );
    let out = k.command(&["start", &file]).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for app in ["cmd", "prod"] {
        assert!(
            err.lines().any(|l| l.contains(&format!("app `{app}`"))
                && l.contains("Node does not allow --harmony in NODE_OPTIONS")
                && l.contains("dropped")),
            "{err}"
        );
    }
    // What Node takes there still reaches it.
    let log = k.home().join("logs/cmd-out.log");
    k.wait_for("cmd's output", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("NODE_OPTIONS=--max-old-space-size=512\n"))
    });
    let log = k.home().join("logs/prod-out.log");
    k.wait_for("prod's output", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("NODE_OPTIONS=undefined"))
    });
    // Node checks NODE_OPTIONS and its flags before it runs the app: a Node that refused them
    // would have exited without printing, and been restarted (to refuse them again). The
    // lines above come from the first process of each, which took them and runs on.
    for app in ["cmd", "prod"] {
        let entry = k.app(app);
        assert_eq!(entry["pm2_env"]["status"], "online", "{entry}");
        assert_eq!(entry["pm2_env"]["restart_time"], 0, "{entry}");
    }
}
