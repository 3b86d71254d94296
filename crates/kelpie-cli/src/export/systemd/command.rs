//! The command and values as systemd reads them: the program's absolute path, the words of
//! `ExecStart=`, the variables of `Environment=`.

use super::PathLookup;
use kelpie_core::AppSpec;

/// The command line with absolute paths: systemd runs `ExecStart=` without a shell or the
/// user's `PATH`.
pub(super) fn exec_argv(
    app: &AppSpec,
    lookup: &PathLookup,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let mut argv = app.command_line();
    if let Some(first) = argv.first_mut() {
        if !first.starts_with('/') {
            match lookup(first) {
                Some(path) => *first = path,
                None => warnings.push(format!(
                    "app `{}`: `{first}` is not in PATH here; ExecStart= keeps the bare name, which systemd looks up in its own fixed path",
                    app.name
                )),
            }
        }
    }
    argv
}

/// Programs that run Node code: a command line starting with one of them may be a Node server
/// that needs Kelpie's shim to take its port.
pub(super) const PROGRAMS_RUNNING_NODE: &[&str] = &[
    "node", "nodejs", "npm", "npx", "yarn", "pnpm", "ts-node", "tsx",
];

pub(super) fn valid_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `%` starts a specifier in every unit setting.
pub(super) fn env_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out
}

/// One word of `ExecStart=`: bare when it is plain, else double-quoted with C escapes. `$` is
/// doubled everywhere, since `$NAME` is expanded from the environment.
pub(super) fn exec_arg(arg: &str) -> String {
    if arg == ";" {
        return "\\;".to_string();
    }
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c));
    if plain {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '$' => out.push_str("$$"),
            other => out.push_str(&env_escape(&other.to_string())),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words_are_quoted_only_when_needed() {
        assert_eq!(exec_arg("/a/b.js"), "/a/b.js");
        assert_eq!(exec_arg("a b"), "\"a b\"");
        assert_eq!(exec_arg(""), "\"\"");
        assert_eq!(exec_arg("x\\y\"$"), "\"x\\\\y\\\"$$\"");
        assert_eq!(exec_arg(";"), "\\;");
    }
}
