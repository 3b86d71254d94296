//! Typed readers for field values. Each returns the "expected …, got …" half of a message; the
//! caller prefixes file, app and field. Strings holding numbers are accepted everywhere a number
//! is, because `kelpie start` flags arrive as strings and YAML users quote freely.

use crate::units::{parse_bytes, parse_duration_ms};
use kelpie_core::{ExecMode, ListenAddress, LogType};
use serde_json::Value;

/// A value as shown in messages: strings quoted, other values as JSON.
pub fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The JSON type of a value in words, for shape errors.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expected(what: &str, value: &Value) -> String {
    format!("expected {what}, got {}", describe(value))
}

/// A non-empty string.
pub fn string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(expected("a non-empty string", value)),
    }
}

/// `true`/`false` (or those words as strings).
pub fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(expected("true or false", value)),
    }
}

/// An integer, from a JSON number (integral) or a numeric string.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A whole number ≥ 0 that fits in `u32`.
pub fn count(value: &Value) -> Result<u32, String> {
    integer(value)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| expected("a whole number ≥ 0", value))
}

/// Milliseconds: a number of ms, or a string like `10s`.
pub fn duration(value: &Value) -> Result<u64, String> {
    match value {
        Value::String(s) => parse_duration_ms(s),
        _ => integer(value)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                expected(
                    "a duration like 500ms, 10s, 5m, 1h or a number of milliseconds",
                    value,
                )
            }),
    }
}

/// Bytes: a number of bytes, or a string like `200M`.
pub fn bytes(value: &Value) -> Result<u64, String> {
    match value {
        Value::String(s) => parse_bytes(s),
        _ => integer(value)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| expected("a size like 200M, 1G or a number of bytes", value)),
    }
}

/// A list of words: a string (split like a shell would) or a list of scalars.
pub fn words(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => crate::words::split_words(s),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                other => Err(expected("a list of strings", other)),
            })
            .collect(),
        _ => Err(expected("a string or a list of strings", value)),
    }
}

/// Exit codes: one number or a list of them.
pub fn exit_codes(value: &Value) -> Result<Vec<i32>, String> {
    let one = |v: &Value| {
        integer(v)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| expected("an exit code (a whole number) or a list of them", v))
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|code| vec![code]),
    }
}

/// `instances`: a positive count; `0` and `"max"` mean one per CPU; `-N` means N fewer than the
/// CPUs, at least one (PM2's rules: `-1` is "all CPUs but one").
pub fn instances(value: &Value, cpus: u32) -> Result<u32, String> {
    if value
        .as_str()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("max"))
    {
        return Ok(cpus);
    }
    let n = integer(value).ok_or_else(|| {
        expected(
            "a number of instances, \"max\", or -N for \"all CPUs but N\"",
            value,
        )
    })?;
    match n {
        0 => Ok(cpus),
        n if n < 0 => {
            let fewer = u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX);
            Ok(cpus.saturating_sub(fewer).max(1))
        }
        n => u32::try_from(n)
            .ok()
            .filter(|n| kelpie_core::check_instances(*n).is_ok())
            .ok_or_else(|| {
                expected(
                    &format!("at most {} instances", kelpie_core::MAX_INSTANCES),
                    value,
                )
            }),
    }
}

/// `exec_mode`: `fork`/`fork_mode`/`cluster`/`cluster_mode`.
pub fn exec_mode(value: &Value) -> Result<ExecMode, String> {
    match value.as_str().map(str::trim) {
        Some("fork" | "fork_mode") => Ok(ExecMode::Fork),
        Some("cluster" | "cluster_mode") => Ok(ExecMode::Cluster),
        _ => Err(expected("\"fork\" or \"cluster\"", value)),
    }
}

/// `log_file`: `true` is the default combined file (`Some("")`), `false` none, or a path
/// (resolved by the caller).
pub fn log_file(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Bool(b) => Ok(b.then(String::new)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(String::new())),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(None),
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.clone())),
        _ => Err(expected(
            "a file path, true (the default file) or false",
            value,
        )),
    }
}

