//! What an attacker tried (issue 71), each as it was done, now held: an app run as another user
//! trying to make the root daemon write, truncate or chmod through its own files, a home another
//! user owns, `kelpie serve` asked for dotfiles and links out of its directory, secrets shown in
//! clear or written world-readable, the web token handed to apps, escape sequences reaching the
//! terminal, an ecosystem file whose evaluation never ends, a deploy host that ssh reads as an
//! option. Run as root in CI (real users by `--uid nobody` and `setpriv`).

use super::kelpie;
use kelpie_testkit::{free_port, Kelpie};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(1);

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `nobody`'s uid and gid.
fn nobody() -> (u32, u32) {
    kelpie_sys::lookup_user("nobody").expect("the nobody user")
}

/// A directory in the scratch dir owned by `nobody` (the app's user), the scratch dir opened so
/// that `nobody` reaches it.
fn nobodys_dir(k: &Kelpie, name: &str) -> PathBuf {
    chmod(k.dir.path(), 0o755);
    let dir = k.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
    dir
}

/// A directory only root may enter, holding `secret` (0600, "root's own\n").
fn vault(k: &Kelpie) -> PathBuf {
    let vault = k.dir.path().join("vault");
    std::fs::create_dir_all(&vault).expect("mkdir");
    chmod(&vault, 0o700);
    std::fs::write(vault.join("secret"), "root's own\n").expect("write");
    chmod(&vault.join("secret"), 0o600);
    vault
}

/// Ends a daemon started in a home other than the test's own, when dropped.
struct KillHome(PathBuf);

impl Drop for KillHome {
    fn drop(&mut self) {
        if self.0.join("kelpie.sock").exists() {
            let _ = std::process::Command::new(env!("CARGO_BIN_EXE_kelpie"))
                .arg("kill")
                .env("KELPIE_HOME", &self.0)
                .output();
        }
    }
}

/// SIGKILL `pid` (the daemon), as `kill -9` does.
fn unsafe_free_kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

fn requires_root(what: &str) -> bool {
    if !is_root() {
        kelpie_testkit::skip(format!("needs root: {what}"));
        return false;
    }
    true
}

