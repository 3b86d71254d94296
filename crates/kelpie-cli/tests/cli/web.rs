//! The daemon's HTTP side: the JSON API (against its own OpenAPI document, with schemathesis),
//! the token rules, `/metrics` read by the Prometheus client library's own text-format parser,
//! and the page in headless Chromium driven by Playwright.
//!
//! The tools come from their registries into the target directory, once: a venv with
//! `prometheus_client` and `schemathesis` (PyPI), `playwright-core` (npm), and Debian's
//! `chromium` (apt, as root) when it is not installed. Set `KELPIE_TEST_OFFLINE=1` to skip
//! what needs them when there is no network (a failure all the same under `KELPIE_NO_SKIP`).

use super::tools::{installed_or_skip, npm_packages, python_venv, run};
use super::{free_port, kelpie};
use kelpie_testkit::Kelpie;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(1);
const TOKEN: &str = "test-token-0123456789abcdef";

/// One HTTP exchange (HTTP/1.1, `Connection: close`): status, headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, 5 * SECS).expect("connect");
    stream.set_read_timeout(Some(30 * SECS)).expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// A GET without a token.
fn get(port: u16, path: &str) -> Answer {
    http(port, "GET", path, &[], "")
}

/// A GET with `token`.
fn get_with(port: u16, token: &str, path: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    http(port, "GET", path, &[("Authorization", bearer.as_str())], "")
}

/// A POST without a token.
fn post(port: u16, path: &str, body: &str) -> Answer {
    http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

/// A POST with `token`.
fn post_with(port: u16, token: &str, path: &str, body: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    http(
        port,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", bearer.as_str()),
        ],
        body,
    )
}

/// The token the daemon made and keeps in the home (checked private).
fn stored_token(k: &Kelpie) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = k.home().join("web.token");
    let mode = std::fs::metadata(&path)
        .expect("web.token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "web.token must be private");
    let token = std::fs::read_to_string(&path)
        .expect("web.token")
        .trim()
        .to_string();
    assert_eq!(token.len(), 64, "{token}");
    token
}

/// Wait until the daemon answers HTTP on `port`.
fn wait_http(k: &Kelpie, port: u16) {
    k.wait_for("the web server", 10 * SECS, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Write the daemon settings file of `k`'s home.
fn write_settings(k: &Kelpie, text: &str) {
    std::fs::write(k.home().join("kelpie.toml"), text).expect("write kelpie.toml");
}

/// A started app printing `tick <n>` 5 times a second, and a web server from `[web]` in
/// kelpie.toml (read when the daemon starts).
fn serving(k: &Kelpie) -> u16 {
    let port = free_port();
    write_settings(k, &format!("[web]\nport = {port}\n"));
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "tick",
        "--",
        "--tick",
        "200",
    ]);
    wait_http(k, port);
    port
}

