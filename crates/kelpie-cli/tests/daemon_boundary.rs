//! The CLI links the daemon only to run it: `kelpie daemon` (and its keeper), `kelpie
//! runtime`, and the hand-over format `kelpie update` checks. What both show of the apps is in
//! `kelpie-view`; this test fails when the CLI uses anything else of `kelpie_daemon`, and names
//! the file and the item (docs/architecture.md, "Crates").

use std::path::Path;

/// What the CLI may use of the daemon crate: the ways to run it, and their options.
const RUNNING_IT: &[&str] = &[
    "run_with",
    "run_keeper",
    "run_foreground",
    "DaemonOptions",
    "ForegroundOptions",
    "OutputBatch",
    "OUTPUT_QUEUE",
    "handoff_format",
    "handoff_formats",
];

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("read the CLI's sources")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The names used after each `kelpie_daemon::` in `text` (`{a, b}` gives both).
fn used_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    for (at, _) in text.match_indices("kelpie_daemon::") {
        let rest = &text[at + "kelpie_daemon::".len()..];
        let list = match rest.strip_prefix('{') {
            Some(inner) => &inner[..inner.find('}').unwrap_or(inner.len())],
            None => rest,
        };
        for item in list.split(',') {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                items.push(name);
            }
            if !rest.starts_with('{') {
                break;
            }
        }
    }
    items
}

#[test]
fn the_cli_uses_the_daemon_crate_only_to_run_it() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "the CLI's sources were found");
    let mut outside = Vec::new();
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        for item in used_items(&text) {
            seen += 1;
            if !RUNNING_IT.contains(&item.as_str()) {
                outside.push(format!("{}: kelpie_daemon::{item}", file.display()));
            }
        }
    }
    assert!(seen > 0, "the CLI runs the daemon: its uses were found");
    assert!(
        outside.is_empty(),
        "the CLI reaches into the daemon (move what both need to kelpie-view, kelpie-sys, or another shared crate):\n{}",
        outside.join("\n")
    );
}

#[test]
fn used_items_reads_paths_and_lists() {
    assert_eq!(
        used_items("kelpie_daemon::run_with(h); use kelpie_daemon::{A, B as C, d::e};"),
        ["run_with", "A", "B", "d"]
    );
}
