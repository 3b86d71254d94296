//! JavaScript ecosystem files are programs, so the only faithful reader is Node.js itself: run
//! `node`, import the file, print its export as JSON.

use crate::errors::ConfigError;
use crate::LoadContext;
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long Node may take to evaluate a config file before it is killed: the code of a file
/// runs with no other bound (`while (true) {}` would hang `kelpie start` forever).
pub(crate) const EVAL_LIMIT: Duration = Duration::from_secs(10);

/// Imports `process.argv[1]` and prints its export as JSON. `import()` reads CommonJS
/// (`module.exports`) and ESM alike; both `export default` and CommonJS arrive as `default`,
/// while ESM named exports (`export const apps`) are on the namespace itself. Node exits as soon
/// as the export is printed: a timer or server the file leaves open does not delay it. Code that
/// never finishes (a loop, a promise never settled) is stopped from outside ([`EVAL_LIMIT`]).
const EVALUATOR: &str = r#"
const { pathToFileURL } = require('url');
// `node -e` makes `module`, `exports`, `require` (and every built-in module, `module` among
// them) globals, set back when this script returns: a file Node reads as an ES module (a
// `"type": "module"` package) must not find them, or its `module.exports = ...` would land on
// one and the file would seem to declare nothing. Once they are set back, they throw as in a
// plain ES module (a CommonJS file has its own).
setImmediate(() => {
  for (const name of ['module', 'exports', 'require', '__filename', '__dirname']) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() { throw new ReferenceError(name + ' is not defined in ES module scope'); },
    });
  }
  import(pathToFileURL(process.argv[1]).href)
  .then(async (ns) => {
    const config = await (ns.default !== undefined ? ns.default : Object.assign({}, ns));
    const json = JSON.stringify(config === undefined ? null : config);
    process.stdout.write(json, () => process.exit(0));
  })
  .catch((err) => {
    process.stderr.write(String((err && err.stack) || err) + '\n');
    process.exit(1);
  });
});
"#;

/// Evaluates the text of `process.argv[1]` as one JavaScript expression and prints it as JSON:
/// how PM2 reads a `.json` ecosystem file, so one holding expressions
/// (`script: ["a", "b"].join("")`) loads as under PM2.
const EXPRESSION_EVALUATOR: &str = r#"
const text = require('fs').readFileSync(process.argv[1], 'utf8');
try {
  const config = (0, eval)('(' + text + '\n)');
  process.stdout.write(JSON.stringify(config === undefined ? null : config), () => process.exit(0));
} catch (err) {
  process.stderr.write(String((err && err.message) || err) + '\n');
  process.exit(1);
}
"#;

/// Evaluate the JavaScript file at `abs_path` (named `file` in messages) with the CLI's
/// environment and working directory, as PM2 does when it `require`s the file.
pub(crate) fn evaluate(
    abs_path: &Path,
    file: &str,
    ctx: &LoadContext,
) -> Result<Value, ConfigError> {
    if crate::typescript::is_typescript(abs_path) {
        return crate::typescript::evaluate(abs_path, file, ctx);
    }
    run(EVALUATOR, abs_path, file, ctx, EVAL_LIMIT)
}

/// Evaluate a `.json` file that is not JSON5 as a JavaScript expression, as PM2 does; `None`
/// when Node is not installed.
pub(crate) fn evaluate_expression(
    abs_path: &Path,
    file: &str,
    ctx: &LoadContext,
) -> Option<Result<Value, ConfigError>> {
    crate::paths::which("node", &ctx.path_var())?;
    Some(run(EXPRESSION_EVALUATOR, abs_path, file, ctx, EVAL_LIMIT))
}

fn run(
    evaluator: &str,
    abs_path: &Path,
    file: &str,
    ctx: &LoadContext,
    limit: Duration,
) -> Result<Value, ConfigError> {
    let node = crate::paths::which("node", &ctx.path_var())
        .ok_or_else(|| ConfigError::NodeNotFound { file: file.into() })?;
    let mut command = Command::new(node);
    command.arg("-e").arg(evaluator).arg(abs_path);
    printed_json(command, file, ctx, limit)
}

/// Run `command` (an evaluator given the file) as the CLI would, and read the JSON it prints.
pub(crate) fn printed_json(
    mut command: Command,
    file: &str,
    ctx: &LoadContext,
    limit: Duration,
) -> Result<Value, ConfigError> {
    command.stdin(Stdio::null());
    // An empty context (library callers, tests) means "no opinion": keep the process's own env.
    if !ctx.env.is_empty() {
        command.env_clear().envs(&ctx.env);
    }
    if ctx.cwd.is_dir() {
        command.current_dir(&ctx.cwd);
    }
    let output = output_within(command, limit, file)?;
    if !output.status.success() {
        let mut message = without_internal_frames(&String::from_utf8_lossy(&output.stderr));
        if message.contains("is not defined in ES module scope") {
            message.insert_str(
                0,
                "the file uses CommonJS (`module.exports`) but Node reads it as an ES module (the nearest package.json says \"type\": \"module\"): rename it to ecosystem.config.cjs, or write `export default { apps: [...] }`\n",
            );
        }
        return Err(ConfigError::Script {
            file: file.into(),
            message,
        });
    }
    serde_json::from_slice(&output.stdout).map_err(|e| ConfigError::Script {
        file: file.into(),
        message: format!("the evaluator printed something that is not JSON: {e}"),
    })
}

