//! PM2's runtime contract: what a Node app says to its manager over the IPC channel, with
//! `@pm2/io` from npm (metrics, counter, meter, histogram, actions with and without a
//! parameter, `notifyError`) or without it (its Node version, an uncaught exception, a
//! rejection nobody handled, `process.send({topic, data})`), seen where PM2 users look:
//! `jlist`'s `axm_monitor`/`axm_actions`/`axm_options`/`node_version`, `kelpie trigger`, and
//! the bus of the Node package (`require('kelpie').launchBus`, as PM2's tools use it).

use super::kelpie;
use super::tools::{installed_or_skip, npm_packages};
use kelpie_testkit::Kelpie;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// `@pm2/io` from npm, installed once under the target directory.
pub(super) fn pm2_io() -> Option<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    installed_or_skip(DIR.get_or_init(|| npm_packages("pm2-io", &["@pm2/io@6.1.0"])))
}

/// Write `name` into the test's directory, next to a `node_modules` holding `@pm2/io`.
pub(super) fn app(k: &Kelpie, modules: &Path, name: &str, source: &str) -> String {
    let file = k.write(name, source);
    let link = Path::new(&file).with_file_name("node_modules");
    if !link.exists() {
        std::os::unix::fs::symlink(modules, &link).expect("link node_modules");
    }
    file
}

const IO_APP: &str = r#"
const io = require('@pm2/io');
io.metric({ name: 'Realtime users', unit: 'users' }).set(42);
const requests = io.counter({ name: 'Requests', id: 'app/requests' });
requests.inc(); requests.inc();
const meter = io.meter({ name: 'req/sec' });
const latency = io.histogram({ name: 'Latency', measurement: 'mean', unit: 'ms' });
latency.update(10); latency.update(20);
io.action('ping', (reply) => reply({ pong: true }));
io.action('echo', (param, reply) => reply({ got: param }));
io.action('fail', (reply) => { io.notifyError(new Error('asked to fail'), { custom: 'ctx' }); reply('noted'); });
setInterval(() => meter.mark(), 50);
"#;

/// A bus follower through the Node package, as PM2's tools follow PM2's bus: one JSON line per
/// event (`[name, payload]`) in a file, from once it is subscribed ("subscribed" first).
struct BusFollower {
    child: Child,
    lines: PathBuf,
}

impl BusFollower {
    fn start(k: &Kelpie) -> BusFollower {
        let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../npm/kelpie");
        let lines = k.home().join("bus.jsonl");
        let script = format!(
            "const fs = require('fs');\n\
             const api = require({api:?});\n\
             const out = (line) => fs.appendFileSync({lines:?}, JSON.stringify(line) + '\\n');\n\
             api.connect(() => api.launchBus((err, bus) => {{\n\
               if (err) throw err;\n\
               for (const name of ['process:exception', 'process:msg', 'axm:reply', 'human:event']) {{\n\
                 bus.on(name, (payload) => out([name, payload]));\n\
               }}\n\
               out(['subscribed', {{}}]);\n\
             }}));\n",
            api = api.display().to_string(),
            lines = lines.display().to_string(),
        );
        let child = Command::new("node")
            .arg("-e")
            .arg(script)
            .env("KELPIE_HOME", k.home())
            .env("KELPIE_BINARY", env!("CARGO_BIN_EXE_kelpie"))
            .stdout(Stdio::null())
            .spawn()
            .expect("node");
        let follower = BusFollower { child, lines };
        k.wait_for("the bus follower subscribed", 10 * SECS, || {
            !follower.events().is_empty()
        });
        follower
    }

    fn events(&self) -> Vec<(String, serde_json::Value)> {
        std::fs::read_to_string(&self.lines)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<(String, serde_json::Value)>(l).ok())
            .collect()
    }

    /// The first event named `name` whose payload satisfies `matches`, waited for.
    fn wait(
        &self,
        k: &Kelpie,
        name: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut found = None;
        k.wait_for(&format!("a `{name}` on the bus"), 15 * SECS, || {
            found = self
                .events()
                .into_iter()
                .find(|(n, p)| n == name && matches(p))
                .map(|(_, p)| p);
            found.is_some()
        });
        found.expect("found")
    }
}

