//! Cluster mode as PM2 users write it: Node apps whose code listens on a port of its own
//! (`app.listen(3000)`, `await fastify.listen(...)`), `-i 4`, no `port` in the config. Every
//! instance serves that port from one socket the daemon owns; reloads lose nothing, whether
//! the app drains by itself or not; save/kill/resurrect, `kill -9` of the daemon and `update`
//! give the socket back. Express and Fastify come from npm.

use super::cluster::{pids_of, reload_under_load, Load, KEEP_ALIVE};
use super::tools::npm_packages;
use super::{free_port, heavy, kelpie, local};
use kelpie_testkit::{load, BackgroundLoad, Kelpie};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// Express and Fastify from npm, installed once under the target directory; linked as the
/// `node_modules` of each test's directory so the apps `require()` them as usual.
fn node_modules() -> Option<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| npm_packages("cluster-npm", &["express@4.21.2", "fastify@5.3.0"]));
    super::tools::installed_or_skip(dir)
}

/// Write `name` into the test's directory, next to a `node_modules` with Express and Fastify.
fn app(k: &Kelpie, modules: &std::path::Path, name: &str, source: &str) -> String {
    let file = k.write(name, source);
    let link = std::path::Path::new(&file).with_file_name("node_modules");
    if !link.exists() {
        std::os::unix::fs::symlink(modules, &link).expect("link node_modules");
    }
    file
}

/// Plain `http`: the port in the code, a second port for a `net` server on 127.0.0.1, and a
/// private `listen(0)` whose port it tells. No signal handler.
fn plain_http(port: u16, tcp_port: u16) -> String {
    format!(
        "const http = require('http');\n\
         const net = require('net');\n\
         const own = http.createServer(() => {{}}).listen(0);\n\
         http.createServer((req, res) => res.end(`pid=${{process.pid}} own=${{own.address() && own.address().port}}\\n`))\n\
         .listen({port});\n\
         net.createServer((s) => s.end(`pid=${{process.pid}}\\n`)).listen({tcp_port}, '127.0.0.1');\n"
    )
}

/// [`plain_http`] with a second port of its own.
fn no_handler(port: u16) -> String {
    plain_http(port, free_port())
}

/// The seed's graceful shutdown: its own SIGINT handler closes the server, then exits.
fn seed_graceful(port: u16) -> String {
    format!(
        "const http = require('http');\n\
         const server = http.createServer((req, res) => res.end(`pid=${{process.pid}}\\n`));\n\
         server.listen({port}, () => console.log('listening'));\n\
         process.on('SIGINT', () => server.close(() => process.exit(0)));\n"
    )
}

fn express_app(port: u16) -> String {
    format!(
        "const express = require('express');\n\
         const app = express();\n\
         app.get('/', (req, res) => res.send(`pid=${{process.pid}}\\n`));\n\
         const server = app.listen({port}, () => console.log('express listening'));\n\
         process.on('SIGINT', () => server.close(() => process.exit(0)));\n"
    )
}

fn fastify_app(port: u16) -> String {
    format!(
        "const fastify = require('fastify')();\n\
         fastify.get('/', async () => `pid=${{process.pid}}\\n`);\n\
         (async () => {{ await fastify.listen({{ port: {port}, host: '127.0.0.1' }}); }})()\n\
         .catch((e) => {{ console.error(e); process.exit(1); }});\n"
    )
}

/// What Nest's `await app.listen(3000)` does underneath: a promise of Express's listen.
fn nest_style_app(port: u16) -> String {
    format!(
        "const express = require('express');\n\
         async function bootstrap() {{\n\
           const app = express();\n\
           app.get('/', (req, res) => res.send(`pid=${{process.pid}}\\n`));\n\
           await new Promise((resolve, reject) => {{\n\
             const server = app.listen({port}, resolve);\n\
             server.once('error', reject);\n\
           }});\n\
         }}\n\
         bootstrap().catch((e) => {{ console.error(e); process.exit(1); }});\n"
    )
}

