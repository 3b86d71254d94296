//! The fake app does what the tests rely on. (Having an integration test also makes
//! `cargo test` build the `fake-app` binary for the other crates' tests.)

use std::process::Command;

#[test]
fn exits_with_the_requested_code_after_printing() {
    let out = Command::new(env!("CARGO_BIN_EXE_fake-app"))
        .args([
            "--print",
            "2",
            "--print-env",
            "FAKE_X",
            "--exit-after",
            "10",
            "--exit-code",
            "7",
        ])
        .env("FAKE_X", "42")
        .output()
        .expect("run fake-app");
    assert_eq!(out.status.code(), Some(7));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("line 1"), "{stdout}");
    assert!(stdout.contains("FAKE_X=42"), "{stdout}");
}
