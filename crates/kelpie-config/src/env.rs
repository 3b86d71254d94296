//! The `env` and `env_<profile>` sections: objects of variables, stringified like PM2 does;
//! and `env_file`: variables from dotenv files (`NAME=value` lines).

use serde_json::Value;
use std::collections::BTreeMap;

/// Why an `env`-like object is refused. `Display` is the message after "field `env`: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvError {
    /// Not an object.
    #[error("expected an object of environment variables, got {got}")]
    NotAnObject {
        /// The value as written.
        got: String,
    },
    /// A name the OS cannot represent (empty, or holding `=` or NUL).
    #[error("invalid environment variable name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A value holding a NUL byte, which no environment can carry.
    #[error("environment variable {name:?} contains a NUL byte")]
    NulByte {
        /// The variable's name (never its value: it may be a secret).
        name: String,
    },
    /// Longer than the kernel passes.
    #[error(transparent)]
    TooLong(#[from] TooLong),
}

/// A variable longer than Linux passes to a new program ([`MAX_ARG_STRLEN`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable {name:?} is {size} bytes long (NAME=value): Linux passes at most {} KiB in one variable",
    MAX_ARG_STRLEN / 1024
)]
pub(crate) struct TooLong {
    /// The variable's name.
    pub name: String,
    /// `NAME=value` and its NUL, in bytes.
    pub size: usize,
}

/// A dotenv file's line that cannot be read. It names the line, never the value: env files hold
/// secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub(crate) struct DotenvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: DotenvProblem,
}

/// What is wrong with one line of a dotenv file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DotenvProblem {
    /// No `=` (so no value to leak: the line is quoted).
    #[error("expected NAME=value, got {text:?}")]
    NoAssignment {
        /// The line, trimmed.
        text: String,
    },
    /// A name that is not letters, digits, `_` and `.`, not starting with a digit.
    #[error("invalid variable name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// Something other than a comment after a quoted value.
    #[error("{TEXT_AFTER_QUOTE}")]
    TextAfterQuote,
    /// A quoted value whose quote does not close.
    #[error("the value's closing {quote} is missing")]
    Unclosed {
        /// `'` or `"`.
        quote: char,
    },
    /// Longer than the kernel passes.
    #[error(transparent)]
    TooLong(#[from] TooLong),
}

/// The variables of an `env`-like object. Scalars become their text, nested objects and lists
/// their JSON (PM2 JSON-stringifies them so apps can parse them back).
/// The names of `value`'s variables given as a JSON number or boolean (`PORT: 3000`), which
/// `jlist` shows with their type, as PM2 does.
pub(crate) fn typed_names(value: &Value) -> impl Iterator<Item = &String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.is_number() || v.is_boolean())
        .map(|(name, _)| name)
}

pub(crate) fn variables(value: &Value) -> Result<BTreeMap<String, String>, EnvError> {
    let Value::Object(object) = value else {
        return Err(EnvError::NotAnObject {
            got: crate::convert::describe(value),
        });
    };
    let mut out = BTreeMap::new();
    for (name, value) in object {
        // The OS cannot represent these names; failing here beats a spawn error later.
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(EnvError::InvalidName { name: name.clone() });
        }
        let text = match value {
            Value::String(s) => s.clone(),
            // `String(null)` in JavaScript, which is what PM2 ends up passing.
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            nested => nested.to_string(),
        };
        if text.contains('\0') {
            return Err(EnvError::NulByte { name: name.clone() });
        }
        fits_the_kernel(name, &text)?;
        out.insert(name.clone(), text);
    }
    Ok(out)
}

/// The variables of one dotenv file's text, in the format Docker Compose and the dotenv
/// libraries share: `NAME=value` lines; blank lines and lines starting with `#` are skipped; an
/// `export ` before the name is allowed; a value in single quotes is taken as written, one in
/// double quotes understands `\n`, `\t`, `\"` and `\\`; an unquoted value is trimmed and
/// ends at ` #` (a comment). Errors name the line.
pub(crate) fn dotenv(text: &str) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut out = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let at = |problem: DotenvProblem| DotenvError {
            line: index + 1,
            problem,
        };
        let Some((name, value)) = line.split_once('=') else {
            return Err(at(DotenvProblem::NoAssignment {
                text: line.to_string(),
            }));
        };
        let name = name.trim();
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid_name {
            return Err(at(DotenvProblem::InvalidName {
                name: name.to_string(),
            }));
        }
        let value = dotenv_value(value.trim()).map_err(at)?;
        fits_the_kernel(name, &value).map_err(|e| at(e.into()))?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// The longest string Linux passes to a new program (`MAX_ARG_STRLEN`, 32 pages): a variable,
