//! Cluster mode: instances sharing a Kelpie-owned socket, readiness, reload with no failed
//! request under load, scale.

use super::apps::GracefulNode;
use super::{free_port, heavy, kelpie, local};
use kelpie_testkit::{load, BackgroundLoad, Kelpie, LoadReport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(1);

// The tests that start Node or Python instances, or put load on them, hold `heavy()` (both
// cores); those of fake-app alone, a few requests at most, do not.

/// Start `fake-app --serve` (a LISTEN_FDS server) as `name` on a Kelpie-owned 127.0.0.1 port,
/// with more `kelpie start` flags and more app arguments.
fn start_server(k: &Kelpie, name: &str, port: u16, flags: &[&str], app_args: &[&str]) {
    let fake = k.fake_app();
    let address = format!("127.0.0.1:{port}");
    let mut args = vec!["start", &fake, "--name", name, "--port", &address];
    args.extend(flags);
    args.extend(["--", "--serve"]);
    args.extend(app_args);
    k.ok(&args);
}

/// The modes of [`Load`].
pub(super) const NEW_CONNECTIONS: &str = "new connection per request";
pub(super) const KEEP_ALIVE: &str = "keep-alive";

/// Load running in the background, new connection per request and keep-alive side by side
/// (two clients each).
pub(super) struct Load {
    modes: Vec<(&'static str, BackgroundLoad)>,
}

impl Load {
    pub(super) fn start(addr: SocketAddr) -> Load {
        let modes = [(NEW_CONNECTIONS, false), (KEEP_ALIVE, true)]
            .into_iter()
            .map(|(name, keep_alive)| (name, BackgroundLoad::start(addr, keep_alive, 2)))
            .collect();
        Load { modes }
    }

    /// What each mode has seen so far, by mode.
    pub(super) fn seen(&self) -> BTreeMap<&'static str, LoadReport> {
        self.modes.iter().map(|(m, l)| (*m, l.seen())).collect()
    }

    /// Wait until what each mode has seen so far satisfies `done` (given the mode's name);
    /// panics with the reports after 20 s (a loaded machine).
    pub(super) fn wait_until(&self, what: &str, done: impl Fn(&str, &LoadReport) -> bool) {
        kelpie_testkit::wait_until(what, 20 * SECS, || {
            let seen = self.seen();
            match seen.iter().all(|(mode, report)| done(mode, report)) {
                true => Ok(()),
                false => Err(format!("{seen:?}")),
            }
        });
    }

    /// Stop and return each mode's report.
    pub(super) fn finish(self) -> Vec<(&'static str, LoadReport)> {
        self.modes
            .into_iter()
            .map(|(name, load)| (name, load.finish()))
            .collect()
    }
}

pub(super) fn pids_of(k: &Kelpie, name: &str) -> Vec<u32> {
    k.jlist()
        .iter()
        .filter(|p| p["name"] == name)
        .map(|p| p["pid"].as_u64().unwrap_or(0) as u32)
        .collect()
}

/// Reload `name` under load and check that no request failed and the new processes served.
pub(super) fn reload_under_load(k: &Kelpie, name: &str, port: u16) {
    let before = pids_of(k, name);
    let load = Load::start(local(port));
    load.wait_until("answers before the reload", |_, seen| seen.ok > 10);
    k.ok(&["reload", name]);
    let after = pids_of(k, name);
    assert!(
        after.iter().all(|pid| *pid != 0 && !before.contains(pid)),
        "every process replaced: {before:?} -> {after:?}"
    );
    // Each mode goes on to the new processes (a keep-alive connection too, once its old
    // process has closed it).
    load.wait_until("answers from the new processes", |_, seen| {
        seen.ok > 20 && after.iter().any(|pid| seen.served_by(*pid))
    });
    for (mode, report) in load.finish() {
        assert_eq!(report.failed, 0, "{mode}: {report:?}");
        assert!(
            report.ok > 20,
            "{mode}: too few requests to mean anything: {report:?}"
        );
        assert!(
            after.iter().any(|pid| report.served_by(*pid)),
            "{mode}: the new processes answered: {report:?}"
        );
    }
    for pid in before {
        assert!(!kelpie_testkit::alive(pid), "old process {pid} stopped");
    }
}

fn node_app(k: &Kelpie) -> String {
    k.write(
        "server.js",
        "const http = require('http');\n\
         http.createServer((req, res) => res.end(`pid=${process.pid} instance=${process.env.NODE_APP_INSTANCE}\\n`))\n\
         .listen(Number(process.env.PORT), () => {});\n",
    )
}

#[test]
fn node_instances_share_the_port_and_reload_with_no_failed_request() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    let app = node_app(&k);
    let shown = k.ok(&[
        "start",
        &app,
        "--name",
        "web",
        "-i",
        "2",
        "--port",
        &port.to_string(),
    ]);
    assert!(
        shown.contains("cluster"),
        "a Node app with instances is in cluster mode: {shown}"
    );
    let pids = pids_of(&k, "web");
    // Which instance accepts is the kernel's choice (both wait on the one socket): one may
    // take 40 requests in a row (seen once in a full run), so ask until both answered.
    let both_seen = |seen: &std::collections::BTreeSet<String>| {
        pids.iter()
            .all(|pid| seen.iter().any(|b| b.contains(&format!("pid={pid} "))))
    };
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + 10 * SECS;
    while !both_seen(&seen) && Instant::now() < deadline {
        seen.insert(load::get(local(port)).expect("served"));
    }
    assert!(
        both_seen(&seen),
        "both instances serve: {seen:?} from {pids:?}"
    );
    reload_under_load(&k, "web", port);
    let describe = k.ok(&["describe", "web"]);
    assert!(describe.contains("replaced by a new process"), "{describe}");
}