/// `log_type`: `raw` or `json`.
pub fn log_type(value: &Value) -> Result<LogType, String> {
    match value
        .as_str()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("raw") => Ok(LogType::Raw),
        Some("json") => Ok(LogType::Json),
        _ => Err(expected("\"raw\" or \"json\"", value)),
    }
}

/// One day in milliseconds: rotation at local midnight.
pub const DAILY_MS: u64 = 86_400_000;
/// One hour in milliseconds.
pub const HOURLY_MS: u64 = 3_600_000;
/// Shortest rotation period accepted (a shorter one is almost certainly a unit mistake).
const MIN_ROTATE_INTERVAL_MS: u64 = 60_000;

/// Rotation period in ms: `daily`, `hourly`, `never` (0), or a duration of at least one minute
/// (`6h`, `30m`, a number of ms; `0` also means never).
pub fn rotate_interval(value: &Value) -> Result<u64, String> {
    let ms = match value.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("daily") => DAILY_MS,
        Some("hourly") => HOURLY_MS,
        Some("never") => 0,
        _ => duration(value).map_err(|_| {
            expected(
                "\"daily\", \"hourly\", \"never\" or a duration like 6h, 30m or a number of milliseconds",
                value,
            )
        })?,
    };
    if ms != 0 && ms < MIN_ROTATE_INTERVAL_MS {
        return Err(format!(
            "expected at least 1 minute (or \"never\"), got {}",
            describe(value)
        ));
    }
    Ok(ms)
}

/// A TCP port, 1 to 65535.
pub fn port(value: &Value) -> Result<u16, String> {
    integer(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| expected("a port number between 1 and 65535", value))
}

/// What `port` accepts, for messages.
const LISTEN_FORMS: &str =
    "a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:/run/app.sock)";

/// `port`: a port number, or a string read by [`ListenAddress::parse`] (`3000`,
/// `127.0.0.1:3000`, `[::1]:3000`, `unix:/run/app.sock`, `/run/app.sock`).
pub fn listen(value: &Value) -> Result<ListenAddress, String> {
    match value {
        Value::String(s) => ListenAddress::parse(s).map_err(|_| expected(LISTEN_FORMS, value)),
        Value::Number(_) => port(value).map(|port| ListenAddress::Tcp { host: None, port }),
        _ => Err(expected(LISTEN_FORMS, value)),
    }
}

/// The name of an environment variable: a letter or `_`, then letters, digits or `_`.
pub fn env_var_name(value: &Value) -> Result<String, String> {
    let name = value.as_str().map(str::trim).unwrap_or_default();
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(expected(
            "an environment variable name (letters, digits and _, not starting with a digit)",
            value,
        ))
    }
}

/// A regular expression, checked to compile; kept as written.
pub fn regex(value: &Value) -> Result<String, String> {
    let pattern = string(value).map_err(|_| expected("a regular expression", value))?;
    match regex::Regex::new(&pattern) {
        Ok(_) => Ok(pattern),
        Err(error) => Err(format!(
            "{} ({})",
            expected("a valid regular expression", value),
            regex_problem(&error)
        )),
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

/// `max_cpu`: a percentage of one core, `80`, `"80%"` or `"150"` (two cores are 200), from 1
/// to 100 × the CPUs available.
pub fn cpu_percent(value: &Value, cpus: u32) -> Result<u32, String> {
    let max = cpus.max(1).saturating_mul(100);
    let number = match value {
        Value::String(s) => {
            let s = s.trim();
            Value::from(s.strip_suffix('%').unwrap_or(s).trim())
        }
        other => other.clone(),
    };
    integer(&number)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            expected(
                &format!(
                    "a CPU percentage from 1 to {max} (100 is one core; this machine has {} CPUs)",
                    cpus.max(1)
                ),
                value,
            )
        })
}

/// Most processes `max_processes` accepts: Linux's own limit on pids (`pid_max`'s maximum).
pub const MAX_PROCESSES: u32 = 4_194_304;

