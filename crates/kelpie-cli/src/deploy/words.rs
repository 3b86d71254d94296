//! The words after `kelpie deploy`, read as PM2 reads them: `[file] <env> [command…]`.

use std::path::Path;

/// What a deploy command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Prepare the hosts (`setup`).
    Setup,
    /// Deploy a ref: the config's (`update`, or no command) or the one named (`ref <r>`, `<r>`).
    Deploy(Option<String>),
    /// Deploy the n-th previous release again (`revert [n]`).
    Revert(u32),
    /// The short sha of the live release (`curr`, `current`).
    Current,
    /// The sha deployed before the live one (`prev`, `previous`).
    Previous,
    /// The shas deployed, newest first (`list`).
    List,
    /// Run a command in `current` on every host (`exec`, `run`).
    Exec(String),
    /// Remove the lock a killed deploy left (`unlock`).
    Unlock,
}

/// The command line, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Words {
    /// The ecosystem file named, if any.
    pub file: Option<String>,
    /// The env (`production`); `None`: print the usage.
    pub env: Option<String>,
    /// What to do.
    pub action: Action,
}

/// The files PM2's deploy looks for, in its order, when none is named.
pub(super) const DEFAULT_FILES: &[&str] = &[
    "ecosystem.json",
    "ecosystem.yml",
    "ecosystem.yaml",
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.json5",
    "package.json",
];

/// What is wrong with the words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum WordsError {
    /// `revert x`.
    #[error("`revert` takes a number of releases back (got {0:?})")]
    RevertCount(String),
    /// `exec` alone.
    #[error("`exec` needs a command to run")]
    ExecWithoutCommand,
    /// `ref` alone.
    #[error("`ref` needs a ref to deploy")]
    RefWithoutName,
    /// A word after a complete command.
    #[error("unexpected word {0:?} after the command")]
    Extra(String),
}

/// Read the words; an error says what is wrong with them.
pub(super) fn parse(words: &[String]) -> Result<Words, WordsError> {
    let mut words = words.iter().map(String::as_str).peekable();
    let file = words
        .next_if(|word| is_config_file(word))
        .map(str::to_string);
    let env = words.next().map(str::to_string);
    let action = match words.next() {
        None | Some("update") => Action::Deploy(None),
        Some("setup") => Action::Setup,
        Some("curr" | "current") => Action::Current,
        Some("prev" | "previous") => Action::Previous,
        Some("list") => Action::List,
        Some("unlock") => Action::Unlock,
        Some("revert") => match words.next() {
            None => Action::Revert(1),
            Some(n) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => Action::Revert(n),
                _ => return Err(WordsError::RevertCount(n.to_string())),
            },
        },
        Some("exec" | "run") => {
            let command: Vec<&str> = words.by_ref().collect();
            if command.is_empty() {
                return Err(WordsError::ExecWithoutCommand);
            }
            Action::Exec(command.join(" "))
        }
        Some("ref") => match words.next() {
            Some(git_ref) => Action::Deploy(Some(git_ref.to_string())),
            None => return Err(WordsError::RefWithoutName),
        },
        Some(git_ref) => Action::Deploy(Some(git_ref.to_string())),
    };
    if let Some(extra) = words.next() {
        return Err(WordsError::Extra(extra.to_string()));
    }
    Ok(Words { file, env, action })
}

/// PM2's test for a config file's name (`Common.isConfigFile`), and Kelpie's formats.
pub(super) fn is_config_file(word: &str) -> bool {
    let name = Path::new(word)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(word);
    [
        ".json", ".json5", ".yml", ".yaml", ".toml", ".js", ".cjs", ".mjs",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        || kelpie_config::is_ecosystem_file(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Result<Words, WordsError> {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&words)
    }

    #[test]
    fn pm2s_commands() {
        let cases = [
            ("production", None, Action::Deploy(None)),
            ("production update", None, Action::Deploy(None)),
            (
                "eco.config.js production setup",
                Some("eco.config.js"),
                Action::Setup,
            ),
            ("production revert", None, Action::Revert(1)),
            ("production revert 2", None, Action::Revert(2)),
            ("production curr", None, Action::Current),
            ("production previous", None, Action::Previous),
            ("production list", None, Action::List),
            ("production ref v2", None, Action::Deploy(Some("v2".into()))),
            ("production v2", None, Action::Deploy(Some("v2".into()))),
            ("production unlock", None, Action::Unlock),
            (
                "production exec ls -la",
                None,
                Action::Exec("ls -la".into()),
            ),
        ];
        for (line, file, action) in cases {
            let words = read(line).expect("ok");
            assert_eq!(words.file.as_deref(), file, "{line}");
            assert_eq!(words.env.as_deref(), Some("production"), "{line}");
            assert_eq!(words.action, action, "{line}");
        }
        assert_eq!(read("").expect("ok").env, None);
    }

    #[test]
    fn wrong_words_are_named() {
        let error = |line| read(line).expect_err("an error").to_string();
        assert!(error("production revert x").contains("\"x\""));
        assert!(error("production exec").contains("exec"));
        assert!(error("production ref").contains("ref"));
        assert!(error("production v1 v2").contains("\"v2\""));
    }
}
