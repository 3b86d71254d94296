//! How the code is shaped, measured (docs/architecture.md, "Errors are types, not strings"):
//! the supervisor's own methods stay few (a request's handling lives in its module), and
//! library code returns typed errors, not strings. Each test names what it found when it fails.
//! That every task has an owner is kept by the compiler: `clippy.toml` in this crate disallows
//! `tokio::spawn`, `spawn_blocking` and `std::thread::sleep` outside the places that own them.

mod source;

use source::{code_of, library_files, string_results};
use std::path::{Path, PathBuf};

fn supervisor_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The functions declared directly in `impl Supervisor` blocks of `code`.
fn supervisor_methods(code: &str) -> Vec<String> {
    let mut methods = Vec::new();
    for (at, _) in code.match_indices("impl Supervisor {") {
        let body = &code[at + "impl Supervisor {".len()..];
        let mut depth = 0i32;
        let mut line_start = true;
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 && line_start {
                let line = body[i..].trim_start_matches(' ');
                let line = line.strip_prefix("pub(super) ").unwrap_or(line);
                let line = line
                    .strip_prefix("pub(in crate::supervisor) ")
                    .unwrap_or(line);
                let line = line.strip_prefix("async ").unwrap_or(line);
                if let Some(rest) = line.strip_prefix("fn ") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    methods.push(name);
                }
            }
            line_start = c == '\n';
        }
    }
    methods
}

/// The functions of `code` outside `impl Supervisor` that take the whole supervisor
/// (`&mut Supervisor`): methods in all but name.
fn functions_over_the_supervisor(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        let rest = &code[at + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = rest.find('(') else { continue };
        // The parameters: to the parenthesis that closes the first one.
        let mut depth = 0;
        let mut params = "";
        for (i, c) in rest[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 1 => {
                    params = &rest[open + 1..open + i];
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        if !name.is_empty() && params.contains("&mut Supervisor") {
            found.push(name);
        }
    }
    found
}

#[test]
fn the_supervisor_keeps_to_its_loop_and_what_spans_its_parts() {
    // 59 methods in 17 files before the requests moved to `supervisor/requests/`, and 25 then
    // with 38 free functions taking the whole supervisor (63 in all); 48 (24 and 24) once the
    // handlers that need only some parts (the app table, the pending work, the services...)
    // took those. A handler gets the parts it needs; the whole supervisor only where it calls
    // its methods or most of its parts.
    const MOST: usize = 50;
    let mut found = Vec::new();
    for file in library_files(&supervisor_src()) {
        let code = code_of(&std::fs::read_to_string(&file).expect("read"));
        for method in supervisor_methods(&code) {
            found.push(format!("{} ({}, method)", method, file.display()));
        }
        for function in functions_over_the_supervisor(&code) {
            found.push(format!(
                "{} ({}, takes &mut Supervisor)",
                function,
                file.display()
            ));
        }
    }
    assert!(found.len() >= 10, "the count reads the impls: {found:?}");
    assert!(
        found.len() <= MOST,
        "{} methods of Supervisor and functions over &mut Supervisor (at most {MOST}): a \
         request's handling goes in its module of supervisor/requests/ and takes the parts it \
         needs, a part's own work goes in the part:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The library code of every crate but the testkit (test code: a fake app, a load generator)
/// and `skip`: each file with its code (tests and comments left out).
fn library_code(skip: &[&str]) -> Vec<(PathBuf, String)> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crates directory")
        .to_path_buf();
    let mut code = Vec::new();
    for krate in std::fs::read_dir(&crates).expect("read crates").flatten() {
        let name = krate.file_name().to_string_lossy().into_owned();
        let src = krate.path().join("src");
        if !src.is_dir() || name == "kelpie-testkit" || skip.contains(&name.as_str()) {
            continue;
        }
        for file in library_files(&src) {
            let text = code_of(&std::fs::read_to_string(&file).expect("read"));
            code.push((file, text));
        }
    }
    code
}

/// Kelpie asks the operating system only through `kelpie-sys` (its platform seam, where a
/// second system plugs in). The other crates' calls are kept out by the compiler (none depends
/// on libc, rustix or nix); what it cannot keep is a path into the kernel's files, a string:
/// none in the library code of any crate but kelpie-sys.
#[test]
fn only_kelpie_sys_reads_kernel_files() {
    let mut found = Vec::new();
    // kelpie-sys is the seam.
    for (file, code) in library_code(&["kelpie-sys"]) {
        for kernel in ["\"/proc", "\"/sys/", "/proc/{", "/proc/self"] {
            if code.contains(kernel) {
                found.push(format!("{} names {kernel}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "ask kelpie-sys, by what is wanted (kelpie_sys::process_environment, ...):\n{}",
        found.join("\n")
    );
}

#[test]
fn library_code_returns_typed_errors() {
    // 159 before the config's readers, the daemon's and the CLI's errors were typed (2026-11-25);
    // none since: a failure gets a type whose Display is the message.
    let mut found = Vec::new();
    for (file, code) in library_code(&[]) {
        let count = string_results(&code);
        if count > 0 {
            found.push((count, file.display().to_string()));
        }
    }
    let total: usize = found.iter().map(|(count, _)| count).sum();
    assert!(
        total == 0,
        "{total} Result<_, String> in library code: give the failure a type (thiserror) whose \
         Display is the message:\n{}",
        found
            .iter()
            .map(|(count, file)| format!("{count} {file}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// docs/architecture.md's map of the crates ("### Crates": a line per crate, `- **`name/`**`) is
/// the workspace's crates, no more and no fewer.
#[test]
fn the_architecture_map_names_every_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the repository")
        .to_path_buf();
    let mut on_disk: Vec<String> = std::fs::read_dir(root.join("crates"))
        .expect("read crates")
        .flatten()
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let map = std::fs::read_to_string(root.join("docs/architecture.md")).expect("read the map");
    let section = map
        .split("\n### Crates\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/architecture.md has a Crates section");
    let mut mapped: Vec<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("- **`"))
        .filter_map(|rest| rest.split("/`**").next())
        .map(str::to_string)
        .collect();
    mapped.sort();
    assert!(on_disk.len() >= 10, "the crates were found: {on_disk:?}");
    assert_eq!(
        mapped, on_disk,
        "docs/architecture.md's Crates section against crates/"
    );
}

#[test]
fn the_measures_read_what_they_claim() {
    assert_eq!(
        supervisor_methods(
            "impl Supervisor {\n    fn a(&self) {\n        fn inner() {}\n    }\n    pub(super) async fn b(&mut self) {}\n}\nimpl Other {\n    fn c() {}\n}"
        ),
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(
        functions_over_the_supervisor(
            "fn a(sup: &mut Supervisor, x: u8) {}\nfn b(\n    apps: &Apps,\n) {}\nasync fn c(\n    s: &mut Supervisor,\n) {}\nfn d(f: impl Fn(u8)) {}"
        ),
        vec!["a".to_string(), "c".to_string()]
    );
    assert_eq!(
        string_results(
            "fn a() -> Result<u8, String>; fn b() -> Result<BTreeMap<String, String>, E>; \
             fn c() -> Result<Vec<(u8, String)>, String>; fn d() -> io::Result<()>;"
        ),
        2
    );
}
