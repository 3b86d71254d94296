//! Notifications (`[[notify]]` in kelpie.toml, docs/notifications.md): real apps that crash,
//! real receivers on loopback (an HTTP server for webhooks, Slack's and Discord's payloads, a
//! command, an SMTP server with STARTTLS and auth), and the daemon's own work unaffected by a
//! target that hangs or refuses.

use super::kelpie;
use kelpie_testkit::{free_port, Kelpie};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECS: Duration = Duration::from_secs(1);

/// What a receiver does with a request.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Answer {
    /// `200 OK`.
    Ok,
    /// Reads it and never answers.
    Hang,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) path: String,
    pub(super) body: Value,
    /// When it arrived (ms since the epoch).
    at_ms: u64,
}

/// An HTTP server on loopback recording what it is sent, until dropped.
pub(super) struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Receiver {
    pub(super) fn start(answer: Answer) -> Receiver {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("receiver's port");
        listener.set_nonblocking(true).expect("nonblocking");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (got_in, stop_in) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop_in.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        if let Some(received) = read_request(&stream) {
                            got_in.lock().expect("received").push(received);
                        }
                        match answer {
                            Answer::Ok => {
                                let mut stream = stream;
                                let _ = stream.write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                                );
                            }
                            Answer::Hang => held.push(stream),
                        }
                    }
                    // pacing: the accept loop looks again for a connection or the stop.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(super) fn got(&self) -> Vec<Received> {
        self.got.lock().expect("received").clone()
    }

    /// Wait until a request matching `want` arrived; it.
    pub(super) fn wait(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.got().into_iter().find(|r| want(r)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; received: {:#?}",
                self.got()
            );
            // pacing: the received requests looked at again until the deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP request: its path and its JSON body.
fn read_request(stream: &TcpStream) -> Option<Received> {
    let _ = stream.set_read_timeout(Some(5 * SECS));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at_ms: now_ms(),
    })
}

/// `kelpie notify --json`'s answer.
fn notify_status(k: &Kelpie) -> Value {
    serde_json::from_str(&k.ok(&["notify", "--json"])).expect("notify --json")
}

/// A Node app that writes to stderr, then throws.
const THROWER: &str = r#"
console.error("starting the payment worker");
setTimeout(() => { throw new TypeError("card is undefined"); }, 300);
"#;

#[test]
fn a_crash_reaches_a_webhook_and_a_command_within_2_s_with_the_app_cause_and_exception() {
    let k = kelpie();
    let hook = Receiver::start(Answer::Ok);
    let got_by_command = k.home().join("command.jsonl");
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!(
            "[[notify]]\nwebhook = \"{}\"\nevents = [\"crash\"]\n[[notify]]\ncommand = \"cat >> '{}'; echo \\\" $KELPIE_EVENT\\\" >> '{}'\"\nevents = [\"crash\"]\n",
            hook.url("/kelpie"),
            got_by_command.display(),
            got_by_command.display()
        ),
    )
    .expect("kelpie.toml");
    let app = k.write("payments.js", THROWER);
    k.ok(&["start", &app, "--name", "payments", "--no-autorestart"]);
    let crash = hook.wait("crash message", 10 * SECS, |r| r.body["event"] == "crash");
    let body = &crash.body;
    assert_eq!(crash.path, "/kelpie");
    assert_eq!(body["app"], "payments");
    assert_eq!(body["exit"]["cause"], "crash");
    assert_eq!(body["exit"]["code"], 1);
    let exception = body["exit"]["exception"]["message"].as_str().unwrap_or("");
    assert!(exception.contains("card is undefined"), "{body:#}");
    let tail = body["exit"]["stderr_tail"].to_string();
    assert!(tail.contains("starting the payment worker"), "{body:#}");
    // Within 2 s of the exit, as the daemon recorded it.
    let exits: Value =
        serde_json::from_str(&k.ok(&["events", "payments", "--json"])).expect("events");
    let exited_ms = exits
        .as_array()
        .and_then(|e| e.last())
        .and_then(|e| e["at_ms"].as_u64())
        .unwrap_or_else(|| panic!("an exit recorded: {exits:#}"));
    assert!(
        crash.at_ms.saturating_sub(exited_ms) < 2_000,
        "the message came {} ms after the exit",
        crash.at_ms.saturating_sub(exited_ms)
    );
    // The command got the same event on its stdin, and its name in its environment.
    k.wait_for("the command's message", 10 * SECS, || {
        std::fs::read_to_string(&got_by_command).is_ok_and(|t| t.contains(" crash\n"))
    });
    let text = std::fs::read_to_string(&got_by_command).expect("command's file");
    // The event as JSON, then what the command added after it.
    let sent: Value = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("JSON on stdin: {text}"));
    assert_eq!(sent["event"], "crash");
    assert_eq!(sent["app"], "payments");
    let status = notify_status(&k);
    assert_eq!(status["targets"][0]["sent"], 1, "{status:#}");
    assert_eq!(status["targets"][1]["sent"], 1, "{status:#}");
}

