//! The Node API (`npm/kelpie/lib`, `require('kelpie')`): its own tests, in `npm/kelpie/test`,
//! run by real Node (`node --test`) against a real daemon in this test's temp home. One test
//! here per file there, each with its own home; the home's drop stops whatever a failed file
//! left running. Its TypeScript types are compiled with the real `tsc` (TypeScript from npm,
//! installed under the target directory; `KELPIE_TEST_OFFLINE=1` skips it without network).

use super::kelpie;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Run one file of the API's tests with `node --test`; fails with its whole report.
fn node_test(file: &str) {
    if Command::new("node").arg("--version").output().is_err() {
        return kelpie_testkit::skip("node is not installed (the Node API's tests need it)");
    }
    let k = kelpie();
    let dir = PathBuf::from(k.write(".keep", ""));
    let dir = dir.parent().expect("the test's directory");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../npm/kelpie/test");
    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(tests.join(file))
        .env("KELPIE_HOME", k.home())
        .env("KELPIE_BINARY", env!("CARGO_BIN_EXE_kelpie"))
        .env("KELPIE_TEST_DIR", dir)
        .current_dir(dir)
        .output()
        .expect("run node --test");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "node --test {file}: {report}");
    // A file whose tests did not run (a syntax error, a filter) must not pass quietly.
    assert!(report.contains("ℹ fail 0"), "{report}");
    assert!(!report.contains("ℹ pass 0"), "{report}");
}

#[test]
fn the_api_starts_lists_and_controls_apps() {
    node_test("api.test.js");
}

#[test]
fn the_api_bus_carries_process_events_logs_and_messages() {
    node_test("bus.test.js");
}

#[test]
fn the_api_imports_as_an_es_module_and_requires_as_commonjs() {
    node_test("esm.test.mjs");
}

#[test]
fn an_app_uses_the_api_to_see_its_siblings() {
    node_test("inside.test.js");
}

/// TypeScript's compiler and Node's types, from npm, under the target directory (their
/// `node_modules`).
fn typescript() -> Option<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        super::tools::npm_packages("node-api-types", &["typescript@5.6.3", "@types/node@20"])
    });
    super::tools::installed_or_skip(dir)
}

#[test]
fn the_api_types_fit_the_calls_pm2_users_write() {
    let Some(modules) = typescript() else { return };
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../npm/kelpie/test");
    let output = Command::new("node")
        .arg(modules.join("typescript/bin/tsc"))
        .args(["--noEmit", "--strict", "--types", "node", "--typeRoots"])
        .arg(modules.join("@types"))
        .args([
            "--moduleResolution",
            "node",
            "--module",
            "commonjs",
            "--target",
            "es2020",
        ])
        .arg(tests.join("types.ts"))
        .output()
        .expect("run tsc");
    assert!(
        output.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