#[test]
fn api_lists_restarts_scales_and_streams() {
    let k = kelpie();
    let port = serving(&k);
    // Every call but the page and the API's description needs a token, reads too (another
    // local user must not read the apps' logs): the one the daemon made and keeps in the home,
    // which `kelpie web --show-token` prints.
    let token = stored_token(&k);
    assert_eq!(k.ok(&["web", "--show-token"]).trim(), token);
    for path in [
        "/api/processes",
        "/api/processes/tick",
        "/api/logs?target=tick",
        "/api/events",
        "/api/host",
        "/metrics",
    ] {
        let refused = get(port, path);
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
        assert!(refused.body.contains("--show-token"), "{}", refused.body);
        assert!(!refused.body.contains("tick 1"), "{}", refused.body);
    }
    let get = |port, path: &str| get_with(port, &token, path);
    let list = get(port, "/api/processes");
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    assert_eq!(list[0]["spec"]["name"], "tick");
    assert_eq!(list[0]["state"]["status"], "online");
    // Environment values never leave the daemon over HTTP.
    assert_eq!(list[0]["spec"]["env"], serde_json::json!({}));
    let before = k.pid("tick");
    assert_eq!(list[0]["state"]["pid"], before);

    // Changes need it as well.
    let refused = post(port, "/api/processes/tick/restart", "");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("--show-token"), "{}", refused.body);
    assert_eq!(post(port, "/api/save", "").status, 401);
    assert_eq!(
        http(port, "DELETE", "/api/processes/tick", &[], "").status,
        401
    );
    assert_eq!(k.pid("tick"), before, "a refused call changes nothing");
    let post = |port, path: &str, body: &str| post_with(port, &token, path, body);

    let restarted = post(port, "/api/processes/tick/restart", "");
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    let after = restarted.json()[0]["state"]["pid"].as_u64().expect("pid");
    assert_ne!(after as u32, before, "restart must start a new process");
    assert_eq!(k.pid("tick"), after as u32, "the CLI sees the same process");
    assert_eq!(k.app("tick")["pm2_env"]["restart_time"], 1);

    let described = get(port, "/api/processes/tick");
    assert_eq!(described.status, 200);
    assert_eq!(described.json().as_array().map(Vec::len), Some(1));
    let missing = get(port, "/api/processes/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("nope")));

    let scaled = post(port, "/api/apps/tick/scale", r#"{"count": "+1"}"#);
    assert_eq!(scaled.status, 200, "{}", scaled.body);
    assert_eq!(scaled.json().as_array().map(Vec::len), Some(2));
    assert_eq!(k.jlist().len(), 2, "the CLI sees the new instance");
    assert_eq!(
        post(port, "/api/apps/tick/scale", r#"{"count": "lots"}"#).status,
        400
    );
    // The same bound as over the socket: nothing is created.
    let huge = post(port, "/api/apps/tick/scale", r#"{"count": 4000000000}"#);
    assert_eq!(huge.status, 400, "{}", huge.body);
    assert!(huge.body.contains("at most 9999"), "{}", huge.body);
    assert_eq!(k.jlist().len(), 2);

    k.wait_for("log lines", 5 * SECS, || {
        get(port, "/api/logs?target=tick&lines=5").json()["lines"]
            .as_array()
            .is_some_and(|l| l.len() >= 5)
    });
    // The tail has the same bound as over the socket (`kelpie logs --lines`).
    let too_many = get(port, "/api/logs?target=tick&lines=10001");
    assert_eq!(too_many.status, 400, "{}", too_many.body);
    assert!(too_many.body.contains("at most 10000"), "{}", too_many.body);
    assert_eq!(get(port, "/api/logs?target=tick&lines=10000").status, 200);
    let logs = get(port, "/api/logs?target=tick&lines=5&stream=out").json();
    let lines = logs["lines"].as_array().expect("lines");
    assert!(lines.iter().all(|l| l["app_name"] == "tick"), "{logs}");
    assert!(
        lines
            .iter()
            .any(|l| l["bytes"].as_str().is_some_and(|b| b.starts_with("tick "))),
        "{logs}"
    );

    // Live updates: the list, then log lines as they are printed.
    let events = read_events(port, &token, "/api/events?target=tick&lines=2", 3 * SECS);
    assert!(events.contains("event: processes\ndata: ["), "{events}");
    assert!(
        events.matches("event: log\ndata: {").count() >= 5,
        "{events}"
    );

    let stopped = post(port, "/api/processes/all/stop", "{}");
    assert_eq!(stopped.status, 200);
    assert!(k
        .jlist()
        .iter()
        .all(|p| p["pm2_env"]["status"] == "stopped"));
    // Unknown routes and methods.
    assert_eq!(get(port, "/api/nothing").status, 404);
    assert_eq!(get(port, "/api/processes/tick/stop").status, 405);
    assert_eq!(post(port, "/api/processes/tick/explode", "").status, 404);
}

/// What `/api/events` sends within `within`.
fn read_events(port: u16, token: &str, path: &str, within: Duration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send");
    let deadline = Instant::now() + within;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn token_is_required_beyond_loopback_and_enforced() {
    let k = kelpie();
    let port = free_port();
    let port_arg = port.to_string();
    // Another address than loopback without a token: refused, with the reason.
    let refused = k.fails(&["web", "--host", "0.0.0.0", "--port", &port_arg]);
    assert!(
        refused.contains("not a loopback address, without a token"),
        "{refused}"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let short = k.fails(&["web", "--port", &port_arg, "--token", "short"]);
    assert!(short.contains("at least 16"), "{short}");

    // With a token (from the environment, out of the process list) on every address.
    let out = k
        .command(&["web", "--host", "0.0.0.0", "--port", &port_arg])
        .env("KELPIE_WEB_TOKEN", TOKEN)
        .output()
        .expect("kelpie web");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("token required"), "{said}");
    k.ok(&["start", &k.fake_app(), "--name", "guarded"]);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    for path in ["/api/processes", "/metrics", "/api/ping", "/api/logs"] {
        let denied = get(port, path);
        assert_eq!(denied.status, 401, "{path}: {}", denied.body);
        assert!(denied.headers.contains("www-authenticate: bearer"));
        assert_eq!(http(port, "GET", path, &auth, "").status, 200, "{path}");
    }
    let wrong = [("Authorization", "Bearer test-token-0123456789abcdeX")];
    assert_eq!(http(port, "GET", "/api/processes", &wrong, "").status, 401);
    let pid = k.pid("guarded");
    assert_eq!(post(port, "/api/processes/guarded/stop", "").status, 401);
    assert_eq!(k.pid("guarded"), pid, "a refused call changes nothing");
    // The page and the API's description hold no data: they load, and the page asks.
    let page = get(port, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("token-dialog"));
    assert!(page.headers.contains("content-security-policy"));
    assert_eq!(get(port, "/openapi.json").status, 200);
    // Another site's page cannot make changes even with the token (CSRF).
    let foreign = [
        ("Authorization", bearer.as_str()),
        ("Origin", "http://evil.example"),
    ];
    assert_eq!(
        http(port, "POST", "/api/processes/guarded/stop", &foreign, "").status,
        403
    );
    let stopped = http(port, "POST", "/api/processes/guarded/stop", &auth, "");
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(k.status("guarded"), "stopped");

    // Without a token, on loopback, only loopback names are answered (DNS rebinding); every
    // call needs the token the daemon keeps in the home, and `kelpie web` says the page's
    // address with it after `#` (never sent to the server).
    let out = k
        .command(&["web", "--port", &port_arg])
        .env_remove("KELPIE_WEB_TOKEN")
        .output()
        .expect("kelpie web");
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("web.token") && said.contains("--show-token"),
        "{said}"
    );
    let stored = stored_token(&k);
    assert!(
        said.contains(&format!("open http://127.0.0.1:{port}/#token={stored}")),
        "{said}"
    );
    assert_eq!(get(port, "/api/processes").status, 401);
    assert_eq!(get(port, "/metrics").status, 401);
    assert_eq!(get_with(port, &stored, "/api/processes").status, 200);
    assert_eq!(get_with(port, &stored, "/metrics").status, 200);
    k.ok(&["restart", "guarded"]);
    let pid = k.pid("guarded");
    assert_eq!(post(port, "/api/processes/guarded/restart", "").status, 401);
    assert_eq!(
        post_with(port, TOKEN, "/api/processes/guarded/restart", "").status,
        401,
        "the token given before is gone"
    );
    assert_eq!(k.pid("guarded"), pid, "a refused call changes nothing");
    let restarted = post_with(port, &stored, "/api/processes/guarded/restart", "");
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    assert_ne!(k.pid("guarded"), pid);
    // The same token after the daemon restarts.
    k.ok(&["kill"]);
    k.ok(&["web", "--port", &port_arg]);
    assert_eq!(stored_token(&k), stored);
    // Configured otherwise: changes on loopback without a token.
    let out = k
        .command(&["web", "--port", &port_arg, "--open-loopback"])
        .env_remove("KELPIE_WEB_TOKEN")
        .output()
        .expect("kelpie web");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("open_loopback"),
        "{}: {said}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = k.fails(&["web", "--show-token"]);
    assert!(refused.contains("without a token"), "{refused}");
    let saved = post(port, "/api/save", "");
    assert_eq!(saved.status, 200, "{}", saved.body);
    let rebound = http(
        port,
        "GET",
        "/api/processes",
        &[("Host", "evil.example")],
        "",
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    k.ok(&["web", "--stop"]);
    k.wait_for("the port closed", 5 * SECS, || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

#[test]
fn a_bad_web_section_is_reported_and_apps_still_start() {
    let k = kelpie();
    write_settings(&k, "[web]\nhost = \"0.0.0.0\"\n");
    k.ok(&["start", &k.fake_app(), "--name", "still"]);
    assert_eq!(k.status("still"), "online");
    k.wait_for("the refusal in the daemon log", 5 * SECS, || {
        std::fs::read_to_string(k.home().join("kelpie.log"))
            .is_ok_and(|log| log.contains("not a loopback address, without a token"))
    });
    assert!(
        !k.home().join("web.token").exists(),
        "no token is made for a server that does not start"
    );
}

// ---- tools from the registries ----

/// Python with `prometheus_client` and `schemathesis`, in a venv under the target directory.
fn python() -> Option<PathBuf> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv = VENV.get_or_init(|| {
        python_venv(
            "web-tools",
            &["prometheus_client==0.26.0", "schemathesis==4.32.5"],
        )
    });
    installed_or_skip(venv)
}

#[test]
fn metrics_parse_with_the_prometheus_text_parser() {
    let k = kelpie();
    let port = serving(&k);
    let token = stored_token(&k);
    let get = |port, path: &str| get_with(port, &token, path);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "noisy \"one\"",
        "--namespace",
        "jobs",
        "--",
        "--print",
        "7",
        "--print-err",
        "3",
        "--notify",
        "X_KELPIE_METRIC=queue_depth=7",
    ]);
    k.wait_for(
        "the lines counted and a reading of memory",
        5 * SECS,
        || {
            let body = get(port, "/metrics").body;
            body.contains("pm_id=\"1\",stream=\"err\"} 3")
                && body.contains("name=\"queue_depth\"} 7")
                && !body.contains(
                    "kelpie_memory_bytes{app=\"tick\",namespace=\"default\",pm_id=\"0\"} 0\n",
                )
        },
    );
    let scrape = get(port, "/metrics");
    assert_eq!(scrape.status, 200);
    assert!(scrape
        .headers
        .contains("content-type: text/plain; version=0.0.4"));
    let Some(python) = python() else { return };
    // The Prometheus client library's parser: every family, its type and its samples, as JSON.
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "help": family.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parse");
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        scrape.body
    );
    let families: Value = serde_json::from_slice(&out.stdout).expect("json");
    // The client library names counter families without `_total`.
    for (family, kind) in [
        ("kelpie_up", "gauge"),
        ("kelpie_restarts", "counter"),
        ("kelpie_cpu_seconds", "counter"),
        ("kelpie_memory_bytes", "gauge"),
        ("kelpie_uptime_seconds", "gauge"),
        ("kelpie_log_lines", "counter"),
        ("kelpie_log_dropped_lines", "counter"),
        ("kelpie_health_check_failures", "counter"),
        ("kelpie_daemon_cpu_seconds", "counter"),
        ("kelpie_daemon_memory_bytes", "gauge"),
    ] {
        assert_eq!(families[family]["type"], kind, "{family}: {families}");
        assert!(
            families[family]["help"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "{family}"
        );
    }
    let sample = |family: &str, name: &str, labels: &[(&str, &str)]| -> f64 {
        families[family]["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s["name"] == name
                    && labels
                        .iter()
                        .all(|(k, v)| s["labels"][*k].as_str() == Some(v))
            })
            .and_then(|s| s["value"].as_f64())
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {}", families[family]))
    };
    let tick = [("app", "tick"), ("namespace", "default"), ("pm_id", "0")];
    assert_eq!(sample("kelpie_up", "kelpie_up", &tick), 1.0);
    assert_eq!(
        sample("kelpie_restarts", "kelpie_restarts_total", &tick),
        0.0
    );
    assert!(sample("kelpie_memory_bytes", "kelpie_memory_bytes", &tick) > 100_000.0);
    // A label with quotes survives the round trip.
    let noisy = [
        ("app", "noisy \"one\""),
        ("namespace", "jobs"),
        ("pm_id", "1"),
    ];
    let lines = |stream| {
        let mut labels = noisy.to_vec();
        labels.push(("stream", stream));
        sample("kelpie_log_lines", "kelpie_log_lines_total", &labels)
    };
    // `fake-app <pid> started`, then the 7 lines.
    assert_eq!(lines("out"), 8.0);
    assert_eq!(lines("err"), 3.0);
    // What the app published itself, under Kelpie's one family for app metrics.
    let mut queue = noisy.to_vec();
    queue.push(("name", "queue_depth"));
    assert_eq!(
        sample("kelpie_app_metric", "kelpie_app_metric", &queue),
        7.0
    );
    assert_eq!(families["kelpie_app_metric"]["type"], "gauge");
    assert!(
        sample(
            "kelpie_daemon_memory_bytes",
            "kelpie_daemon_memory_bytes",
            &[]
        ) > 1_000_000.0
    );
}

#[test]
fn api_conforms_to_its_openapi_document() {
    let k = kelpie();
    let port = serving(&k);
    k.ok(&["start", &k.fake_app(), "--name", "other", "-i", "2"]);
    let Some(python) = python() else { return };
    let st = python.with_file_name("st");
    // Scaling is checked on an app that does not exist (validation, then 404): an existing
    // one could be asked for thousands of instances.
    let config = k.write(
        "schemathesis.toml",
        "[[operations]]\ninclude-operation-id = \"scale\"\nparameters = { name = \"no-such-app\" }\n",
    );
    // Changes need the token the daemon keeps in the home, even on loopback.
    let auth = format!("Authorization: Bearer {}", stored_token(&k));
    // Bounded: every operation but the endless event stream, a few examples each. No
    // `--max-time`: in deterministic mode its extra rounds send the same requests again (2 629
    // requests in 25 s, 284 distinct, all among the 312 distinct of the 333 sent in one round).
    let out = Command::new(&st)
        .args([
            "--config-file",
            &config,
            "run",
            &format!("http://127.0.0.1:{port}/openapi.json"),
            "--header",
            &auth,
            "--checks",
            "all",
            "--exclude-operation-id",
            "events",
            "--max-examples",
            "10",
            "--workers",
            "1",
            "--generation-deterministic",
            "--no-color",
        ])
        .current_dir(k.home())
        .output()
        .expect("schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the API and its document disagree:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested: 17"), "{report}");
}

/// An app speaking @pm2/io's action protocol by hand: it registers `echo`, and answers it with
/// its parameter.
const ECHO_ACTION_APP: &str = "process.send({ type: 'axm:action', data: { action_name: 'echo', arity: 2 } });\n\
process.on('message', (m) => {\n\
  const name = typeof m === 'string' ? m : m && m.msg;\n\
  if (name === 'echo') process.send({ type: 'axm:reply', data: { action_name: 'echo', return: { got: (m && m.opts) || null } } });\n\
});\n\
setInterval(() => {}, 1000);\n";

#[test]
fn trigger_runs_an_action_over_the_api() {
    let k = kelpie();
    let port = serving(&k);
    let token = stored_token(&k);
    let script = k.write("echo.js", ECHO_ACTION_APP);
    k.ok(&["start", &script, "--name", "echo", "-i", "2"]);
    k.wait_for("the action registered", 10 * SECS, || {
        k.jlist()
            .iter()
            .filter(|p| p["pm2_env"]["axm_actions"][0]["action_name"] == "echo")
            .count()
            == 2
    });
    let answer = post_with(
        port,
        &token,
        "/api/processes/echo/trigger",
        r#"{"action": "echo", "param": "hi"}"#,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let triggered = answer.json();
    assert_eq!(triggered["action"], "echo");
    assert_eq!(
        triggered["received"].as_array().map(Vec::len),
        Some(2),
        "{triggered}"
    );
    let replies = triggered["replies"].as_array().expect("replies");
    assert_eq!(replies.len(), 2, "{triggered}");
    for reply in replies {
        assert_eq!(reply["name"], "echo");
        assert_eq!(reply["reply"]["got"], "hi", "{triggered}");
    }
    // Nobody registered it: 404, as `kelpie trigger` exits 3; no action named: 400.
    let unknown = post_with(
        port,
        &token,
        "/api/processes/echo/trigger",
        r#"{"action": "nope"}"#,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown
            .body
            .contains("Not any process has received a command"),
        "{}",
        unknown.body
    );
    let unnamed = post_with(port, &token, "/api/processes/echo/trigger", "{}");
    assert_eq!(unnamed.status, 400, "{}", unnamed.body);
    // A change: the token is needed, as for every POST.
    let anonymous = post(port, "/api/processes/echo/trigger", r#"{"action": "echo"}"#);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    // The CLI goes through the same request.
    let out = k.ok(&["trigger", "echo", "echo", "there"]);
    assert!(
        out.contains("2 processes have received command echo"),
        "{out}"
    );
    assert!(out.contains(r#"[echo:1:default]={"got":"there"}"#), "{out}");
}

/// Chromium: Debian's, installed with apt when missing (as root).
fn chromium() -> Option<PathBuf> {
    static CHROMIUM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = CHROMIUM.get_or_init(|| {
        let path = PathBuf::from("/usr/bin/chromium");
        if path.exists() {
            return Ok(path);
        }
        let install = || {
            run(
                Command::new("apt-get").args([
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "chromium",
                ]),
                "apt-get install chromium",
            )
        };
        if install().is_err() {
            run(
                Command::new("apt-get").args(["update", "-q"]),
                "apt-get update",
            )?;
            install()?;
        }
        Ok(path)
    });
    installed_or_skip(found)
}

/// `node_modules` with `playwright-core` from npm, under the target directory.
fn playwright() -> Option<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| npm_packages("web-browser", &["playwright-core@1.65.1"]));
    installed_or_skip(dir)
}

/// Drives the page like a person: waits for the app (reading needs no token on loopback),
/// clicks its restart button, gives the token when asked (a change needs it), waits for the
/// new pid, for log lines, searches them, and reads the exits.
const BROWSER_SCRIPT: &str = r##"
const { chromium } = require(process.env.PLAYWRIGHT);
(async () => {
  const context = await chromium.launchPersistentContext(process.env.PROFILE, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 860 },
  });
  const timeout = 15000;
  try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(process.env.URL);
    const row = page.locator('tr[data-name="tick"]');
    await row.locator(".status.online").waitFor({ timeout });
    const before = (await row.locator("td.pid").textContent()).trim();
    // The row is updated in place, never built again: a click whose press and release fell
    // on either side of an update would land on no button (a loaded machine met it).
    await page.evaluate(() => { window.tickRow = document.querySelector('tr[data-name="tick"]'); });
    // The page took the token from the address and took it out of the address bar.
    const address = page.url();
    await row.locator('button[data-action="restart"]').click();
    await page.waitForFunction((pid) => {
      const cell = document.querySelector('tr[data-name="tick"] td.pid');
      return cell && /^[0-9]+$/.test(cell.textContent) && cell.textContent !== pid;
    }, before, { timeout });
    const after = (await row.locator("td.pid").textContent()).trim();
    const sameRow = await page.evaluate(() =>
      window.tickRow.isConnected && window.tickRow === document.querySelector('tr[data-name="tick"]'));
    await page.locator("#logs .line", { hasText: "tick 3" }).first().waitFor({ timeout });
    await page.locator("#search").fill("tick 2");
    const shown = await page.locator("#logs .line:not(.hidden)").allTextContents();
    await page.locator("#search").fill("");
    await page.locator("#exits tr").first().waitFor({ timeout });
    const exits = await page.locator("#exits tr").allTextContents();
    // The restarted process's last stderr lines under its exit, and what the app says of itself.
    await page.locator("#exits td.tail", { hasText: "disk on fire" }).first().waitFor({ timeout });
    await page.locator("#facts", { hasText: "serving 3 clients" }).waitFor({ timeout });
    const facts = await page.locator("#facts").textContent();
    // A periodic job: when it runs next beside its status, and how its last run ended.
    const job = page.locator('tr[data-name="job"]');
    await job.locator(".note", { hasText: "next" }).first().waitFor({ timeout });
    const jobStatus = (await job.locator("td.status-cell").textContent()).trim();
    await job.locator("td.name").click();
    await page.locator("#facts", { hasText: "last run" }).waitFor({ timeout });
    const jobFacts = await page.locator("#facts").textContent();
    const jobNextRun = await page.locator("#facts dt", { hasText: "next run" }).evaluate((dt) => dt.nextElementSibling.textContent);
    // An app using PM2's SDK protocol: its code metrics and actions.
    await page.locator('tr[data-name="sdk"] td.name').click();
    await page.locator("#facts", { hasText: "code metrics" }).waitFor({ timeout });
    // The Node runtime's metrics (Kelpie's shim) and the counters the daemon reads.
    await page.locator("#facts", { hasText: "Event Loop Utilization" }).waitFor({ timeout });
    await page.locator("#facts", { hasText: "page faults" }).waitFor({ timeout });
    const sdkFacts = await page.locator("#facts").textContent();
    // The host's use in the header, as `kelpie list` shows it under the table.
    await page.locator("#host", { hasText: "cpus" }).waitFor({ timeout });
    const host = await page.locator("#host").textContent();
    // The exception inbox's section: a group per exception, its stack behind a click.
    const group = page.locator("#errors details", { hasText: "ledger is closed" });
    await group.waitFor({ timeout });
    await group.locator("summary").click();
    const exception = { summary: await group.locator("summary").textContent(),
      stack: await group.locator("pre").textContent() };
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
    console.log(JSON.stringify({ address, before, after, sameRow, shown, exits, facts, jobStatus, jobFacts, jobNextRun, sdkFacts, host, exception, errors }));
  } finally {
    await context.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
"##;

#[test]
fn the_page_shows_apps_restarts_them_and_shows_their_logs_in_chromium() {
    let k = kelpie();
    let port = free_port();
    write_settings(&k, &format!("[web]\nport = {port}\n"));
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "tick",
        "--",
        "--tick",
        "200",
        "--err-line",
        "fatal: disk on fire",
        "--notify",
        "STATUS=serving 3 clients\\nX_KELPIE_METRIC=queue_depth=7",
    ]);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "job",
        "--no-autorestart",
        "--cron-restart",
        "*/2 * * * * *",
        "--",
        "--exit-after",
        "50",
        "--exit-code",
        "3",
    ]);
    // What @pm2/io sends, by hand (a Node app with an IPC channel).
    let sdk = k.write(
        "sdk.js",
        "process.send({ type: 'axm:action', data: { action_name: 'ping', arity: 1 } });\n\
         process.send({ type: 'process:exception', data: { name: 'RangeError', message: 'ledger is closed <b>',\n\
           stack: 'RangeError: ledger is closed <b>\\n    at settle (/srv/ledger.js:4:9)' } });\n\
         setInterval(() => process.send({ type: 'axm:monitor', data: {\n\
           'Realtime users': { value: 42, unit: 'users', historic: true } } }), 200);\n",
    );
    k.ok(&["start", &sdk, "--name", "sdk"]);
    wait_http(&k, port);
    let screenshot = std::env::var("KELPIE_WEB_SCREENSHOT").unwrap_or_default();
    let Some(seen) = drive(&k, port, BROWSER_SCRIPT, &[("SCREENSHOT", &screenshot)]) else {
        return;
    };
    assert_eq!(seen["errors"], serde_json::json!([]), "errors on the page");
    let exception = &seen["exception"];
    assert!(
        exception["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("RangeError: ledger is closed <b>")),
        "the group, its markup shown as text: {exception}"
    );
    assert!(
        exception["stack"]
            .as_str()
            .is_some_and(|s| s.contains("at settle (/srv/ledger.js:4:9)")),
        "{exception}"
    );
    assert_eq!(
        seen["address"],
        format!("http://127.0.0.1:{port}/"),
        "the token is out of the address bar"
    );
    let before: u32 = seen["before"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let after: u32 = seen["after"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("pid");
    assert_ne!(before, after, "the click restarted the app");
    assert_eq!(
        seen["sameRow"], true,
        "the row was updated in place through the restart, not built again"
    );
    assert_eq!(
        k.pid("tick"),
        after,
        "the daemon runs the pid the page shows"
    );
    assert_eq!(k.app("tick")["pm2_env"]["restart_time"], 1);
    let shown = seen["shown"].as_array().expect("lines");
    assert!(!shown.is_empty(), "{seen}");
    assert!(
        shown
            .iter()
            .all(|l| l.as_str().is_some_and(|l| l.contains("tick 2"))),
        "the search keeps only matching lines: {seen}"
    );
    assert!(
        seen["exits"][0]
            .as_str()
            .is_some_and(|e| e.contains("SIGINT") && e.contains("user")),
        "the restart is listed with its cause: {seen}"
    );
    assert!(
        seen["facts"]
            .as_str()
            .is_some_and(|f| f.contains("queue_depth=7")),
        "the app's own metrics are shown: {seen}"
    );
    assert!(
        seen["jobStatus"]
            .as_str()
            .is_some_and(|s| s.contains("next ")),
        "a periodic job shows its next run: {seen}"
    );
    // Date, time and zone (the browser's, the job naming none), and how soon.
    let next_run = seen["jobNextRun"].as_str().unwrap_or_default();
    let words: Vec<&str> = next_run.split_whitespace().collect();
    assert!(
        words.len() >= 4
            && is_date(words[0])
            && is_time(words[1])
            && !words[2].starts_with('(')
            && (words[3] == "(in" || words[3] == "(now)"),
        "the next run has its date, time and zone, and how soon: {next_run:?}"
    );
    let sdk_facts = seen["sdkFacts"].as_str().unwrap_or_default();
    for fact in [
        "code metrics",
        "Realtime users 42 users",
        "actions",
        "ping",
        "page faults",
        "context switches",
        "event loop was busy",
    ] {
        assert!(sdk_facts.contains(fact), "{fact}: {seen}");
    }
    // The runtime's first, each with its meaning, then the app's own.
    let at = |what: &str| sdk_facts.find(what).unwrap_or(usize::MAX);
    assert!(
        at("Event Loop Utilization") < at("code metrics"),
        "{sdk_facts}"
    );
    let job_facts = seen["jobFacts"].as_str().unwrap_or_default();
    for fact in ["next run", "last run", "exit 3", "failed runs in a row"] {
        assert!(job_facts.contains(fact), "{fact}: {seen}");
    }
    let host = seen["host"].as_str().unwrap_or_default();
    for figure in ["cpu ", "mem ", " free of ", "load ", "io ", "net "] {
        assert!(host.contains(figure), "{figure}: {seen}");
    }
}

/// Looks at the page at 1024, 1280, 1400 and 1920 px wide (screenshots of 1280 and 1920, in
/// `$SHOTS`), checking at each that no control sticks out of its cell, row or panel, is cut
/// or covered, and that the header is one line; then at 1280: which app is selected first, the
/// buttons of a stopped app and of a running one, start, delete (refused, then confirmed), and
/// the next run of a nightly job.
const LAYOUT_SCRIPT: &str = r##"
const { chromium } = require(process.env.PLAYWRIGHT);
// What is cut, covered, sticks out or wraps at this width: [] when the layout holds.
function layoutProblems() {
  const problems = [];
  const root = document.documentElement;
  const name = (el) => {
    const row = el.closest("tr[data-name]");
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.dataset.action ? "[" + el.dataset.action + "]" : "")
      + (row ? " of " + row.dataset.name : "") + " " + JSON.stringify(el.textContent.trim().slice(0, 40));
  };
  const shown = (el) => el.getClientRects().length > 0;
  const inside = (r, box) => r.left >= box.left - 0.5 && r.right <= box.right + 0.5 && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5;
  if (root.scrollWidth > root.clientWidth) problems.push("the page scrolls sideways: " + root.scrollWidth + " > " + root.clientWidth);
  for (const box of document.querySelectorAll(".table-box")) {
    if (box.scrollWidth > box.clientWidth) problems.push("the list is wider than its panel: " + box.scrollWidth + " > " + box.clientWidth);
  }
  const header = document.querySelector("header");
  const elements = document.querySelectorAll("button, input, label, h1, h2, th, td, .status, .note, header > *, #host > span");
  for (const el of elements) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    // Its own content cut (an inline box has no scroll size of its own: its box is checked below).
    if (style.display !== "inline" && el.tagName !== "INPUT" && el.scrollWidth > el.clientWidth + 1) {
      problems.push(name(el) + " is cut: " + el.scrollWidth + " > " + el.clientWidth + " px");
    }
    if (r.left < 0 || r.right > root.clientWidth + 0.5) problems.push(name(el) + " is off the page");
    // Within its cell, its row, its panel.
    for (const holder of [el.parentElement.closest("td, th"), el.closest("tr"), el.parentElement.closest("section, header")]) {
      if (holder && holder !== el && !inside(r, holder.getBoundingClientRect())) {
        problems.push(name(el) + " sticks out of its " + holder.tagName.toLowerCase());
      }
    }
    // Nothing painted over a control: what is at its middle and near its ends is itself.
    if (el.matches("button, input")) {
      const y = (r.top + r.bottom) / 2;
      for (const x of [r.left + 2, (r.left + r.right) / 2, r.right - 2]) {
        if (y < 0 || y >= root.clientHeight) continue;
        const top = document.elementFromPoint(x, y);
        if (!top || (top !== el && !el.contains(top))) {
          problems.push(name(el) + " is covered at x=" + Math.round(x) + " by " + (top ? name(top) : "nothing"));
          break;
        }
      }
    }
  }
  // The header: one line, all of it.
  if (header.scrollWidth > header.clientWidth) problems.push("the header is wider than the page");
  const middles = [];
  for (const el of header.children) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    middles.push((r.top + r.bottom) / 2);
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = [...range.getClientRects()].filter((b) => b.width > 0).map((b) => b.top);
    if (tops.length && Math.max(...tops) - Math.min(...tops) > 3) problems.push(name(el) + " wraps onto " + "more than one line");
  }
  if (Math.max(...middles) - Math.min(...middles) > 3) problems.push("the header's parts are not on one line: " + middles.join(", "));
  return problems;
}
// The actions a row offers, as shown.
const offered = (row) => [...row.querySelectorAll("button")].filter((b) => b.getClientRects().length).map((b) => b.dataset.action);
(async () => {
  const context = await chromium.launchPersistentContext(process.env.PROFILE, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 1000 },
  });
  const timeout = 15000;
  try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // The page before any data came (its calls held back): the header is one line already.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await page.route("**/api/**", async (route) => { await held; await route.continue(); });
    await page.goto(process.env.URL);
    const early = [await page.locator("#conn").textContent(), ...await page.evaluate(layoutProblems)];
    release();
    await page.unrouteAll({ behavior: "wait" });
    // Everything there: the rows, the host's use, the daemon, the selected app's facts.
    await page.locator('tr[data-name="tick"] .status.online').waitFor({ timeout });
    await page.locator('tr[data-name="nightly"] .note', { hasText: "next" }).waitFor({ timeout });
    await page.locator("#host", { hasText: "cpus" }).waitFor({ timeout });
    await page.locator("#daemon", { hasText: "daemon" }).waitFor({ timeout });
    await page.locator("#facts", { hasText: "status" }).waitFor({ timeout });
    const firstListed = await page.locator("#apps tr").first().getAttribute("data-name");
    const selected = await page.locator("#apps tr.selected").getAttribute("data-name");
    const detailTitle = await page.locator("#detail-title").textContent();
    const layout = {};
    for (const width of [1024, 1280, 1400, 1920]) {
      await page.setViewportSize({ width, height: 1000 });
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      layout[width] = await page.evaluate(layoutProblems);
      if (width === 1280 || width === 1920) {
        await page.screenshot({ path: process.env.SHOTS + "/page-" + width + ".png", fullPage: true });
      }
    }
    await page.setViewportSize({ width: 1280, height: 1000 });
    const idle = page.locator('tr[data-name="idle"]');
    const offers = {
      stopped: await idle.evaluate(offered),
      running: await page.locator('tr[data-name="tick"]').evaluate(offered),
    };
    // Start the stopped app from its row.
    await idle.locator('button[data-action="start"]').click();
    await idle.locator(".status.online").waitFor({ timeout });
    await page.waitForFunction(() => {
      const row = document.querySelector('tr[data-name="idle"]');
      return [...row.querySelectorAll("button")].filter((b) => b.getClientRects().length).length === 3;
    }, null, { timeout });
    offers.started = await idle.evaluate(offered);
    // Delete asks first: refused, the app stays; confirmed, it goes.
    const asked = [];
    const spare = page.locator('tr[data-name="spare"]');
    page.once("dialog", (d) => { asked.push(d.message()); d.dismiss(); });
    await spare.locator('button[data-action="delete"]').click();
    await page.waitForTimeout(2500);
    const keptAfterNo = await spare.count();
    page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
    await spare.locator('button[data-action="delete"]').click();
    await spare.waitFor({ state: "detached", timeout });
    // A nightly job's next run: date, time, zone, how soon; the same in its row's tooltip.
    const nightly = page.locator('tr[data-name="nightly"]');
    const nightlyNote = (await nightly.locator(".note").textContent()).trim();
    const nightlyTitle = await nightly.locator(".note").getAttribute("title");
    await nightly.locator("td.name").click();
    const nextRun = page.locator("#facts dt", { hasText: "next run" });
    await nextRun.waitFor({ timeout });
    const nightlyNextRun = await nextRun.evaluate((dt) => dt.nextElementSibling.textContent);
    console.log(JSON.stringify({ early, firstListed, selected, detailTitle, layout, offers, asked, keptAfterNo,
      nightlyNote, nightlyTitle, nightlyNextRun, errors }));
  } finally {
    await context.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
"##;

#[test]
fn the_page_fits_1024_to_1920_px_and_offers_start_and_delete_for_a_stopped_app_in_chromium() {
    let k = kelpie();
    let port = free_port();
    write_settings(&k, &format!("[web]\nport = {port}\n"));
    // The first app listed is stopped before the page opens: the page selects a running one.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "idle",
        "--",
        "--tick",
        "500",
    ]);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "tick",
        "--",
        "--tick",
        "200",
    ]);
    k.ok(&["start", &k.fake_app(), "--name", "spare"]);
    // A long name, and a job at 3 every night in Paris: its schedule under its status.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "a-rather-long-application-name-for-the-api-server",
    ]);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "nightly",
        "--no-autorestart",
        "--cron-restart",
        "0 3 * * *",
        "--cron-timezone",
        "Europe/Paris",
        "--",
        "--exit-after",
        "50",
    ]);
    k.ok(&["stop", "idle"]);
    k.ok(&["stop", "spare"]);
    wait_http(&k, port);
    // Kept where asked, else in the test's directory.
    let shots = std::env::var("KELPIE_WEB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| k.dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).expect("the screenshots' directory");
    let shots_env = shots.display().to_string();
    let Some(seen) = drive(&k, port, LAYOUT_SCRIPT, &[("SHOTS", &shots_env)]) else {
        return;
    };
    assert_eq!(seen["errors"], serde_json::json!([]), "errors on the page");
    for width in ["1024", "1280", "1400", "1920"] {
        assert_eq!(
            seen["layout"][width],
            serde_json::json!([]),
            "at {width} px wide, nothing may be cut, covered or stick out, and the header \
             is one line: {seen}"
        );
    }
    assert_eq!(
        seen["early"],
        serde_json::json!(["connecting"]),
        "before any data, at 1280 px: {seen}"
    );
    for width in [1280, 1920] {
        let shot = shots.join(format!("page-{width}.png"));
        let size = std::fs::metadata(&shot).map_or(0, |m| m.len());
        assert!(size > 10_000, "{}: {size} bytes", shot.display());
    }

    assert_eq!(seen["firstListed"], "idle", "{seen}");
    assert_eq!(
        seen["selected"], "tick",
        "the first running app is selected, not the first listed (stopped): {seen}"
    );
    assert_eq!(seen["detailTitle"], "tick · id 1", "{seen}");

    assert_eq!(
        seen["offers"]["stopped"],
        serde_json::json!(["start", "delete"]),
        "{seen}"
    );
    assert_eq!(
        seen["offers"]["running"],
        serde_json::json!(["restart", "reload", "stop"]),
        "{seen}"
    );
    assert_eq!(
        seen["offers"]["started"],
        serde_json::json!(["restart", "reload", "stop"]),
        "once started, it offers what a running app does: {seen}"
    );
    assert_eq!(k.status("idle"), "online", "the click started it");
    assert!(k.pid("idle") > 0);

    let asked = seen["asked"].as_array().expect("the dialogs");
    assert_eq!(asked.len(), 2, "delete asks each time: {seen}");
    assert!(
        asked
            .iter()
            .all(|m| m.as_str().is_some_and(|m| m.contains("spare (id 2)"))),
        "{seen}"
    );
    assert_eq!(
        seen["keptAfterNo"], 1,
        "refused, nothing is deleted: {seen}"
    );
    assert!(
        k.jlist().iter().all(|p| p["name"] != "spare"),
        "confirmed, it is deleted"
    );
    assert_eq!(k.jlist().len(), 4);

    // 3 at night in Paris, whatever the browser's zone.
    let next_run = seen["nightlyNextRun"].as_str().unwrap_or_default();
    let words: Vec<&str> = next_run.split_whitespace().collect();
    assert!(
        words.len() >= 4
            && is_date(words[0])
            && words[1] == "03:00"
            && words[2] == "Europe/Paris"
            && words[3] == "(in",
        "the next run with its date, time and zone, and how soon: {next_run:?}"
    );
    let title = seen["nightlyTitle"].as_str().unwrap_or_default();
    assert!(
        title.contains(&format!("{} 03:00 Europe/Paris", words[0])),
        "the row's tooltip: {title:?}"
    );
    assert!(
        seen["nightlyNote"]
            .as_str()
            .is_some_and(|n| n.starts_with("next in ")),
        "{seen}"
    );
}

