//! Real frameworks as their users run them (issue 73): Next.js, NestJS, FastAPI under uvicorn,
//! Flask under gunicorn and a Go net/http server, each made the way its documentation says
//! (from the registries, once per build directory), started as its users start it with two
//! instances on one port, and reloaded five times under load (wrk, keep-alive then a new
//! connection per request) beside a process that keeps a core busy, as on a loaded server:
//! every reload exits 0 and no request fails. How fast the Python and Go servers answer through
//! Kelpie's socket against their own port is measured in bench/ (`--only sockets`), where a
//! noisy machine's swings are a figure rather than a failed test.

use super::tools::{installed_or_skip, npm_packages, program, python_venv, run};
use super::{free_port, heavy, kelpie};
use kelpie_testkit::Kelpie;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);
/// Reloads per load mode.
const RELOADS: usize = 5;

/// A process keeping a core busy for as long as it lives.
struct Burner(Child);

impl Burner {
    fn start(k: &Kelpie) -> Burner {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("a burner");
        k.track(child.id());
        Burner(child)
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What wrk saw: requests, and every kind of failure it counts.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    errors: u64,
    non_2xx: u64,
    text: String,
}

/// Start wrk on 127.0.0.1:`port` for `seconds` (`keep_alive`, or a new connection per request).
fn wrk_start(port: u16, seconds: u64, keep_alive: bool) -> Child {
    let wrk = program("wrk").expect("wrk (Debian's `wrk`, installed by .ci/run)");
    let mut command = Command::new(wrk);
    command.args(["-t2", "-c16", &format!("-d{seconds}s"), "--timeout", "10s"]);
    if !keep_alive {
        command.args(["-H", "Connection: close"]);
    }
    command
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk")
}

fn wrk_report(child: Child) -> Wrk {
    let out = child.wait_with_output().expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let number = |line: &str| -> u64 {
        line.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    let mut wrk = Wrk::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line
            .split(" requests in ")
            .next()
            .filter(|_| line.contains(" requests in "))
        {
            wrk.requests = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            wrk.errors = number(rest);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            wrk.non_2xx = number(rest);
        }
    }
    wrk.text = text;
    wrk
}

/// Five reloads of `name` under keep-alive load, then five under a new connection per request,
/// with a busy core: each reload exits 0, and wrk sees no failure.
fn reloads_lose_nothing(k: &Kelpie, name: &str, port: u16) {
    let _busy = Burner::start(k);
    for keep_alive in [true, false] {
        let wrk = wrk_start(port, (RELOADS as u64) * 4 + 4, keep_alive);
        // pacing: the load runs a moment before the first reload.
        std::thread::sleep(2 * SECS);
        for round in 0..RELOADS {
            let out = k.run(&["reload", name]);
            assert!(
                out.status.success(),
                "{name}: reload {round} ({}) failed: {}",
                if keep_alive {
                    "keep-alive"
                } else {
                    "new connections"
                },
                String::from_utf8_lossy(&out.stderr)
            );
            // pacing: the new processes serve a while before the next reload.
            std::thread::sleep(2 * SECS);
        }
        let report = wrk_report(wrk);
        assert!(
            report.requests > 100,
            "{name}: too few requests: {}",
            report.text
        );
        assert_eq!(
            (report.errors, report.non_2xx),
            (0, 0),
            "{name} ({}): {}",
            if keep_alive {
                "keep-alive"
            } else {
                "new connections"
            },
            report.text
        );
    }
}

/// Wait until 127.0.0.1:`port` answers 200.
fn wait_serving(k: &Kelpie, port: u16, what: &str) {
    k.wait_for(what, 60 * SECS, || {
        kelpie_testkit::load::get(super::local(port)).is_ok()
    });
}

// ---- the apps, made once per build directory ----

/// A Next.js app as Next's manual installation says (`npm install next react react-dom`, an
/// `app/` directory), built with `next build`.
fn next_app() -> Option<PathBuf> {
    static APP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let app = APP.get_or_init(|| {
        let modules = npm_packages("next-app", &["next@16", "react@19", "react-dom@19"])?;
        let dir = modules.parent().expect("project").to_path_buf();
        if dir.join(".next/BUILD_ID").exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(dir.join("app")).map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("app/layout.js"),
            "export default function RootLayout({ children }) {\n  return <html lang=\"en\"><body>{children}</body></html>;\n}\n",
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("app/page.js"),
            "export default function Page() {\n  return <h1>Hello, Next.js!</h1>;\n}\n",
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("package.json"),
            r#"{"name": "next-app", "private": true, "scripts": {"build": "next build", "start": "next start"}}"#,
        )
        .map_err(|e| e.to_string())?;
        run(
            Command::new("node")
                .arg("node_modules/next/dist/bin/next")
                .arg("build")
                .env("NEXT_TELEMETRY_DISABLED", "1")
                .current_dir(&dir),
            "next build",
        )?;
        Ok(dir)
    });
    installed_or_skip(app)
}

