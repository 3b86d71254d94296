//! The npm distribution (npm/, docs/npm.md): the packages npm/pack.mjs makes from the binary
//! under test, installed with the real npm into temp prefixes, offline, and run through the
//! launcher: `--version`, start/stop of a real app, the binary's exit statuses, the man page,
//! `npx`, a missing platform package, `KELPIE_BINARY`, and a `kill` of the launcher reaching
//! kelpie.

use super::kelpie;
use kelpie_testkit::{alive, skip, Kelpie};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The repository's root (the crate is crates/kelpie-cli).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The npm platform key of this machine, as npm/kelpie/lib/binary.js names it.
fn host_platform() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" if cfg!(target_env = "musl") => Some("linux-x64-musl"),
        "x86_64" => Some("linux-x64-gnu"),
        "aarch64" if cfg!(target_env = "musl") => Some("linux-arm64-musl"),
        "aarch64" => Some("linux-arm64-gnu"),
        _ => None,
    }
}

/// Whether npm is here; says `skipped:` (a failure under CI) when not.
fn have_npm() -> bool {
    let found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip("npm is not installed (apt-get install npm)");
    }
    found
}

/// The tarballs npm/pack.mjs made from the binary under test, once per test process.
struct Tarballs {
    main: PathBuf,
    platform: PathBuf,
}

fn tarballs() -> &'static Tarballs {
    static PACKED: OnceLock<Tarballs> = OnceLock::new();
    PACKED.get_or_init(pack)
}

/// Both tarballs installed with `npm install -g` into a prefix of this test process's pack
/// directory, once: the tests that only run the launcher share it (it is not written to).
fn global_install() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let packed = tarballs();
        let scratch = packed.main.parent().expect("tarballs dir").join("global");
        std::fs::create_dir_all(&scratch).expect("global install dir");
        install_global(&scratch, &[&packed.main, &packed.platform], &[])
    })
}

/// A directory for this test process's tarballs under the target's tmp dir; those of test
/// processes that are gone are removed first.
fn pack_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-package");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.filter_map(Result::ok) {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|pid| !alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("pack dir");
    dir
}

/// Pack the main package and the host's platform package. The debug binary is packed without
/// its debug info (150 MB with, 25 MB without: gzip takes seconds per 10 MB) when `strip` is
/// here; the code is the same.
fn pack() -> Tarballs {
    let platform = host_platform().expect("a Linux x64 or arm64 machine");
    let dir = pack_dir();
    let built = PathBuf::from(env!("CARGO_BIN_EXE_kelpie"));
    let stripped = dir.join("kelpie");
    let binary = match Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&built)
        .status()
    {
        Ok(status) if status.success() => stripped,
        _ => built,
    };
    let out = Command::new("node")
        .arg(repo().join("npm/pack.mjs"))
        .arg("--out")
        .arg(dir.join("tarballs"))
        .arg("--binary")
        .arg(format!("{platform}={}", binary.display()))
        .output()
        .expect("run node npm/pack.mjs");
    assert!(
        out.status.success(),
        "npm/pack.mjs failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    let main = dir.join(format!("tarballs/kelpie-{VERSION}.tgz"));
    let platform = dir.join(format!("tarballs/kelpie-{platform}-{VERSION}.tgz"));
    assert_eq!(
        printed,
        vec![platform.clone(), main.clone()],
        "pack.mjs prints the tarballs, platform packages first"
    );
    Tarballs { main, platform }
}

/// A registry address nothing serves: were npm to ignore `--offline`, it would fail on loopback
/// rather than reach the network.
const NO_REGISTRY: &str = "--registry=http://127.0.0.1:9/";

/// An npm command that cannot reach a network or another user's settings: offline, a temp cache
/// and an empty user config under `scratch`.
fn npm(scratch: &Path, args: &[&str]) -> Command {
    let config = scratch.join("npmrc");
    std::fs::write(&config, "").expect("write empty npmrc");
    let mut cmd = Command::new("npm");
    cmd.args(args)
        .arg("--offline")
        .arg(NO_REGISTRY)
        .arg("--no-audit")
        .arg("--no-fund")
        .arg("--cache")
        .arg(scratch.join("npm-cache"))
        .arg("--userconfig")
        .arg(&config)
        .env_remove("NODE_PATH")
        .env_remove("KELPIE_BINARY");
    cmd
}

fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `npm install -g` of `tarballs` into a fresh prefix in `scratch`; the prefix.
fn install_global(scratch: &Path, tarballs: &[&Path], extra: &[&str]) -> PathBuf {
    let prefix = scratch.join("prefix");
    let mut cmd = npm(scratch, &["install", "-g"]);
    cmd.args(extra).arg("--prefix").arg(&prefix).args(tarballs);
    run_ok(&mut cmd, "npm install -g (offline) of the tarballs");
    prefix
}