/// `NAME=value` and its NUL, any longer makes the spawn fail with E2BIG.
pub(crate) const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Refuse a variable the kernel cannot pass to the app, when the file is read rather than at
/// every spawn (where it made the app `errored` after a `start` that said "started").
fn fits_the_kernel(name: &str, value: &str) -> Result<(), TooLong> {
    let size = name.len() + 1 + value.len() + 1;
    if size > MAX_ARG_STRLEN {
        return Err(TooLong {
            name: name.to_string(),
            size,
        });
    }
    Ok(())
}

/// Messages about a value never quote it: env files hold secrets.
const TEXT_AFTER_QUOTE: &str = "text after the value's closing quote (only a # comment may follow)";

fn dotenv_value(value: &str) -> Result<String, DotenvProblem> {
    if let Some(quoted) = value.strip_prefix('\'') {
        return match quoted.split_once('\'') {
            Some((inside, rest)) if after_quote_ok(rest) => Ok(inside.to_string()),
            Some(_) => Err(DotenvProblem::TextAfterQuote),
            None => Err(DotenvProblem::Unclosed { quote: '\'' }),
        };
    }
    if let Some(quoted) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' if after_quote_ok(chars.as_str()) => return Ok(out),
                '"' => return Err(DotenvProblem::TextAfterQuote),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other @ ('"' | '\\')) => out.push(other),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err(DotenvProblem::Unclosed { quote: '"' });
    }
    let value = match value.find(" #") {
        Some(comment) => &value[..comment],
        None => value,
    };
    Ok(value.trim_end().to_string())
}

/// After a closing quote: nothing, or a comment.
fn after_quote_ok(rest: &str) -> bool {
    let rest = rest.trim_start();
    rest.is_empty() || rest.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_the_kernel_cannot_pass_is_refused_with_its_size() {
        let fits = "x".repeat(MAX_ARG_STRLEN - "BIG=".len() - 1);
        let env = serde_json::json!({ "BIG": fits });
        assert!(variables(&env).is_ok());
        let env = serde_json::json!({ "BIG": format!("{fits}x") });
        let err = variables(&env).expect_err("too long").to_string();
        assert!(
            err.contains("\"BIG\" is 131073 bytes") && err.contains("128 KiB"),
            "{err}"
        );
        let err = dotenv(&format!("A=1\nBIG={fits}xx\n"))
            .expect_err("too long")
            .to_string();
        assert!(err.starts_with("line 2: "), "{err}");
    }
    use serde_json::json;

    #[test]
    fn values_are_stringified_like_pm2() {
        let env = variables(&json!({
            "S": "x", "N": 3, "F": 1.5, "B": true, "Z": null, "O": {"a": [1, 2]}
        }))
        .expect("env");
        assert_eq!(env["S"], "x");
        assert_eq!(env["N"], "3");
        assert_eq!(env["F"], "1.5");
        assert_eq!(env["B"], "true");
        assert_eq!(env["Z"], "null");
        assert_eq!(env["O"], r#"{"a":[1,2]}"#);
    }

    #[test]
    fn rejects_non_objects_and_bad_names() {
        assert!(variables(&json!(["A=1"]))
            .expect_err("should fail")
            .to_string()
            .contains("expected an object"));
        assert!(variables(&json!({"A=B": "1"}))
            .expect_err("should fail")
            .to_string()
            .contains("invalid"));
    }

    #[test]
    fn dotenv_files_read_like_compose_reads_them() {
        let text = "# the database\n\nexport DB_HOST=db.internal  \nDB_PORT = 5432 # default\nGREETING='hello # not a comment'\nMULTI=\"a\\nb \\\"q\\\"\" # note\nEMPTY=\nURL=http://x/?a=b#frag\n";
        let vars = dotenv(text).expect("parses");
        assert_eq!(vars["DB_HOST"], "db.internal");
        assert_eq!(vars["DB_PORT"], "5432");
        assert_eq!(vars["GREETING"], "hello # not a comment");
        assert_eq!(vars["MULTI"], "a\nb \"q\"");
        assert_eq!(vars["EMPTY"], "");
        assert_eq!(vars["URL"], "http://x/?a=b#frag");
        assert_eq!(vars.len(), 6);
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        assert_eq!(
            dotenv("A=1\nnot a variable\n")
                .expect_err("no =")
                .to_string(),
            "line 2: expected NAME=value, got \"not a variable\""
        );
        assert_eq!(
            dotenv("1A=x").expect_err("digit first").to_string(),
            "line 1: invalid variable name \"1A\""
        );
        assert_eq!(
            dotenv("A='open").expect_err("unclosed").to_string(),
            "line 1: the value's closing ' is missing"
        );
        assert_eq!(
            dotenv("A=\"x\" y")
                .expect_err("text after the quote")
                .to_string(),
            "line 1: text after the value's closing quote (only a # comment may follow)"
        );
    }
}