/// Start `file` as `name` with 4 instances and nothing else (cluster mode, as PM2's `-i 4`),
/// then check that every instance is online and serves, and that none restarted meanwhile.
fn four_instances_serve(k: &Kelpie, file: &str, name: &str, port: u16) -> Vec<u32> {
    let shown = k.ok(&["start", file, "--name", name, "-i", "4"]);
    assert!(
        !shown.contains("cluster mode without a port"),
        "no warning: {shown}"
    );
    wait_online(k, name, 4);
    // The socket is made when the code first listens.
    k.wait_for("the port open", 20 * SECS, || {
        load::get(local(port)).is_ok()
    });
    for p in k.jlist().iter().filter(|p| p["name"] == name) {
        assert_eq!(p["pm2_env"]["exec_mode"], "cluster_mode", "{name}");
    }
    every_instance_serves(k, port, &[name])
}

/// Wait until `count` instances of `name` are online.
fn wait_online(k: &Kelpie, name: &str, count: usize) {
    k.wait_for(
        &format!("{count} instances of {name} online"),
        20 * SECS,
        || {
            let list = k.jlist();
            let of_name: Vec<_> = list.iter().filter(|p| p["name"] == name).collect();
            of_name.len() == count && of_name.iter().all(|p| p["pm2_env"]["status"] == "online")
        },
    );
}

/// Load on 127.0.0.1:`port` (8 clients, a new connection per request) until every instance of
/// `apps` has answered, with no failed request; then none of them has restarted (the same
/// processes, no restart counted): an instance that could not listen, or crashed on its
/// second port, would have shown by then. Returns their pids.
fn every_instance_serves(k: &Kelpie, port: u16, apps: &[&str]) -> Vec<u32> {
    let pids: Vec<u32> = apps.iter().flat_map(|name| pids_of(k, name)).collect();
    let load = BackgroundLoad::start(local(port), false, 8);
    k.wait_for(
        &format!("every instance of {apps:?} serving"),
        20 * SECS,
        || {
            let seen = load.seen();
            seen.failed > 0 || pids.iter().all(|pid| seen.served_by(*pid))
        },
    );
    let report = load.finish();
    assert_eq!(report.failed, 0, "{apps:?}: {report:?}");
    for pid in &pids {
        assert!(
            report.served_by(*pid),
            "{apps:?}: instance {pid} served: {report:?}"
        );
    }
    let now: Vec<u32> = apps.iter().flat_map(|name| pids_of(k, name)).collect();
    assert_eq!(now, pids, "{apps:?}: the same processes");
    for p in k
        .jlist()
        .iter()
        .filter(|p| apps.iter().any(|a| p["name"] == *a))
    {
        assert_eq!(p["pm2_env"]["status"], "online", "{p}");
        assert_eq!(p["pm2_env"]["restart_time"], 0, "{p}");
    }
    pids
}

#[test]
fn node_apps_with_the_port_in_their_code_share_it_in_cluster_mode() {
    let _heavy = heavy();
    let Some(modules) = node_modules() else {
        return;
    };
    let k = kelpie();
    // Plain http (with a second, net server on another port and address, and a private port).
    let (port, tcp_port) = (free_port(), free_port());
    let file = app(&k, &modules, "plain.js", &plain_http(port, tcp_port));
    let pids = four_instances_serve(&k, &file, "plain", port);
    let mut private = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let body = load::get(local(port)).expect("served");
        private.insert(body.split("own=").nth(1).unwrap_or("").trim().to_string());
        let mut tcp = std::net::TcpStream::connect(local(tcp_port)).expect("net server");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut tcp, &mut text).expect("read");
        assert!(text.starts_with("pid="), "{text}");
    }
    assert!(
        private.len() > 1 && !private.contains(&port.to_string()),
        "listen(0) stays private to each instance: {private:?}"
    );
    let listeners = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let listening_on = |p: u16| {
        listeners
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
            .filter(|l| l.contains(&format!(":{p:04X} ")))
            .count()
    };
    assert_eq!(
        listening_on(port),
        1,
        "one socket for the port, not one per instance"
    );
    assert_eq!(listening_on(tcp_port), 1);

    // A second app on the same ports shares the same sockets, as under PM2 (one cluster
    // primary for every app), and keeps them when the first app is deleted.
    k.ok(&["start", &file, "--name", "plain-b", "-i", "2"]);
    wait_online(&k, "plain-b", 2);
    every_instance_serves(&k, port, &["plain", "plain-b"]);
    k.ok(&["delete", "plain"]);
    for pid in pids {
        assert!(!kelpie_testkit::alive(pid));
    }
    assert!(
        load::get(local(port)).is_ok(),
        "the port stays open while an app that asked for it exists"
    );
    k.ok(&["delete", "plain-b"]);
    assert!(
        std::net::TcpStream::connect(local(port)).is_err(),
        "the port is closed with the last app"
    );

    for (name, file, source) in [
        ("express", "express.js", express_app as fn(u16) -> String),
        ("fastify", "fastify.js", fastify_app),
        ("nest", "nest.js", nest_style_app),
    ] {
        let port = free_port();
        let file = app(&k, &modules, file, &source(port));
        four_instances_serve(&k, &file, name, port);
        k.ok(&["delete", name]);
    }
}

