//! `start` means started, for Node apps: the command answers once the app's main module has
//! run (a CommonJS main returned, an ES module main evaluated, top-level awaits included), so
//! the command that follows finds the app's handlers installed. PM2's own scenario, and what
//! deploy scripts do: `start app.js && sendSignal SIGUSR2 app`. Apps start in parallel.

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

fn has_node() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Node's synchronous sleep: the main module is busy for `ms` before it installs anything.
const SLEEP: &str =
    "const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);";

/// A CommonJS app: busy 500 ms, then a SIGUSR2 handler that appends to `signals`.
fn cjs_app(signals: &str) -> String {
    format!(
        "const fs = require('fs');\n{SLEEP}\nsleep(500);\n\
         process.on('SIGUSR2', () => fs.appendFileSync({signals:?}, 'usr2\\n'));\n\
         setInterval(() => {{}}, 1000);\n"
    )
}

/// An ES module app: awaits 500 ms at its top level, then installs the same handler.
fn esm_app(signals: &str) -> String {
    format!(
        "import fs from 'node:fs';\nawait new Promise((done) => setTimeout(done, 500));\n\
         process.on('SIGUSR2', () => fs.appendFileSync({signals:?}, 'usr2\\n'));\n\
         setInterval(() => {{}}, 1000);\n"
    )
}

/// Start `script` as `name`, signal it at once, and check the app's handler got the signal
/// and the app lives on (SIGUSR2's default action would have killed it).
fn signal_right_after_start(k: &Kelpie, script: &str, name: &str, signals: &str) {
    k.ok(&["start", script, "--name", name]);
    let pid = k.pid(name);
    k.ok(&["sendSignal", "SIGUSR2", name]);
    let handled =
        |n: usize| std::fs::read_to_string(signals).is_ok_and(|s| s.matches("usr2").count() >= n);
    k.wait_for("the handler's line", Duration::from_secs(10), || handled(1));
    // It lives on: the same process handles a second one.
    k.ok(&["sendSignal", "SIGUSR2", name]);
    k.wait_for("the handler's second line", Duration::from_secs(10), || {
        handled(2)
    });
    assert_eq!(k.pid(name), pid, "the app lives on");
    assert!(k.exits(name).is_empty(), "{:?}", k.exits(name));
    assert_eq!(k.app(name)["pm2_env"]["status"], "online");
}

#[test]
fn a_signal_right_after_start_reaches_a_commonjs_apps_handler() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    let k = kelpie();
    let signals = k.home().join("signals").display().to_string();
    let script = k.write("app.js", &cjs_app(&signals));
    signal_right_after_start(&k, &script, "cjs", &signals);
}

#[test]
fn a_signal_right_after_start_reaches_an_es_modules_handler_after_its_top_level_await() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    let k = kelpie();
    let signals = k.home().join("signals").display().to_string();
    let script = k.write("app.mjs", &esm_app(&signals));
    signal_right_after_start(&k, &script, "esm", &signals);
    // A `.js` under `"type": "module"`, the way most ESM projects are laid out.
    let signals = k.home().join("signals-typed").display().to_string();
    let scratch = std::path::PathBuf::from(k.write("probe", ""));
    let dir = scratch.parent().expect("scratch dir").join("typed");
    std::fs::create_dir_all(&dir).expect("dir");
    k.write("typed/package.json", r#"{"type": "module"}"#);
    let script = k.write("typed/server.js", &esm_app(&signals));
    signal_right_after_start(&k, &script, "typed", &signals);
}

#[test]
fn apps_of_one_start_run_their_main_modules_in_parallel_and_start_waits_for_all() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    let k = kelpie();
    let stamps = k.home().join("stamps").display().to_string();
    // Each main module stamps when it begins and ends, busy 2 s between: longer than the
    // spread of five starts on a loaded machine (over 600 ms at a load average of 39), so that
    // starts one after another would begin each after the previous one ended, and parallel
    // ones all begin first. `start` waits for a main module up to listen_timeout (3 s by
    // default, less than 2 s and a slow start): 10 s here.
    let app = format!(
        "const fs = require('fs');\n{SLEEP}\n\
         const stamp = (what) => fs.appendFileSync({stamps:?}, `${{what}} ${{process.env.name}} ${{Date.now()}}\\n`);\n\
         stamp('begin');\nsleep(2000);\nstamp('end');\nsetInterval(() => {{}}, 1000);\n"
    );
    let script = k.write("app.js", &app);
    let apps: Vec<String> = (0..4)
        .map(|i| format!(r#"{{"name": "app{i}", "script": {script:?}, "listen_timeout": 10000}}"#))
        .collect();
    let file = k.write(
        "ecosystem.json",
        &format!(r#"{{"apps": [{}]}}"#, apps.join(", ")),
    );
    // One of them in cluster mode with two instances: instances start in parallel too.
    let file_text = std::fs::read_to_string(&file).expect("file").replace(
        r#""name": "app3","#,
        r#""name": "app3", "exec_mode": "cluster", "instances": 2,"#,
    );
    std::fs::write(&file, file_text).expect("write");
    k.ok(&["start", &file]);
    let answered = now_ms();
    let lines: Vec<(String, u128)> = std::fs::read_to_string(&stamps)
        .expect("stamps")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[2].parse().expect("ms"))
        })
        .collect();
    let of = |what: &'static str| {
        lines
            .iter()
            .filter(move |(w, _)| w == what)
            .map(|(_, t)| *t)
    };
    assert_eq!(of("begin").count(), 5, "{lines:?}");
    assert_eq!(
        of("end").count(),
        5,
        "every main module ended before start answered: {lines:?}"
    );
    let last_begin = of("begin").max().expect("begins");
    let first_end = of("end").min().expect("ends");
    assert!(
        last_begin < first_end,
        "all began before any ended (in parallel): {lines:?}"
    );
    assert!(
        of("end").all(|t| t <= answered),
        "{lines:?} answered {answered}"
    );
    for name in ["app0", "app1", "app2", "app3"] {
        assert_eq!(k.app(name)["pm2_env"]["status"], "online");
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
}