#[test]
fn four_node_instances_reload_with_no_failed_request() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    let app = node_app(&k);
    k.ok(&[
        "start",
        &app,
        "--name",
        "web4",
        "-i",
        "4",
        "--port",
        &port.to_string(),
    ]);
    reload_under_load(&k, "web4", port);
}

#[test]
fn a_python_app_taking_fd_3_reloads_with_no_failed_request() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    let app = k.write(
        "server.py",
        r#"import os, signal, socket, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

assert os.environ["LISTEN_PID"] == str(os.getpid()) and os.environ["LISTEN_FDS"] == "1"
listener = socket.socket(fileno=3)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pid={os.getpid()} instance={os.environ['NODE_APP_INSTANCE']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = False
    def server_bind(self):
        pass
    def server_activate(self):
        pass

server = Server(listener.getsockname(), Handler, bind_and_activate=False)
server.socket = listener

def drain(signum, frame):
    # Stop accepting (the shared socket stays open in Kelpie and the other instance), let the
    # requests in progress finish, exit.
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGINT, drain)
notify = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", "\0" + notify[1:] if notify.startswith("@") else notify)
server.serve_forever()
server.server_close()
"#,
    );
    k.ok(&[
        "start",
        &app,
        "--name",
        "py",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--wait-ready",
        "--listen-timeout",
        "10s",
    ]);
    assert_eq!(pids_of(&k, "py").len(), 2);
    reload_under_load(&k, "py", port);
}

#[test]
fn a_listen_fds_server_keeps_serving_when_one_instance_is_killed() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    start_server(&k, "rs", port, &["-i", "2"], &[]);
    let pids = pids_of(&k, "rs");
    assert_eq!(pids.len(), 2);
    let load = Load::start(local(port));
    load.wait_until("answers before the kill", |_, seen| seen.ok > 10);
    std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    k.wait_for("the killed instance back", 5 * SECS, || {
        let now = pids_of(&k, "rs");
        now.len() == 2 && now.iter().all(|p| *p != 0 && *p != pids[0])
    });
    // Served on after the restart: new connections by both processes, keep-alive ones (which
    // stay with the process they were made with) by whichever they are with.
    let back = pids_of(&k, "rs");
    let answered = load.seen();
    load.wait_until("answers after the restart", |mode, seen| {
        let more = seen.ok > answered[mode].ok + 10;
        more && (mode == KEEP_ALIVE || back.iter().all(|pid| seen.served_by(*pid)))
    });
    for (mode, report) in load.finish() {
        // Only requests the killed process had accepted can fail (at most one per client
        // thread); what waits in the shared queue is served by the others.
        assert!(report.failed <= 2, "{mode}: {report:?}");
        // New connections go to the other instance meanwhile; keep-alive ones, made with
        // whichever process accepted them (both may have been with the killed one), to a
        // process that lives.
        let served = match mode {
            KEEP_ALIVE => back.iter().any(|pid| report.served_by(*pid)),
            _ => report.served_by(pids[1]),
        };
        assert!(
            served,
            "{mode}: the other instance kept serving: {report:?}"
        );
    }
    let after: Vec<String> = (0..20)
        .filter_map(|_| load::get(local(port)).ok())
        .collect();
    assert_eq!(after.len(), 20, "all served after the restart");
}