impl Drop for BusFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pm2_io_metrics_and_actions_show_in_jlist_and_trigger_runs_actions() {
    let Some(modules) = pm2_io() else {
        return;
    };
    let k = kelpie();
    let script = app(&k, &modules, "io-app.js", IO_APP);
    k.ok(&["start", &script, "--name", "io", "-i", "2"]);
    // The first list after the start shows what the processes use (PM2 measures when asked;
    // Kelpie reads a new process at once rather than at the next second).
    let first = k.jlist();
    for p in &first {
        assert!(p["monit"]["memory"].as_u64().is_some_and(|m| m > 0), "{p}");
    }
    let env = |pm_id: usize| k.jlist()[pm_id]["pm2_env"].clone();
    k.wait_for("the metrics of both instances", 10 * SECS, || {
        (0..2).all(|i| env(i)["axm_monitor"]["req/sec"].is_object())
    });
    for i in 0..2 {
        let env = env(i);
        let monitor = &env["axm_monitor"];
        assert_eq!(monitor["Realtime users"]["value"], 42, "{monitor}");
        assert_eq!(monitor["Realtime users"]["unit"], "users");
        assert_eq!(monitor["Requests"]["value"], 2);
        assert_eq!(monitor["Requests"]["type"], "app/requests");
        assert_eq!(monitor["Latency"]["value"], 15);
        assert!(
            monitor["Heap Size"]["value"].is_string(),
            "@pm2/io's own metrics: {monitor}"
        );
        let actions: Vec<&str> = env["axm_actions"]
            .as_array()
            .expect("axm_actions")
            .iter()
            .filter_map(|a| a["action_name"].as_str())
            .collect();
        for action in ["ping", "echo", "fail", "km:heapdump"] {
            assert!(actions.contains(&action), "{actions:?}");
        }
        assert_eq!(
            env["axm_options"]["module_name"], "io",
            "{}",
            env["axm_options"]
        );
        assert_eq!(env["axm_options"]["catchExceptions"], true);
        let node = Command::new("node")
            .arg("--version")
            .output()
            .expect("node");
        let version = String::from_utf8_lossy(&node.stdout)
            .trim()
            .trim_start_matches('v')
            .to_string();
        assert_eq!(env["node_version"], version.as_str());
    }
    // `describe` lists them as `pm2 show` does, and /metrics has the numeric ones.
    let described = k.ok(&["describe", "0"]);
    assert!(described.contains("Code metrics (@pm2/io):"), "{described}");
    assert!(described.contains("42 users"), "{described}");
    assert!(
        described.contains("Actions (kelpie trigger io <action>):"),
        "{described}"
    );
    let port = super::monitoring::low_port();
    k.ok(&["web", "--port", &port.to_string()]);
    let wanted = "kelpie_app_metric{app=\"io\",namespace=\"default\",pm_id=\"0\",name=\"Realtime users\"} 42";
    k.wait_for("the SDK's metrics in /metrics", 15 * SECS, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && super::monitoring::scrape(&k, port)
                .lines()
                .any(|l| l == wanted)
    });
    let scraped = super::monitoring::scrape(&k, port);
    assert!(
        scraped.lines().any(|l| l.starts_with(
            "kelpie_app_metric{app=\"io\",namespace=\"default\",pm_id=\"1\",name=\"Heap Size\"} "
        )),
        "@pm2/io's text values are numbers there: {scraped}"
    );
    let ping = k.ok(&["trigger", "io", "ping"]);
    assert!(
        ping.contains("2 processes have received command ping"),
        "{ping}"
    );
    assert!(ping.contains(r#"[io:0:default]={"pong":true}"#), "{ping}");
    assert!(ping.contains(r#"[io:1:default]={"pong":true}"#), "{ping}");
    let echo = k.ok(&["trigger", "0", "echo", "hello"]);
    assert!(
        echo.contains("1 processes have received command echo"),
        "{echo}"
    );
    assert!(echo.contains(r#"[io:0:default]={"got":"hello"}"#), "{echo}");
    // An action nobody registered: nothing is sent, and it says so.
    let missing = k.command(&["trigger", "io", "nope"]).output().expect("run");
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Not any process has received a command")
    );
    // Actions and metrics go with a process and come back with the next one.
    let first = k.pid("io");
    k.ok(&["restart", "io"]);
    assert_ne!(k.pid("io"), first);
    k.wait_for("the new process's actions", 10 * SECS, || {
        env(0)["axm_actions"]
            .as_array()
            .is_some_and(|a| a.len() >= 8)
    });
    assert!(k.ok(&["trigger", "io", "ping"]).contains("[io:0:default]"));
}

#[test]
fn exceptions_messages_and_replies_reach_the_bus_as_pm2_sends_them() {
    let Some(modules) = pm2_io() else {
        return;
    };
    let k = kelpie();
    let bus = BusFollower::start(&k);
    // Without @pm2/io: an uncaught exception with a property of its own, then (restarted) a
    // rejection nobody handles; and an untyped message, relayed with `raw` as PM2 does.
    let plain = k.write(
        "plain.js",
        "const fs = require('fs');\n\
         const runs = __dirname + '/runs';\n\
         const run = fs.existsSync(runs) ? Number(fs.readFileSync(runs, 'utf8')) : 0;\n\
         fs.writeFileSync(runs, String(run + 1));\n\
         process.send({ topic: 'greeting', data: { hello: 'world' } });\n\
         setTimeout(() => {\n\
           if (run === 0) { const e = new Error('plain boom'); e.code = 'E_PLAIN'; throw e; }\n\
           if (run === 1) Promise.reject(new Error('nobody caught me'));\n\
         }, 300);\n\
         setInterval(() => {}, 1000);\n",
    );
    k.ok(&["start", &plain, "--name", "plain"]);
    let thrown = bus.wait(&k, "process:exception", |p| {
        p["data"]["message"] == "plain boom"
    });
    assert_eq!(thrown["data"]["code"], "E_PLAIN", "{thrown}");
    assert_eq!(thrown["data"]["name"], "Error");
    assert!(
        thrown["data"]["stack"]
            .as_str()
            .is_some_and(|s| s.contains("plain.js")),
        "{thrown}"
    );
    assert_eq!(thrown["process"]["name"], "plain");
    let rejected = bus.wait(&k, "process:exception", |p| {
        p["data"]["message"] == "nobody caught me"
    });
    assert_eq!(rejected["process"]["name"], "plain");
    let raw = bus.wait(&k, "process:msg", |p| p["raw"]["topic"] == "greeting");
    assert_eq!(raw["raw"]["data"]["hello"], "world", "{raw}");
    // The app died of each as Node does (exit code 1), and was restarted (the exception is on
    // the bus before its process has ended: wait for the end).
    let codes = || -> Vec<i64> {
        k.exits("plain")
            .iter()
            .filter_map(|e| e["code"].as_i64())
            .collect()
    };
    k.wait_for("two exits", 10 * SECS, || codes().len() >= 2);
    assert_eq!(&codes()[..2], [1, 1], "{:?}", codes());
    // Each exit keeps what the app died of, with its stack: in `describe --json`, `events`
    // and `describe`.
    k.wait_for("the exceptions kept with the exits", 10 * SECS, || {
        let exits = k.exits("plain");
        exits.len() >= 2 && exits[..2].iter().all(|e| e["exception"].is_object())
    });
    let exits = k.exits("plain");
    assert_eq!(exits[0]["exception"]["message"], "plain boom", "{exits:?}");
    assert_eq!(exits[0]["exception"]["name"], "Error");
    assert!(
        exits[0]["exception"]["stack"]
            .as_str()
            .is_some_and(|s| s.contains("plain.js")),
        "{exits:?}"
    );
    assert_eq!(exits[1]["exception"]["message"], "nobody caught me");
    let events = k.ok(&["events", "plain"]);
    assert!(events.contains("exception | Error: plain boom"), "{events}");
    assert!(
        events.contains("plain.js"),
        "the stack's first frame: {events}"
    );
    let described = k.ok(&["describe", "plain"]);
    assert!(
        described.contains("exception | Error: nobody caught me"),
        "{described}"
    );
    // With @pm2/io: its own exceptions (once each, not twice) and the replies of actions.
    let script = app(&k, &modules, "io-app.js", IO_APP);
    k.ok(&["start", &script, "--name", "io"]);
    k.wait_for("the actions", 10 * SECS, || {
        k.app("io")["pm2_env"]["axm_actions"]
            .as_array()
            .is_some_and(|a| a.len() >= 8)
    });
    k.ok(&["trigger", "io", "fail"]);
    let noted = bus.wait(&k, "process:exception", |p| {
        p["data"]["message"] == "asked to fail"
    });
    assert_eq!(noted["data"]["metadata"]["custom"], "ctx", "{noted}");
    let reply = bus.wait(&k, "axm:reply", |p| p["data"]["action_name"] == "fail");
    assert_eq!(reply["data"]["return"], "noted");
    assert_eq!(reply["process"]["name"], "io");
    // What the app sent after it (a second report of the same exception would be among it)
    // has reached the bus once the reply of a later action has.
    k.ok(&["trigger", "io", "ping"]);
    bus.wait(&k, "axm:reply", |p| p["data"]["action_name"] == "ping");
    let failures = bus
        .events()
        .iter()
        .filter(|(n, p)| n == "process:exception" && p["data"]["message"] == "asked to fail")
        .count();
    assert_eq!(failures, 1);
}

/// Without @pm2/io, a Node app reports the runtime metrics PM2's agent gives every app, under
/// @pm2/io's names, units and ids: `jlist`'s `axm_monitor`, `describe`'s code metrics.
#[test]
fn a_node_app_without_the_sdk_reports_pm2_s_runtime_metrics() {
    if pm2_io().is_none() {
        return;
    }
    let k = kelpie();
    let script = k.write("plain.js", "setInterval(() => {}, 1000);\n");
    k.ok(&["start", &script, "--name", "plain"]);
    k.wait_for("the runtime metrics", 10 * SECS, || {
        k.app("plain")["pm2_env"]["axm_monitor"]["Event Loop Latency p95"].is_object()
    });
    let monitor = k.app("plain")["pm2_env"]["axm_monitor"].clone();
    assert_eq!(monitor["Heap Size"]["unit"], "MiB", "{monitor}");
    assert_eq!(monitor["Heap Size"]["type"], "internal/v8/heap/total");
    let heap: f64 = monitor["Heap Size"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a number as text, as @pm2/io sends it");
    assert!(heap > 1.0, "{monitor}");
    let usage = monitor["Heap Usage"]["value"].as_f64().expect("a number");
    assert!(usage > 0.0 && usage <= 100.0, "{monitor}");
    assert_eq!(monitor["Event Loop Latency"]["unit"], "ms");
    assert!(monitor["Active handles"]["value"].is_u64(), "{monitor}");
    assert!(monitor["Active requests"]["value"].is_u64(), "{monitor}");
    let described = k.ok(&["describe", "plain"]);
    assert!(described.contains("Heap Size"), "{described}");
    // `pmx: false` (`--no-pmx`) turns them off, as it turns PM2's agent off; the SDK's own
    // messages still count.
    let quiet = k.write(
        "quiet.js",
        "setTimeout(() => process.send({ type: 'axm:monitor', data: { own: { value: 1 } } }), 1500);\n\
         setInterval(() => {}, 1000);\n",
    );
    k.ok(&["start", &quiet, "--name", "quiet", "--no-pmx"]);
    k.wait_for("its own metric", 10 * SECS, || {
        k.app("quiet")["pm2_env"]["axm_monitor"]["own"].is_object()
    });
    let monitor = k.app("quiet")["pm2_env"]["axm_monitor"].clone();
    assert!(monitor["Heap Size"].is_null(), "{monitor}");
    assert_eq!(k.app("quiet")["pm2_env"]["pmx"], false);
    assert_eq!(k.app("plain")["pm2_env"]["pmx"], true);
}