/// Prints the index of each of its arguments that Node refuses in `NODE_OPTIONS` (what
/// `process.allowedNodeEnvironmentFlags` does not have: `has()` reads `--flag=value`, `-r`,
/// underscores for dashes, as Node itself does).
const NODE_OPTIONS_CHECK: &str = r#"
const allowed = process.allowedNodeEnvironmentFlags;
process.argv.slice(1).forEach((flag, i) => { if (!allowed.has(flag)) console.log(i); });
"#;

/// How long the local `node` may take to say which options `NODE_OPTIONS` takes.
const CHECK_LIMIT: Duration = Duration::from_secs(10);

/// Of `flags` (Node options, each with its value if any), the indexes of those Node refuses in
/// `NODE_OPTIONS`, as the `node` on the app's `PATH` says (so its version decides, not a list
/// kept here); `None` when no node answers. Node is asked without the caller's own
/// `NODE_OPTIONS`, which could keep it from starting.
pub(crate) fn refused_in_node_options(flags: &[&str], ctx: &LoadContext) -> Option<Vec<usize>> {
    let node = crate::paths::which("node", &ctx.path_var())?;
    let mut command = Command::new(node);
    command
        .arg("-e")
        .arg(NODE_OPTIONS_CHECK)
        .arg("--")
        .args(flags)
        .stdin(Stdio::null())
        .env_remove("NODE_OPTIONS");
    if ctx.cwd.is_dir() {
        command.current_dir(&ctx.cwd);
    }
    let output = output_within(command, CHECK_LIMIT, "NODE_OPTIONS").ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().parse().ok())
        .collect()
}