#[test]
fn a_reload_waits_for_a_new_process_slower_than_listen_timeout_and_loses_nothing() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    // A NestJS app under load takes more than PM2's 3 s to listen: ready after 4 s here.
    start_server(
        &k,
        "nest",
        port,
        &["-i", "2", "--wait-ready"],
        &["--ready-after", "4000"],
    );
    let started = std::time::Instant::now();
    reload_under_load(&k, "nest", port);
    assert!(
        started.elapsed() >= 2 * 4 * SECS,
        "each new process was waited for: {:?}",
        started.elapsed()
    );
    assert_eq!(k.status("nest"), "online");
}

#[test]
fn a_reload_whose_new_process_is_never_ready_fails_and_keeps_the_old_one() {
    let k = kelpie();
    let port = free_port();
    start_server(
        &k,
        "slow",
        port,
        &["-i", "2", "--wait-ready", "--listen-timeout", "800ms"],
        &["--never-ready"],
    );
    let describe = k.ok(&["describe", "slow"]);
    assert!(
        describe.contains("not ready within listen_timeout"),
        "{describe}"
    );
    let old = pids_of(&k, "slow");
    // A new process that runs is waited for past listen_timeout (30 s), then given up.
    let error = k.fails(&["reload", "slow"]);
    assert!(
        error.contains(
            "app `slow` (id 0): the new process was not ready within 30000 ms (listen_timeout is 800 ms"
        ) && error.contains(&format!("old process (pid {}) keeps running", old[0])),
        "{error}"
    );
    // The first failure stops the reload: the other instance is not touched.
    assert!(error.contains("app `slow`: id 1 not reloaded"), "{error}");
    assert_eq!(pids_of(&k, "slow"), old);
    assert_eq!(k.status("slow"), "online");
    let body = load::get(local(port)).expect("still served");
    assert!(
        old.iter().any(|pid| body.contains(&format!("pid={pid} "))),
        "{body}"
    );
    assert_eq!(
        k.jlist().len(),
        2,
        "the failed new process is not in the list"
    );
}

#[test]
fn a_reload_whose_new_process_exits_fails_and_keeps_the_old_one() {
    let k = kelpie();
    let port = free_port();
    let write = |args: &str| {
        k.write(
            "ecosystem.config.js",
            &format!(
                "module.exports = {{ apps: [{{ name: 'api', script: '{fake}', args: [{args}],\n\
                   port: '127.0.0.1:{port}', wait_ready: true }}] }};\n",
                fake = k.fake_app()
            ),
        )
    };
    let file = write("'--serve'");
    k.ok(&["start", &file]);
    let old = k.pid("api");
    // A broken release: it exits before saying it is ready.
    let file = write("'--exit-after', '50', '--exit-code', '3'");
    let error = k.fails(&["reload", &file]);
    assert!(
        error
            .contains("app `api` (id 0): the new process exited (exit code 3) before it was ready")
            && error.contains(&format!("old process (pid {old}) keeps running")),
        "{error}"
    );
    assert_eq!(k.pid("api"), old);
    let body = load::get(local(port)).expect("still served");
    assert!(body.contains(&format!("pid={old} ")), "{body}");
}