/// Runs `script` in node with Playwright and Chromium against the page on `port` (its address as
/// `kelpie web` prints it: the token after `#`) and `env`; what the script printed, as JSON. None
/// when the tools are not there (skipped).
fn drive(k: &Kelpie, port: u16, script: &str, env: &[(&str, &str)]) -> Option<Value> {
    let (Some(chromium), Some(playwright)) = (chromium(), playwright()) else {
        return None;
    };
    let profile = tempfile::tempdir().expect("profile");
    let script = k.write("drive.js", script);
    let out = Command::new("node")
        .arg(&script)
        .env("PLAYWRIGHT", playwright.join("playwright-core"))
        .env("CHROMIUM", &chromium)
        .env("PROFILE", profile.path())
        .env(
            "URL",
            format!("http://127.0.0.1:{port}/#token={}", stored_token(k)),
        )
        .envs(env.iter().copied())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_str(stdout.trim()).expect("the script's JSON"))
}

/// `2026-11-28`.
fn is_date(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// `03:00` or `03:00:07`.
fn is_time(word: &str) -> bool {
    let parts: Vec<&str> = word.split(':').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()))
}

/// A field of /proc/meminfo, in bytes.
fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    text.lines()
        .find_map(|line| {
            let kib = line.strip_prefix(field)?.strip_prefix(':')?;
            kib.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
        .expect("the field")
        * 1024
}

/// The `cpuN` lines of /proc/stat: (N, user ticks).
fn proc_cpus() -> Vec<(String, u64)> {
    let text = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu = fields
                .next()?
                .strip_prefix("cpu")
                .filter(|n| !n.is_empty())?;
            Some((cpu.to_string(), fields.next()?.parse().ok()?))
        })
        .collect()
}

