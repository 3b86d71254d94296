//! Node apps run with Node's source maps, as under PM2 7: a compiled TypeScript app's stack
//! traces name `main.ts`, unless the app disables them (`--disable-source-map-support` or
//! `disable_source_map_support: true`), in fork and in cluster mode. Its `node_args` stay what
//! the user gave.

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::time::Duration;

fn has_node() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What `tsc --sourceMap` makes of a small TypeScript app that throws from a function after
/// 100 ms: the compiled script, which names its map.
const MAIN_JS: &str = r#""use strict";
function fail(failure) {
    throw new Error(failure.reason);
}
setTimeout(() => fail({ reason: "kelpie source map check" }), 100);
//# sourceMappingURL=main.js.map
"#;

/// Its source map (v3): main.js's lines 2-5 come from main.ts's lines 4, 5, 6 and 8 (so the
/// `throw` is main.js:3 and main.ts:5).
const MAIN_JS_MAP: &str = r#"{"version": 3, "file": "main.js", "sources": ["main.ts"], "sourcesContent": ["// A TypeScript app, compiled to main.js with a source map.\ninterface Failure { reason: string }\n\nfunction fail(failure: Failure): never {\n  throw new Error(failure.reason);\n}\n\nsetTimeout(() => fail({ reason: \"kelpie source map check\" }), 100);\n"], "names": [], "mappings": ";AAGA;AACA;AACA;AAEA"}
"#;

/// The compiled app in the test's directory; `None` (after a skip) without Node.
fn compiled_app(k: &Kelpie) -> Option<String> {
    if !has_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return None;
    }
    k.write("main.js.map", MAIN_JS_MAP);
    Some(k.write("main.js", MAIN_JS))
}

/// The error log of app `name`'s first instance, once its process has died of the error and
/// the whole stack trace is in the file (its last frame is Node's timer loop).
fn stack_trace(k: &Kelpie, name: &str) -> String {
    let path = k.app(name)["pm2_env"]["pm_err_log_path"]
        .as_str()
        .expect("pm_err_log_path in jlist")
        .to_string();
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    k.wait_for(
        &format!("the stack trace of `{name}` in {path}"),
        Duration::from_secs(15),
        || !k.exits(name).is_empty() && read().contains("processTimers"),
    );
    read()
}

fn assert_mapped(log: &str) {
    assert!(log.contains("kelpie source map check"), "{log}");
    assert!(log.contains("main.ts:5"), "the throw is mapped: {log}");
}

fn assert_not_mapped(log: &str) {
    assert!(log.contains("kelpie source map check"), "{log}");
    assert!(log.contains("main.js:3"), "the throw is in main.js: {log}");
    assert!(!log.contains("main.ts"), "no source map: {log}");
}

#[test]
fn a_node_app_gets_source_maps_unless_it_disables_them() {
    let k = kelpie();
    let Some(main) = compiled_app(&k) else {
        return;
    };
    k.ok(&["start", &main, "--name", "plain", "--no-autorestart"]);
    k.ok(&[
        "start",
        &main,
        "--name",
        "forced",
        "--no-autorestart",
        "--source-map-support",
    ]);
    k.ok(&[
        "start",
        &main,
        "--name",
        "disabled",
        "--no-autorestart",
        "--disable-source-map-support",
    ]);
    // The user's own flag is not doubled, and stays the only one shown.
    k.ok(&[
        "start",
        &main,
        "--name",
        "own-flag",
        "--no-autorestart",
        "--node-args=--no-enable-source-maps",
    ]);
    assert_mapped(&stack_trace(&k, "plain"));
    assert_mapped(&stack_trace(&k, "forced"));
    assert_not_mapped(&stack_trace(&k, "disabled"));
    assert_not_mapped(&stack_trace(&k, "own-flag"));
    assert_eq!(
        k.app("plain")["pm2_env"]["node_args"],
        serde_json::json!([])
    );
    assert_eq!(
        k.app("own-flag")["pm2_env"]["node_args"],
        serde_json::json!(["--no-enable-source-maps"])
    );

    // The choice is saved with the app: resurrected and run again, it still has no source map.
    let disabled_log = k.app("disabled")["pm2_env"]["pm_err_log_path"]
        .as_str()
        .expect("pm_err_log_path")
        .to_string();
    k.ok(&["save"]);
    k.ok(&["kill"]);
    std::fs::write(&disabled_log, "").expect("empty the error log");
    k.ok(&["resurrect"]);
    k.ok(&["restart", "disabled"]);
    assert_not_mapped(&stack_trace(&k, "disabled"));
}

#[test]
fn an_ecosystem_file_can_disable_source_maps() {
    let k = kelpie();
    let Some(main) = compiled_app(&k) else {
        return;
    };
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [
                {{"name": "off", "script": "{main}", "autorestart": false,
                  "disable_source_map_support": true}},
                {{"name": "on", "script": "{main}", "autorestart": false,
                  "source_map_support": true}}
            ]}}"#
        ),
    );
    let out = k.command(&["start", &file]).output().expect("run kelpie");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("source_map"),
        "both fields are supported, without a warning: {stderr}"
    );
    assert_not_mapped(&stack_trace(&k, "off"));
    assert_mapped(&stack_trace(&k, "on"));

    // Not a boolean: refused, naming the field, and nothing else is started.
    let bad = k.write(
        "bad.json",
        &format!(
            r#"{{"apps": [{{"name": "bad", "script": "{main}", "disable_source_map_support": "yes"}}]}}"#
        ),
    );
    let err = k.fails(&["start", &bad]);
    assert!(err.contains("disable_source_map_support"), "{err}");
    assert!(k.jlist().iter().all(|a| a["name"] != "bad"));
}

#[test]
fn cluster_mode_node_apps_get_source_maps_too() {
    let k = kelpie();
    let Some(main) = compiled_app(&k) else {
        return;
    };
    k.ok(&[
        "start",
        &main,
        "--name",
        "clustered",
        "-i",
        "1",
        "--no-autorestart",
    ]);
    assert_eq!(k.app("clustered")["pm2_env"]["exec_mode"], "cluster_mode");
    assert_mapped(&stack_trace(&k, "clustered"));
    k.ok(&[
        "start",
        &main,
        "--name",
        "clustered-off",
        "-i",
        "1",
        "--no-autorestart",
        "--disable-source-map-support",
    ]);
    assert_not_mapped(&stack_trace(&k, "clustered-off"));
}
