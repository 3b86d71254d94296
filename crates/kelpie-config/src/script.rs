//! What `script` means: a file next to the app, a command on `$PATH`, or a whole shell command
//! line; and which interpreter runs it.

use crate::interpreter::by_extension;
use crate::paths::{absolutize, expand_tilde, is_executable, which};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How the app chose its interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice<'a> {
    /// Not given: pick by extension (or a shell for command lines).
    Auto,
    /// Given; `None` is `interpreter: none` (execute the script itself).
    Explicit(Option<&'a str>),
}

/// Where the PATH and home directory come from, for lookups and `~`.
pub(crate) struct Lookup<'a> {
    /// `$PATH` to search.
    pub path_var: &'a OsString,
    /// `$HOME` for `~`.
    pub home: Option<&'a str>,
}

/// The script and interpreter to store in the spec.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Absolute path, a bare `$PATH` command, or a shell command line.
    pub script: String,
    /// Program that runs the script, if any.
    pub interpreter: Option<String>,
    /// `["-c"]` when the script is a command line run by a shell.
    pub shell_args: Vec<String>,
    /// The arguments of an executable's `#!` line after its runtime (`run --allow-net`), the
    /// interpreter's arguments unless the app gives its own.
    pub shebang_args: Vec<String>,
}

/// The name an app gets when it has none: the script's file name without extension, or for a
/// command line the file name of its first word (`python3 -m http.server` → `python3`).
pub(crate) fn default_name(script: &str, cwd: &Path, home: Option<&str>) -> String {
    let script = script.trim();
    let expanded = expand_tilde(script, home);
    if is_command_line(&expanded, cwd) {
        let first = crate::words::split_words(&expanded)
            .ok()
            .and_then(|w| w.into_iter().next())
            .unwrap_or_default();
        return file_name(&first, false);
    }
    file_name(&expanded, true)
}

fn file_name(path: &str, strip_extension: bool) -> String {
    let p = Path::new(path.trim_end_matches('/'));
    let part = if strip_extension {
        p.file_stem()
    } else {
        p.file_name()
    };
    part.and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(path)
        .to_string()
}

/// A script with whitespace that is not an existing file is a command line (PM2 users write
/// `script: "python3 -m http.server 8000"`).
fn is_command_line(expanded: &str, cwd: &Path) -> bool {
    expanded.contains(char::is_whitespace) && !absolutize(cwd, Path::new(expanded)).exists()
}

/// Why a script or its interpreter cannot run. `Display` is a complete sentence about the
/// script or interpreter, without the app prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScriptError {
    /// The script is a directory.
    #[error("script `{}` is a directory", path.display())]
    Directory {
        /// The script, resolved.
        path: PathBuf,
    },
    /// Neither executable nor named so that its interpreter is known.
    #[error(
        "script `{}` is not executable and its extension does not say which interpreter runs it; set `interpreter` or make it executable",
        path.display()
    )]
    NoInterpreter {
        /// The script, resolved.
        path: PathBuf,
    },
    /// No such file, command line or command.
    #[error("script `{}` not found", path.display())]
    NotFound {
        /// The script, resolved against the app's directory.
        path: PathBuf,
    },
    /// An interpreter given as a path that is not an executable file.
    #[error("interpreter `{}` not found or not executable", path.display())]
    InterpreterNotExecutable {
        /// The interpreter, resolved.
        path: PathBuf,
    },
    /// An interpreter given as a command that is not in `$PATH`.
    #[error("interpreter `{name}` not found in PATH")]
    InterpreterNotInPath {
        /// The command.
        name: String,
    },
    /// The interpreter the script's extension calls for is not installed.
    #[error(
        "interpreter `{interpreter}` (used for .{extension} scripts) not found in PATH; install it or set `interpreter`"
    )]
    RuntimeMissing {
        /// The interpreter (`python3`, `node`...).
        interpreter: String,
        /// The script's extension.
        extension: String,
    },
}