#[test]
fn a_crash_loop_is_a_handful_of_messages_then_recovered_once_fixed() {
    let k = kelpie();
    let hook = Receiver::start(Answer::Ok);
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!("[[notify]]\nwebhook = \"{}\"\n", hook.url("/hook")),
    )
    .expect("kelpie.toml");
    let broken = k.home().join("broken");
    std::fs::write(&broken, "").expect("flag");
    // Crashes at once while the flag file is there; runs once it is gone. A shell script: a
    // crash loop of Node apps would hold a core for the whole test.
    let app = k.write_script(
        "flaky.sh",
        &format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'config missing' >&2; exit 3; fi\nexec sleep 600\n",
            broken.display()
        ),
    );
    let _heavy = super::heavy();
    // Not given up on after 16 quick crashes (PM2's default): a service that loops for minutes.
    k.ok(&[
        "start",
        &app,
        "--name",
        "flaky",
        "--restart-delay",
        "100",
        "--max-restarts",
        "100000",
    ]);
    let looping = hook.wait("crash_loop message", 15 * SECS, |r| {
        r.body["event"] == "crash_loop"
    });
    assert_eq!(looping.body["app"], "flaky");
    assert!(
        looping.body["text"]
            .as_str()
            .unwrap_or("")
            .contains("config missing"),
        "{:#}",
        looping.body
    );
    // Looping for 20 s: dozens of restarts, and nothing more said.
    std::thread::sleep(Duration::from_secs(20)); // pacing: the crash loop runs its 20 s.
    let restarts = k.app("flaky")["pm2_env"]["restart_time"]
        .as_u64()
        .unwrap_or(0);
    assert!(restarts >= 20, "restarted {restarts} times");
    std::fs::remove_file(&broken).expect("fixed");
    let recovered = hook.wait("recovered message", 30 * SECS, |r| {
        r.body["event"] == "recovered"
    });
    let counted = recovered.body["count"].as_u64().unwrap_or(0);
    assert!(counted >= 20, "{:#}", recovered.body);
    let events: Vec<String> = hook
        .got()
        .iter()
        .map(|r| r.body["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(events.len() <= 5, "{} restarts made {events:?}", restarts);
    assert_eq!(
        events.iter().filter(|e| *e == "crash_loop").count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("recovered"),
        "{events:?}"
    );
}

#[test]
fn slack_and_discord_get_their_own_shapes_and_their_secrets_are_never_shown() {
    let k = kelpie();
    let hook = Receiver::start(Answer::Ok);
    let slack = hook.url("/services/T0001/B0001/SLACKSECRET");
    let discord = hook.url("/api/webhooks/1234/DISCORDSECRET");
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!("[[notify]]\nslack = \"{slack}\"\n[[notify]]\ndiscord = \"{discord}\"\n"),
    )
    .expect("kelpie.toml");
    let out = k.ok(&["notify", "test"]);
    assert_eq!(out.matches("test: ok (HTTP 200)").count(), 2, "{out}");
    let to_slack = hook.wait("Slack's payload", 5 * SECS, |r| {
        r.path.contains("SLACKSECRET")
    });
    // Slack's incoming webhooks: `text`, and blocks of known types.
    assert!(to_slack.body["text"]
        .as_str()
        .is_some_and(|t| t.contains("test message")));
    let blocks = to_slack.body["blocks"].as_array().expect("blocks");
    assert!(blocks
        .iter()
        .all(|b| ["section", "context"].contains(&b["type"].as_str().unwrap_or(""))));
    let to_discord = hook.wait("Discord's payload", 5 * SECS, |r| {
        r.path.contains("DISCORDSECRET")
    });
    // Discord's webhooks: `content` under 2000 characters, embeds with a title.
    assert!(to_discord.body["content"]
        .as_str()
        .is_some_and(|c| c.len() < 2000));
    assert!(to_discord.body["embeds"][0]["title"].is_string());
    // The secrets: never in what the CLI prints, nor in the daemon's log.
    let status = k.ok(&["notify"]);
    let json = k.ok(&["notify", "--json"]);
    let log = std::fs::read_to_string(k.home().join("kelpie.log")).unwrap_or_default();
    for shown in [&out, &status, &json, &log] {
        assert!(
            !shown.contains("SLACKSECRET") && !shown.contains("DISCORDSECRET"),
            "{shown}"
        );
    }
    assert!(status.contains("/services/***"), "{status}");
}

