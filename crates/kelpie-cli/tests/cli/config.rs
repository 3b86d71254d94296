//! Ecosystem files (every format), smart start, environment rules, and bad input that changes
//! nothing.

use super::kelpie;
use kelpie_testkit::Kelpie;
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
        eprintln!("node is not installed; skipping");
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
        (k.write("typo.json", &format!(r#"{{"apps":[{{"name":"a","script":"{app}","max_memroy_restart":"1G"}}]}}"#)),
            &["typo.json", "app `a`", "unknown field `max_memroy_restart`", "did you mean `max_memory_restart`"]),
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
    let err = k.fails(&[
        "start",
        &app,
        "--log-type",
        "xml",
        "--log-rotate-interval",
        "10s",
    ]);
    assert!(
        err.contains("field `log_type`: expected \"raw\" or \"json\", got \"xml\""),
        "{err}"
    );
    assert!(
        err.contains("field `log_rotate_interval`: expected at least 1 minute"),
        "{err}"
    );
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
        &format!(r#"{{"apps":[{{"name":"a","script":"{app}","vizion":true,"pid_file":"a.pid"}},{{"name":"b","script":"{app}","vizion":true}}]}}"#),
    );
    let out = k.run(&["start", &file]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("`vizion` is not supported yet").count(),
        1,
        "{err}"
    );
    assert!(err.contains("`pid_file`"), "{err}");
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
        eprintln!("node is not installed; skipping");
        return;
    }
    let k = kelpie();
    k.ok(&["init"]);
    assert!(k.dir.path().join("ecosystem.config.js").exists());
    let err = k.fails(&["init"]);
    assert!(err.contains("already exists"), "{err}");
    let text = std::fs::read_to_string(k.dir.path().join("ecosystem.config.js")).expect("example");
    assert!(text.contains("env_production"), "{text}");
}
