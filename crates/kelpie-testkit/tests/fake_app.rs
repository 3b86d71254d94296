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

/// Lines of `file` split in fields.
fn stamp_lines(file: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn stamps_the_start_and_the_allocation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stamp = dir.path().join("stamp");
    let out = Command::new(env!("CARGO_BIN_EXE_fake-app"))
        .arg("--stamp")
        .arg(&stamp)
        .args([
            "--allocate",
            "8",
            "--allocate-after",
            "50",
            "--stamp-over",
            "4",
            "--exit-after",
            "1000",
        ])
        .output()
        .expect("run fake-app");
    assert!(String::from_utf8_lossy(&out.stdout).contains("allocated 8 MB"));
    let lines = stamp_lines(&stamp);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let pid = lines[0][0].clone();
    assert_eq!(lines[0].len(), 2, "{lines:?}");
    assert_eq!(lines[1][..2], ["allocating".to_string(), pid.clone()]);
    assert_eq!(lines[2][..2], ["over".to_string(), pid.clone()]);
    assert_eq!(lines[3][..2], ["allocated".to_string(), pid]);
    let ns: Vec<u128> = lines
        .iter()
        .map(|l| l.last().and_then(|n| n.parse().ok()).expect("a time in ns"))
        .collect();
    // Started, then at least --allocate-after later allocating, over the limit, allocated.
    assert!(
        ns[1] >= ns[0] + 50_000_000 && ns[2] >= ns[1] && ns[3] >= ns[2],
        "{ns:?}"
    );
}

#[test]
fn no_over_stamp_below_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stamp = dir.path().join("stamp");
    let status = Command::new(env!("CARGO_BIN_EXE_fake-app"))
        .arg("--stamp")
        .arg(&stamp)
        .args([
            "--allocate",
            "4",
            "--stamp-over",
            "64",
            "--exit-after",
            "500",
        ])
        .status()
        .expect("run fake-app");
    assert_eq!(status.code(), Some(1));
    let kinds: Vec<String> = stamp_lines(&stamp)
        .iter()
        .skip(1)
        .map(|l| l[0].clone())
        .collect();
    assert_eq!(kinds, ["allocating", "allocated"]);
}

#[test]
fn a_child_stamps_its_allocation_in_the_parents_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (stamp, children) = (dir.path().join("stamp"), dir.path().join("children"));
    let status = Command::new(env!("CARGO_BIN_EXE_fake-app"))
        .arg("--stamp")
        .arg(&stamp)
        .args(["--spawn-children", "1", "--children-file"])
        .arg(&children)
        .args([
            "--child-allocate",
            "8",
            "--stamp-over",
            "4",
            "--allocate-after",
            "0",
            "--exit-after",
            "50",
        ])
        .status()
        .expect("run fake-app");
    assert_eq!(status.code(), Some(1));
    let child: i32 = std::fs::read_to_string(&children)
        .expect("children file")
        .trim()
        .parse()
        .expect("child pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stamp_lines(&stamp).len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The child sleeps forever: stop it.
    let _ = Command::new("kill")
        .args(["-9", &child.to_string()])
        .status();
    let lines = stamp_lines(&stamp);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[0].len(),
        2,
        "the parent's start stamp only: {lines:?}"
    );
    assert_eq!(lines[1][..2], ["allocating".to_string(), child.to_string()]);
    assert_eq!(lines[2][..2], ["over".to_string(), child.to_string()]);
    assert_eq!(lines[3][..2], ["allocated".to_string(), child.to_string()]);
}