/// Resolve `script` (relative to `cwd`) and its interpreter.
pub(crate) fn resolve(
    script: &str,
    cwd: &Path,
    choice: Choice<'_>,
    lookup: &Lookup<'_>,
) -> Result<Resolved, ScriptError> {
    let expanded = expand_tilde(script.trim(), lookup.home);
    let candidate = absolutize(cwd, Path::new(&expanded));
    if candidate.is_dir() {
        return Err(ScriptError::Directory { path: candidate });
    }
    if candidate.is_file() {
        let interpreter = match choice {
            Choice::Explicit(given) => given
                .map(|i| checked_interpreter(i, cwd, lookup))
                .transpose()?,
            Choice::Auto => match by_extension(&expanded) {
                Some(default) => Some(default_interpreter(default, &expanded, lookup)?),
                None if !is_executable(&candidate) => match Path::new(&expanded)
                    .extension()
                    .is_none()
                    .then(|| text_script_interpreter(&candidate))
                    .flatten()
                {
                    Some(interpreter) => Some(interpreter),
                    None => return Err(ScriptError::NoInterpreter { path: candidate }),
                },
                // An executable whose `#!` line runs Node, Bun or Deno
                // (`node_modules/next/dist/bin/next`, express's `bin/www`,
                // `#!/usr/bin/env -S deno run --allow-net`) is that runtime's app, whatever its
                // name: run by it, with the `#!` line's arguments, so it gets the IPC channel
                // and, in cluster mode, shares its port (as PM2 runs a Node one).
                None => {
                    let (program, args) = file_head(&candidate)
                        .and_then(|head| shebang_words(&head))
                        .filter(|(program, _)| crate::interpreter::is_js_runtime(program))
                        .unzip();
                    return Ok(Resolved {
                        script: candidate.display().to_string(),
                        interpreter: program,
                        shell_args: Vec::new(),
                        shebang_args: args.unwrap_or_default(),
                    });
                }
            },
        };
        return Ok(Resolved {
            script: candidate.display().to_string(),
            interpreter,
            shell_args: Vec::new(),
            shebang_args: Vec::new(),
        });
    }
    // `interpreter: none` with a command line (`script: "node server.js"`) means the same: run
    // it as written.
    let runs_itself = matches!(choice, Choice::Auto | Choice::Explicit(None));
    if runs_itself && is_command_line(&expanded, cwd) {
        // bash for familiar syntax; any POSIX system has sh.
        let shell = if which("bash", lookup.path_var).is_some() {
            "bash"
        } else {
            "sh"
        };
        return Ok(Resolved {
            script: expanded,
            interpreter: Some(shell.to_string()),
            shell_args: vec!["-c".to_string()],
            shebang_args: Vec::new(),
        });
    }
    if which(&expanded, lookup.path_var).is_some() {
        // Kept bare so the app follows the command if it moves (e.g. a toolchain upgrade).
        let interpreter = match choice {
            Choice::Explicit(Some(given)) => Some(checked_interpreter(given, cwd, lookup)?),
            _ => None,
        };
        return Ok(Resolved {
            script: expanded,
            interpreter,
            shell_args: Vec::new(),
            shebang_args: Vec::new(),
        });
    }
    Err(ScriptError::NotFound { path: candidate })
}

/// What runs a text script that is neither executable nor named by its extension (express's
/// `bin/www` after a copy lost its execute bit): its `#!` line's program, else node, as PM2
/// runs it. `None` for anything else (a binary that lost its execute bit).
fn text_script_interpreter(path: &Path) -> Option<String> {
    let head = file_head(path)?;
    match head.starts_with("#!") {
        true => shebang_of(&head),
        false => Some("node".to_string()),
    }
}

/// The first 512 bytes of a text file (`None` for a binary one, or one that cannot be read).
fn file_head(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let head = &head[..read];
    if head.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(head).into_owned())
}

/// The program of a `#!` line at the start of `text`.
fn shebang_of(text: &str) -> Option<String> {
    shebang_words(text).map(|(program, _)| program)
}

/// The program of a `#!` line at the start of `text`, and the arguments that follow it
/// (`#!/usr/bin/env -S deno run --allow-net`: `deno`, `run --allow-net`).
fn shebang_words(text: &str) -> Option<(String, Vec<String>)> {
    let shebang = text.strip_prefix("#!")?;
    let mut words = shebang.lines().next()?.split_whitespace();
    let program = words.next()?;
    // `#!/usr/bin/env node`: the program env would find.
    let program = match Path::new(program).file_name().and_then(|n| n.to_str()) {
        Some("env") => words.find(|w| !w.starts_with('-'))?,
        _ => program,
    };
    Some((program.to_string(), words.map(str::to_string).collect()))
}

