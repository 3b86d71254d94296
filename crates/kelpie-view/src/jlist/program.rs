//! What an app runs, as PM2 shows it in `jlist`: the program's absolute path (a bare command
//! looked up in the app's `PATH`), the interpreter PM2 would name for it, and where its output
//! goes. Looked up once per listing for all its apps.

use crate::versioning::Versioning;
use kelpie_proto::ProcessInfo;
use std::collections::HashMap;

/// What a listing looks up once for all its apps: the git metadata of each distinct directory
/// of the apps that have `vizion` on (200 apps in one directory cost one read of the
/// repository, not 200), and the path of each distinct bare program (`sleep`) in each `PATH`
/// (200 `sleep` apps cost one walk of `PATH`, not 200: it was 1 600 failed `statx` calls).
#[derive(Default)]
pub(super) struct Lookups<'a>(
    HashMap<&'a str, Option<Versioning>>,
    HashMap<(&'a str, Option<&'a str>), Option<String>>,
);

impl<'a> Lookups<'a> {
    pub(super) fn read(list: impl IntoIterator<Item = &'a ProcessInfo>) -> Self {
        let mut by_cwd = HashMap::new();
        let mut programs = HashMap::new();
        for p in list {
            if p.spec.vizion {
                by_cwd
                    .entry(p.spec.cwd.as_str())
                    .or_insert_with(|| crate::versioning::read(std::path::Path::new(&p.spec.cwd)));
            }
            if let Some((program, path)) = bare_program(&p.spec) {
                programs
                    .entry((program, path))
                    .or_insert_with(|| which(program, path));
            }
        }
        Lookups(by_cwd, programs)
    }

    /// The program `spec` runs, as an absolute path as in PM2: a bare command is looked up in
    /// the app's `$PATH` (found when the listing was read, else now: `description` reads no
    /// listing).
    pub(super) fn exec_path(&self, spec: &'a kelpie_core::AppSpec) -> std::borrow::Cow<'a, str> {
        let Some((program, path)) = bare_program(spec) else {
            return std::borrow::Cow::Borrowed(program_of(spec));
        };
        let found = match self.1.get(&(program, path)) {
            Some(found) => found.clone(),
            None => which(program, path),
        };
        found.map_or(std::borrow::Cow::Borrowed(program), std::borrow::Cow::Owned)
    }

    pub(super) fn of(&self, spec: &kelpie_core::AppSpec) -> Option<&Versioning> {
        if !spec.vizion {
            return None;
        }
        self.0.get(spec.cwd.as_str()).and_then(Option::as_ref)
    }
}

/// The extensions of PM2's table of interpreters (its `interpreter.json`): for these, Kelpie's
/// choice is PM2's (or differs by a documented choice: `python3`, `.ts` with Node).
const PM2_EXTENSIONS: &[&str] = &[
    "sh", "py", "rb", "php", "pl", "js", "coffee", "ls", "ts", "tsx",
];

/// `exec_interpreter` as PM2 shows it. A command line: `none` (the shell runs itself with
/// `-c <line>`). An interpreter the app named: that one. Else PM2 picks by the script's
/// extension from its table, and for any other script runs a binary itself (`none`) and
/// anything else with the Node that runs PM2 (its absolute path): an `.mjs` file, a script on
/// `PATH` (`npm`, `ts-node`), an extensionless `bin/www`. Kelpie runs those with Node too, or
/// by their `#!` line (docs/differences-from-pm2.md), and shows them as PM2 does.
pub(super) fn shown_interpreter<'a>(
    spec: &'a kelpie_core::AppSpec,
    lookups: &Lookups<'a>,
) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    if spec.is_shell_command_line() {
        return Cow::Borrowed("none");
    }
    let chosen = Cow::Borrowed(spec.interpreter.as_deref().unwrap_or("none"));
    if !spec.interpreter_auto {
        return chosen;
    }
    let program = lookups.exec_path(spec);
    let extension = std::path::Path::new(program.as_ref())
        .extension()
        .and_then(|e| e.to_str());
    if extension.is_some_and(|e| PM2_EXTENSIONS.contains(&e)) {
        return chosen;
    }
    if is_binary(std::path::Path::new(program.as_ref())) {
        return Cow::Borrowed("none");
    }
    let path = spec.inherited_env.get("PATH").map(String::as_str);
    which("node", path).map_or(Cow::Borrowed("node"), Cow::Owned)
}

/// Whether the file at `path` is a binary (a NUL byte in its first 512 bytes), as PM2 tells a
/// program to execute from a script to give to Node; unreadable: not one.
fn is_binary(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 512];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head));
    read.is_ok_and(|n| head[..n].contains(&0))
}

/// A log file as PM2 shows it: both ways of discarding a stream (`NULL`, `/dev/null`) are
/// `/dev/null`.
pub(super) fn shown_log_path(path: &str) -> &str {
    match kelpie_core::files::is_discard(path) {
        true => "/dev/null",
        false => path,
    }
}

/// The program an app runs: a command line's is its shell, as PM2 shows it (`/usr/bin/bash`).
fn program_of(spec: &kelpie_core::AppSpec) -> &str {
    match (spec.is_shell_command_line(), spec.interpreter.as_deref()) {
        (true, Some(shell)) => shell,
        _ => spec.script.as_str(),
    }
}

/// A bare program (`kelpie start sleep`, kept bare in the spec so that the app follows the
/// command if it moves), and the app's own `PATH` to find it in (`None`: the environment's).
fn bare_program(spec: &kelpie_core::AppSpec) -> Option<(&str, Option<&str>)> {
    let program = program_of(spec);
    let bare = !program.contains('/') && !program.contains(char::is_whitespace);
    bare.then(|| (program, spec.inherited_env.get("PATH").map(String::as_str)))
}

/// Where `program` is in `path` (else the environment's `PATH`).
fn which(program: &str, path: Option<&str>) -> Option<String> {
    let path_var = path
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    kelpie_config::which(program, &path_var).map(|found| found.display().to_string())
}