/// `max_processes`: a whole number of processes from 1 to [`MAX_PROCESSES`], as a number or a
/// string.
pub fn max_processes(value: &Value) -> Result<u32, String> {
    let number = match value {
        Value::String(s) => Value::from(s.trim()),
        other => other.clone(),
    };
    integer(&number)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=MAX_PROCESSES).contains(n))
        .ok_or_else(|| {
            expected(
                &format!("a number of processes from 1 to {MAX_PROCESSES}"),
                value,
            )
        })
}

/// A [`duration`] of at least `min_ms`; `min` says it in words for the message.
pub fn duration_at_least(value: &Value, min_ms: u64, min: &str) -> Result<u64, String> {
    let ms = duration(value)?;
    if ms < min_ms {
        return Err(format!("expected at least {min}, got {}", describe(value)));
    }
    Ok(ms)
}

/// `nice`: -20 (highest priority) to 19 (lowest), as `nice(1)`.
pub fn nice(value: &Value) -> Result<i32, String> {
    integer(value)
        .filter(|n| (-20..=19).contains(n))
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| {
            expected(
                "a nice value from -20 (highest priority) to 19 (lowest)",
                value,
            )
        })
}

/// `uid`/`gid`: a name or a number, kept as text. Whether it exists is the daemon's check (it
/// is the one that switches to it, maybe on another machine's user database).
pub fn account(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) if !s.trim().is_empty() && !s.trim().contains(char::is_whitespace) => {
            Ok(s.trim().to_string())
        }
        Value::Number(_) => integer(value)
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| n.to_string())
            .ok_or_else(|| expected(what, value)),
        _ => Err(expected(what, value)),
    }
}