#[test]
fn scale_adds_and_removes_instances_sharing_the_port() {
    let k = kelpie();
    let port = free_port();
    start_server(&k, "sc", port, &[], &[]);
    k.ok(&["scale", "sc", "3"]);
    assert_eq!(pids_of(&k, "sc").len(), 3);
    let instances: Vec<u64> = k
        .jlist()
        .iter()
        .map(|p| p["pm2_env"]["NODE_APP_INSTANCE"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(instances, [0, 1, 2]);
    // The kernel picks which instance accepts: ask until each has answered.
    let mut seen = std::collections::BTreeSet::new();
    k.wait_for("three instances answering", 10 * SECS, || {
        seen.insert(load::get(local(port)).expect("served"));
        seen.len() == 3
    });
    k.ok(&["scale", "sc", "-2"]);
    assert_eq!(pids_of(&k, "sc").len(), 1);
    k.ok(&["scale", "sc", "+1"]);
    assert_eq!(pids_of(&k, "sc").len(), 2);
    assert!(k
        .fails(&["scale", "nope", "2"])
        .contains("no app named `nope`"));
    assert!(k
        .fails(&["scale", "sc", "many"])
        .contains("expected N, +N or -N"));
    // Deleting the app closes the port.
    k.ok(&["delete", "sc"]);
    k.wait_for("the port closed", 5 * SECS, || {
        std::net::TcpStream::connect(local(port)).is_err()
    });
}

/// Id, status and pid of each instance of `name`, in id order.
fn instances_of(k: &Kelpie, name: &str) -> Vec<(u64, String, u64)> {
    k.jlist()
        .iter()
        .filter(|p| p["name"] == name)
        .map(|p| {
            let status = p["pm2_env"]["status"].as_str().unwrap_or_default();
            let pid = p["pid"].as_u64().unwrap_or(0);
            (p["pm_id"].as_u64().unwrap_or(99), status.to_string(), pid)
        })
        .collect()
}

#[test]
fn scale_right_after_a_daemon_crash_follows_what_the_app_is_meant_to_do() {
    let k = kelpie();
    let fake = k.fake_app();
    // Its process ignores the stop signal: the next daemon takes `kill_timeout` to stop what
    // the dead one left, and until then it lists the app as stopped, though it means to run it.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "s",
        "--kill-timeout",
        "3000",
        "--",
        "--ignore-signals",
    ]);
    k.ok(&["start", &fake, "--name", "paused"]);
    k.ok(&["stop", "paused"]);
    k.wait_for("the keeper's pid file", 5 * SECS, || {
        k.keeper_pid().is_some()
    });
    let keeper = k.keeper_pid().expect("keeper");
    let daemon = k.daemon_pid().expect("daemon");
    for pid in [keeper, daemon] {
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill -9");
        assert!(killed.success());
    }
    k.wait_for("daemon and keeper gone", 5 * SECS, || {
        !kelpie_testkit::alive(daemon) && !kelpie_testkit::alive(keeper)
    });
    // The scale starts the next daemon, and reaches it while it is still stopping the old
    // process: every new instance must run all the same.
    k.ok(&["scale", "s", "3"]);
    k.wait_for("three instances online", 20 * SECS, || {
        let seen = instances_of(&k, "s");
        seen.len() == 3
            && seen
                .iter()
                .all(|(_, status, pid)| status == "online" && *pid != 0)
    });
    let before = instances_of(&k, "s");
    // Scaling down removes the oldest instances (the lowest ids), as PM2 does; the one kept
    // was started by the scale up, and runs on.
    k.ok(&["scale", "s", "1"]);
    let after = instances_of(&k, "s");
    assert_eq!(after, [before[2].clone()], "the newest kept, still running");
    k.ok(&["scale", "s", "+1"]);
    k.wait_for("the new instance online", 20 * SECS, || {
        let seen = instances_of(&k, "s");
        seen.len() == 2 && seen.iter().all(|(_, status, _)| status == "online")
    });
    // An app a user stopped is not meant to run: its new instances stay stopped too.
    k.ok(&["scale", "paused", "2"]);
    let paused = instances_of(&k, "paused");
    assert_eq!(paused.len(), 2);
    assert!(
        paused.iter().all(|(_, status, _)| status == "stopped"),
        "{paused:?}"
    );
}

#[test]
fn a_port_in_use_fails_the_start_and_changes_nothing() {
    let k = kelpie();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let fake = k.fake_app();
    let address = format!("127.0.0.1:{port}");
    let error = k.fails(&[
        "start", &fake, "--name", "clash", "--port", &address, "--", "--serve",
    ]);
    assert!(
        error.contains(&format!("app `clash`: cannot listen on 127.0.0.1:{port}")),
        "{error}"
    );
    assert!(k.jlist().is_empty());
}

