//! TypeScript ecosystem files (`ecosystem.config.ts`, `.mts`, `.cts`, PM2 #5884), evaluated by
//! the first runtime here that reads TypeScript: Node with type stripping (22.6 and later),
//! Bun, Deno, or the project's own `tsx`. The file's export is read as a JavaScript file's is.

use crate::errors::ConfigError;
use crate::node::{printed_json, EVAL_LIMIT};
use crate::LoadContext;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Imports the file named last on the command line (Deno: its first argument) and prints its
/// export as JSON: `export default` or `module.exports` (both arrive as `default`), else the
/// named exports. Written for all four evaluators: no CommonJS globals, no top-level await.
const EVALUATOR: &str = r#"
const file = typeof Deno !== 'undefined' ? Deno.args[0] : process.argv[process.argv.length - 1];
import('node:url')
  .then(({ pathToFileURL }) => import(pathToFileURL(file).href))
  .then(async (ns) => {
    let config = await (ns.default !== undefined ? ns.default : Object.assign({}, ns));
    // tsx hands an ES module's default export over as CommonJS would: `{ default: ... }`.
    const keys = config && typeof config === 'object' ? Object.keys(config) : [];
    if (keys.includes('default') && keys.every((k) => k === 'default' || k === '__esModule')) {
      config = await config.default;
    }
    const json = JSON.stringify(config === undefined ? null : config);
    process.stdout.write(json, () => process.exit(0));
  })
  .catch((err) => {
    process.stderr.write(String((err && err.stack) || err) + '\n');
    process.exit(1);
  });
"#;

/// Whether `path` is a TypeScript file by its extension.
pub(crate) fn is_typescript(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "ts" | "mts" | "cts"))
}

/// Evaluate the TypeScript file `abs_path` (named `file` in messages), trying each evaluator
/// in turn; an error naming the ways to read it when none is installed.
pub(crate) fn evaluate(
    abs_path: &Path,
    file: &str,
    ctx: &LoadContext,
) -> Result<Value, ConfigError> {
    let path_var = ctx.path_var();
    let found = |name: &str| crate::paths::which(name, &path_var);
    let run = |program: PathBuf, flags: &[&str]| {
        let mut command = Command::new(program);
        command.args(flags).arg(EVALUATOR).arg(abs_path);
        printed_json(command, file, ctx, EVAL_LIMIT)
    };
    if let Some(node) = found("node").filter(|node| strips_types(node, ctx)) {
        return run(node, &["--experimental-strip-types", "--no-warnings", "-e"]);
    }
    if let Some(bun) = found("bun") {
        return run(bun, &["-e"]);
    }
    if let Some(deno) = found("deno") {
        // `deno eval` runs with every permission, as `node -e` does.
        return run(deno, &["eval"]);
    }
    if let Some(tsx) = project_tsx(abs_path) {
        return run(tsx, &["-e"]);
    }
    Err(ConfigError::NoTypeScript { file: file.into() })
}

/// Whether this Node reads TypeScript (type stripping: 22.6 and later); older ones refuse the
/// flag (`bad option`).
fn strips_types(node: &Path, ctx: &LoadContext) -> bool {
    let mut command = Command::new(node);
    command.args(["--experimental-strip-types", "--no-warnings", "-e", "0"]);
    if !ctx.env.is_empty() {
        command.env_clear().envs(&ctx.env);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The `tsx` the file's project installed (`node_modules/.bin/tsx` in its directory or one
/// above it).
fn project_tsx(abs_path: &Path) -> Option<PathBuf> {
    abs_path
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("node_modules/.bin/tsx"))
        .find(|tsx| tsx.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typescript_files_are_known_by_their_extension() {
        assert!(is_typescript(Path::new("/p/ecosystem.config.ts")));
        assert!(is_typescript(Path::new("/p/ecosystem.config.MTS")));
        assert!(is_typescript(Path::new("/p/ecosystem.config.cts")));
        assert!(!is_typescript(Path::new("/p/ecosystem.config.js")));
    }
}