/// Now, in ms since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A sample's value in a Prometheus exposition, by its name and labels as written.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_hosts_use_is_read_from_proc_under_list_on_the_api_and_in_metrics() {
    let k = kelpie();
    let port = serving(&k);
    let token = stored_token(&k);
    let get = |port, path: &str| get_with(port, &token, path);
    // One core kept busy, so the host's CPU use has something to show.
    k.ok(&["start", &k.fake_app(), "--name", "burn", "--", "--burn"]);
    let burning_since = now_ms();
    let host = || get(port, "/api/host").json();
    // A reading over a whole second of the burn: its interval began once the burn ran.
    let h = kelpie_testkit::wait_until("a reading over a second of the burn", 30 * SECS, || {
        let h = host();
        let at = h["at_ms"].as_u64().unwrap_or(0);
        let interval = h["interval_ms"].as_u64().unwrap_or(0);
        match interval >= 1_000 && at.saturating_sub(interval) >= burning_since {
            true => Ok(h),
            false => Err(h.to_string()),
        }
    });
    let cpus = proc_cpus().len() as u64;
    assert_eq!(h["cpus"], cpus, "{h}");
    let cpu = h["cpu_percent"].as_f64().expect("cpu");
    assert!(
        cpu >= 80.0 / cpus as f64 && cpu <= 100.0,
        "one core busy of {cpus}, and {cpu} %"
    );
    let total = meminfo("MemTotal");
    assert_eq!(h["memory_total_bytes"], total, "{h}");
    let available = h["memory_available_bytes"].as_u64().expect("available");
    assert!(available > 0 && available < total, "{h}");
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .expect("loadavg")
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .expect("load");
    let shown = h["load"][0].as_f64().expect("load");
    assert!(
        (shown - load).abs() < 1.0,
        "load {shown}, /proc says {load}"
    );
    // The file system of the home, as df sees it.
    let df = Command::new("df")
        .args(["-P", "-B1"])
        .arg(k.home())
        .output()
        .expect("df");
    let df = String::from_utf8_lossy(&df.stdout);
    let fields: Vec<&str> = df.lines().last().expect("df").split_whitespace().collect();
    let (df_available, mountpoint): (u64, &str) =
        (fields[3].parse().expect("available"), fields[5]);
    assert_eq!(h["filesystem"]["mountpoint"], mountpoint, "{h}");
    let fs_available = h["filesystem"]["available_bytes"].as_u64().expect("space");
    assert!(
        fs_available.abs_diff(df_available) < 256 << 20,
        "{fs_available} free, df says {df_available}"
    );

    // Under the table, as PM2 shows it with pm2-server-monit.
    let list = k.ok(&["list"]);
    let line = list
        .lines()
        .find(|l| l.starts_with("host  "))
        .unwrap_or_else(|| panic!("no host line:\n{list}"));
    assert!(
        line.contains(&format!("({cpus} cpus)"))
            && line.contains(" free of ")
            && line.contains(&format!("disk {mountpoint} "))
            && line.contains("net in "),
        "{line}"
    );

    // /metrics: node_exporter's names, read at the scrape.
    let ticks: f64 = String::from_utf8_lossy(
        &Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf")
            .stdout,
    )
    .trim()
    .parse()
    .expect("CLK_TCK");
    let before = proc_cpus();
    let scrape = get(port, "/metrics").body;
    let after = proc_cpus();
    for ((cpu, was), (_, now)) in before.iter().zip(&after) {
        let series = format!("node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"user\"}}");
        let seconds = sample(&scrape, &series).unwrap_or_else(|| panic!("no {series}"));
        assert!(
            seconds >= *was as f64 / ticks && seconds <= *now as f64 / ticks,
            "{series} {seconds}, /proc/stat said {was} then {now} ticks"
        );
    }
    assert_eq!(
        sample(&scrape, "node_memory_MemTotal_bytes"),
        Some(total as f64)
    );
    assert!(sample(&scrape, "node_load1").is_some(), "{scrape}");
    let net = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev");
    for line in net.lines().skip(2) {
        let (device, numbers) = line.split_once(':').expect("a device line");
        let device = device.trim();
        let received: f64 = numbers
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("bytes");
        let series = format!("node_network_receive_bytes_total{{device=\"{device}\"}}");
        match device {
            "lo" => assert!(sample(&scrape, &series).is_none(), "{series}"),
            _ => assert!(
                sample(&scrape, &series).is_some_and(|n| n <= received),
                "{series}: /proc/net/dev said {received} after the scrape"
            ),
        }
    }
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("node_filesystem_avail_bytes{")
                && l.contains(&format!("mountpoint=\"{mountpoint}\""))),
        "{scrape}"
    );
}

