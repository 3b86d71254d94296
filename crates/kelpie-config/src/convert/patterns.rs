//! Text that must compile or resolve, checked now rather than when the daemon needs it: a
//! regular expression, globs, a cron expression, a time zone.

use super::{expected, integer, string, ValueError};
use serde_json::Value;

/// A regular expression, checked to compile; kept as written.
pub(crate) fn regex(value: &Value) -> Result<String, ValueError> {
    let pattern = string(value).map_err(|_| expected("a regular expression", value))?;
    match regex::Regex::new(&pattern) {
        Ok(_) => Ok(pattern),
        Err(error) => Err(ValueError::BadPattern {
            what: "a valid regular expression",
            got: super::describe(value),
            reason: regex_problem(&error),
        }),
    }
}

/// The one-line reason of a regex error (its syntax errors span several lines, with a caret
/// under the pattern; the reason is the line starting with `error:`).
fn regex_problem(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error:"))
        .map(str::trim)
        .map(str::to_string)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `ignore_watch`: one glob or a list of them, each checked to compile.
pub(crate) fn globs(value: &Value) -> Result<Vec<String>, ValueError> {
    let one = |item: &Value| match item {
        Value::String(s) if !s.trim().is_empty() => {
            let pattern = s.trim();
            globset::Glob::new(pattern)
                .map(|_| pattern.to_string())
                .map_err(|e| ValueError::BadPattern {
                    what: "a valid glob",
                    got: super::describe(item),
                    reason: e.kind().to_string(),
                })
        }
        other => Err(expected("a glob such as \"*.log\" or \"tmp/**\"", other)),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::String(_) => one(value).map(|glob| vec![glob]),
        other => Err(expected("a glob or a list of globs", other)),
    }
}

/// `cron_restart`: a cron expression, checked by the parser the daemon uses. `0` (number or
/// string) means none, as in PM2.
pub(crate) fn cron(value: &Value) -> Result<Option<String>, ValueError> {
    match value {
        Value::Number(_) if integer(value) == Some(0) => Ok(None),
        Value::String(s) if s.trim() == "0" => Ok(None),
        Value::String(s) if !s.trim().is_empty() => {
            let expression = s.trim();
            kelpie_core::cron::CronSchedule::parse(expression)?;
            Ok(Some(expression.to_string()))
        }
        _ => Err(expected(
            "a cron expression such as \"0 3 * * *\" (or 0 for none)",
            value,
        )),
    }
}

/// `cron_timezone`: `UTC`, `local` or an IANA name, checked against the time zone database.
pub(crate) fn time_zone(value: &Value) -> Result<String, ValueError> {
    let name = string(value).map_err(|_| {
        expected(
            "a time zone name such as \"UTC\" or \"Europe/Paris\"",
            value,
        )
    })?;
    let name = name.trim();
    kelpie_core::cron::time_zone(Some(name))?;
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regexes_must_compile() {
        assert_eq!(
            regex(&json!("listening on \\d+")),
            Ok("listening on \\d+".into())
        );
        assert_eq!(
            regex(&json!("(ready")).map_err(|e| e.to_string()),
            Err("expected a valid regular expression, got \"(ready\" (unclosed group)".into())
        );
        assert_eq!(
            regex(&json!("")).map_err(|e| e.to_string()),
            Err("expected a regular expression, got \"\"".into())
        );
        assert!(regex(&json!(true)).is_err());
    }

    #[test]
    fn globs_must_compile() {
        assert_eq!(globs(&json!("*.log")), Ok(vec!["*.log".into()]));
        assert_eq!(
            globs(&json!(["**/tmp/**", "{a,b}.txt"])),
            Ok(vec!["**/tmp/**".into(), "{a,b}.txt".into()])
        );
        assert_eq!(globs(&json!([])), Ok(vec![]));
        assert_eq!(
            globs(&json!(["ok", "{a,b"])).map_err(|e| e.to_string()),
            Err("expected a valid glob, got \"{a,b\" (unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?))".into())
        );
        assert!(globs(&json!("")).is_err());
        assert!(globs(&json!(true)).is_err());
    }

    #[test]
    fn cron_zero_means_none() {
        assert_eq!(cron(&json!(0)), Ok(None));
        assert_eq!(cron(&json!("0")), Ok(None));
        assert_eq!(cron(&json!(" 0 3 * * * ")), Ok(Some("0 3 * * *".into())));
        assert!(cron(&json!("0 3 * *")).is_err());
        assert!(cron(&json!(1)).is_err());
        assert!(cron(&json!(false)).is_err());
    }
}
