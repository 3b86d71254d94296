//! Reading the workspace's sources as the architecture tests do: the files of a tree, and a
//! file's code without its tests and comments.

#![allow(dead_code)] // Each test crate uses part of it.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
pub(crate) fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The code of a file without its tests and comments (a doc link is not a dependency). Each
/// `#[cfg(test)]` item is left out, and only it: a test-only variant or import near the top
/// must not hide the rest of the file; a `#[cfg(test)] mod` ends what is read (test modules
/// come last, and their string literals need not balance braces).
pub(crate) fn code_of(text: &str) -> String {
    const TEST_ONLY: &str = "#[cfg(test)]";
    let mut code = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(TEST_ONLY) {
        code.push_str(&rest[..at]);
        let item = &rest[at + TEST_ONLY.len()..];
        if is_inline_module(item) {
            rest = "";
            break;
        }
        rest = after_item(item);
    }
    code.push_str(rest);
    code.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `item` (what follows an attribute) is a module with its body inline.
fn is_inline_module(item: &str) -> bool {
    let item = item.trim_start();
    let item = item.strip_prefix("pub ").unwrap_or(item);
    item.starts_with("mod ")
        && match (item.find('{'), item.find(';')) {
            (Some(body), Some(end)) => body < end,
            (body, _) => body.is_some(),
        }
}

/// What follows the item `item` starts with: after its `;` or `,`, after its braced body, or
/// at the brace that closes what holds it (an enum's last variant).
fn after_item(item: &str) -> &str {
    let mut depth = 0i32;
    for (i, c) in item.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' => depth -= 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &item[i + 1..];
                }
                if depth < 0 {
                    return &item[i..];
                }
            }
            ';' | ',' if depth == 0 => return &item[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The library files under `src`: every `.rs` file but those that only tests compile (a
/// module declared `#[cfg(test)] mod name;`, a `tests` module's file or directory).
pub(crate) fn library_files(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut test_only: Vec<PathBuf> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (at, _) in text.match_indices("#[cfg(test)]") {
            let item = text[at + "#[cfg(test)]".len()..].trim_start();
            let item = item.strip_prefix("pub(crate) ").unwrap_or(item);
            let item = item.strip_prefix("pub(super) ").unwrap_or(item);
            let item = item.strip_prefix("pub ").unwrap_or(item);
            let Some(declared) = item.strip_prefix("mod ") else {
                continue;
            };
            let name: String = declared
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if declared[name.len()..].trim_start().starts_with(';') {
                test_only.push(module_dir(file).join(name));
            }
        }
    }
    files
        .into_iter()
        .filter(|file| {
            !test_only
                .iter()
                .any(|module| file.starts_with(module) || *file == module.with_extension("rs"))
        })
        .collect()
}

/// Where the modules a file declares live (`a/b.rs` declares `a/b/x.rs`; `a/mod.rs`, `lib.rs`
/// and `main.rs` declare `a/x.rs`).
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().expect("a file in a directory");
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib" | "main") => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
        None => parent.to_path_buf(),
    }
}

/// How many `Result<T, String>` `code` has: results whose error is a bare string (`Result<
/// BTreeMap<String, String>, E>` is not one).
pub(crate) fn string_results(code: &str) -> usize {
    let mut count = 0;
    for (at, _) in code.match_indices("Result<") {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue; // `IoResult<`, `FmtResult<`: another type
        }
        let args = &code[at + "Result<".len()..];
        let (mut depth, mut comma, mut end) = (0i32, None, None);
        for (i, c) in args.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '>' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                '>' => depth -= 1,
                ',' if depth == 0 => comma = Some(i),
                _ => {}
            }
        }
        if let (Some(comma), Some(end)) = (comma, end) {
            if args[comma + 1..end].trim() == "String" {
                count += 1;
            }
        }
    }
    count
}