#[test]
fn a_unix_socket_is_shared_and_removed_with_the_app() {
    use std::io::{Read, Write};
    let _heavy = heavy();
    let k = kelpie();
    let path = k.dir.path().join("app.sock");
    let app = k.write(
        "unix.js",
        "require('http').createServer((q, s) => s.end('pid=' + process.pid + '\\n')).listen(process.env.PORT);\n",
    );
    k.ok(&[
        "start",
        &app,
        "--name",
        "ux",
        "-i",
        "2",
        "--port",
        &format!("unix:{}", path.display()),
    ]);
    // Which instance accepts is the kernel's choice (both wait on the one socket): on a
    // loaded machine the same one may take many in a row, so ask until both answered.
    let mut answers = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while answers.len() < 2 && std::time::Instant::now() < deadline {
        let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        answers.insert(text.lines().last().unwrap_or_default().to_string());
    }
    assert_eq!(answers.len(), 2, "both instances answer: {answers:?}");
    k.ok(&["delete", "ux"]);
    assert!(!path.exists(), "the socket file is removed with the app");
}

#[test]
fn readiness_from_a_log_line_and_from_the_port_of_a_reuse_port_app() {
    let k = kelpie();
    let port = free_port();
    let file = k.write(
        "ecosystem.config.js",
        &format!(
            "module.exports = {{ apps: [\n\
               {{ name: 'line', script: '{fake}', args: ['--serve', '--ready-after', '300'], env: {{ PORT: '0' }},\n\
                 ready_pattern: '^serving on', listen_timeout: 5000 }},\n\
               {{ name: 'reuse', script: '{fake}', args: ['--serve', '--reuse-port', '--ready-after', '300'],\n\
                 instances: 2, reuse_port: true, port: {port}, listen_timeout: 5000,\n\
                 instance_var: 'INSTANCE_ID', increment_var: 'WORKER_PORT', env: {{ WORKER_PORT: '9000' }} }},\n\
             ] }};\n",
            fake = k.fake_app()
        ),
    );
    k.ok(&["start", &file]);
    for name in ["line", "reuse"] {
        let app = k.app(name);
        assert_eq!(app["pm2_env"]["status"], "online", "{name}");
        let describe = k.ok(&["describe", name]);
        assert!(
            !describe.contains("not ready within"),
            "{name} was ready in time: {describe}"
        );
    }
    load::get(local(port)).expect("the reuse_port app listens once online");
    let envs: Vec<String> = k
        .jlist()
        .iter()
        .filter(|p| p["name"] == "reuse")
        .map(|p| {
            let pid = p["pid"].as_u64().unwrap_or(0);
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|e| String::from_utf8_lossy(&e).replace('\0', " "))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        envs[0].contains("INSTANCE_ID=0 ") && envs[0].contains("WORKER_PORT=9000 "),
        "{}",
        envs[0]
    );
    assert!(
        envs[1].contains("INSTANCE_ID=1 ") && envs[1].contains("WORKER_PORT=9001 "),
        "{}",
        envs[1]
    );
    assert!(
        !envs[0].contains("LISTEN_FDS"),
        "no Kelpie socket with reuse_port"
    );
}

#[test]
fn pm2_kill_use_message_in_the_daemons_environment_stops_every_node_app_with_the_message() {
    let k = kelpie();
    let app = GracefulNode::write(&k, "console.log('handler in place');\n");
    // The command that starts the daemon passes its environment on, as with PM2.
    let started = k
        .command(&["start", &app.file, "--name", "gr"])
        .env("PM2_KILL_USE_MESSAGE", "true")
        .output()
        .expect("start");
    assert!(started.status.success(), "{started:?}");
    assert_eq!(k.status("gr"), "online");
    // Its handler is in place once it says so (the status is online from the spawn on).
    k.wait_for("the handler in place", 10 * SECS, || {
        k.log("gr-out.log").contains("handler in place")
    });
    k.ok(&["stop", "gr"]);
    assert!(app.shut_down());
}