#[test]
fn a_target_that_hangs_or_refuses_changes_nothing_else_and_its_losses_are_counted() {
    let k = kelpie();
    let hanging = Receiver::start(Answer::Hang);
    let refused = free_port();
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!(
            "[[notify]]\nwebhook = \"{}\"\nper_minute = 1000\n[[notify]]\nwebhook = \"http://127.0.0.1:{refused}/nobody\"\nevents = [\"crash\"]\n",
            hanging.url("/slow")
        ),
    )
    .expect("kelpie.toml");
    // 80 apps that each crash once: more messages than a target's queue holds.
    let apps: Vec<Value> = (0..80)
        .map(|n| {
            serde_json::json!({
                "name": format!("once-{n}"),
                "script": "/bin/sh",
                "args": ["-c", "exit 2"],
                "autorestart": false,
            })
        })
        .collect();
    let file = k.write("apps.json", &serde_json::json!({"apps": apps}).to_string());
    k.ok(&["start", &file]);
    // The daemon answers as fast as ever meanwhile.
    for _ in 0..10 {
        let started = Instant::now();
        k.ok(&["list"]);
        assert!(
            started.elapsed() < SECS,
            "list took {:?}",
            started.elapsed()
        );
        // pacing: a list every 300 ms while the deliveries hang.
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = notify_status(&k);
    let slow = &status["targets"][0];
    assert!(slow["dropped"].as_u64() > Some(0), "{status:#}");
    // The refused one fails fast, is tried again with backoff, and is counted as failed.
    k.wait_for("the refused target's failures", 30 * SECS, || {
        notify_status(&k)["targets"][1]["failed"].as_u64() > Some(0)
    });
    let status = notify_status(&k);
    let error = status["targets"][1]["last_error"].as_str().unwrap_or("");
    assert!(error.contains("onnect"), "{status:#}");
    let shown = k.ok(&["notify"]);
    assert!(shown.contains("dropped"), "{shown}");
}

#[test]
fn bad_notify_tables_are_refused_by_notify_test_naming_the_table_and_key() {
    let k = kelpie();
    std::fs::write(
        k.home().join("kelpie.toml"),
        "[[notify]]\nwebhook = \"ftp://example.com/x\"\n[[notify]]\nslack = \"https://hooks.slack.com/services/T/B/SECRET\"\nevents = [\"crashes\"]\n",
    )
    .expect("kelpie.toml");
    let out = k.run(&["notify", "test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key `notify[0].webhook`"), "{err}");
    assert!(err.contains("unknown event `crashes`"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
}

/// An SMTP server on loopback (aiosmtpd) that requires STARTTLS, then AUTH, and writes each
/// message it accepts to a file as JSON.
const SMTP_SERVER: &str = r#"
import json, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"kelpie" and auth_data.password == b"s3cret"
    return AuthResult(success=ok)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "authenticated": session.authenticated,
                "content": envelope.content.decode("utf-8", "replace"),
            }) + "\n")
        return "250 OK"

controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=True, authenticator=authenticator, auth_require_tls=True)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_email_arrives_over_starttls_with_auth_and_the_crash_in_its_subject() {
    let python = match super::tools::python_venv("notify-smtp", &["aiosmtpd"]) {
        Ok(python) => python,
        Err(e) => return kelpie_testkit::skip(format!("aiosmtpd from PyPI: {e}")),
    };
    let k = kelpie();
    let dir = k.dir.path();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = free_port();
    let mails = dir.join("mails.jsonl");
    let script = k.write("smtp.py", SMTP_SERVER);
    let mut server = std::process::Command::new(&python)
        .arg(&script)
        .arg(port.to_string())
        .arg(&cert)
        .arg(&key)
        .arg(&mails)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("aiosmtpd");
    let mut ready = String::new();
    let stdout = server.stdout.take().expect("stdout");
    let server = Child(server);
    BufReader::new(stdout).read_line(&mut ready).expect("ready");
    assert_eq!(ready.trim(), "ready");
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!(
            "[[notify]]\nsmtp = \"smtp://kelpie:s3cret@127.0.0.1:{port}\"\nfrom = \"kelpie@example.com\"\nto = [\"ops@example.com\", \"oncall@example.com\"]\nca_file = \"{}\"\nevents = [\"crash\"]\n",
            cert.display()
        ),
    )
    .expect("kelpie.toml");
    let test = k.ok(&["notify", "test"]);
    assert!(test.contains("test: ok"), "{test}");
    assert!(!test.contains("s3cret"), "{test}");
    let app = k.write("mailer.js", THROWER);
    k.ok(&["start", &app, "--name", "mailer", "--no-autorestart"]);
    k.wait_for("the crash's email", 15 * SECS, || {
        std::fs::read_to_string(&mails).is_ok_and(|t| t.lines().count() >= 2)
    });
    let text = std::fs::read_to_string(&mails).expect("mails");
    let crash: Value = serde_json::from_str(text.lines().nth(1).unwrap_or("")).expect("JSON");
    assert_eq!(crash["from"], "kelpie@example.com");
    assert_eq!(
        crash["to"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    assert_eq!(crash["tls"], true, "STARTTLS");
    assert_eq!(crash["authenticated"], true);
    let content = crash["content"].as_str().unwrap_or("");
    let subject = content
        .lines()
        .find(|l| l.starts_with("Subject: "))
        .unwrap_or("");
    assert!(
        subject.contains("mailer (id 0) crashed: exit code 1"),
        "{content}"
    );
    assert!(content.contains("card is undefined"), "{content}");
    drop(server);
}

/// A Python app that fails in `charge`, from one of two lines, with another message each time.
const PYTHON_CRASH: &str = r#"
import os, sys
print("loading the card from the queue", file=sys.stderr)
def charge(card):
    if os.environ.get("OTHER_LINE"):
        return card["expiry"]
    return card["number"]
charge(None)
"#;

/// A Go program that indexes out of range.
const GO_PANIC: &str = r#"package main

import "os"

func lookup(xs []int, i int) int { return xs[i] }

func main() {
	println("looking up", len(os.Args))
	lookup([]int{1, 2, 3}, 5+len(os.Args))
}
"#;

/// A Node app that reports an error it survives (`@pm2/io`'s `notifyError`) every 200 ms.
const NODE_NOTIFY: &str = r#"
const io = require('@pm2/io');
let n = 0;
setInterval(() => { if (n++ < 8) io.notifyError(new RangeError('quota exceeded for ' + n)); }, 200);
"#;

#[test]
fn exceptions_of_python_go_and_node_land_in_their_groups_and_survive_a_daemon_restart() {
    let Some(modules) = super::pm2_runtime::pm2_io() else {
        return;
    };
    // `go build` and five interpreters: not beside the other heavy tests.
    let _heavy = super::heavy();
    let k = kelpie();
    let hook = Receiver::start(Answer::Ok);
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!(
            "[[notify]]\nwebhook = \"{}\"\nevents = [\"exception\", \"bad_behaviour\"]\n",
            hook.url("/errors")
        ),
    )
    .expect("kelpie.toml");
    let python = k.write("billing.py", PYTHON_CRASH);
    // Three crashes from one line, one from another line of the same function: one group.
    for n in 0..3 {
        k.ok(&[
            "start",
            &python,
            "--name",
            &format!("billing-{n}"),
            "--no-autorestart",
            "--interpreter",
            "python3",
        ]);
    }
    let mut other_line = k.command(&[
        "start",
        &python,
        "--name",
        "billing-3",
        "--no-autorestart",
        "--interpreter",
        "python3",
    ]);
    other_line.env("OTHER_LINE", "1");
    assert!(other_line.output().expect("start").status.success());
    let go_source = k.write("lookup.go", GO_PANIC);
    let go_binary = k.dir.path().join("lookup");
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&go_binary)
        .arg(&go_source)
        .env("GOCACHE", k.dir.path().join("gocache"))
        .env("HOME", k.dir.path())
        .output()
        .expect("go build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    k.ok(&[
        "start",
        &go_binary.display().to_string(),
        "--name",
        "lookup",
        "--no-autorestart",
    ]);
    let node = super::pm2_runtime::app(&k, &modules, "quota.js", NODE_NOTIFY);
    k.ok(&["start", &node, "--name", "quota"]);
    let node_crash = k.write("payments.js", THROWER);
    k.ok(&[
        "start",
        &node_crash,
        "--name",
        "payments",
        "--no-autorestart",
    ]);

    let groups = |k: &Kelpie| -> Vec<Value> {
        serde_json::from_str::<Value>(&k.ok(&["errors", "--json"]))
            .expect("errors --json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let by_type = |groups: &[Value], kind: &str| -> Value {
        groups
            .iter()
            .find(|g| g["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    k.wait_for("every language's exceptions", 20 * SECS, || {
        let groups = groups(&k);
        by_type(&groups, "TypeError").is_object()
            && by_type(&groups, "runtime error").is_object()
            && by_type(&groups, "RangeError")["count"] == 8
            && groups
                .iter()
                .filter(|g| g["language"] == "python")
                .map(|g| g["count"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 4
    });
    let all = groups(&k);
    let python_groups: Vec<&Value> = all.iter().filter(|g| g["language"] == "python").collect();
    assert_eq!(
        python_groups.len(),
        1,
        "one function, two lines: one group: {all:#?}"
    );
    let python_group = python_groups[0];
    assert_eq!(python_group["type"], "TypeError");
    assert_eq!(python_group["apps"].as_object().map(|a| a.len()), Some(4));
    assert_eq!(
        python_group["lines_before"],
        serde_json::json!(["loading the card from the queue"])
    );
    assert!(python_group["stack"]
        .as_str()
        .unwrap_or("")
        .contains("in charge"));
    let go = by_type(&all, "runtime error");
    assert_eq!(go["language"], "go");
    assert!(
        go["stack"].as_str().unwrap_or("").contains("main.lookup"),
        "{go:#}"
    );
    let node_groups: Vec<&Value> = all.iter().filter(|g| g["language"] == "node").collect();
    assert_eq!(
        node_groups.len(),
        2,
        "notifyError's and the crash's: {all:#?}"
    );
    let crash = node_groups
        .iter()
        .find(|g| g["apps"]["payments"].is_number())
        .expect("the crash");
    assert_eq!(
        crash["count"], 1,
        "counted once, not again from its stderr: {crash:#}"
    );
    // A new group and bad behaviour (8 in 1.6 s) were said.
    hook.wait("a new group's message", 10 * SECS, |r| {
        r.body["event"] == "exception"
    });
    let bad = hook.wait("bad behaviour", 10 * SECS, |r| {
        r.body["event"] == "bad_behaviour"
    });
    assert_eq!(bad.body["app"], "quota");
    // describe says it; the daemon's restart keeps it.
    let described = k.ok(&["describe", "billing-0"]);
    assert!(
        described.contains("Exceptions of billing-0: 1 in 1 groups; the last: TypeError"),
        "{described}"
    );
    k.ok(&["kill"]);
    let after = groups(&k);
    assert_eq!(after.len(), all.len(), "kept across the daemon's restart");
    assert_eq!(by_type(&after, "RangeError")["count"], 8);
    let shown = k.ok(&["errors", "billing-1"]);
    assert!(
        shown.contains("TypeError: 'NoneType' object is not subscriptable"),
        "{shown}"
    );
    let cleared = k.ok(&["errors", "--clear"]);
    assert!(
        cleared.contains(&format!("cleared {} groups", all.len())),
        "{cleared}"
    );
    assert!(groups(&k).is_empty());
}

#[test]
fn a_failing_health_check_is_said_once_and_its_recovery_once() {
    let k = kelpie();
    let hook = Receiver::start(Answer::Ok);
    std::fs::write(
        k.home().join("kelpie.toml"),
        format!(
            "[[notify]]\nwebhook = \"{}\"\nevents = [\"health_failed\", \"health_recovered\"]\n",
            hook.url("/health")
        ),
    )
    .expect("kelpie.toml");
    let sick = k.home().join("sick");
    let file = k.write(
        "apps.json",
        &serde_json::json!({"apps": [{
            "name": "checked",
            "script": "/bin/sh",
            "args": ["-c", "sleep 600"],
            // Many failures before a restart: the test sees the check fail and pass, no restart.
            "health_check": {
                "exec": format!("test ! -e '{}'", sick.display()),
                "interval": "100ms",
                "failures": 100000,
            },
        }]})
        .to_string(),
    );
    k.ok(&["start", &file]);
    k.wait_for("a passing check", 10 * SECS, || {
        k.app("checked")["pm2_env"]["health"] == "healthy"
    });
    std::fs::write(&sick, "").expect("sick");
    let failed = hook.wait("health_failed", 10 * SECS, |r| {
        r.body["event"] == "health_failed"
    });
    assert_eq!(failed.body["app"], "checked");
    // pacing: more failed probes (10 a second) are not more messages.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&sick).expect("well");
    hook.wait("health_recovered", 10 * SECS, |r| {
        r.body["event"] == "health_recovered"
    });
    let events: Vec<String> = hook
        .got()
        .iter()
        .map(|r| r.body["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(events, ["health_failed", "health_recovered"]);
}