/// Reads the page's "Other hosts" section once it lists the other daemon's app.
const HOSTS_SCRIPT: &str = r##"
const { chromium } = require(process.env.PLAYWRIGHT);
(async () => {
  const context = await chromium.launchPersistentContext(process.env.PROFILE, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 860 },
  });
  const timeout = 15000;
  try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(process.env.URL);
    await page.locator('#hosts tr[data-name="far-api"] .status.online').waitFor({ timeout });
    const rows = await page.locator("#hosts tr").allTextContents();
    const html = await page.content();
    console.log(JSON.stringify({ rows, tokenInPage: html.includes(process.env.FAR_TOKEN), errors }));
  } finally {
    await context.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
"##;

/// `[[web.hosts]]`: another machine's daemon (here a second daemon, in its own home, serving
/// with its own token) is shown on the page and over `/api/hosts`, asked by this daemon with
/// that host's token, which never reaches the page; a host that does not answer, and one whose
/// token is wrong, are shown with why.
#[test]
fn other_hosts_are_shown_read_only_and_their_tokens_stay_in_the_daemon() {
    let far = kelpie();
    let far_port = free_port();
    write_settings(
        &far,
        &format!("[web]\nport = {far_port}\ntoken = \"{TOKEN}\"\n"),
    );
    far.ok(&["start", &far.fake_app(), "--name", "far-api"]);
    wait_http(&far, far_port);

    let near = kelpie();
    let near_port = free_port();
    let nobody = free_port();
    let host = |name: &str, port: u16, token: &str| {
        format!("\n[[web.hosts]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}/\"\ntoken = \"{token}\"\n")
    };
    write_settings(
        &near,
        &format!(
            "[web]\nport = {near_port}\n{}{}{}",
            host("edge-2", far_port, TOKEN),
            host("gone", nobody, TOKEN),
            host("stale", far_port, "another-token-0123456789"),
        ),
    );
    near.ok(&["start", &near.fake_app(), "--name", "near-api"]);
    wait_http(&near, near_port);

    // Not without this daemon's own token.
    assert_eq!(get(near_port, "/api/hosts").status, 401);
    let answer = get_with(near_port, &stored_token(&near), "/api/hosts");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        !answer.body.contains(TOKEN) && !answer.body.contains("another-token"),
        "a token in the answer: {}",
        answer.body
    );
    let hosts = answer.json();
    let names: Vec<&str> = hosts
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(names, ["edge-2", "gone", "stale"], "in the file's order");
    let far_pid = far.pid("far-api");
    let listed = &hosts[0]["processes"];
    assert!(
        listed.as_array().is_some_and(|list| list.len() == 1
            && list[0]["name"] == "far-api"
            && list[0]["status"] == "online"
            && list[0]["pm_id"] == 0),
        "{hosts}"
    );
    assert_eq!(hosts[0]["url"], format!("http://127.0.0.1:{far_port}"));
    // Only what the page shows passes: not the far process's pid, command or environment.
    assert!(listed[0].get("pid").is_none() && listed[0].get("spec").is_none());
    assert_eq!(far.pid("far-api"), far_pid);
    assert!(
        hosts[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection refused")),
        "{hosts}"
    );
    assert!(
        hosts[2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{hosts}"
    );
    // Read-only: nothing on this daemon reaches the other's apps.
    assert_eq!(far.app("far-api")["pm2_env"]["restart_time"], 0);

    let Some(seen) = drive(&near, near_port, HOSTS_SCRIPT, &[("FAR_TOKEN", TOKEN)]) else {
        return;
    };
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["tokenInPage"], false, "{seen}");
    let rows: Vec<&str> = seen["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.starts_with("edge-2") && r.contains("far-api") && r.contains("online")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("gone") && r.contains("connection refused")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("stale") && r.contains("401")),
        "{rows:?}"
    );
}