#[test]
fn an_apps_user_cannot_make_the_root_daemon_write_through_its_log_and_pid_files() {
    if !requires_root("a root daemon running an app as nobody") {
        return;
    }
    let k = kelpie();
    let logs = nobodys_dir(&k, "applogs");
    let vault = vault(&k);
    // The app, as nobody, replaces its own out_file by a link into root's directory, then
    // prints a line that would make a cron job of it (the daemon reopens a removed file
    // within a second).
    let script = k.write_script(
        "swap.sh",
        &format!(
            "#!/bin/sh\nrm -f {logs}/out.log\nln -s {vault}/cron {logs}/out.log\n\
             while :; do echo '* * * * * root touch /tmp/pwned'; sleep 0.1; done\n",
            logs = logs.display(),
            vault = vault.display()
        ),
    );
    // The links nobody places beforehand: the pid file itself (`app-<pm_id>.pid`, as PM2 names
    // it), and its temporary name as the daemon used to make it (`.<file>.tmp<daemon pid>`).
    k.ok(&["ping"]);
    let daemon = k.daemon_pid().expect("daemon pid");
    symlink(vault.join("secret"), logs.join("app-0.pid")).expect("link");
    symlink(
        vault.join("secret"),
        logs.join(format!(".app-0.pid.tmp{daemon}")),
    )
    .expect("link");
    let file = k.write(
        "swap.json",
        &format!(
            r#"{{"apps": [{{"name": "swap", "script": "{script}", "uid": "nobody",
                "out_file": "{logs}/out.log", "error_file": "{logs}/err.log",
                "pid_file": "{logs}/app.pid"}}]}}"#,
            logs = logs.display()
        ),
    );
    k.ok(&["start", &file]);
    let pid = k.pid("swap");
    // The pid file is a file of its own now (the rename replaced the link, never wrote
    // through it).
    k.wait_for("the pid file", 5 * SECS, || {
        std::fs::read_to_string(logs.join("app-0.pid")).is_ok_and(|t| t.trim() == pid.to_string())
    });
    assert!(!std::fs::symlink_metadata(logs.join("app-0.pid"))
        .expect("pid file")
        .file_type()
        .is_symlink());
    k.wait_for("the daemon's refusal", 10 * SECS, || {
        std::fs::read_to_string(k.home().join("kelpie.log"))
            .is_ok_and(|log| log.contains("refusing to follow the symbolic link"))
    });
    // pacing: the app prints on; what does not happen (a file through the link) needs time.
    std::thread::sleep(2 * SECS);
    assert!(
        !vault.join("cron").exists(),
        "the daemon created a file through the app's link"
    );
    assert_eq!(
        std::fs::read_to_string(vault.join("secret")).expect("secret"),
        "root's own\n"
    );
    assert_eq!(mode(&vault.join("secret")), 0o600);
    // With the daemon killed, its keeper writes the apps' output into their log files: with
    // the daemon's rights, so through the same guarded walk.
    let daemon = k.daemon_pid().expect("daemon");
    unsafe_free_kill(daemon);
    // pacing: the keeper writes the app's lines meanwhile; what must not happen needs time.
    std::thread::sleep(2 * SECS);
    assert!(
        !vault.join("cron").exists(),
        "the keeper created a file through the app's link"
    );
    k.ok(&["ping"]);
    // `kelpie flush` as root through a link nobody placed: nothing truncated.
    std::fs::remove_file(logs.join("err.log")).expect("rm");
    symlink(vault.join("secret"), logs.join("err.log")).expect("link");
    k.ok(&["flush", "swap"]);
    k.ok(&["reloadLogs"]);
    assert_eq!(
        std::fs::read_to_string(vault.join("secret")).expect("secret"),
        "root's own\n",
        "flush or reloadLogs wrote through a link"
    );
    // A link above the file (a directory of nobody's replaced by one to root's) is refused
    // too.
    symlink(&vault, logs.join("sub")).expect("link");
    let file = k.write(
        "sub.json",
        &format!(
            r#"{{"apps": [{{"name": "sub", "script": "{}", "args": ["--print", "3"], "uid": "nobody",
                "out_file": "{logs}/sub/out.log", "error_file": "{logs}/sub/err.log"}}]}}"#,
            k.fake_app(),
            logs = logs.display()
        ),
    );
    k.ok(&["start", &file]);
    // pacing: the app prints at once; what must not happen (a file in the vault) needs time.
    std::thread::sleep(SECS);
    assert!(
        !vault.join("out.log").exists(),
        "written through a linked directory"
    );
}

#[test]
fn a_log_file_made_outside_the_home_is_not_world_readable() {
    let k = kelpie();
    let outside = k.dir.path().join("var-log-app");
    let out = outside.join("out.log");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "outside",
        "--output",
        &out.display().to_string(),
        "--",
        "--print",
        "2",
    ]);
    k.wait_for("the log file", 5 * SECS, || out.exists());
    assert_eq!(
        mode(&out),
        0o640,
        "printed secrets must not be world-readable"
    );
}

#[test]
fn a_home_another_user_owns_or_may_change_is_refused() {
    if !requires_root("a home owned by nobody") {
        return;
    }
    let k = kelpie();
    let (uid, gid) = nobody();
    let refused = |home: &Path, blamed: &Path, owner: &str| {
        // A daemon that did start there (the refusal failed) is ended with the test.
        let _left = KillHome(home.to_path_buf());
        let out = k
            .command(&["start", &k.fake_app(), "--name", "x"])
            .env("KELPIE_HOME", home)
            .output()
            .expect("kelpie");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("refusing the kelpie home")
                && err.contains(&blamed.display().to_string())
                && err.contains(owner),
            "{err}"
        );
        assert!(
            !home.join("node-shim.cjs").exists() && !home.join("kelpie.sock").exists(),
            "nothing is made in a refused home"
        );
    };
    // Owned by nobody (KELPIE_HOME, or HOME under `sudo -E`).
    chmod(k.dir.path(), 0o755);
    let theirs = k.dir.path().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(uid), Some(gid)).expect("chown");
    refused(&theirs, &theirs, "nobody");
    // Root's, but in a directory nobody owns (who could swap it).
    let parent = k.dir.path().join("parent");
    std::fs::create_dir(&parent).expect("mkdir");
    let inside = parent.join("home");
    std::fs::create_dir(&inside).expect("mkdir");
    chmod(&inside, 0o700);
    std::os::unix::fs::chown(&parent, Some(uid), Some(gid)).expect("chown");
    refused(&inside, &parent, "nobody");
    // Root's own but writable by everyone.
    let open = k.dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    chmod(&open, 0o777);
    refused(&open, &open, "mode 777");
}