/// An interpreter named by the user must exist: a path (made absolute) or a `$PATH` command.
fn checked_interpreter(
    given: &str,
    cwd: &Path,
    lookup: &Lookup<'_>,
) -> Result<String, ScriptError> {
    let expanded = expand_tilde(given.trim(), lookup.home);
    if expanded.contains('/') {
        let path = absolutize(cwd, Path::new(&expanded));
        return if is_executable(&path) {
            Ok(path.display().to_string())
        } else {
            Err(ScriptError::InterpreterNotExecutable { path })
        };
    }
    match which(&expanded, lookup.path_var) {
        Some(_) => Ok(expanded),
        None => Err(ScriptError::InterpreterNotInPath { name: expanded }),
    }
}

/// The interpreter picked by extension, checked so a missing runtime is reported now rather
/// than as a crash loop. `python3` falls back to `python` like PM2.
fn default_interpreter(
    default: &str,
    script: &str,
    lookup: &Lookup<'_>,
) -> Result<String, ScriptError> {
    let candidates: &[&str] = if default == "python3" {
        &["python3", "python"]
    } else {
        std::slice::from_ref(&default)
    };
    candidates
        .iter()
        .find(|c| which(c, lookup.path_var).is_some())
        .map(|c| c.to_string())
        .ok_or_else(|| {
            let extension = Path::new(script)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            ScriptError::RuntimeMissing {
                interpreter: default.to_string(),
                extension: extension.to_string(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        path_var: OsString,
    }

    /// A directory with `app.js`, `run` (executable), `notes.txt`, and a `bin/` on PATH holding
    /// fake `node`, `bash` and `mytool`.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        for exe in ["node", "bash", "mytool"] {
            make_executable(&bin.join(exe));
        }
        make_executable(&dir.path().join("run"));
        std::fs::write(dir.path().join("app.js"), "").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "").expect("write");
        let path_var = OsString::from(bin);
        Fixture { dir, path_var }
    }

    fn make_executable(p: &Path) {
        std::fs::write(p, "#!/bin/sh\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    fn run(f: &Fixture, script: &str, choice: Choice<'_>) -> Result<Resolved, String> {
        let lookup = Lookup {
            path_var: &f.path_var,
            home: None,
        };
        resolve(script, f.dir.path(), choice, &lookup).map_err(|e| e.to_string())
    }

    fn abs(f: &Fixture, name: &str) -> String {
        PathBuf::from(f.dir.path()).join(name).display().to_string()
    }

    #[test]
    fn files_are_absolute_with_interpreter_by_extension() {
        let f = fixture();
        let r = run(&f, "./app.js", Choice::Auto).expect("resolves");
        assert_eq!(r.script, abs(&f, "app.js"));
        assert_eq!(r.interpreter.as_deref(), Some("node"));
        let r = run(&f, "run", Choice::Auto).expect("resolves");
        assert_eq!(r.interpreter, None);
    }

    #[test]
    fn interpreter_none_and_explicit() {
        let f = fixture();
        let r = run(&f, "app.js", Choice::Explicit(None)).expect("none");
        assert_eq!(r.interpreter, None);
        let r = run(&f, "app.js", Choice::Explicit(Some("mytool"))).expect("explicit");
        assert_eq!(r.interpreter.as_deref(), Some("mytool"));
        let err = run(&f, "app.js", Choice::Explicit(Some("nope"))).expect_err("should fail");
        assert_eq!(err, "interpreter `nope` not found in PATH");
    }

    #[test]
    fn missing_default_interpreter_is_reported() {
        let f = fixture();
        std::fs::write(f.dir.path().join("w.py"), "").expect("write");
        let err = run(&f, "w.py", Choice::Auto).expect_err("should fail");
        assert!(
            err.contains("interpreter `python3` (used for .py scripts)"),
            "{err}"
        );
    }

    #[test]
    fn command_lines_run_in_a_shell() {
        let f = fixture();
        let r = run(&f, "python3 -m http.server 8000", Choice::Auto).expect("shell");
        assert_eq!(r.script, "python3 -m http.server 8000");
        assert_eq!(r.interpreter.as_deref(), Some("bash"));
        assert_eq!(r.shell_args, ["-c"]);
        assert_eq!(
            default_name("python3 -m http.server", f.dir.path(), None),
            "python3"
        );
        assert_eq!(default_name("/usr/bin/env  x", f.dir.path(), None), "env");
    }

    #[test]
    fn path_commands_stay_bare() {
        let f = fixture();
        let r = run(&f, "mytool", Choice::Auto).expect("path");
        assert_eq!(r.script, "mytool");
        assert_eq!(r.interpreter, None);
    }

    #[test]
    fn missing_scripts_and_directories_are_errors() {
        let f = fixture();
        let err = run(&f, "missing.js", Choice::Auto).expect_err("should fail");
        assert_eq!(err, format!("script `{}` not found", abs(&f, "missing.js")));
        let err = run(&f, "bin", Choice::Auto).expect_err("should fail");
        assert!(err.contains("is a directory"), "{err}");
        let err = run(&f, "notes.txt", Choice::Auto).expect_err("should fail");
        assert!(err.contains("not executable"), "{err}");
    }

    #[test]
    fn a_text_script_without_extension_or_execute_bit_runs_with_its_shebang_or_node() {
        let f = fixture();
        std::fs::write(
            f.dir.path().join("www"),
            "#!/usr/bin/env node\nrequire('../app');\n",
        )
        .expect("write");
        std::fs::write(f.dir.path().join("plain"), "console.log(1)\n").expect("write");
        std::fs::write(f.dir.path().join("job"), "#!/bin/bash -e\necho hi\n").expect("write");
        std::fs::write(f.dir.path().join("blob"), b"\x7fELF\x00\x00").expect("write");
        let interpreter = |name: &str| run(&f, name, Choice::Auto).map(|r| r.interpreter);
        assert_eq!(interpreter("www"), Ok(Some("node".to_string())));
        assert_eq!(interpreter("plain"), Ok(Some("node".to_string())));
        assert_eq!(interpreter("job"), Ok(Some("/bin/bash".to_string())));
        assert!(interpreter("blob").is_err_and(|e| e.contains("not executable")));
    }

    #[test]
    fn an_executable_whose_shebang_runs_a_js_runtime_is_its_app_and_others_run_themselves() {
        use std::os::unix::fs::PermissionsExt;
        let f = fixture();
        let write = |name: &str, text: &str| {
            let path = f.dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        // Next's `node_modules/next/dist/bin/next`, express's `bin/www`.
        write("next", "#!/usr/bin/env node\n\"use strict\";\n");
        write("www", "#!/usr/bin/node\nrequire('../app');\n");
        write("tool", "#!/bin/sh\necho hi\n");
        write("bare", "echo no shebang\n");
        let interpreter = |name: &str| run(&f, name, Choice::Auto).map(|r| r.interpreter);
        assert_eq!(interpreter("next"), Ok(Some("node".to_string())));
        assert_eq!(interpreter("www"), Ok(Some("/usr/bin/node".to_string())));
        assert_eq!(interpreter("tool"), Ok(None), "runs itself");
        assert_eq!(interpreter("bare"), Ok(None), "runs itself");
        // Bun and Deno too, with the `#!` line's arguments.
        write("bunny", "#!/usr/bin/env bun\nBun.serve({});\n");
        write(
            "dino",
            "#!/usr/bin/env -S deno run --allow-net\nDeno.serve(() => 0);\n",
        );
        let resolved =
            |name: &str| run(&f, name, Choice::Auto).map(|r| (r.interpreter, r.shebang_args));
        assert_eq!(resolved("bunny"), Ok((Some("bun".to_string()), vec![])));
        assert_eq!(
            resolved("dino"),
            Ok((
                Some("deno".to_string()),
                vec!["run".to_string(), "--allow-net".to_string()]
            ))
        );
        assert_eq!(resolved("tool"), Ok((None, vec![])));
    }

    #[test]
    fn a_command_line_with_interpreter_none_runs_as_written() {
        let f = fixture();
        let r = run(&f, "mytool serve --port 3000", Choice::Explicit(None)).expect("runs");
        assert_eq!(r.script, "mytool serve --port 3000");
        assert_eq!(r.shell_args, ["-c"]);
    }

    #[test]
    fn default_names_drop_the_extension() {
        let f = fixture();
        assert_eq!(default_name("./app.js", f.dir.path(), None), "app");
        assert_eq!(
            default_name("/srv/x/server.config.js", f.dir.path(), None),
            "server.config"
        );
        assert_eq!(default_name("sleep", f.dir.path(), None), "sleep");
    }
}