#[test]
fn reloads_of_apps_with_the_port_in_their_code_lose_no_request() {
    let _heavy = heavy();
    let Some(modules) = node_modules() else {
        return;
    };
    let k = kelpie();
    for (name, file, source) in [
        ("no-handler", "plain.js", no_handler as fn(u16) -> String),
        ("graceful", "graceful.js", seed_graceful),
        ("express", "express.js", express_app),
    ] {
        let port = free_port();
        let file = app(&k, &modules, file, &source(port));
        // What is tested is that no request fails, not the start's speed: on a loaded 2-core
        // machine a Node app took over the default 3 s to listen during a reload.
        k.ok(&[
            "start",
            &file,
            "--name",
            name,
            "-i",
            "2",
            "--listen-timeout",
            "15000",
        ]);
        k.wait_for("listening", 10 * SECS, || load::get(local(port)).is_ok());
        for round in 0..2 {
            eprintln!("{name}: reload {round}");
            reload_under_load(&k, name, port);
        }
        k.ok(&["delete", name]);
    }
}

#[test]
fn sockets_of_apps_with_the_port_in_their_code_survive_resurrect_kill_9_and_update() {
    let _heavy = heavy();
    let Some(modules) = node_modules() else {
        return;
    };
    let k = kelpie();
    let port = free_port();
    let file = app(&k, &modules, "express.js", &express_app(port));
    // What is tested is the sockets' life, not the start's speed: on a loaded 2-core machine
    // an express app under the shim took over the default 3 s to listen during a reload.
    k.ok(&[
        "start",
        &file,
        "--name",
        "api",
        "-i",
        "2",
        "--listen-timeout",
        "15000",
    ]);
    k.wait_for("listening", 10 * SECS, || load::get(local(port)).is_ok());
    // A stopped instance stays stopped through save/kill/resurrect.
    k.ok(&["start", &file, "--name", "spare", "-i", "1"]);
    k.ok(&["stop", "spare"]);

    let all_serve = |k: &Kelpie, count: usize, when: &str| {
        k.wait_for(&format!("{count} online {when}"), 10 * SECS, || {
            k.jlist()
                .iter()
                .filter(|p| p["name"] == "api" && p["pm2_env"]["status"] == "online")
                .count()
                == count
        });
        // After a resurrect the apps start again: the port is served once they listen.
        k.wait_for(&format!("served {when}"), 10 * SECS, || {
            load::get(local(port)).is_ok()
        });
        let pids = pids_of(k, "api");
        let load = Load::start(local(port));
        // Two keep-alive connections may well both be with one instance.
        load.wait_until(&format!("every instance serving {when}"), |mode, seen| {
            seen.ok > 0 && (mode == KEEP_ALIVE || pids.iter().all(|pid| seen.served_by(*pid)))
        });
        for (mode, report) in load.finish() {
            assert_eq!(report.failed, 0, "{when}, {mode}: {report:?}");
            if mode == KEEP_ALIVE {
                continue;
            }
            for pid in &pids {
                assert!(
                    report.pids.contains_key(&pid.to_string()),
                    "{when}, {mode}: instance {pid} served: {report:?}"
                );
            }
        }
        for p in k.jlist().iter().filter(|p| p["name"] == "api") {
            assert_eq!(p["pm2_env"]["restart_time"], 0, "{when}: {p}");
        }
    };

    k.ok(&["save"]);
    k.ok(&["kill"]);
    k.ok(&["resurrect"]);
    all_serve(&k, 2, "after resurrect");
    assert_eq!(
        k.status("spare"),
        "stopped",
        "resurrect starts no stopped app"
    );
    k.ok(&["scale", "api", "3"]);
    all_serve(&k, 3, "after resurrect and scale");

    // The boot path: the daemon `startup` runs brings the saved apps back.
    k.ok(&["save"]);
    k.ok(&["kill"]);
    let mut boot = k
        .command(&["daemon", "--resurrect-if-empty"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon");
    k.track(boot.id());
    k.wait_for("the boot daemon up", 10 * SECS, || {
        k.daemon_pid() == Some(boot.id())
    });
    all_serve(&k, 3, "after a boot");
    assert_eq!(k.status("spare"), "stopped", "a boot starts no stopped app");
    k.ok(&["scale", "api", "2"]);
    all_serve(&k, 2, "after a boot and scale");

    let daemon = k.daemon_pid().expect("daemon");
    std::process::Command::new("kill")
        .args(["-9", &daemon.to_string()])
        .status()
        .expect("kill -9");
    k.wait_for("the daemon gone", 5 * SECS, || {
        !kelpie_testkit::alive(daemon)
    });
    let _ = boot.wait();
    k.ok(&["ping"]);
    k.ok(&["scale", "api", "4"]);
    all_serve(&k, 4, "after kill -9 and scale");

    k.ok(&["update"]);
    k.ok(&["scale", "api", "2"]);
    k.ok(&["scale", "api", "3"]);
    all_serve(&k, 3, "after update and scale");
    reload_under_load(&k, "api", port);
}

#[test]
fn a_non_node_cluster_app_without_a_port_is_refused_and_a_crash_loop_backs_off() {
    let k = kelpie();
    let fake = k.fake_app();
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [{{"name": "py", "script": "{fake}", "exec_mode": "cluster", "instances": 4}}]}}"#
        ),
    );
    let out = k.run(&["start", &file]);
    assert_eq!(out.status.code(), Some(4), "invalid: {out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    for part in [
        "ecosystem.json",
        "`py`",
        "`exec_mode`",
        "`port`",
        "LISTEN_FDS",
        "reuse_port",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    assert!(k.jlist().is_empty(), "nothing started");

    // A crash loop (exits at once, no restart delay of its own) backs off instead of burning
    // its 15 restarts in a few seconds.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "crashy",
        "--",
        "--exit-after",
        "0",
        "--exit-code",
        "1",
    ]);
    // The delays themselves (at once, then 100 ms growing by half) are the instance's
    // in-process test; here a real crash loop reaches them.
    k.wait_for(
        "three restarts, some delayed by the backoff",
        10 * SECS,
        || {
            k.app("crashy")["pm2_env"]["restart_time"].as_u64() >= Some(3)
                && k.exits("crashy")
                    .iter()
                    .any(|e| e["action"] == "waiting restart")
        },
    );
    assert_ne!(k.status("crashy"), "errored");
}