/// A Node app serving the path of the shim it loaded, and a Python app (on Kelpie's socket, fd
/// 3) serving its `sitecustomize`'s: an app that cannot read its shim fails to start instead.
const NODE_SAYS_ITS_SHIM: &str = r#"require('http').createServer((q, s) => s.end(
  Object.keys(require.cache).find((path) => path.endsWith('node-shim.cjs')) || 'no shim'
)).listen(process.env.PORT);
"#;
const PYTHON_SAYS_ITS_SHIM: &str = r#"import socket, sitecustomize
server = socket.socket(fileno=3)
body = sitecustomize.__file__.encode()
while True:
    connection, _ = server.accept()
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    connection.close()
"#;

/// The first `program` on PATH that every user may run (not a version manager's in /root).
fn runnable_by_everyone(program: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|found| {
            found.ancestors().all(|at| {
                std::fs::metadata(at).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0)
            })
        })
        .unwrap_or_else(|| panic!("no {program} on PATH that every user may run"))
        .display()
        .to_string()
}

/// Found in issue 78's review: every shim was written in the root daemon's home, which is 0700,
/// so an app run as another user crash-looped on `Cannot find module '<home>/node-shim.cjs'`.
#[test]
fn apps_run_as_another_user_load_their_shims_from_a_directory_only_root_may_change() {
    if !requires_root("runs apps as nobody") {
        return;
    }
    let k = kelpie();
    let dir = nobodys_dir(&k, "apps");
    let node_app = dir.join("server.js");
    std::fs::write(&node_app, NODE_SAYS_ITS_SHIM).expect("write");
    let python_app = dir.join("server.py");
    std::fs::write(&python_app, PYTHON_SAYS_ITS_SHIM).expect("write");
    let (node_port, python_port) = (free_port(), free_port());
    for (name, script, port) in [
        ("node", &node_app, node_port),
        ("python", &python_app, python_port),
    ] {
        let script = script.display().to_string();
        let port = port.to_string();
        let interpreter = runnable_by_everyone(if name == "node" { "node" } else { "python3" });
        k.ok(&[
            "start",
            &script,
            "--name",
            name,
            "-i",
            "2",
            "--port",
            &port,
            "--user",
            "nobody",
            "--interpreter",
            &interpreter,
        ]);
    }
    let served = |port: u16| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut last = String::new();
        k.wait_for("the app serving", 20 * SECS, || {
            last = kelpie_testkit::load::get(addr).unwrap_or_else(|e| e);
            last.contains("/kelpie-shims/")
        });
        PathBuf::from(last)
    };
    let node_shim = served(node_port);
    let python_shim = served(python_port);
    let shims = node_shim.parent().expect("the shims' directory");
    assert_eq!(python_shim, shims.join("python/sitecustomize.py"));
    assert!(
        shims.starts_with("/run/kelpie-shims"),
        "{}",
        shims.display()
    );
    // Root's, readable by everyone, changed by nobody else; the home stays private.
    for (path, expected) in [
        (shims.parent().expect("parent"), 0o755),
        (shims, 0o755),
        (shims.join("python").as_path(), 0o755),
        (node_shim.as_path(), 0o644),
        (python_shim.as_path(), 0o644),
        (shims.join("runtime-shim.mjs").as_path(), 0o644),
    ] {
        assert_eq!(mode(path), expected, "{}", path.display());
        let owner = std::fs::metadata(path).expect("stat").uid();
        assert_eq!(owner, 0, "{}", path.display());
    }
    assert_eq!(mode(k.home()), 0o700);
    // Both apps run as nobody, and none of their instances restarted.
    for app in k.jlist() {
        let pid = app["pid"].as_u64().expect("pid");
        let status = std::fs::metadata(format!("/proc/{pid}")).expect("the process");
        assert_eq!(status.uid(), nobody().0, "{app}");
        assert_eq!(app["pm2_env"]["restart_time"], 0, "{app}");
    }
}

/// `GET path` on 127.0.0.1:`port`: the status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(10 * SECS)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    // Within 10 s for the whole answer: a stream that never ends is cut there.
    stream.set_read_timeout(Some(SECS)).expect("timeout");
    let deadline = Instant::now() + 10 * SECS;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline && raw.len() < 1 << 20 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// Whether something listens on `ip:port` (`/proc/net/tcp`, hex as the kernel writes it).
