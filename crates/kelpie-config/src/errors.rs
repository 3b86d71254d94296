//! Everything that can go wrong while turning a file or flags into specs.

/// Why a configuration could not be loaded. `Display` is a complete message for the user.
/// Non-exhaustive: new kinds of failure may be told apart later.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read {file}: {cause}")]
    Read {
        /// The file as the user named it.
        file: String,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// The name does not end in an extension Kelpie knows how to read.
    #[error(
        "cannot read {file}: unknown ecosystem file type; use a .json, .yaml, .yml, .toml, .js, .cjs or .mjs file"
    )]
    UnknownFormat {
        /// The file as the user named it.
        file: String,
    },
    /// JSON, YAML or TOML that does not parse.
    #[error("{}", at(file, *location, message))]
    Syntax {
        /// The file as the user named it.
        file: String,
        /// 1-based line and column, when the parser knows them.
        location: Option<(usize, usize)>,
        /// The parser's message, without its own position suffix.
        message: String,
    },
    /// A JavaScript config needs `node`, which is not installed.
    #[error(
        "cannot read {file}: evaluating JavaScript config files needs Node.js (`node` was not found in PATH); install Node.js or use a .json, .yaml or .toml file"
    )]
    NodeNotFound {
        /// The file as the user named it.
        file: String,
    },
    /// A TypeScript ecosystem file, and nothing here that reads TypeScript.
    #[error(
        "cannot read {file}: a TypeScript ecosystem file needs Node.js 22.6 or later (type stripping), Bun or Deno in PATH, or tsx in the project (npm install --save-dev tsx); none was found. Or write it as ecosystem.config.js"
    )]
    NoTypeScript {
        /// The file as the user named it.
        file: String,
    },
    /// `node` ran but the file threw (syntax or runtime error) or printed something unusable.
    #[error("cannot read {file}: Node.js failed to evaluate it:\n{message}")]
    Script {
        /// The file as the user named it.
        file: String,
        /// Node's error, with file:line, trimmed of Node-internal stack frames.
        message: String,
    },
    /// The document parsed but is not an app list.
    #[error("{file}: {problem}")]
    Shape {
        /// The file as the user named it.
        file: String,
        /// What was expected and what was found.
        problem: crate::ShapeError,
    },
    /// One or more apps are invalid; every problem found, one per line.
    #[error("{}", errors.join("\n"))]
    Invalid {
        /// The file as the user named it (`command line` for `kelpie start <script>`).
        file: String,
        /// Complete messages, each naming the file (if any), the app and the field.
        errors: Vec<String>,
    },
    /// Strict mode and warnings: each warning (naming file, app and field), then why they stop
    /// the command.
    #[error(
        "{}\nstrict mode (--strict, or `strict = true` in kelpie.toml) makes these warnings errors: fix them, or start without strict mode",
        warnings.join("\n")
    )]
    Strict {
        /// The warnings, complete messages.
        warnings: Vec<String>,
    },
    /// `--only` named apps the file does not declare.
    #[error(
        "{file}: --only {}: no such app in this file; apps declared: {}",
        quoted(missing),
        quoted(available)
    )]
    UnknownOnly {
        /// The file as the user named it.
        file: String,
        /// Names given to `--only` that were not found.
        missing: Vec<String>,
        /// Names the file declares.
        available: Vec<String>,
    },
}

fn at(file: &str, location: Option<(usize, usize)>, message: &str) -> String {
    match location {
        Some((line, column)) => format!("{file}:{line}:{column}: {message}"),
        None => format!("{file}: {message}"),
    }
}

fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_string();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let err = ConfigError::Syntax {
            file: "ecosystem.json".into(),
            location: Some((3, 15)),
            message: "expected `,` or `}`".into(),
        };
        assert_eq!(err.to_string(), "ecosystem.json:3:15: expected `,` or `}`");
    }

    #[test]
    fn invalid_lists_one_error_per_line() {
        let err = ConfigError::Invalid {
            file: "e.json".into(),
            errors: vec!["e.json: a".into(), "e.json: b".into()],
        };
        assert_eq!(err.to_string(), "e.json: a\ne.json: b");
    }

    #[test]
    fn unknown_only_lists_existing_names() {
        let err = ConfigError::UnknownOnly {
            file: "e.json".into(),
            missing: vec!["web".into()],
            available: vec!["api".into(), "worker".into()],
        };
        assert_eq!(
            err.to_string(),
            "e.json: --only `web`: no such app in this file; apps declared: `api`, `worker`"
        );
    }
}