/// An https or HTTP/2 (TLS) server with the port in its code and the seed's own graceful
/// shutdown (SIGINT → `server.close()` → exit).
fn tls_app(kind: &str, port: u16) -> String {
    let create = match kind {
        "https" => "require('https').createServer(tls, (req, res) => res.end(`pid=${process.pid}\\n`))",
        _ => "require('http2').createSecureServer(tls, (req, res) => res.end(`pid=${process.pid}\\n`))",
    };
    format!(
        "const fs = require('fs');\n\
         const tls = {{ key: fs.readFileSync(__dirname + '/key.pem'), cert: fs.readFileSync(__dirname + '/cert.pem') }};\n\
         const server = {create};\n\
         server.listen({port});\n\
         process.on('SIGINT', () => server.close(() => process.exit(0)));\n"
    )
}

/// Load from Node's own clients until their stdin closes: keep-alive https requests (an
/// agent with 4 connections) and requests on new connections side by side, or HTTP/2 streams
/// on one session at a time (a new session after a GOAWAY). A stream the server refused
/// unprocessed (REFUSED_STREAM, or sent after its GOAWAY) is retried, as HTTP/2 allows and
/// clients do; anything else that fails counts. Prints `served <pid>` the first time a process
/// answers and `ok 51` at the 51st answer, then at the end `{"ok":n,"failed":n,"errors":[...]}`.
const TLS_CLIENT: &str = r#"
const [kind, port] = process.argv.slice(2);
let stopped = false;
process.stdin.on('data', () => {}).on('end', () => { stopped = true; });
const report = { ok: 0, failed: 0, errors: [] };
const served = new Set();
const answered = (body) => {
  report.ok++;
  if (report.ok === 51) console.log('ok 51');
  const pid = (/pid=(\d+)/.exec(body) || [])[1];
  if (pid && !served.has(pid)) { served.add(pid); console.log(`served ${pid}`); }
};
const fail = (e) => { report.failed++; if (report.errors.length < 5) report.errors.push(String(e && (e.code || e.message) || e)); };
async function https() {
  const https = require('https');
  const keep = new https.Agent({ keepAlive: true, maxSockets: 4, rejectUnauthorized: false });
  const get = (agent) => new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', agent, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => { res.statusCode === 200 ? answered(body) : fail(res.statusCode); resolve(); });
      res.on('error', (e) => { fail(e); resolve(); });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { fail(e); resolve(); });
  });
  const loop = async (agent) => { while (!stopped) await get(agent); };
  await Promise.all([loop(keep), loop(keep), loop(keep), loop(keep), loop(false), loop(false)]);
}
async function h2() {
  const http2 = require('http2');
  let session = null;
  const open = () => {
    const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    s.on('error', () => {});
    s.on('goaway', () => { if (session === s) session = null; });
    s.on('close', () => { if (session === s) session = null; });
    return s;
  };
  const once = () => new Promise((resolve) => {
    if (!session || session.closed || session.destroyed) session = open();
    let req;
    try { req = session.request({ ':path': '/' }); } catch (e) { session = null; return resolve({ retry: true }); }
    req.setTimeout(5000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.on('response', (h) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => resolve(h[':status'] === 200 ? { body } : { error: `status ${h[':status']}` }));
    });
    req.on('error', (e) => resolve(e.code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(e.message) || e.code === 'ERR_HTTP2_GOAWAY_SESSION' ? { retry: true } : { error: e }));
    req.on('close', () => { if (req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) resolve({ retry: true }); });
  });
  const loop = async () => {
    while (!stopped) {
      const r = await once();
      if (r.body !== undefined) answered(r.body); else if (!r.retry) fail(r.error);
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  if (session) session.close();
}
(kind === 'https' ? https() : h2()).then(() => { console.log(JSON.stringify(report)); process.exit(0); });
"#;

#[test]
fn https_and_http2_apps_closing_themselves_reload_with_no_failed_request() {
    let _heavy = heavy();
    let k = kelpie();
    let dir = std::path::PathBuf::from(k.write("client.js", TLS_CLIENT))
        .parent()
        .expect("work dir")
        .to_path_buf();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(&dir)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    for kind in ["https", "http2"] {
        let port = free_port();
        let file = k.write(&format!("{kind}.js"), &tls_app(kind, port));
        k.ok(&["start", &file, "--name", kind, "-i", "2"]);
        k.wait_for("listening", 10 * SECS, || {
            std::net::TcpStream::connect(local(port)).is_ok()
        });
        let mut client = std::process::Command::new("node")
            .arg(dir.join("client.js"))
            .args([kind, &port.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node client");
        k.track(client.id());
        let said = super::pid1::collect(client.stdout.take().expect("stdout"));
        let served_by = |pids: &[u32]| {
            let said = said.lock().expect("client output").clone();
            pids.iter()
                .any(|pid| said.contains(&format!("served {pid}\n")))
        };
        // Answered before, between and after the two reloads, by the processes of the moment.
        let mut before = pids_of(&k, kind);
        let first = before.clone();
        for round in 0..2 {
            k.wait_for(
                &format!("{kind}: answers before reload {round}"),
                10 * SECS,
                || served_by(&before),
            );
            k.ok(&["reload", kind]);
            before = pids_of(&k, kind);
        }
        k.wait_for(
            &format!("{kind}: answers after the reloads"),
            10 * SECS,
            || served_by(&before) && said.lock().expect("client output").contains("ok 51\n"),
        );
        drop(client.stdin.take());
        let status = client.wait().expect("client");
        assert!(status.success(), "{kind}: the client: {status}");
        k.wait_for("the client's output read to its end", 5 * SECS, || {
            std::sync::Arc::strong_count(&said) == 1
        });
        let said = said.lock().expect("client output").clone();
        let last = said.lines().last().unwrap_or_default();
        let report: serde_json::Value =
            serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {said}"));
        assert_eq!(report["failed"], 0, "{kind}: {report}");
        assert!(report["ok"].as_u64().unwrap_or(0) > 50, "{kind}: {report}");
        for pid in first {
            assert!(
                !kelpie_testkit::alive(pid),
                "{kind}: old process {pid} stopped"
            );
        }
        k.ok(&["delete", kind]);
    }
}

/// Keep-alive clients' connections are spread evenly across the instances: with one shared
/// accept queue, the instance that wakes first would take most of them for good. (What each
/// instance then serves depends on the CPU it gets next to 16 client threads on this machine:
/// the bench measures requests per instance with wrk.)
#[test]
fn keep_alive_connections_are_spread_evenly_across_instances() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    let file = k.write(
        "hello.js",
        &format!(
            "require('http').createServer((req, res) => res.end(`pid=${{process.pid}}\\n`)).listen({port});\n"
        ),
    );
    k.ok(&["start", &file, "--name", "hello", "-i", "4"]);
    let mut answered = std::collections::BTreeSet::new();
    k.wait_for("every instance listening", 10 * SECS, || {
        if let Ok(body) = load::get(local(port)) {
            answered.insert(body.trim().to_string());
        }
        answered.len() == 4
    });
    let pids = pids_of(&k, "hello");
    // 16 keep-alive connections, as `wrk -c 16`: they all connect at once.
    let load = BackgroundLoad::start(local(port), true, 16);
    spreads_evenly(&pids, port, load);
}

#[test]
fn an_instance_that_listens_after_the_clients_connected_gets_its_share() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    let go = k.dir.path().join("go");
    // The fourth instance listens only once told to, after the others took every connection:
    // it has none to report, and must still count in the others' share.
    let file = k.write(
        "late.js",
        &format!(
            "const fs = require('fs');\n\
             const listen = () => require('http').createServer((req, res) => res.end(`pid=${{process.pid}}\\n`)).listen({port});\n\
             if (process.env.NODE_APP_INSTANCE !== '3') listen();\n\
             else {{ const wait = setInterval(() => {{ if (fs.existsSync({go:?})) {{ clearInterval(wait); listen(); }} }}, 20); }}\n"
        ),
    );
    k.ok(&["start", &file, "--name", "late", "-i", "4"]);
    let mut answered = std::collections::BTreeSet::new();
    k.wait_for("three instances listening", 10 * SECS, || {
        if let Ok(body) = load::get(local(port)) {
            answered.insert(body.trim().to_string());
        }
        answered.len() == 3
    });
    let pids = pids_of(&k, "late");
    let load = BackgroundLoad::start(local(port), true, 16);
    k.wait_for("16 connections on three instances", 10 * SECS, || {
        established_per_process(&pids, port).iter().sum::<usize>() == 16
    });
    std::fs::write(&go, "").expect("write the go file");
    spreads_evenly(&pids, port, load);
}

/// Within 60 s (a loaded machine is slower to reconnect, and to read /proc for each look: 8
/// looks in 20 s were seen beside a build), `load`'s connections are spread
/// evenly over `pids` (at most one apart), and still are at every look (at least 10) while the
/// clients send 800 more requests (50 per connection on average): a connection moved (closed,
/// made again elsewhere) between two requests would show. No request fails, and every
/// process served.
fn spreads_evenly(pids: &[u32], port: u16, load: BackgroundLoad) {
    let spread = || established_per_process(pids, port);
    let even = |counts: &[usize]| {
        counts.iter().sum::<usize>() >= 14
            && counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1
    };
    let mut seen = Vec::new();
    let mut even_since: Option<u64> = None;
    let mut looks = 0;
    // A look every 20 ms (wait_until's poll).
    kelpie_testkit::wait_until(
        "connections spread evenly, and staying so",
        60 * SECS,
        || {
            let counts = spread();
            let answered = load.seen().ok;
            if even(&counts) {
                looks += 1;
                let since = *even_since.get_or_insert(answered);
                if looks >= 10 && answered >= since + 800 {
                    return Ok(());
                }
            } else {
                (even_since, looks) = (None, 0);
            }
            seen.push(counts);
            Err(format!(
                "connections per instance, every 20 ms (the last 25 looks): {:?}",
                &seen[seen.len().saturating_sub(25)..]
            ))
        },
    );
    let report = load.finish();
    assert_eq!(report.failed, 0, "{report:?}");
    for pid in pids {
        assert!(report.served_by(*pid), "{pid} served: {report:?}");
    }
}

/// How many established TCP connections on local port `port` each process holds.
fn established_per_process(pids: &[u32], port: u16) -> Vec<usize> {
    // Socket inodes of the established connections on the port, from the kernel's tables.
    let mut established = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && *state == "01" {
                established.insert(inode.to_string());
            }
        }
    }
    pids.iter()
        .map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .filter(|inode| established.contains(inode))
                .count()
        })
        .collect()
}