/// `cron_restart`: a cron expression, checked by the parser the daemon uses. `0` (number or
/// string) means none, as in PM2.
pub fn cron(value: &Value) -> Result<Option<String>, String> {
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
pub fn time_zone(value: &Value) -> Result<String, String> {
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

/// `watch`: `true` (the app's directory, returned as `.`), `false` (nothing), a path or a list
/// of paths, as written: the caller resolves them against the app's cwd.
pub fn watch(value: &Value) -> Result<Vec<String>, String> {
    let what = "true, false, a path or a list of paths";
    match value {
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(vec![".".to_string()]),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Vec::new()),
        Value::Bool(true) => Ok(vec![".".to_string()]),
        Value::Bool(false) => Ok(Vec::new()),
        Value::String(s) if !s.trim().is_empty() => Ok(vec![s.trim().to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(expected("a list of paths", other)),
            })
            .collect(),
        _ => Err(expected(what, value)),
    }
}

/// `ignore_watch`: one glob or a list of them, each checked to compile.
pub fn globs(value: &Value) -> Result<Vec<String>, String> {
    let one = |item: &Value| match item {
        Value::String(s) if !s.trim().is_empty() => {
            let pattern = s.trim();
            globset::Glob::new(pattern)
                .map(|_| pattern.to_string())
                .map_err(|e| format!("{} ({})", expected("a valid glob", item), e.kind()))
        }
        other => Err(expected("a glob such as \"*.log\" or \"tmp/**\"", other)),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::String(_) => one(value).map(|glob| vec![glob]),
        other => Err(expected("a glob or a list of globs", other)),
    }
}

/// `watchdog`: like systemd's `WatchdogSec`, a bare number is SECONDS (`30`, `"1.5"`), unlike
/// every other duration field; with a unit it reads as they do (`30s`, `1m`, `1500ms`). At least
/// one second.
pub fn watchdog(value: &Value) -> Result<u64, String> {
    let bad = || {
        expected(
            "a duration like 30s, 1m or a number of seconds (not milliseconds)",
            value,
        )
    };
    let seconds = |s: f64| {
        (0.0..1e12)
            .contains(&s)
            .then(|| (s * 1000.0).round() as u64)
    };
    let ms = match value {
        Value::Number(n) => n.as_f64().and_then(seconds),
        Value::String(s) => {
            let t = s.trim();
            let plain = !t.is_empty()
                && t.bytes().any(|b| b.is_ascii_digit())
                && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if plain {
                t.parse::<f64>().ok().and_then(seconds)
            } else {
                parse_duration_ms(t).ok()
            }
        }
        _ => None,
    }
    .ok_or_else(bad)?;
    if ms < 1000 {
        return Err(format!(
            "expected at least 1 second, got {}",
            describe(value)
        ));
    }
    Ok(ms)
}

/// `depends_on`: an app name or a list of them; repeated names count once.
pub fn app_names(value: &Value) -> Result<Vec<String>, String> {
    let one = |item: &Value| match item {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        other => Err(expected("an app name or a list of app names", other)),
    };
    let names: Vec<String> = match value {
        Value::Array(items) => items.iter().map(one).collect::<Result<_, _>>()?,
        other => vec![one(other)?],
    };
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

/// An HTTP status code, 100 to 599.
pub fn http_status(value: &Value) -> Result<u16, String> {
    integer(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .ok_or_else(|| expected("an HTTP status code from 100 to 599", value))
}

/// A whole number ≥ 1 that fits in `u32`.
pub fn positive_count(value: &Value) -> Result<u32, String> {
    integer(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| expected("a whole number ≥ 1", value))
}

/// Signals that terminate a process by default. Others (`SIGCHLD`, `SIGCONT`, `SIGSTOP`, …) would
/// never stop the app and always end in SIGKILL after `kill_timeout`, so they are refused.
const STOP_SIGNALS: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A stop signal name; `TERM`, `sigterm` and `SIGTERM` all give `SIGTERM`.
pub fn signal(value: &Value) -> Result<String, String> {
    let refuse = || {
        format!(
            "expected a signal name such as SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL, got {}",
            describe(value)
        )
    };
    let upper = value
        .as_str()
        .ok_or_else(refuse)?
        .trim()
        .to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    STOP_SIGNALS
        .iter()
        .find(|s| **s == name)
        .map(|s| s.to_string())
        .ok_or_else(refuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_accept_numeric_strings() {
        assert_eq!(count(&json!(5)), Ok(5));
        assert_eq!(count(&json!("7")), Ok(7));
        assert_eq!(count(&json!(3.0)), Ok(3));
        assert!(count(&json!(-1)).is_err());
        assert!(count(&json!(1.5)).is_err());
        assert!(count(&json!("x"))
            .expect_err("should fail")
            .contains("got \"x\""));
    }

    #[test]
    fn durations_and_bytes_take_numbers_or_units() {
        assert_eq!(duration(&json!(3000)), Ok(3000));
        assert_eq!(duration(&json!("3s")), Ok(3000));
        assert!(duration(&json!(-5)).is_err());
        assert_eq!(bytes(&json!(1024)), Ok(1024));
        assert_eq!(bytes(&json!("200M")), Ok(200 << 20));
        assert_eq!(
            bytes(&json!("lots")).expect_err("should fail"),
            "expected a size like 200M, 1G or a number of bytes, got \"lots\""
        );
        assert!(bytes(&json!(true)).is_err());
    }

    #[test]
    fn words_split_strings_and_stringify_lists() {
        assert_eq!(
            words(&json!("--a 'b c'")),
            Ok(vec!["--a".into(), "b c".into()])
        );
        assert_eq!(
            words(&json!(["--port", 80, true])),
            Ok(vec!["--port".into(), "80".into(), "true".into()])
        );
        assert!(words(&json!({"a": 1})).is_err());
        assert!(words(&json!([["nested"]])).is_err());
    }

    #[test]
    fn exit_codes_take_one_or_many() {
        assert_eq!(exit_codes(&json!(0)), Ok(vec![0]));
        assert_eq!(exit_codes(&json!([0, 2, "3"])), Ok(vec![0, 2, 3]));
        assert!(exit_codes(&json!(["x"])).is_err());
    }

    #[test]
    fn instances_follow_pm2_rules() {
        assert_eq!(instances(&json!(4), 8), Ok(4));
        assert_eq!(instances(&json!("max"), 8), Ok(8));
        assert_eq!(instances(&json!("MAX"), 8), Ok(8));
        assert_eq!(instances(&json!(0), 8), Ok(8));
        assert_eq!(instances(&json!(-1), 8), Ok(7));
        assert_eq!(instances(&json!(9999), 8), Ok(9999));
        assert!(instances(&json!(10_000), 8).is_err());
        assert!(instances(&json!(4_000_000_000u64), 8).is_err());
        assert_eq!(instances(&json!("-1"), 8), Ok(7));
        assert_eq!(instances(&json!(-1), 1), Ok(1));
        assert_eq!(instances(&json!(-2), 8), Ok(6));
        assert_eq!(instances(&json!(-20), 8), Ok(1));
        assert_eq!(instances(&json!("3"), 8), Ok(3));
        assert!(instances(&json!("many"), 8).is_err());
    }

    #[test]
    fn exec_modes_accept_pm2_spellings() {
        assert_eq!(exec_mode(&json!("fork")), Ok(ExecMode::Fork));
        assert_eq!(exec_mode(&json!("fork_mode")), Ok(ExecMode::Fork));
        assert_eq!(exec_mode(&json!("cluster")), Ok(ExecMode::Cluster));
        assert_eq!(exec_mode(&json!("cluster_mode")), Ok(ExecMode::Cluster));
        assert!(exec_mode(&json!("threads")).is_err());
    }

    #[test]
    fn signals_are_normalised_and_validated() {
        assert_eq!(signal(&json!("SIGTERM")), Ok("SIGTERM".into()));
        assert_eq!(signal(&json!("TERM")), Ok("SIGTERM".into()));
        assert_eq!(signal(&json!("sigusr2")), Ok("SIGUSR2".into()));
        assert!(signal(&json!("SIGCONT")).is_err());
        assert!(signal(&json!("NOPE"))
            .expect_err("should fail")
            .contains("SIGINT"));
        assert!(signal(&json!(15)).is_err());
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(port(&json!(8080)), Ok(8080));
        assert_eq!(port(&json!("3000")), Ok(3000));
        assert!(port(&json!(0)).is_err());
        assert!(port(&json!(70000)).is_err());
    }

    #[test]
    fn listen_addresses_take_numbers_and_strings() {
        let tcp = |host: Option<&str>, port| ListenAddress::Tcp {
            host: host.map(str::to_string),
            port,
        };
        assert_eq!(listen(&json!(3000)), Ok(tcp(None, 3000)));
        assert_eq!(listen(&json!("3000")), Ok(tcp(None, 3000)));
        assert_eq!(
            listen(&json!("127.0.0.1:80")),
            Ok(tcp(Some("127.0.0.1"), 80))
        );
        assert_eq!(listen(&json!("[::1]:80")), Ok(tcp(Some("::1"), 80)));
        let unix = ListenAddress::Unix {
            path: "/run/a.sock".into(),
        };
        assert_eq!(listen(&json!("unix:/run/a.sock")), Ok(unix.clone()));
        assert_eq!(listen(&json!("/run/a.sock")), Ok(unix));
        assert_eq!(
            listen(&json!(0)),
            Err("expected a port number between 1 and 65535, got 0".into())
        );
        assert_eq!(
            listen(&json!("web:x")),
            Err(format!("expected {LISTEN_FORMS}, got \"web:x\""))
        );
        assert!(listen(&json!("unix:a.sock")).is_err());
        assert!(listen(&json!(true)).is_err());
    }

    #[test]
    fn env_var_names_are_checked() {
        assert_eq!(env_var_name(&json!("PORT")), Ok("PORT".into()));
        assert_eq!(env_var_name(&json!("_x1")), Ok("_x1".into()));
        assert_eq!(env_var_name(&json!(" INST ")), Ok("INST".into()));
        for bad in [json!(""), json!("1X"), json!("A-B"), json!("A=B"), json!(3)] {
            assert!(env_var_name(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regexes_must_compile() {
        assert_eq!(
            regex(&json!("listening on \\d+")),
            Ok("listening on \\d+".into())
        );
        assert_eq!(
            regex(&json!("(ready")),
            Err("expected a valid regular expression, got \"(ready\" (unclosed group)".into())
        );
        assert_eq!(
            regex(&json!("")),
            Err("expected a regular expression, got \"\"".into())
        );
        assert!(regex(&json!(true)).is_err());
    }

    #[test]
    fn log_files_take_paths_or_booleans() {
        assert_eq!(log_file(&json!(true)), Ok(Some(String::new())));
        assert_eq!(log_file(&json!("true")), Ok(Some(String::new())));
        assert_eq!(log_file(&json!(false)), Ok(None));
        assert_eq!(log_file(&json!("FALSE")), Ok(None));
        assert_eq!(log_file(&json!("a.log")), Ok(Some("a.log".into())));
        assert_eq!(
            log_file(&json!("")),
            Err("expected a file path, true (the default file) or false, got \"\"".into())
        );
        assert!(log_file(&json!(1)).is_err());
    }

    #[test]
    fn log_types_are_raw_or_json() {
        assert_eq!(log_type(&json!("json")), Ok(LogType::Json));
        assert_eq!(log_type(&json!(" JSON ")), Ok(LogType::Json));
        assert_eq!(log_type(&json!("raw")), Ok(LogType::Raw));
        assert_eq!(
            log_type(&json!("xml")),
            Err("expected \"raw\" or \"json\", got \"xml\"".into())
        );
        assert!(log_type(&json!(true)).is_err());
    }

    #[test]
    fn rotate_intervals_take_words_and_durations() {
        assert_eq!(rotate_interval(&json!("daily")), Ok(DAILY_MS));
        assert_eq!(rotate_interval(&json!("Hourly")), Ok(HOURLY_MS));
        assert_eq!(rotate_interval(&json!("never")), Ok(0));
        assert_eq!(rotate_interval(&json!(0)), Ok(0));
        assert_eq!(rotate_interval(&json!("0")), Ok(0));
        assert_eq!(rotate_interval(&json!("6h")), Ok(6 * HOURLY_MS));
        assert_eq!(rotate_interval(&json!("1m")), Ok(60_000));
        assert_eq!(rotate_interval(&json!(120_000)), Ok(120_000));
        assert_eq!(
            rotate_interval(&json!("30s")),
            Err("expected at least 1 minute (or \"never\"), got \"30s\"".into())
        );
        assert!(rotate_interval(&json!(500)).is_err());
        assert_eq!(
            rotate_interval(&json!("weekly")),
            Err("expected \"daily\", \"hourly\", \"never\" or a duration like 6h, 30m or a number of milliseconds, got \"weekly\"".into())
        );
        assert!(rotate_interval(&json!(-1)).is_err());
    }

    #[test]
    fn cpu_percentages_go_up_to_every_core() {
        assert_eq!(cpu_percent(&json!(80), 4), Ok(80));
        assert_eq!(cpu_percent(&json!("80%"), 4), Ok(80));
        assert_eq!(cpu_percent(&json!(" 150 "), 4), Ok(150));
        assert_eq!(cpu_percent(&json!("400"), 4), Ok(400));
        assert_eq!(
            cpu_percent(&json!("401%"), 4),
            Err("expected a CPU percentage from 1 to 400 (100 is one core; this machine has 4 CPUs), got \"401%\"".into())
        );
        for bad in [json!(0), json!(-5), json!("%"), json!("80.5%"), json!(true)] {
            assert!(cpu_percent(&bad, 4).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_processes_is_a_positive_count() {
        assert_eq!(max_processes(&json!(64)), Ok(64));
        assert_eq!(max_processes(&json!(" 200 ")), Ok(200));
        assert_eq!(max_processes(&json!(MAX_PROCESSES)), Ok(MAX_PROCESSES));
        assert_eq!(
            max_processes(&json!(0)),
            Err("expected a number of processes from 1 to 4194304, got 0".into())
        );
        for bad in [
            json!(-1),
            json!("ten"),
            json!(1.5),
            json!(true),
            json!(4_194_305),
        ] {
            assert!(max_processes(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nice_values_and_accounts() {
        assert_eq!(nice(&json!(-20)), Ok(-20));
        assert_eq!(nice(&json!("19")), Ok(19));
        assert!(nice(&json!(20)).is_err());
        assert!(nice(&json!(-21)).is_err());
        assert_eq!(account(&json!(" www "), "a user"), Ok("www".into()));
        assert_eq!(account(&json!(0), "a user"), Ok("0".into()));
        assert_eq!(
            account(&json!("a b"), "a user name or uid"),
            Err("expected a user name or uid, got \"a b\"".into())
        );
        assert!(account(&json!(-1), "a user").is_err());
        assert!(account(&json!(1.5), "a user").is_err());
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

    #[test]
    fn watch_takes_booleans_paths_and_lists() {
        assert_eq!(watch(&json!(true)), Ok(vec![".".into()]));
        assert_eq!(watch(&json!("TRUE")), Ok(vec![".".into()]));
        assert_eq!(watch(&json!(false)), Ok(vec![]));
        assert_eq!(watch(&json!(" src ")), Ok(vec!["src".into()]));
        assert_eq!(watch(&json!(["a", "b"])), Ok(vec!["a".into(), "b".into()]));
        assert_eq!(watch(&json!([])), Ok(vec![]));
        assert!(watch(&json!([true])).is_err());
        assert!(watch(&json!({})).is_err());
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
            globs(&json!(["ok", "{a,b"])),
            Err("expected a valid glob, got \"{a,b\" (unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?))".into())
        );
        assert!(globs(&json!("")).is_err());
        assert!(globs(&json!(true)).is_err());
    }

    #[test]
    fn watchdog_bare_numbers_are_seconds() {
        assert_eq!(watchdog(&json!(30)), Ok(30_000));
        assert_eq!(watchdog(&json!(1)), Ok(1000));
        assert_eq!(watchdog(&json!(0.5 + 1.0)), Ok(1500));
        assert_eq!(watchdog(&json!("45")), Ok(45_000));
        assert_eq!(watchdog(&json!(" 2.25 ")), Ok(2250));
        assert_eq!(watchdog(&json!("1m")), Ok(60_000));
        assert_eq!(watchdog(&json!("1000ms")), Ok(1000));
        assert_eq!(
            watchdog(&json!("999ms")),
            Err("expected at least 1 second, got \"999ms\"".into())
        );
        assert_eq!(
            watchdog(&json!(0.5)),
            Err("expected at least 1 second, got 0.5".into())
        );
        for bad in [json!("."), json!("1e3"), json!(-1), json!(""), json!(null)] {
            assert!(watchdog(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_names_take_one_or_many_once_each() {
        assert_eq!(app_names(&json!("db")), Ok(vec!["db".into()]));
        assert_eq!(
            app_names(&json!(["db", " cache ", "db"])),
            Ok(vec!["db".into(), "cache".into()])
        );
        assert_eq!(app_names(&json!([])), Ok(vec![]));
        assert!(app_names(&json!("")).is_err());
        assert!(app_names(&json!([1])).is_err());
    }

    #[test]
    fn statuses_counts_and_minimum_durations() {
        assert_eq!(http_status(&json!(204)), Ok(204));
        assert_eq!(http_status(&json!("100")), Ok(100));
        assert!(http_status(&json!(99)).is_err());
        assert!(http_status(&json!(600)).is_err());
        assert_eq!(positive_count(&json!(1)), Ok(1));
        assert!(positive_count(&json!(0)).is_err());
        assert_eq!(duration_at_least(&json!("2s"), 1000, "1 second"), Ok(2000));
        assert_eq!(
            duration_at_least(&json!(999), 1000, "1 second"),
            Err("expected at least 1 second, got 999".into())
        );
    }

    #[test]
    fn booleans_and_strings() {
        assert_eq!(boolean(&json!(true)), Ok(true));
        assert_eq!(boolean(&json!("false")), Ok(false));
        assert!(boolean(&json!(1)).is_err());
        assert!(string(&json!("")).is_err());
        assert_eq!(string(&json!("x")), Ok("x".into()));
    }
}