/// `<prefix>/bin/kelpie args…` for `k`'s home: the launcher npm linked.
fn launcher(prefix: &Path, k: &Kelpie, args: &[&str]) -> Command {
    let mut cmd = Command::new(prefix.join("bin/kelpie"));
    cmd.args(args)
        .env("KELPIE_HOME", k.home())
        .env_remove("KELPIE_BINARY")
        .env_remove("NODE_PATH")
        .current_dir(k.dir.path());
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

#[test]
fn a_global_npm_install_runs_kelpie_through_the_launcher() {
    if !have_npm() {
        return;
    }
    let prefix = global_install();
    let k = kelpie();

    let out = launcher(prefix, &k, &["--version"]).output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), VERSION);

    let platform = host_platform().expect("host platform");
    let binary = prefix.join(format!("lib/node_modules/@kelpie/{platform}/bin/kelpie"));
    let mode = std::fs::metadata(&binary)
        .expect("installed binary")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "{} mode {mode:o}", binary.display());

    // A real app, started and stopped through the launcher, seen by the binary under test.
    let app = k.fake_app();
    run_ok(
        &mut launcher(prefix, &k, &["start", &app, "--name", "x"]),
        "kelpie start through the launcher",
    );
    assert_eq!(k.status("x"), "online");
    let pid = k.pid("x");
    assert!(alive(pid));
    run_ok(
        &mut launcher(prefix, &k, &["stop", "x"]),
        "kelpie stop through the launcher",
    );
    assert_eq!(k.status("x"), "stopped");
    k.wait_for("the app's process to end", Duration::from_secs(5), || {
        !alive(pid)
    });

    // The binary's exit status for a missing app (3), and its message, come through.
    let out = launcher(prefix, &k, &["stop", "nosuch"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no app matches `nosuch`"),
        "{}",
        text(&out.stderr)
    );

    // The man page comes from `kelpie man` of the packed binary, linked by npm.
    let page = k.ok(&["man"]);
    let linked = prefix.join("share/man/man1/kelpie.1");
    let installed =
        std::fs::read_to_string(&linked).unwrap_or_else(|e| panic!("{}: {e}", linked.display()));
    assert_eq!(installed, page);

    run_ok(
        &mut launcher(prefix, &k, &["kill"]),
        "kelpie kill through the launcher",
    );
}

#[test]
fn npx_runs_kelpie_from_a_local_install() {
    if !have_npm() {
        return;
    }
    let packed = tarballs();
    let scratch = temp("kelpie-npx-");
    let project = scratch.path().join("project");
    std::fs::create_dir(&project).expect("project dir");
    let mut install = npm(scratch.path(), &["install"]);
    install
        .arg(&packed.main)
        .arg(&packed.platform)
        .current_dir(&project);
    run_ok(&mut install, "npm install (offline) of the tarballs");
    let k = kelpie();
    let mut npx = Command::new("npx");
    npx.args(["--offline", NO_REGISTRY, "--cache"])
        .arg(scratch.path().join("npm-cache"))
        .arg("--userconfig")
        .arg(scratch.path().join("npmrc"))
        .args(["kelpie", "--version"])
        .env("KELPIE_HOME", k.home())
        .env_remove("KELPIE_BINARY")
        .current_dir(&project);
    let out = run_ok(&mut npx, "npx --offline kelpie --version");
    assert_eq!(text(&out.stdout).trim(), VERSION);
}

#[test]
fn without_its_platform_package_the_launcher_names_it_and_kelpie_binary_overrides() {
    if !have_npm() {
        return;
    }
    let packed = tarballs();
    let scratch = temp("kelpie-npm-omit-");
    let prefix = install_global(scratch.path(), &[&packed.main], &["--omit=optional"]);
    let k = kelpie();
    let platform = host_platform().expect("host platform");

    let out = launcher(&prefix, &k, &["--version"]).output().expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    for needed in [
        format!("@kelpie/{platform}"),
        "--omit=optional".to_string(),
        "KELPIE_BINARY".to_string(),
    ] {
        assert!(stderr.contains(&needed), "no `{needed}` in: {stderr}");
    }

    // A kelpie built by hand, named by KELPIE_BINARY, runs without the platform package.
    let out = launcher(&prefix, &k, &["--version"])
        .env("KELPIE_BINARY", env!("CARGO_BIN_EXE_kelpie"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), VERSION);

    let missing = scratch.path().join("no-such-kelpie");
    let out = launcher(&prefix, &k, &["--version"])
        .env("KELPIE_BINARY", &missing)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&missing.display().to_string()),
        "{}",
        text(&out.stderr)
    );

    // The launcher's platform table, seen from other systems (the launcher's Node told so by a
    // preloaded script): on macOS it looks for the darwin package of the machine's
    // architecture; on Windows, which is not built, it says where kelpie runs instead.
    let as_platform = |platform: &str, arch: &str| -> (Option<i32>, String) {
        let preload = scratch.path().join(format!("as-{platform}-{arch}.js"));
        std::fs::write(
            &preload,
            format!(
                "Object.defineProperty(process, 'platform', {{ value: '{platform}' }});\n\
                 Object.defineProperty(process, 'arch', {{ value: '{arch}' }});\n"
            ),
        )
        .expect("write the preload");
        let out = launcher(&prefix, &k, &["--version"])
            .env("NODE_OPTIONS", format!("--require {}", preload.display()))
            .output()
            .expect("run");
        (out.status.code(), text(&out.stderr))
    };
    for (arch, package) in [
        ("arm64", "@kelpie/darwin-arm64"),
        ("x64", "@kelpie/darwin-x64"),
    ] {
        let (code, stderr) = as_platform("darwin", arch);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(package) && stderr.contains("--omit=optional"),
            "macOS {arch}: {stderr}"
        );
    }
    let (code, stderr) = as_platform("win32", "x64");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Linux and macOS") && stderr.contains("win32") && stderr.contains("WSL"),
        "{stderr}"
    );
}