#[test]
fn a_node_app_stopped_with_the_shutdown_message_runs_its_handler() {
    let _heavy = heavy();
    let k = kelpie();
    let app = GracefulNode::write(&k, "process.send('ready');\n");
    app.start_with_message(&k, "gr");
    assert_eq!(k.status("gr"), "online");
    assert!(!k.ok(&["describe", "gr"]).contains("not ready within"));
    k.ok(&["stop", "gr"]);
    assert!(app.shut_down());
}

#[test]
fn reloading_a_file_applies_its_new_config_and_apps_without_a_port_restart() {
    let k = kelpie();
    let port = free_port();
    let write = |release: &str, instances: u32| {
        k.write(
            "ecosystem.config.js",
            &format!(
                "module.exports = {{ apps: [\n\
                   {{ name: 'api', script: '{fake}', args: ['--serve'], port: '127.0.0.1:{port}',\n\
                     instances: {instances}, env: {{ RELEASE: '{release}' }} }},\n\
                   {{ name: 'worker', script: '{fake}' }},\n\
                 ] }};\n",
                fake = k.fake_app()
            ),
        )
    };
    let file = write("1", 1);
    k.ok(&["start", &file]);
    let worker = k.pid("worker");
    let file = write("2", 2);
    k.ok(&["reload", &file]);
    let api: Vec<_> = k
        .jlist()
        .into_iter()
        .filter(|p| p["name"] == "api")
        .collect();
    assert_eq!(api.len(), 2, "instances follow the file");
    for entry in &api {
        assert_eq!(entry["pm2_env"]["env"]["RELEASE"], "2");
        let pid = entry["pid"].as_u64().unwrap_or(0);
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&environ).contains("RELEASE=2"),
            "the new process runs the new config"
        );
    }
    assert_eq!(
        k.app("api")["pm2_env"]["restart_time"],
        1,
        "the existing instance was reloaded once"
    );
    // Without a port, reload is a restart (as in PM2).
    k.ok(&["reload", "worker"]);
    let restarted = k.pid("worker");
    assert!(restarted != 0 && restarted != worker);
    assert_eq!(k.status("worker"), "online");
}

/// PM2 issue #5043: an app whose stop handler exits seconds later without `server.close()`.
/// Told to stop (by the reload), an instance takes no new connection from the shared socket:
/// the shim stops accepting before the app's handler runs, the other instances take them,
/// and nothing is reset when the old process exits.
#[test]
fn a_reloaded_instance_whose_handler_keeps_its_server_open_takes_no_new_connection() {
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    let late = k.dir.path().join("late");
    std::fs::create_dir_all(&late).expect("mkdir");
    let app = k.write(
        "server.js",
        &format!(
            "const http = require('http');\n\
             let stopping = false, late = 0;\n\
             const server = http.createServer((req, res) => res.end(`pid=${{process.pid}}\\n`));\n\
             server.on('connection', () => {{ if (stopping) late++; }});\n\
             server.listen(Number(process.env.PORT));\n\
             process.on('SIGINT', () => {{\n\
               stopping = true;\n\
               setTimeout(() => {{\n\
                 require('fs').writeFileSync({:?} + '/' + process.pid, String(late));\n\
                 process.exit(0);\n\
               }}, 3000);\n\
             }});\n",
            late.display().to_string()
        ),
    );
    k.ok(&[
        "start",
        &app,
        "--name",
        "keeps-open",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--kill-timeout",
        "5000",
    ]);
    let before = pids_of(&k, "keeps-open");
    let load = Load::start(local(port));
    load.wait_until("answers before the reload", |_, seen| seen.ok > 10);
    k.ok(&["reload", "keeps-open"]);
    let after = pids_of(&k, "keeps-open");
    load.wait_until("answers from the new processes", |_, seen| {
        seen.ok > 20 && after.iter().any(|pid| seen.served_by(*pid))
    });
    // The old processes exit 3 s after their signal, saying how many connections they took
    // once stopping.
    k.wait_for("the old processes' counts", 15 * SECS, || {
        before.iter().all(|pid| late.join(pid.to_string()).exists())
    });
    for (mode, report) in load.finish() {
        assert_eq!(report.failed, 0, "{mode}: {report:?}");
    }
    for pid in before {
        let taken = std::fs::read_to_string(late.join(pid.to_string())).expect("count");
        assert_eq!(taken, "0", "process {pid} took connections while stopping");
    }
}