/// Run `command` to its end and collect its output, within `limit` for all of it: Node's exit
/// and the end of its output. It runs in a process group of its own, which is killed (SIGKILL)
/// once Node has exited (whatever the file started is no part of reading it: a child left
/// holding Node's stdout would otherwise keep the output open for ever) or when the limit has
/// passed.
fn output_within(mut command: Command, limit: Duration, file: &str) -> Result<Output, ConfigError> {
    use std::os::unix::process::CommandExt;
    let cannot_run = |e: std::io::Error| ConfigError::Script {
        file: file.into(),
        message: format!("cannot run node: {e}"),
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(cannot_run)?;
    let group = child.id();
    let end_group = || {
        let _ = kelpie_sys::kill_group(group, kelpie_sys::SIGKILL);
    };
    // Read on threads, so a full pipe never blocks Node while it is waited for; each says when
    // its pipe ended.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = done.send(());
            bytes
        })
    };
    let stdout = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    drop(done_tx);
    let deadline = Instant::now() + limit;
    let too_long = || {
        ConfigError::Script {
        file: file.into(),
        message: format!(
            "it did not finish within {} s and was stopped with every process it started: does its code loop forever, or wait for something that never comes?",
            limit.as_secs_f64()
        ),
    }
    };
    let mut pause = Duration::from_millis(1);
    // Node is collected only after its group was signalled: until then the group's number is
    // still its own, never another's.
    loop {
        if kelpie_sys::child_has_ended(group).map_err(cannot_run)? {
            break;
        }
        if Instant::now() >= deadline {
            end_group();
            let _ = child.wait();
            return Err(too_long());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    // Node has said all it will: what it left in its group goes, closing the pipes it held.
    end_group();
    let status = child.wait().map_err(cannot_run)?;
    for _ in 0..2 {
        if done_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            return Err(too_long());
        }
    }
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Node's stack for a syntax error is the useful `file:line`, the code excerpt and the message,
/// followed by a dozen frames inside Node's module loader that only add noise.
fn without_internal_frames(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| {
            let t = line.trim_start();
            !(t.starts_with("at ") && (t.contains("node:internal") || t.contains("[eval]")))
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path) -> LoadContext {
        LoadContext {
            cwd: dir.to_path_buf(),
            ..LoadContext::default()
        }
    }

    fn have_node() -> bool {
        crate::paths::which("node", &LoadContext::default().path_var()).is_some()
    }

    fn eval_text(name: &str, text: &str) -> Result<Value, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        evaluate(&path, name, &ctx(dir.path()))
    }

    #[test]
    fn node_says_which_options_node_options_refuses() {
        if !have_node() {
            return;
        }
        let flags = [
            "--max-old-space-size=512",
            "--harmony",
            "-r",
            "--no-warnings",
            "--stack-size=100",
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            refused_in_node_options(&flags, &ctx(dir.path())),
            Some(vec![1, 4])
        );
    }

    #[test]
    fn reads_commonjs_esm_default_and_named_exports() {
        if !have_node() {
            kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
            return;
        }
        let cjs =
            eval_text("a.config.js", "module.exports = { apps: [{ name: 'a' }] };").expect("cjs");
        assert_eq!(cjs["apps"][0]["name"], "a");
        let esm = eval_text("b.config.mjs", "export default { apps: [{ name: 'b' }] };")
            .expect("esm default");
        assert_eq!(esm["apps"][0]["name"], "b");
        let named =
            eval_text("c.config.mjs", "export const apps = [{ name: 'c' }];").expect("esm named");
        assert_eq!(named["apps"][0]["name"], "c");
    }

    #[test]
    fn code_that_never_finishes_is_stopped_after_the_limit_naming_it() {
        if !have_node() {
            kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hang.config.js");
        std::fs::write(&path, "while (true) {}\n").expect("write");
        let started = Instant::now();
        let limit = Duration::from_millis(1500);
        let err = run(EVALUATOR, &path, "hang.config.js", &ctx(dir.path()), limit)
            .expect_err("stopped")
            .to_string();
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        assert!(
            err.contains("hang.config.js") && err.contains("did not finish within 1.5 s"),
            "{err}"
        );
        // A timer left open does not delay the read: the export is taken at once.
        std::fs::write(
            &path,
            "setInterval(() => {}, 1000);\nmodule.exports = { apps: [{ name: 't' }] };\n",
        )
        .expect("write");
        let started = Instant::now();
        let value = run(EVALUATOR, &path, "hang.config.js", &ctx(dir.path()), limit)
            .expect("an open timer is fine");
        assert_eq!(value["apps"][0]["name"], "t");
        assert!(started.elapsed() < limit, "{:?}", started.elapsed());
        // A child the file starts, holding Node's output, neither keeps the read waiting nor
        // outlives it.
        let pid_file = dir.path().join("child.pid");
        std::fs::write(
            &path,
            format!(
                "const c = require('child_process').spawn('sleep', ['60'], {{ stdio: 'inherit' }});\n\
                 require('fs').writeFileSync({:?}, String(c.pid));\n\
                 module.exports = {{ apps: [{{ name: 'c' }}] }};\n",
                pid_file.display().to_string()
            ),
        )
        .expect("write");
        let started = Instant::now();
        let value = run(EVALUATOR, &path, "hang.config.js", &ctx(dir.path()), limit)
            .expect("a child left holding stdout is fine");
        assert_eq!(value["apps"][0]["name"], "c");
        assert!(started.elapsed() < limit, "{:?}", started.elapsed());
        let child: u32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        let gone = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
            })
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone(child) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(child), "the child {child} outlived the evaluation");
    }

    #[test]
    fn syntax_errors_carry_nodes_message_and_location() {
        if !have_node() {
            kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
            return;
        }
        let err = eval_text(
            "bad.config.js",
            "module.exports = {\n  apps: [{ name: 'a' script: 'x' }]\n};\n",
        )
        .expect_err("should fail")
        .to_string();
        assert!(err.contains("bad.config.js:2"), "{err}");
        assert!(err.contains("SyntaxError"), "{err}");
        assert!(!err.contains("node:internal"), "{err}");
    }

    #[test]
    fn a_commonjs_file_in_an_es_module_package_says_to_rename_it() {
        if !have_node() {
            kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
            return;
        }
        // Nest 12's default project: `"type": "module"`, and PM2's usual ecosystem file.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("package.json"), r#"{"type": "module"}"#).expect("write");
        let path = dir.path().join("ecosystem.config.js");
        std::fs::write(&path, "module.exports = { apps: [{ name: 'api' }] };\n").expect("write");
        let err = evaluate(&path, "ecosystem.config.js", &ctx(dir.path()))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("rename it to ecosystem.config.cjs"), "{err}");
        assert!(!err.contains("declares no apps"), "{err}");
        // Renamed, it reads.
        let renamed = dir.path().join("ecosystem.config.cjs");
        std::fs::rename(&path, &renamed).expect("rename");
        let value = evaluate(&renamed, "ecosystem.config.cjs", &ctx(dir.path())).expect("reads");
        assert_eq!(value["apps"][0]["name"], "api");
    }

    #[test]
    fn runtime_errors_are_reported() {
        if !have_node() {
            kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
            return;
        }
        let err = eval_text("t.config.js", "throw new Error('boom');")
            .expect_err("should fail")
            .to_string();
        assert!(err.contains("Error: boom"), "{err}");
    }

    #[test]
    fn missing_node_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ecosystem.config.js");
        std::fs::write(&path, "module.exports = {};").expect("write");
        let mut context = ctx(dir.path());
        context
            .env
            .insert("PATH".into(), dir.path().display().to_string());
        let err = evaluate(&path, "ecosystem.config.js", &context)
            .expect_err("should fail")
            .to_string();
        assert_eq!(
            err,
            "cannot read ecosystem.config.js: evaluating JavaScript config files needs Node.js \
             (`node` was not found in PATH); install Node.js or use a .json, .yaml or .toml file"
        );
    }
}
