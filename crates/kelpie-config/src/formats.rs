//! Recognising ecosystem files by name and parsing JSON, YAML and TOML into one JSON tree.

use crate::errors::ConfigError;
use serde_json::Value;
use std::path::Path;

/// How a file is read, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `.json`, read as JSON5: PM2 evaluates these files as JavaScript object literals, so
    /// unquoted keys, single quotes, trailing commas and comments are accepted.
    Json,
    /// `.yaml` / `.yml`.
    Yaml,
    /// `.toml`.
    Toml,
    /// `.js` / `.cjs` / `.mjs`, evaluated by Node.js; `.ts` / `.cts` / `.mts`, by what reads
    /// TypeScript (see `typescript.rs`).
    JavaScript,
}

/// The format for `path`'s extension, if Kelpie reads it.
pub(crate) fn format_of(path: &Path) -> Option<Format> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        "toml" => Some(Format::Toml),
        "js" | "cjs" | "mjs" | "ts" | "cts" | "mts" => Some(Format::JavaScript),
        _ => None,
    }
}

/// True when `arg` names an ecosystem file rather than a script. Any `.js` is a script unless
/// its name says config (`*.config.js`) or ecosystem (`ecosystem*.js`): PM2 starts
/// `ecosystem.js` as a script, a classic footgun (#4540) that Kelpie avoids.
pub fn is_ecosystem_file(arg: &str) -> bool {
    let Some(name) = Path::new(arg).file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let name = name.to_ascii_lowercase();
    match format_of(Path::new(&name)) {
        Some(Format::Json | Format::Yaml | Format::Toml) => true,
        Some(Format::JavaScript) => {
            let stem = name
                .rsplit_once('.')
                .map_or(name.as_str(), |(stem, _)| stem);
            stem.ends_with(".config") || name.starts_with("ecosystem")
        }
        None => false,
    }
}

/// Parse the text of a JSON, YAML or TOML file. `file` is the name used in messages.
pub(crate) fn parse_text(format: Format, text: &str, file: &str) -> Result<Value, ConfigError> {
    match format {
        Format::Json => parse_json(text, file),
        Format::Yaml => parse_yaml(text, file),
        Format::Toml => parse_toml(text, file),
        Format::JavaScript => Err(ConfigError::UnknownFormat { file: file.into() }),
    }
}

fn parse_json(text: &str, file: &str) -> Result<Value, ConfigError> {
    parse_json_noting(text, file).map(|(value, _)| value)
}

/// Parse a JSON (JSON5) file, with a note for each key given twice in an object (`line 4: key
/// `script` is given twice; the later value is used`).
pub(crate) fn parse_json_noting(
    text: &str,
    file: &str,
) -> Result<(Value, Vec<String>), ConfigError> {
    let (value, duplicates) =
        crate::json5::parse_noting_duplicates(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            location: Some((e.line, e.column)),
            message: e.message,
        })?;
    let notes = duplicates
        .into_iter()
        .map(|d| {
            format!(
                "line {}: key `{}` is given twice in one object; the later value is used (as JavaScript does)",
                d.line, d.key
            )
        })
        .collect();
    Ok((value, notes))
}

/// The deepest nesting of flow collections (`[...]`, `{...}`) a YAML file may have. The YAML
/// parser's time grows with the square of that depth (a 40 KB file of `[[[...` took seconds
/// before it was refused); no ecosystem file comes near it.
const MAX_YAML_FLOW_DEPTH: usize = 64;

/// Where a YAML text nests flow collections deeper than [`MAX_YAML_FLOW_DEPTH`]: one pass,
/// skipping quoted scalars and comments (a quote or `#` counts where YAML starts one: at the
/// start of a line or after a space or an indicator).
fn flow_too_deep(text: &str) -> Option<(usize, usize)> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Plain;
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut previous = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        let starts_token = previous.is_whitespace() || "[{,:-".contains(previous);
        match state {
            In::Plain => match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_YAML_FLOW_DEPTH {
                        return Some((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                '\'' if starts_token => state = In::Single,
                '"' if starts_token => state = In::Double,
                '#' if previous.is_whitespace() => state = In::Comment,
                _ => {}
            },
            In::Single if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    state = In::Plain;
                }
            }
            In::Double if c == '\\' => {
                chars.next();
            }
            In::Double if c == '"' => state = In::Plain,
            In::Comment if c == '\n' => state = In::Plain,
            _ => {}
        }
        if c == '\n' {
            line += 1;
            column = 0;
        }
        previous = c;
    }
    None
}

fn parse_yaml(text: &str, file: &str) -> Result<Value, ConfigError> {
    if let Some(location) = flow_too_deep(text) {
        return Err(ConfigError::Syntax {
            file: file.into(),
            location: Some(location),
            message: format!(
                "collections nested more than {MAX_YAML_FLOW_DEPTH} levels deep (`[[[...`): refused unread"
            ),
        });
    }
    serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.into(),
        location: e.location().map(|l| (l.line(), l.column())),
        message: strip_position(&e.to_string()),
    })
}

fn parse_toml(text: &str, file: &str) -> Result<Value, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.into(),
        location: e.span().map(|span| line_column(text, span.start)),
        message: e.message().trim().to_string(),
    })
}