/// The launcher and the kelpie it started, killed on drop if the test did not end them.
struct Launched {
    launcher: Child,
    kelpie: Option<u32>,
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(pid) = self.kelpie.filter(|p| alive(*p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
    }
}

#[test]
fn a_kill_of_the_launcher_reaches_kelpie() {
    if !have_npm() {
        return;
    }
    let prefix = global_install();
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "x", "--", "--tick", "20"]);

    // `kelpie logs x` follows the logs until it is killed.
    let mut child = launcher(prefix, &k, &["logs", "x", "--lines", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kelpie logs through the launcher");
    let shown = super::pid1::collect(child.stdout.take().expect("stdout"));
    let mut launched = Launched {
        launcher: child,
        kelpie: None,
    };
    let launcher_pid = launched.launcher.id();
    let installed = std::fs::canonicalize(prefix.join(format!(
        "lib/node_modules/@kelpie/{}/bin/kelpie",
        host_platform().expect("host platform")
    )))
    .expect("installed binary");
    k.wait_for(
        "the launcher's kelpie child",
        Duration::from_secs(10),
        || {
            launched.kelpie = kelpie_sys::children_of(launcher_pid)
                .into_iter()
                .find(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == installed)
                });
            launched.kelpie.is_some()
        },
    );
    let kelpie_pid = launched.kelpie.expect("kelpie child");
    // Following, not ending on its own: ticks printed after the one line it started with.
    k.wait_for("kelpie logs following", Duration::from_secs(10), || {
        shown.lock().expect("output").matches("tick ").count() >= 3
    });
    assert!(alive(kelpie_pid), "kelpie logs ended by itself");

    let sent = Command::new("kill")
        .args(["-TERM", &launcher_pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let status = kelpie_testkit::wait_until(
        "the launcher to end on SIGTERM",
        Duration::from_secs(10),
        || {
            let ended = launched.launcher.try_wait();
            ended.expect("wait for the launcher").ok_or("still running")
        },
    );
    // It ends the way kelpie ended: killed by the same signal.
    assert_eq!(status.signal(), Some(15), "launcher ended with {status}");
    k.wait_for(
        "kelpie to end with its launcher",
        Duration::from_secs(5),
        || !alive(kelpie_pid),
    );
}

#[test]
fn pack_refuses_a_binary_of_another_platform_or_version() {
    let have_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_node {
        skip("node is not installed (apt-get install nodejs)");
        return;
    }
    let scratch = temp("kelpie-npm-refuse-");
    let out_dir = scratch.path().join("out");
    let pack = |spec: &str| {
        Command::new("node")
            .arg(repo().join("npm/pack.mjs"))
            .arg("--out")
            .arg(&out_dir)
            .args(["--binary", spec])
            .output()
            .expect("run node npm/pack.mjs")
    };
    let binary = env!("CARGO_BIN_EXE_kelpie");
    let host = host_platform().expect("host platform");
    let other_libc = if host.ends_with("-gnu") {
        host.replace("-gnu", "-musl")
    } else {
        host.replace("-musl", "-gnu")
    };
    let other_arch = if host.contains("x64") {
        host.replace("x64", "arm64")
    } else {
        host.replace("arm64", "x64")
    };

    for wrong in [other_libc.as_str(), other_arch.as_str()] {
        let out = pack(&format!("{wrong}={binary}"));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{wrong}: {stderr}");
        assert!(
            stderr.contains(wrong) && stderr.contains("built for linux"),
            "{stderr}"
        );
    }

    // A binary of the host's platform that is not kelpie 0.1.0's: this machine's shell.
    let out = pack(&format!("{host}=/bin/sh"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--version") && stderr.contains(VERSION),
        "{stderr}"
    );

    // A Linux binary is not a macOS one.
    for darwin in ["darwin-arm64", "darwin-x64"] {
        let out = pack(&format!("{darwin}={binary}"));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("built for linux") && stderr.contains("not macOS"),
            "{stderr}"
        );
    }
    // Windows is not built: there is no package to pack.
    let out = pack(&format!("windows-x64={binary}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown platform `windows-x64`"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !out_dir.exists(),
        "a refused pack wrote {}",
        out_dir.display()
    );
}