/// The pid that answered `GET /` on 127.0.0.1:`port` (Express answers `pid=<pid>`), once one does.
fn answering_pid(k: &Kelpie, port: u16) -> u32 {
    let mut pid = None;
    k.wait_for(&format!("an answer on port {port}"), 20 * SECS, || {
        pid = load::get(local(port))
            .ok()
            .and_then(|body| body.trim().strip_prefix("pid=")?.parse().ok());
        pid.is_some()
    });
    pid.expect("answered")
}

/// The process group of `pid`, from /proc/<pid>/stat (the field after the state).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(2)?.parse().ok()
}

#[test]
fn a_node_server_below_npm_start_or_a_command_line_serves_the_kelpie_owned_port() {
    let Some(modules) = node_modules() else {
        return;
    };
    let k = kelpie();
    let server = app(
        &k,
        &modules,
        "server.js",
        &express_app(0).replace("app.listen(0,", "app.listen(process.env.PORT,"),
    );
    let dir = std::path::Path::new(&server)
        .parent()
        .expect("dir")
        .display()
        .to_string();
    k.write(
        "package.json",
        r#"{"name": "web", "version": "1.0.0", "private": true, "scripts": {"start": "node server.js"}}"#,
    );
    let ports = [free_port(), free_port(), free_port()];
    // PM2's ways to run an npm script or a command line; each app's port is Kelpie's socket.
    let file = k.write(
        "ecosystem.config.js",
        &format!(
            "module.exports = {{ apps: [\n\
             {{ name: 'npm-args', script: 'npm', args: 'start', cwd: {dir:?}, port: {} }},\n\
             {{ name: 'npm-line', script: 'npm start', cwd: {dir:?}, port: {} }},\n\
             {{ name: 'node-line', script: 'node server.js', exec_interpreter: 'none', cwd: {dir:?}, port: {} }},\n\
             ] }};\n",
            ports[0], ports[1], ports[2]
        ),
    );
    k.ok(&["start", &file]);
    for (name, port) in ["npm-args", "npm-line", "node-line"].iter().zip(ports) {
        let answered = answering_pid(&k, port);
        let app_pid = k.pid(name);
        assert_eq!(
            process_group(answered),
            Some(app_pid),
            "{name}: the Node server below the app's own program answers"
        );
        assert_eq!(
            k.app(name)["pm2_env"]["restart_time"],
            0,
            "{name}: no crash"
        );
    }
    // A reload: the new tree takes the same socket.
    let before = answering_pid(&k, ports[0]);
    k.ok(&["reload", "npm-args"]);
    k.wait_for("the new server answering", 20 * SECS, || {
        answering_pid(&k, ports[0]) != before
    });
    k.ok(&["stop", "all"]);
    for port in ports {
        assert!(
            load::get(local(port)).is_err(),
            "port {port} still answered"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{before}")).exists(),
        "the old server is gone"
    );
}

#[test]
fn an_npm_script_with_its_port_in_the_environment_runs_a_cluster_on_it_and_reloads_losing_nothing()
{
    let _heavy = heavy();
    let k = kelpie();
    // `PORT=… kelpie start npm --name web -i 2 -- start`: the Node server below npm is a Node
    // app too; its PORT becomes the daemon's socket, shared by both instances.
    k.write(
        "server.js",
        "require('http').createServer((q, s) => s.end(`pid=${process.pid}\\n`))\n\
         .listen(Number(process.env.PORT));\n",
    );
    k.write(
        "package.json",
        r#"{"name": "web", "version": "1.0.0", "private": true, "scripts": {"start": "node server.js"}}"#,
    );
    let port = free_port();
    let out = k
        .command(&["start", "npm", "--name", "web", "-i", "2", "--", "start"])
        .env("PORT", port.to_string())
        .output()
        .expect("start");
    assert!(out.status.success(), "{out:?}");
    wait_online(&k, "web", 2);
    for p in k.jlist() {
        assert_eq!(p["pm2_env"]["exec_mode"], "cluster_mode", "{p}");
    }
    // Both instances' servers answer on the one port.
    let groups: std::collections::BTreeSet<u32> = pids_of(&k, "web").into_iter().collect();
    let mut answered = std::collections::BTreeSet::new();
    k.wait_for("both instances answering", 20 * SECS, || {
        if let Some(group) = process_group(answering_pid(&k, port)) {
            answered.insert(group);
        }
        answered == groups
    });
    // Reloads under load lose nothing, and never restart both at once.
    for _ in 0..2 {
        let load = Load::start(local(port));
        load.wait_until("answers before the reload", |_, seen| seen.ok > 10);
        k.ok(&["reload", "web"]);
        load.wait_until("answers after the reload", |_, seen| seen.ok > 40);
        for (mode, report) in load.finish() {
            assert_eq!(report.failed, 0, "{mode}: {report:?}");
        }
    }
    assert_eq!(k.app("web")["pm2_env"]["unstable_restarts"], 0);
}

#[test]
fn a_connection_accepted_from_the_daemons_socket_has_tcp_nodelay_as_a_server_would_set() {
    let k = kelpie();
    // A server that takes its socket at fd 3 (LISTEN_FDS) the way uvicorn `--fd 3` and
    // gunicorn do: it wraps it as it finds it and sets nothing. It answers with what its
    // accepted connection has.
    let server = k.write(
        "fd_server.py",
        "import socket\n\
         listener = socket.socket(fileno=3)\n\
         while True:\n\
         \x20   conn, _ = listener.accept()\n\
         \x20   conn.recv(4096)\n\
         \x20   nodelay = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)\n\
         \x20   body = f'nodelay={1 if nodelay else 0}'.encode()\n\
         \x20   conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n' % len(body) + body)\n\
         \x20   conn.close()\n",
    );
    let port = free_port();
    k.ok(&[
        "start",
        &server,
        "--name",
        "fd",
        "-i",
        "2",
        "--port",
        &port.to_string(),
    ]);
    let mut body = String::new();
    k.wait_for("an answer", 20 * SECS, || {
        body = load::get(local(port)).unwrap_or_default();
        !body.is_empty()
    });
    assert_eq!(
        body.trim(),
        "nodelay=1",
        "small responses would wait for the delayed ACK"
    );
}
