//! Programs the tests need beyond Rust: found on PATH, or installed from the registries into the
//! target directory (a Python venv), once per build directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// `name` on PATH.
pub(super) fn program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What was installed from the registries, or why not: `None` after a skip when
/// `KELPIE_TEST_OFFLINE` is set (a machine without the registries); otherwise the failure
/// fails the test, since a test that skips itself checked nothing.
pub(super) fn installed_or_skip<T: Clone>(installed: &Result<T, String>) -> Option<T> {
    match installed {
        Ok(found) => Some(found.clone()),
        Err(e) if std::env::var_os("KELPIE_TEST_OFFLINE").is_some() => {
            kelpie_testkit::skip(format!("KELPIE_TEST_OFFLINE is set and {e}"));
            None
        }
        Err(e) => panic!("{e}\n(set KELPIE_TEST_OFFLINE=1 to skip without network)"),
    }
}

/// Run `cmd` (`what` names it in errors); its stdout, or why it failed.
pub(super) fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The lock of installs named `name`, held until dropped: two tests that need the same install
/// (checkov for two export tests) would otherwise run pip or npm into one directory at once,
/// and one of them fails on a file the other replaced (it did in CI). Every test that
/// installs is in this one test binary, so a lock in memory is enough.
fn install_lock(name: &str) -> Result<std::sync::MutexGuard<'static, ()>, String> {
    static LOCKS: Mutex<BTreeMap<String, &'static Mutex<()>>> = Mutex::new(BTreeMap::new());
    let lock: &'static Mutex<()> = LOCKS
        .lock()
        .map_err(|_| "the install locks are poisoned".to_string())?
        .entry(name.to_string())
        .or_insert_with(|| Box::leak(Box::default()));
    // A test that failed while installing leaves the marker unwritten: the next one tries again.
    Ok(lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// The python of a venv `<target tmp>/<name>/venv` with `packages` installed from PyPI (made
/// once, by one test at a time; a marker names the packages, so a changed list is installed
/// again).
pub(super) fn python_venv(name: &str, packages: &[&str]) -> Result<PathBuf, String> {
    let _installing = install_lock(name)?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = dir.join("venv/bin/python");
    let ready = dir.join("venv/.kelpie-ready");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&ready).is_ok_and(|installed| installed == wanted) {
        return Ok(python);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    run(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir.join("venv")),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages),
        &format!("pip install {wanted}"),
    )?;
    std::fs::write(&ready, &wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// `<target tmp>/<name>/node_modules` with `packages` installed from npm (once, by one test at a
/// time; a marker names the packages, so a changed list is installed again).
pub(super) fn npm_packages(name: &str, packages: &[&str]) -> Result<PathBuf, String> {
    let _installing = install_lock(name)?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let ready = dir.join(".kelpie-ready");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&ready).is_ok_and(|installed| installed == wanted) {
        return Ok(dir.join("node_modules"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .args(packages),
        &format!("npm install {wanted}"),
    )?;
    std::fs::write(&ready, &wanted).map_err(|e| format!("{}: {e}", ready.display()))?;
    Ok(dir.join("node_modules"))
}