#[test]
fn start_of_a_node_app_that_throws_at_once_answers_without_waiting_out_its_crash_loop() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    let k = kelpie();
    // PM2's scenario: a script that throws a string; its error log must show each crash.
    let script = k.write("throw-string.js", "throw 'ok';\n");
    k.ok(&["start", &script, "--max-restarts", "50"]);
    let env = &k.app("throw-string")["pm2_env"];
    assert_ne!(
        env["status"], "errored",
        "start waited out the crash loop: {env}"
    );
    assert!(env["restart_time"].as_u64() < Some(50), "{env}");
    k.wait_for("the crash in the error log", Duration::from_secs(5), || {
        std::fs::read_to_string(k.home().join("logs/throw-string-error.log"))
            .is_ok_and(|log| log.contains("throw-string.js"))
    });
}

/// The shim holds what it says at start (`node_version`, the agent's options) until the main
/// module has run, to send it with `main-ran` in one write: it still comes for an ES module
/// main (sent at the event loop's first turn) and for a main that throws before it returns
/// (sent ahead of the exception).
#[test]
fn the_shims_start_up_report_comes_whatever_the_main_module_does() {
    if !has_node() {
        return kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    let k = kelpie();
    k.write(
        "esm.mjs",
        "await new Promise((done) => setTimeout(done, 300));\nsetInterval(() => {}, 1000);\n",
    );
    k.write("throws.js", "throw new Error('at once');\n");
    let file = k.write(
        "ecosystem.json",
        r#"{"apps": [
            {"name": "esm", "script": "./esm.mjs"},
            {"name": "throws", "script": "./throws.js", "restart_delay": 1000}
        ]}"#,
    );
    // The throwing app never comes online: whatever `start` says of it, both are started.
    k.run(&["start", &file]);
    for name in ["esm", "throws"] {
        k.wait_for(
            &format!("{name}'s Node version and agent options"),
            Duration::from_secs(30),
            || {
                let env = &k.app(name)["pm2_env"];
                env["node_version"].is_string() && env["axm_options"]["module_name"] == name
            },
        );
    }
    assert!(
        k.app("throws")["pm2_env"]["restart_time"].as_u64() >= Some(1)
            || k.status("throws") != "online",
        "the throwing app really failed: {}",
        k.app("throws")
    );
}

#[test]
fn a_symlinked_main_like_node_modules_bin_finds_its_own_modules_with_a_kelpie_owned_port() {
    if !has_node() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let k = kelpie();
    // As npm installs a program: `node_modules/.bin/serve` a link to the package's file,
    // which requires a module beside itself (Next's `.bin/next` requires
    // `../server/require-hook`). Node resolves it from the link's target.
    let pkg = k.dir.path().join("node_modules/serve-pkg/bin");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(pkg.join("helper.js"), "module.exports = 'found';\n").expect("write");
    std::fs::write(
        pkg.join("serve"),
        "#!/usr/bin/env node\nconst word = require('./helper');\n\
         require('http').createServer((q, s) => s.end(word)).listen(Number(process.env.PORT));\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(pkg.join("serve"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let bin = k.dir.path().join("node_modules/.bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink("../serve-pkg/bin/serve", bin.join("serve")).expect("link");
    let port = super::free_port();
    k.ok(&[
        "start",
        "node_modules/.bin/serve",
        "--name",
        "served",
        "-i",
        "2",
        "--port",
        &port.to_string(),
    ]);
    k.wait_for("both instances online", 10 * SECS, || {
        k.jlist()
            .iter()
            .filter(|p| p["pm2_env"]["status"] == "online")
            .count()
            == 2
    });
    let err = k.log("served-error-0.log");
    assert!(!err.contains("Cannot find module"), "{err}");
    let answer = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(5 * SECS)).expect("timeout");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut raw = String::new();
        let _ = stream.read_to_string(&mut raw);
        raw
    };
    assert!(answer.ends_with("\r\n\r\nfound"), "{answer}");
    assert_eq!(k.app("served")["pm2_env"]["restart_time"], 0);
}
