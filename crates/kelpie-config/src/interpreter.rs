//! Which program runs a script when the app does not say (PM2's `interpreter.json`).

use std::path::Path;

/// The interpreter PM2 would pick for `script`'s extension; `None` runs the script directly.
pub(crate) fn by_extension(script: &str) -> Option<&'static str> {
    let extension = Path::new(script)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    match extension.as_str() {
        // PM2 runs `.ts` with bun when installed; Node's type stripping is the portable choice.
        "js" | "cjs" | "mjs" | "ts" | "cts" | "mts" => Some("node"),
        "py" => Some("python3"),
        "sh" => Some("bash"),
        "rb" => Some("ruby"),
        "php" => Some("php"),
        "pl" => Some("perl"),
        _ => None,
    }
}

/// Python buffers stdout when it is not a terminal, so logs would arrive late; PM2 sets
/// `PYTHONUNBUFFERED=1` for these interpreters.
pub(crate) fn is_python(interpreter: &str) -> bool {
    Path::new(interpreter)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("python"))
}

/// Node, Bun and Deno: with `instances` set and no `exec_mode`, PM2 runs Node and Bun apps in
/// cluster mode; Kelpie does so for Deno too, whose instances share their ports as Bun's do.
pub(crate) fn is_js_runtime(interpreter: &str) -> bool {
    kelpie_core::JsRuntime::named(interpreter).is_some()
}

/// The package managers that run a project's scripts with Node (`npm start`, `yarn start`): an
/// app started through one is a Node server below it. With instances and no `exec_mode`, it
/// runs in cluster mode and shares its `PORT` through the daemon's socket (the shim reaches
/// the Node process below through `NODE_OPTIONS`), as a Node app does.
pub(crate) fn is_node_launcher(program: &str) -> bool {
    Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| matches!(n, "npm" | "npx" | "yarn" | "yarnpkg" | "pnpm"))
}

/// Whether the app's program is gunicorn: `script: gunicorn` (or a virtualenv's
/// `.venv/bin/gunicorn`), a command line that runs it, or `python -m gunicorn`.
pub(crate) fn runs_gunicorn(spec: &kelpie_core::AppSpec) -> bool {
    let is_gunicorn = |word: &str| {
        Path::new(word)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "gunicorn")
    };
    let words: Vec<&str> = spec
        .script
        .split_whitespace()
        .chain(spec.interpreter_args.iter().map(String::as_str))
        .chain(spec.args.iter().map(String::as_str))
        .collect();
    words.first().is_some_and(|w| is_gunicorn(w))
        || words.windows(2).any(|w| w[0] == "-m" && w[1] == "gunicorn")
        || (spec.is_shell_command_line() && words.iter().take(3).any(|w| is_gunicorn(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_interpreter_by_extension() {
        assert_eq!(by_extension("/srv/app.js"), Some("node"));
        assert_eq!(by_extension("app.mjs"), Some("node"));
        assert_eq!(by_extension("app.cjs"), Some("node"));
        assert_eq!(by_extension("app.ts"), Some("node"));
        assert_eq!(by_extension("worker.py"), Some("python3"));
        assert_eq!(by_extension("run.sh"), Some("bash"));
        assert_eq!(by_extension("a.rb"), Some("ruby"));
        assert_eq!(by_extension("a.php"), Some("php"));
        assert_eq!(by_extension("a.pl"), Some("perl"));
        assert_eq!(by_extension("server"), None);
        assert_eq!(by_extension("a.bin"), None);
    }

    #[test]
    fn recognises_python_interpreters() {
        assert!(is_python("python3"));
        assert!(is_python("/usr/bin/python3.12"));
        assert!(!is_python("node"));
    }

    #[test]
    fn recognises_gunicorn_however_it_is_started() {
        let spec = |script: &str, args: &[&str]| kelpie_core::AppSpec {
            script: script.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        };
        assert!(runs_gunicorn(&spec("gunicorn", &["-w", "2", "app:app"])));
        assert!(runs_gunicorn(&spec(
            "/srv/.venv/bin/gunicorn",
            &["app:app"]
        )));
        assert!(runs_gunicorn(&spec("gunicorn -w 2 app:app", &[])));
        assert!(runs_gunicorn(&spec(
            "python3",
            &["-m", "gunicorn", "app:app"]
        )));
        assert!(!runs_gunicorn(&spec("uvicorn", &["main:app"])));
        assert!(!runs_gunicorn(&spec("python3", &["serve.py", "gunicorn"])));
    }

    #[test]
    fn recognises_javascript_runtimes() {
        assert!(is_js_runtime("node"));
        assert!(is_js_runtime("/usr/local/bin/bun"));
        assert!(is_js_runtime("/home/me/.deno/bin/deno"));
        assert!(!is_js_runtime("nodemon"));
        assert!(!is_js_runtime("python3"));
    }
}