fn listens_on(ip: [u8; 4], port: u16) -> bool {
    let local = format!(
        "{:02X}{:02X}{:02X}{:02X}:{port:04X}",
        ip[3], ip[2], ip[1], ip[0]
    );
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
        })
    })
}

#[test]
fn serve_hands_out_no_dotfile_no_link_out_and_never_serves_as_root() {
    let k = kelpie();
    chmod(k.dir.path(), 0o755);
    let site = k.dir.path().join("site");
    std::fs::create_dir_all(site.join(".git")).expect("mkdir");
    std::fs::create_dir_all(site.join(".well-known")).expect("mkdir");
    std::fs::write(site.join("index.html"), "home\n").expect("write");
    std::fs::write(site.join(".env"), "DB_PASSWORD=hunter2\n").expect("write");
    std::fs::write(site.join(".git/config"), "[remote]\n").expect("write");
    std::fs::write(site.join(".well-known/security.txt"), "Contact: me\n").expect("write");
    let private = k.dir.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::write(private.join("shadow"), "root:secret\n").expect("write");
    chmod(&private, 0o700);
    chmod(&private.join("shadow"), 0o600);
    symlink(private.join("shadow"), site.join("out.txt")).expect("link");
    let port = free_port();
    let out = k.ok(&["serve", &site.display().to_string(), &port.to_string()]);
    assert!(
        out.contains(&format!("on http://127.0.0.1:{port}/")),
        "{out}"
    );
    k.wait_for("the server", 10 * SECS, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(get(port, "/").0, 200);
    for path in ["/.env", "/.git/config", "/%2eenv", "/out.txt"] {
        let (status, body) = get(port, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains("hunter2") && !body.contains("root:secret"),
            "{body}"
        );
    }
    assert_eq!(get(port, "/.well-known/security.txt").0, 200);
    // Loopback by default (PM2 binds every interface).
    assert!(listens_on([127, 0, 0, 1], port));
    assert!(!listens_on([0, 0, 0, 0], port));
    if is_root() {
        // Root is given up once the port is bound.
        let pid = k.pid(&format!("static-page-server-{port}"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .expect("Uid");
        let (nobody, _) = nobody();
        assert!(
            uid.split_whitespace().all(|id| id == nobody.to_string()),
            "serves as {uid}"
        );
    }
    // Without a path, not the user's whole home.
    let home = k.dir.path().join("me");
    std::fs::create_dir(&home).expect("mkdir");
    let out = k
        .command(&["serve", "--port", &free_port().to_string()])
        .env("HOME", &home)
        .current_dir(&home)
        .output()
        .expect("kelpie serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("your home directory"), "{err}");
}

#[test]
fn secrets_are_masked_by_one_rule_and_written_only_to_private_files() {
    let k = kelpie();
    let values = [
        ("DB_PASS", "pass-1"),
        ("PASSWD", "pass-2"),
        ("GOOGLE_CREDENTIALS", "cred-3"),
        ("STRIPE_SK", "sk-4"),
        ("DATABASE_URL", "postgres://app:pw-5@db:5432/app"),
    ];
    let env: Vec<String> = values
        .iter()
        .map(|(n, v)| format!("\"{n}\": \"{v}\""))
        .collect();
    let file = k.write(
        "vault.json",
        &format!(
            r#"{{"apps": [{{"name": "vault", "script": "{}", "env": {{"PORT": "3000", {}}}}}]}}"#,
            k.fake_app(),
            env.join(", ")
        ),
    );
    // The web token of the shell that starts the app is Kelpie's, not the app's.
    let out = k
        .command(&["start", &file])
        .env("KELPIE_WEB_TOKEN", "shell-token-0123456789abcdef")
        .output()
        .expect("start");
    assert!(out.status.success(), "{out:?}");
    let described = k.ok(&["describe", "vault"]);
    let jlist = k.ok(&["jlist"]);
    let shown_env = k.ok(&["env", "0"]);
    for (name, value) in values {
        for (what, text) in [
            ("describe", &described),
            ("jlist", &jlist),
            ("env", &shown_env),
        ] {
            assert!(!text.contains(value), "{name} in {what}: {text}");
        }
        assert!(described.contains(&format!("{name}=****")), "{described}");
    }
    assert!(described.contains("PORT=3000"), "{described}");
    let environ = std::fs::read(format!("/proc/{}/environ", k.pid("vault"))).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("DB_PASS=pass-1"),
        "the app gets its secrets"
    );
    assert!(
        !environ.contains("KELPIE_WEB_TOKEN") && !jlist.contains("shell-token"),
        "{environ}"
    );
    // Exports: a systemd unit names an EnvironmentFile (0600) instead of holding them;
    // Kubernetes' Secret is 0600.
    let units = k.dir.path().join("units");
    k.ok(&[
        "export",
        "systemd",
        &file,
        "-o",
        &units.display().to_string(),
    ]);
    let unit = std::fs::read_to_string(units.join("kelpie-vault.service")).expect("unit");
    let env_file = units.join("kelpie-vault.env");
    assert!(
        unit.contains(&format!("EnvironmentFile={}", env_file.display())),
        "{unit}"
    );
    let secrets = std::fs::read_to_string(&env_file).expect("env file");
    for (name, value) in values {
        assert!(!unit.contains(value), "{name} in the unit: {unit}");
        assert!(
            secrets.contains(&format!("{name}=\"{value}\"")),
            "{secrets}"
        );
    }
    assert!(unit.contains("Environment=\"PORT=3000\""), "{unit}");
    assert_eq!(mode(&env_file), 0o600);
    let manifests = k.dir.path().join("k8s");
    k.ok(&[
        "export",
        "kubernetes",
        &file,
        "--image",
        "example/app:1",
        "-o",
        &manifests.display().to_string(),
    ]);
    let secret = std::fs::read_dir(&manifests)
        .expect("manifests")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains("kind: Secret") || t.contains("kind: \"Secret\""))
        })
        .expect("a Secret manifest");
    assert_eq!(mode(&secret), 0o600, "{}", secret.display());
}