/// serde_json and serde_norway append " at line L column C"; the position is shown up front instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_string(),
        None => message.to_string(),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // Spans are byte offsets; step back to a character boundary before slicing.
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_yaml_is_refused_in_linear_time_and_quotes_do_not_count() {
        let deep = format!("apps: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let started = std::time::Instant::now();
        let err = parse_text(Format::Yaml, &deep, "deep.yaml").expect_err("refused");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.to_string().contains("nested more than 64 levels"),
            "{err}"
        );
        assert!(err.to_string().contains("deep.yaml:1:71"), "{err}");
        // Brackets in quoted scalars, comments and plain words are text, not nesting.
        let fine = format!(
            "apps:\n  - name: \"{}\"\n    args: '{}' # {}\n    script: it's-{}\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100),
            "x"
        );
        let value = parse_text(Format::Yaml, &fine, "fine.yaml").expect("parses");
        assert_eq!(value["apps"][0]["name"], "[".repeat(100));
        let nested = format!("apps: {}{}\n", "[".repeat(64), "]".repeat(64));
        assert!(parse_text(Format::Yaml, &nested, "ok.yaml").is_ok());
    }

    #[test]
    fn recognises_ecosystem_file_names() {
        for yes in [
            "ecosystem.json",
            "apps.yaml",
            "a/b/apps.yml",
            "kelpie.toml",
            "ecosystem.config.js",
            "pm2.config.cjs",
            "x.config.mjs",
            "ecosystem.js",
            "ecosystem-prod.mjs",
            "ECOSYSTEM.CONFIG.JS",
            "process.json",
        ] {
            assert!(is_ecosystem_file(yes), "{yes}");
        }
        for no in [
            "app.js",
            "server.mjs",
            "main.py",
            "bin/server",
            "config.js.bak",
            "",
        ] {
            assert!(!is_ecosystem_file(no), "{no}");
        }
    }

    #[test]
    fn json_syntax_error_has_line_and_column() {
        let text = "{\n  \"apps\": [\n    {\"name\": \"a\" \"script\": \"x\"}\n  ]\n}";
        let err = parse_text(Format::Json, text, "ecosystem.json").expect_err("should fail");
        assert_eq!(err.to_string(), "ecosystem.json:3:18: expected `,` or `}`");
    }

    #[test]
    fn json_accepts_comments_and_trailing_commas() {
        let text = "// apps\n{\"apps\": [{\"name\": \"a\",},],}";
        let v = parse_text(Format::Json, text, "e.json").expect("parses");
        assert_eq!(v["apps"][0]["name"], "a");
    }

    #[test]
    fn json_files_are_json5_like_pm2_reads_them() {
        let text = "{\n  apps: [{ name: 'api', script: 'app.js', env: { PORT: 3000, }, }],\n}";
        let v = parse_text(Format::Json, text, "e.json").expect("parses");
        assert_eq!(v["apps"][0]["env"]["PORT"], 3000);
        let err = parse_text(
            Format::Json,
            "{\n  apps: [{ name: 'api' script: 'x' }]\n}",
            "e.json",
        )
        .expect_err("should fail");
        assert_eq!(err.to_string(), "e.json:2:24: expected `,` or `}`");
    }

    #[test]
    fn yaml_parses_and_reports_positions() {
        let v = parse_text(
            Format::Yaml,
            "apps:\n  - name: a\n    script: x.js\n",
            "e.yaml",
        )
        .expect("parses");
        assert_eq!(v["apps"][0]["script"], "x.js");
        let err = parse_text(Format::Yaml, "apps:\n  - name: a\n   bad: [\n", "e.yaml")
            .expect_err("should fail")
            .to_string();
        assert!(err.starts_with("e.yaml:3:"), "{err}");
        // The position up front, and the messages serde_yaml gave before serde_norway
        // replaced it (libyaml's own wording, which names the position again, kept as it is).
        for (text, expected) in [
            (
                "apps:\n  - name: a\n   bad: [\n",
                "e.yaml:3:4: did not find expected '-' indicator at line 3 column 4, while parsing a block collection",
            ),
            (
                "apps:\n  - name: \"unterminated\n",
                "e.yaml:3:1: found unexpected end of stream at line 3 column 1, while scanning a quoted scalar",
            ),
            ("apps: [\n\t- name: x\n", "e.yaml:2:2: did not find expected node content"),
            ("apps: &a\n  - *b\n", "e.yaml:2:5: unknown anchor"),
        ] {
            let err = parse_text(Format::Yaml, text, "e.yaml").expect_err(text);
            assert_eq!(err.to_string(), expected, "{text:?}");
        }
    }

    #[test]
    fn toml_parses_and_reports_positions() {
        let v = parse_text(
            Format::Toml,
            "[[apps]]\nname = \"a\"\nscript = \"x.js\"\n",
            "k.toml",
        )
        .expect("parses");
        assert_eq!(v["apps"][0]["name"], "a");
        let err = parse_text(Format::Toml, "[[apps]]\nname = \"a\nscript = 1\n", "k.toml")
            .expect_err("should fail")
            .to_string();
        assert!(err.starts_with("k.toml:2:"), "{err}");
    }
}
