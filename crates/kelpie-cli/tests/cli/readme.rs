//! The README's Quick start, run as a newcomer runs it: every line of its block, in order, from
//! the repository, with `kelpie` on the `PATH` (this build), each checked to do what its comment
//! says where that can be seen from outside (the ports answer, the page is served, the watch
//! does not take cargo's `target/` for a change).

use super::kelpie;
use super::monit::Tmux;
use kelpie_testkit::Kelpie;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// The repository's root.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

/// The command lines of the Quick start block, without their comments.
fn quick_start_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README.md");
    let after = readme
        .split("## Quick start")
        .nth(1)
        .expect("a Quick start section");
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("its block");
    block
        .lines()
        .map(|line| match line.find("  #") {
            Some(comment) => line[..comment].trim().to_string(),
            None => line.trim().to_string(),
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// A directory holding `kelpie`: this build, as the install command would put it on the PATH.
fn bin_dir(k: &Kelpie) -> PathBuf {
    let dir = k.dir.path().join("bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let link = dir.join("kelpie");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kelpie"), &link).expect("link");
    }
    dir
}

/// Run one README line in a shell, from the repository, with `kelpie` on the PATH.
fn run_line(k: &Kelpie, line: &str) -> std::process::Output {
    let path = format!(
        "{}:{}",
        bin_dir(k).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(line)
        .env("PATH", path)
        .env("KELPIE_HOME", k.home())
        .env_remove("KELPIE_WEB_TOKEN")
        .current_dir(repository())
        .output()
        .expect("sh")
}

/// `GET path` on 127.0.0.1:`port`: status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    stream.set_read_timeout(Some(5 * SECS)).expect("timeout");
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw)
}

fn answers(k: &Kelpie, port: u16, path: &str, what: &str) -> String {
    let mut body = String::new();
    k.wait_for(what, 20 * SECS, || {
        let (status, raw) = get(port, path);
        body = raw;
        status == 200
    });
    body
}

#[test]
fn every_line_of_the_quick_start_runs_as_written() {
    let _heavy = super::heavy();
    let k = kelpie();
    let lines = quick_start_lines();
    assert!(lines.len() >= 20, "{lines:?}");
    // After the install command: `kelpie start examples/hello.js`.
    let out = run_line(&k, "kelpie start examples/hello.js");
    assert!(out.status.success(), "{out:?}");
    answers(&k, 3000, "/", "hello on port 3000");
    for line in &lines {
        if line == "kelpie monit" {
            // Full screen: in a terminal, left with q.
            let Some(term) = Tmux::start(&k) else { return };
            term.type_line(&format!(
                "cd {} && PATH={}:$PATH kelpie monit",
                repository().display(),
                bin_dir(&k).display()
            ));
            term.wait_for_screen("monit's screen", 15 * SECS, |s| {
                s.contains("kelpie monit") && s.contains("instances")
            });
            term.keys(&["q"]);
            continue;
        }
        let out = run_line(&k, line);
        assert!(
            out.status.success(),
            "`{line}` failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        match line.as_str() {
            l if l.starts_with("kelpie start examples/cluster-http.js") => {
                answers(&k, 3100, "/", "the cluster on 3100");
            }
            l if l.starts_with("kelpie start \"python3 -m http.server 8000\"") => {
                answers(&k, 8000, "/", "python's server on 8000");
            }
            l if l.starts_with("kelpie serve examples 8081 --spa") => {
                let page = answers(&k, 8081, "/", "the served page on 8081");
                assert!(page.contains("Served by Kelpie"), "{page}");
                let route = answers(&k, 8081, "/some/client/route", "a client route");
                assert!(route.contains("Served by Kelpie"), "{route}");
            }
            l if l.starts_with("kelpie start examples/hello.js --name api --port 3200") => {
                answers(&k, 3200, "/", "api on 3200");
            }
            l if l.contains("--name dev") && l.contains("--watch") => {
                answers(&k, 3300, "/", "dev on 3300");
                // cargo's build output changes all along while the tests compile: not a
                // change of the app.
                let target = repository().join("target");
                std::fs::create_dir_all(&target).expect("target");
                let touched = target.join(format!("readme-test-{}", std::process::id()));
                std::fs::write(&touched, "x").expect("write");
                // pacing: a restart that must not come has its watch delay and more to show.
                std::thread::sleep(3 * SECS);
                let _ = std::fs::remove_file(&touched);
                assert_eq!(
                    k.app("dev")["pm2_env"]["restart_time"],
                    0,
                    "a change in target/ restarted the watched app"
                );
            }
            l if l.starts_with("kelpie logs worker") => {
                assert!(!said.trim().is_empty(), "no lines: {said}");
            }
            l if l.starts_with("kelpie web") => {
                assert!(
                    said.contains("open http://127.0.0.1:9615/#token="),
                    "{said}"
                );
            }
            l if l.starts_with("kelpie delete all") => {
                assert!(k.jlist().is_empty());
            }
            _ => {}
        }
    }
}