/// A NestJS app as Nest's first steps say (`nest new`), built with `npm run build`.
fn nest_app() -> Option<PathBuf> {
    static APP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let app = APP.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nest");
        let dir = base.join("nestapp");
        if dir.join("dist/main.js").exists() {
            return Ok(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
        run(
            Command::new("npx")
                .args([
                    "--yes",
                    "@nestjs/cli@12",
                    "new",
                    "nestapp",
                    "--package-manager",
                    "npm",
                    "--skip-git",
                ])
                .current_dir(&base),
            "nest new",
        )?;
        run(
            Command::new("npm").args(["run", "build"]).current_dir(&dir),
            "npm run build (nest)",
        )?;
        Ok(dir)
    });
    installed_or_skip(app)
}

/// FastAPI's tutorial app and a venv with FastAPI and uvicorn.
fn fastapi_app(k: &Kelpie) -> Option<(PathBuf, String)> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv =
        VENV.get_or_init(|| python_venv("fastapi", &["fastapi==0.165.0", "uvicorn==0.54.0"]));
    let python = installed_or_skip(venv)?;
    k.write(
        "main.py",
        "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get(\"/\")\ndef read_root():\n    return {\"Hello\": \"World\"}\n",
    );
    Some((
        python.with_file_name("uvicorn"),
        k.dir.path().display().to_string(),
    ))
}

/// Flask's quickstart app and a venv with Flask and gunicorn.
fn flask_app(k: &Kelpie) -> Option<PathBuf> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv = VENV.get_or_init(|| python_venv("flask", &["flask==3.1.3", "gunicorn==27.0.1"]));
    let python = installed_or_skip(venv)?;
    k.write(
        "app.py",
        "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route(\"/\")\ndef hello_world():\n    return \"<p>Hello, World!</p>\"\n",
    );
    Some(python.with_file_name("gunicorn"))
}

/// docs/cluster.md's Go server (the socket from fd 3 when Kelpie gives one, a drain on SIGINT
/// and SIGTERM), built with the Go of Debian's `golang-go`.
fn go_server() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-server");
        let binary = dir.join("server");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cluster.md"),
        )
        .map_err(|e| e.to_string())?;
        let source = docs
            .split("```go\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .ok_or("no Go recipe in docs/cluster.md")?;
        std::fs::write(dir.join("main.go"), source).map_err(|e| e.to_string())?;
        if !dir.join("go.mod").exists() {
            run(
                Command::new("go")
                    .args(["mod", "init", "example.com/server"])
                    .current_dir(&dir),
                "go mod init",
            )?;
        }
        run(
            Command::new("go")
                .args(["build", "-o", "server", "."])
                .env("GOFLAGS", "-mod=mod")
                .current_dir(&dir),
            "go build",
        )?;
        Ok(binary)
    });
    if program("go").is_none() {
        kelpie_testkit::skip("Go is not installed (Debian's `golang-go`)");
        return None;
    }
    installed_or_skip(built)
}

// ---- the tests ----