#[test]
fn what_apps_say_reaches_the_terminal_as_text_and_names_refuse_bidi_controls() {
    let k = kelpie();
    let escape = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "chatty",
        "--",
        "--notify",
        &format!("STATUS=ready {escape}"),
        "--err-line",
        &format!("boom {escape}"),
        "--exit-after",
        "300",
    ]);
    k.wait_for("an exit with its stderr", 10 * SECS, || {
        k.ok(&["events", "--stderr"]).contains("boom")
    });
    for args in [
        &["describe", "chatty"][..],
        &["events", "--stderr"][..],
        &["list"][..],
    ] {
        let out = k.ok(args);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: {out:?}"
        );
    }
    let events = k.ok(&["events", "--stderr"]);
    assert!(events.contains("boom \\x1b]0;owned\\x07"), "{events}");
    // A name or namespace that would rewrite the terminal or read backwards is refused.
    let err = k.fails(&["start", &k.fake_app(), "--name", "invoice\u{202e}fdp.exe"]);
    assert!(err.contains("bidirectional"), "{err}");
    let err = k.fails(&[
        "start",
        &k.fake_app(),
        "--name",
        "ns",
        "--namespace",
        "prod\u{1b}[31m",
    ]);
    assert!(
        err.contains("namespace") && err.contains("control character"),
        "{err}"
    );
}

#[test]
fn an_ecosystem_file_cannot_keep_start_waiting_or_leave_a_process_behind() {
    let k = kelpie();
    let pid_file = k.dir.path().join("child.pid");
    let file = k.write(
        "ecosystem.config.js",
        &format!(
            "const c = require('child_process').spawn('sleep', ['300'], {{ stdio: 'inherit' }});\n\
             require('fs').writeFileSync({:?}, String(c.pid));\n\
             module.exports = {{ apps: [{{ name: 'e', script: {:?} }}] }};\n",
            pid_file.display().to_string(),
            k.fake_app()
        ),
    );
    let started = Instant::now();
    k.ok(&["start", &file]);
    assert!(started.elapsed() < 8 * SECS, "{:?}", started.elapsed());
    assert_eq!(k.status("e"), "online");
    let child: u32 = std::fs::read_to_string(&pid_file)
        .expect("child pid")
        .trim()
        .parse()
        .expect("pid");
    k.wait_for("the file's child gone", 5 * SECS, || {
        std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |s| {
            s.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
        })
    });
    // Deeply nested YAML is refused at once.
    let deep = k.write(
        "deep.yaml",
        &format!("apps: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let started = Instant::now();
    let err = k.fails(&["start", &deep]);
    assert!(started.elapsed() < 3 * SECS, "{:?}", started.elapsed());
    assert!(err.contains("nested more than 64 levels"), "{err}");
}

#[test]
fn a_deploy_host_ssh_would_read_as_an_option_is_refused_before_any_connection() {
    let k = kelpie();
    let marker = k.dir.path().join("pwned");
    let file = k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps": [], "deploy": {{"production": {{"user": "deploy",
                "host": "-oProxyCommand=touch${{IFS}}{}", "repo": "git@example:app.git",
                "ref": "origin/main", "path": "/srv/app"}}}}}}"#,
            marker.display()
        ),
    );
    let err = k.fails(&["deploy", &file, "production", "--force"]);
    assert!(err.contains("must not start with `-`"), "{err}");
    assert!(!marker.exists(), "ssh ran the option");
}