#[test]
fn next_js_as_pm2_users_start_it_runs_two_instances_on_one_port_and_reloads_losing_nothing() {
    let Some(app) = next_app() else { return };
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    // Next's usual PM2 file: its program (a Node script by its `#!`) and `-p <port>`.
    let file = k.write(
        "ecosystem.config.js",
        &format!(
            "module.exports = {{ apps: [{{ name: 'next', cwd: {:?}, script: 'node_modules/next/dist/bin/next', args: 'start -p {port}', instances: 2, exec_mode: 'cluster', env: {{ NEXT_TELEMETRY_DISABLED: '1' }} }}] }};\n",
            app.display().to_string()
        ),
    );
    k.ok(&["start", &file]);
    wait_serving(&k, port, "next serving");
    reloads_lose_nothing(&k, "next", port);
    k.ok(&["delete", "next"]);
    // And through npm, the documented way for an npm script (its `.bin/next` a link).
    let port = free_port();
    let out = k
        .command(&[
            "start",
            "npm",
            "--name",
            "web",
            "-i",
            "2",
            "--port",
            &port.to_string(),
            "--",
            "start",
        ])
        .current_dir(&app)
        .output()
        .expect("start");
    assert!(out.status.success(), "{out:?}");
    wait_serving(&k, port, "next through npm serving");
    let err = k.log("web-error-0.log");
    assert!(!err.contains("Cannot find module"), "{err}");
    assert_eq!(k.app("web")["pm2_env"]["restart_time"], 0);
}

#[test]
fn a_nestjs_app_reloads_under_load_losing_nothing_and_every_reload_exits_0() {
    let Some(app) = nest_app() else { return };
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    // The seed's `kelpie start ./dist/main.js -i 2`, PORT in the shell.
    let out = k
        .command(&["start", "./dist/main.js", "--name", "main", "-i", "2"])
        .current_dir(&app)
        .env("PORT", port.to_string())
        .output()
        .expect("start");
    assert!(out.status.success(), "{out:?}");
    wait_serving(&k, port, "nest serving");
    reloads_lose_nothing(&k, "main", port);
}

#[test]
fn fastapi_under_uvicorn_on_kelpies_socket_reloads_losing_nothing() {
    let k = kelpie();
    let Some((uvicorn, dir)) = fastapi_app(&k) else {
        return;
    };
    let _heavy = heavy();
    let port = free_port();
    // docs/cluster.md's recipe: `--fd 3`, the socket Kelpie passes.
    k.ok(&[
        "start",
        &uvicorn.display().to_string(),
        "--name",
        "api",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--cwd",
        &dir,
        "--",
        "main:app",
        "--fd",
        "3",
    ]);
    wait_serving(&k, port, "uvicorn serving");
    reloads_lose_nothing(&k, "api", port);
}

#[test]
fn flask_under_gunicorn_reloads_losing_nothing() {
    let k = kelpie();
    let Some(gunicorn) = flask_app(&k) else {
        return;
    };
    let _heavy = heavy();
    let port = free_port();
    let dir = k.dir.path().display().to_string();
    // gunicorn takes the socket from LISTEN_FDS itself; no control socket (both instances
    // would want the same path).
    k.ok(&[
        "start",
        &gunicorn.display().to_string(),
        "--name",
        "flask",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--cwd",
        &dir,
        "--",
        "-w",
        "2",
        "--no-control-socket",
        "app:app",
    ]);
    assert_eq!(k.app("flask")["pm2_env"]["kill_signal"], "SIGTERM");
    wait_serving(&k, port, "gunicorn serving");
    reloads_lose_nothing(&k, "flask", port);
}

#[test]
fn a_go_server_written_as_docs_cluster_md_says_reloads_losing_nothing() {
    let Some(server) = go_server() else { return };
    let _heavy = heavy();
    let k = kelpie();
    let port = free_port();
    k.ok(&[
        "start",
        &server.display().to_string(),
        "--name",
        "go",
        "-i",
        "2",
        "--port",
        &port.to_string(),
    ]);
    wait_serving(&k, port, "go serving");
    reloads_lose_nothing(&k, "go", port);
}