/// The daemon's resident memory, in KiB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A live stream opened with `token` that is never read: the daemon must not hold what it
/// cannot send.
fn stalled_stream(port: u16, token: &str) -> std::net::TcpStream {
    use std::io::Write;
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // The smallest receive buffer the kernel gives, so the stall shows quickly.
    (&stream)
        .write_all(
            format!(
                "GET /api/events?lines=500 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send");
    stream
}

#[test]
fn stalled_live_streams_are_cut_and_cost_the_daemon_little() {
    let _heavy = super::heavy();
    let k = kelpie();
    let port = free_port();
    k.ok(&["web", "--port", &port.to_string()]);
    let token = std::fs::read_to_string(k.home().join("web.token")).expect("token");
    let token = token.trim();
    k.ok(&["start", &k.fake_app(), "--name", "flood", "--", "--flood"]);
    let daemon = k.daemon_pid().expect("daemon");
    // pacing: the daemon's memory with the flood going, before any stream (no event says so).
    std::thread::sleep(2 * SECS);
    let before = rss_kb(daemon);
    // Without the token no stream opens at all.
    assert_eq!(get(port, "/api/events").0, 401);
    let stalled: Vec<_> = (0..16).map(|_| stalled_stream(port, token)).collect();
    // pacing: the 16 requests reach the server (nothing answers them to wait on).
    std::thread::sleep(SECS);
    // Every slot for live streams is taken: the next is refused at once, and the rest of the
    // API still answers.
    let (status, body) = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(5 * SECS)).expect("timeout");
        write!(
            s,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        (raw.split_whitespace().nth(1).map(str::to_string), raw)
    };
    assert_eq!(status.as_deref(), Some("503"), "{body}");
    k.ok(&["list"]);
    // The flood goes on for a while: what the stalled readers would have held stays bounded.
    // pacing: the length of the measurement.
    std::thread::sleep(8 * SECS);
    let grown = rss_kb(daemon).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "16 stalled readers made the daemon grow by {grown} KiB"
    );
    // A reader that never reads is let go: its connection is closed (its slot and what was
    // queued for it freed) once it has taken nothing for 15 s.
    let deadline = Instant::now() + 40 * SECS;
    for mut stream in stalled {
        use std::io::Read;
        stream.set_read_timeout(Some(SECS)).expect("timeout");
        let mut buf = vec![0u8; 1 << 20];
        loop {
            assert!(
                Instant::now() < deadline,
                "a stalled stream was never closed"
            );
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    }
    // A reader that reads, but slower than the app prints, is cut with the reason as its
    // stream's last event.
    let mut slow = stalled_stream(port, token);
    slow.set_read_timeout(Some(SECS)).expect("timeout");
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let started = Instant::now();
    while started.elapsed() < 60 * SECS {
        use std::io::Read;
        // Slowly at first, so it falls behind; then as fast as it can, to the stream's end.
        if started.elapsed() < 4 * SECS {
            // pacing: a slow reader's pace.
            std::thread::sleep(Duration::from_millis(100));
        }
        match slow.read(
            &mut buf[..if started.elapsed() < 4 * SECS {
                4096
            } else {
                1 << 16
            }],
        ) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if seen.windows(10).any(|w| w == b"event: cut") {
            break;
        }
    }
    assert!(
        seen.windows(10).any(|w| w == b"event: cut"),
        "no cut event in {} bytes",
        seen.len()
    );
}
