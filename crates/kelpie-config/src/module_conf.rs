//! PM2's configuration store (`kelpie set`, `get`, `unset`, `multiset`, `conf`): a JSON object
//! kept in `<home>/module_conf.json`, the same shape as PM2's `$PM2_HOME/module_conf.json`.
//!
//! Keys are split as PM2 splits them: on `.` when the key has one, else on `:`
//! (`pm2-logrotate:max_size` and `echo.config_var` are both a section and a key in it). Values
//! are stored as the strings they were given.
//!
//! Two sections mean something to Kelpie:
//!
//! - `pm2-logrotate`: the daemon-wide log rotation (see [`log_rotation`]), over `kelpie.toml`'s
//!   `[logs]`. Its values are checked when set.
//! - a section named like an app: its keys go into the app's environment (see [`app_env`]).

mod errors;

pub use errors::{
    ConfKeyError, LogrotateError, MultisetError, StoreError, StoreTextError, UnknownLogrotateKey,
};

use crate::convert;
use crate::daemon_settings::LogDefaults;
use serde_json::{Map, Value};
use std::path::Path;

/// The whole store: sections (objects) and plain top-level values.
pub type ConfStore = Map<String, Value>;

/// The section holding the log rotation settings.
pub const LOGROTATE: &str = "pm2-logrotate";

/// The keys of `pm2-logrotate`, as pm2-logrotate spells them.
pub const LOGROTATE_KEYS: &[&str] = &[
    "max_size",
    "retain",
    "compress",
    "dateFormat",
    "rotateInterval",
    "rotateModule",
    "workerInterval",
    "TZ",
];

/// The parts of a key: split on `.` when it has one, else on `:`; a part in double quotes may
/// hold the separator (`"a.b".c`).
pub fn split_key(key: &str) -> Result<Vec<String>, ConfKeyError> {
    let separator = if key.contains('.') { '.' } else { ':' };
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c == separator && !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    if quoted {
        return Err(ConfKeyError::UnclosedQuote {
            key: key.to_string(),
        });
    }
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(ConfKeyError::EmptyPart {
            key: key.to_string(),
        });
    }
    Ok(parts)
}

/// The value at `key`, if there is one.
pub fn get<'a>(store: &'a ConfStore, key: &str) -> Option<&'a Value> {
    let parts = split_key(key).ok()?;
    let (first, rest) = parts.split_first()?;
    let mut value = store.get(first)?;
    for part in rest {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Store `value` at `key`, making the sections it needs (a plain value in the way is replaced
/// by a section, as PM2 does). `pm2-logrotate` keys are checked first: a bad one changes
/// nothing.
pub fn set(store: &mut ConfStore, key: &str, value: &str) -> Result<(), ConfKeyError> {
    let parts = split_key(key)?;
    check_logrotate(&parts, value)?;
    let Some((last, sections)) = parts.split_last() else {
        return Err(ConfKeyError::Empty {
            key: key.to_string(),
        });
    };
    let mut map = store;
    for section in sections {
        let slot = map
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        map = match slot {
            Value::Object(inner) => inner,
            _ => {
                return Err(ConfKeyError::NotASection {
                    key: key.to_string(),
                    section: section.clone(),
                })
            }
        };
    }
    map.insert(last.clone(), Value::String(value.to_string()));
    Ok(())
}

/// Remove `key` (`all` empties the store, as in PM2). Whether something was removed.
pub fn unset(store: &mut ConfStore, key: &str) -> Result<bool, ConfKeyError> {
    if key == "all" {
        let had = !store.is_empty();
        store.clear();
        return Ok(had);
    }
    let parts = split_key(key)?;
    let Some((last, sections)) = parts.split_last() else {
        return Ok(false);
    };
    let mut map = store;
    for section in sections {
        map = match map.get_mut(section) {
            Some(Value::Object(inner)) => inner,
            _ => return Ok(false),
        };
    }
    Ok(map.remove(last).is_some())
}

/// `multiset "k1 v1 k2 v2"`: pairs of words; a word in double quotes may hold spaces (the
/// quotes are not part of it).
pub fn parse_multiset(serial: &str) -> Result<Vec<(String, String)>, MultisetError> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut quoted = false;
    for c in serial.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(current.take()),
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return Err(MultisetError::UnclosedQuote);
    }
    words.extend(current);
    if words.is_empty() {
        return Err(MultisetError::Empty);
    }
    if words.len() % 2 != 0 {
        return Err(MultisetError::MissingValue {
            key: words.last().cloned().unwrap_or_default(),
        });
    }
    Ok(words
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect())
}

/// Read the store at `path` (a missing file is an empty store).
pub fn load(path: &Path) -> Result<ConfStore, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfStore::new()),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_path_buf(),
                cause: source,
            })
        }
    };
    parse(&text).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// The store in `text` (empty text = an empty store).
pub fn parse(text: &str) -> Result<ConfStore, StoreTextError> {
    if text.trim().is_empty() {
        return Ok(ConfStore::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(store)) => Ok(store),
        Ok(other) => Err(StoreTextError::NotAnObject {
            kind: convert::kind_of(&other),
        }),
        Err(e) => Err(StoreTextError::Json(e)),
    }
}

/// The file's text: indented JSON with a final newline.
pub fn to_text(store: &ConfStore) -> String {
    let mut text = serde_json::to_string_pretty(store).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

/// `base` (kelpie.toml's `[logs]`, or the defaults) with the `pm2-logrotate` keys of the store
/// over it, and what is wrong with the ones that could not be used (they are skipped).
pub fn log_rotation(store: &ConfStore, base: LogDefaults) -> (LogDefaults, Vec<String>) {
    let mut logs = base;
    let mut problems = Vec::new();
    let Some(section) = store.get(LOGROTATE) else {
        return (logs, problems);
    };
    let Value::Object(keys) = section else {
        problems.push(format!(
            "`{LOGROTATE}` must be a section of keys, got {}",
            convert::kind_of(section)
        ));
        return (logs, problems);
    };
    for (key, value) in keys {
        if let Err(e) = apply_logrotate(key, value, &mut logs) {
            problems.push(format!("{LOGROTATE}:{key}: {e}"));
        }
    }
    (logs, problems)
}

/// Check one `pm2-logrotate` value (with `parts`, the split key) before it is stored.
fn check_logrotate(parts: &[String], value: &str) -> Result<(), ConfKeyError> {
    if parts.first().map(String::as_str) != Some(LOGROTATE) {
        return Ok(());
    }
    let key = match parts {
        [_, key] => key,
        [_] => return Err(ConfKeyError::WholeLogrotateSection),
        _ => return Err(unknown_logrotate_key(&parts[1..].join(".")).into()),
    };
    let mut scratch = LogDefaults::default();
    apply_logrotate(key, &Value::String(value.to_string()), &mut scratch).map_err(|reason| {
        ConfKeyError::Logrotate {
            key: key.clone(),
            reason: Box::new(reason),
        }
    })
}

fn unknown_logrotate_key(key: &str) -> UnknownLogrotateKey {
    UnknownLogrotateKey {
        key: key.to_string(),
        suggestion: crate::fields::closest(key, LOGROTATE_KEYS.iter().copied()),
    }
}

/// Apply one `pm2-logrotate` key to `logs`; the keys Kelpie has no use for are only checked.
fn apply_logrotate(key: &str, value: &Value, logs: &mut LogDefaults) -> Result<(), LogrotateError> {
    match key {
        "max_size" => logs.max_size = convert::bytes(value)?,
        "retain" => logs.retain = retain(value)?,
        "compress" => logs.compress = convert::boolean(value)?,
        "rotateInterval" => logs.interval_ms = rotate_interval(value)?,
        // Kelpie's rotated names always use pm2-logrotate's default format, so they sort by date.
        "dateFormat" => {
            convert::string(value)?;
        }
        // Kelpie has no modules: every app's files rotate, and the daemon's own log is small.
        "rotateModule" => {
            convert::boolean(value)?;
        }
        // Kelpie checks the size before each write, not every N seconds.
        "workerInterval" => {
            if convert::count(value)? == 0 {
                return Err(LogrotateError::ZeroWorkerInterval);
            }
        }
        // Rotation times and names are in the daemon's local time.
        "TZ" => {
            let zone = convert::string(value)?;
            kelpie_core::cron::time_zone(Some(&zone))?;
        }
        other => return Err(unknown_logrotate_key(other).into()),
    }
    Ok(())
}

/// pm2-logrotate's `retain`: a count, or `all` (kept as the largest count).
fn retain(value: &Value) -> Result<u32, LogrotateError> {
    if value
        .as_str()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("all"))
    {
        return Ok(u32::MAX);
    }
    convert::count(value).map_err(|_| LogrotateError::Retain {
        got: convert::describe(value),
    })
}

/// pm2-logrotate's `rotateInterval`, a cron expression, as Kelpie's rotation period: a schedule
/// that fires every day at evenly spaced times from midnight (`0 0 * * *` = daily,
/// `0 * * * *` = hourly, `0 */6 * * *` = every 6 hours). Kelpie's time rotation happens at
/// multiples of its period in local time, which is what these schedules mean. Kelpie's own
/// forms of `rotate_interval` (`daily`, `hourly`, `6h`, `never`) are accepted too.
pub fn rotate_interval(value: &Value) -> Result<u64, LogrotateError> {
    let expression = convert::string(value).map_err(|_| LogrotateError::NotAnInterval)?;
    let cron_like = expression.trim().starts_with('@') || expression.trim().contains(' ');
    if !cron_like {
        return convert::rotate_interval(value).map_err(LogrotateError::Interval);
    }
    let schedule = kelpie_core::cron::CronSchedule::parse(&expression)?;
    schedule
        .daily_period_ms()
        .ok_or(LogrotateError::UnevenSchedule { expression })
}

/// The variables a section named like an app puts in its environment (as PM2 does): each key
/// with its value (sections as JSON), and the app's name with the whole section as JSON. Keys
/// that cannot be variable names are left out.
pub fn app_env(store: &ConfStore, app: &str) -> Vec<(String, String)> {
    let Some(Value::Object(section)) = store.get(app) else {
        return Vec::new();
    };
    let usable = |name: &str| !name.is_empty() && !name.contains(['=', '\0']);
    let text = |value: &Value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut env: Vec<(String, String)> = section
        .iter()
        .filter(|(key, value)| usable(key) && !text(value).contains('\0'))
        .map(|(key, value)| (key.clone(), text(value)))
        .collect();
    if usable(app) {
        env.push((app.to_string(), Value::Object(section.clone()).to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(text: &str) -> ConfStore {
        parse(text).expect("valid")
    }

    #[test]
    fn keys_split_like_pm2() {
        assert_eq!(
            split_key("pm2-logrotate:max_size").expect("ok"),
            ["pm2-logrotate", "max_size"]
        );
        assert_eq!(
            split_key("echo.config_var").expect("ok"),
            ["echo", "config_var"]
        );
        // A dot wins over colons.
        assert_eq!(split_key("a.b:c").expect("ok"), ["a", "b:c"]);
        assert_eq!(split_key("\"a.b\".c").expect("ok"), ["a.b", "c"]);
        assert_eq!(split_key("plain").expect("ok"), ["plain"]);
        assert!(split_key("a..b").is_err());
        assert!(split_key(":b").is_err());
    }

    #[test]
    fn set_get_unset_round_trip() {
        let mut conf = ConfStore::new();
        set(&mut conf, "echo.config_var", "false").expect("set");
        set(&mut conf, "plain", "5").expect("set");
        set(&mut conf, "a.b.c", "deep").expect("set");
        assert_eq!(get(&conf, "echo:config_var"), Some(&Value::from("false")));
        assert_eq!(get(&conf, "plain"), Some(&Value::from("5")));
        assert_eq!(get(&conf, "a.b.c"), Some(&Value::from("deep")));
        assert_eq!(get(&conf, "echo.nope"), None);
        // A plain value in the way becomes a section.
        set(&mut conf, "plain.key", "x").expect("set");
        assert_eq!(get(&conf, "plain.key"), Some(&Value::from("x")));
        assert_eq!(unset(&mut conf, "echo.config_var"), Ok(true));
        assert_eq!(unset(&mut conf, "echo.config_var"), Ok(false));
        assert_eq!(unset(&mut conf, "missing.key"), Ok(false));
        assert!(conf
            .get("echo")
            .is_some_and(|v| v == &Value::Object(Map::new())));
        assert_eq!(unset(&mut conf, "all"), Ok(true));
        assert!(conf.is_empty());
    }

    #[test]
    fn logrotate_values_are_checked_and_bad_ones_change_nothing() {
        let mut conf = ConfStore::new();
        for (key, value) in [
            ("max_size", "10M"),
            ("max_size", "1G"),
            ("max_size", "4096"),
            ("retain", "5"),
            ("retain", "all"),
            ("compress", "true"),
            ("dateFormat", "YYYY-MM-DD_HH-mm-ss"),
            ("rotateInterval", "0 0 * * *"),
            ("rotateInterval", "never"),
            ("rotateInterval", "6h"),
            ("rotateModule", "false"),
            ("workerInterval", "30"),
            ("TZ", "Europe/Paris"),
        ] {
            set(&mut conf, &format!("pm2-logrotate:{key}"), value)
                .unwrap_or_else(|e| panic!("{key} {value}: {e}"));
        }
        let before = conf.clone();
        for (key, value, says) in [
            ("max_size", "lots", "expected a size"),
            ("retain", "-1", "number of rotated files"),
            ("compress", "yes", "true or false"),
            ("rotateInterval", "0 0 * * 0", "cannot be followed"),
            ("rotateInterval", "0 0 * *", "expected 5 fields"),
            ("rotateInterval", "weekly", "cron expression"),
            ("workerInterval", "0", "≥ 1"),
            ("TZ", "Mars/Olympus", "Mars/Olympus"),
            ("max_sise", "1M", "did you mean `max_size`"),
        ] {
            let error = set(&mut conf, &format!("pm2-logrotate:{key}"), value)
                .expect_err(&format!("{key} {value}"))
                .to_string();
            assert!(error.contains(says), "{key} {value}: {error}");
        }
        let error = set(&mut conf, "pm2-logrotate", "1")
            .expect_err("whole section")
            .to_string();
        assert!(error.contains("set one of its keys"), "{error}");
        assert_eq!(conf, before);
    }

    #[test]
    fn logrotate_keys_map_onto_the_rotation_defaults() {
        let conf = store(
            r#"{"pm2-logrotate": {"max_size": "1K", "retain": "3", "compress": "false",
                "rotateInterval": "0 * * * *", "workerInterval": "30"}}"#,
        );
        let (logs, problems) = log_rotation(&conf, LogDefaults::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            logs,
            LogDefaults {
                max_size: 1024,
                retain: 3,
                compress: false,
                interval_ms: 3_600_000,
            }
        );
        // Hand-edited values of any JSON type; bad ones are skipped and reported.
        let conf = store(r#"{"pm2-logrotate": {"max_size": 2048, "retain": "many"}}"#);
        let (logs, problems) = log_rotation(&conf, LogDefaults::default());
        assert_eq!(logs.max_size, 2048);
        assert_eq!(logs.retain, LogDefaults::default().retain);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("pm2-logrotate:retain"),
            "{problems:?}"
        );
        let (logs, problems) = log_rotation(&ConfStore::new(), LogDefaults::default());
        assert_eq!((logs, problems.len()), (LogDefaults::default(), 0));
    }

    #[test]
    fn multiset_reads_pairs_with_quotes() {
        assert_eq!(
            parse_multiset("a:b 1  c.d \"two words\"").expect("ok"),
            [
                ("a:b".to_string(), "1".to_string()),
                ("c.d".to_string(), "two words".to_string())
            ]
        );
        assert!(parse_multiset("a 1 b")
            .expect_err("odd")
            .to_string()
            .contains("`b`"));
        assert!(parse_multiset("  ").is_err());
        assert!(parse_multiset("a \"1").is_err());
    }

    #[test]
    fn an_app_section_becomes_its_environment() {
        let conf = store(r#"{"echo": {"config_var": "false", "n": {"x": 1}, "bad=key": "1"}}"#);
        let env = app_env(&conf, "echo");
        assert!(
            env.contains(&("config_var".into(), "false".into())),
            "{env:?}"
        );
        assert!(env.contains(&("n".into(), "{\"x\":1}".into())), "{env:?}");
        assert!(!env.iter().any(|(k, _)| k == "bad=key"), "{env:?}");
        let whole = env.iter().find(|(k, _)| k == "echo").expect("the section");
        assert!(whole.1.contains("\"config_var\":\"false\""), "{whole:?}");
        assert!(app_env(&conf, "other").is_empty());
    }

    #[test]
    fn files_parse_or_say_why_not() {
        assert!(parse("").expect("empty").is_empty());
        assert!(parse("[1]")
            .expect_err("array")
            .to_string()
            .contains("JSON object"));
        assert!(parse("{")
            .expect_err("broken")
            .to_string()
            .contains("not valid JSON"));
        let conf = store(r#"{"a": {"b": "1"}}"#);
        assert_eq!(parse(&to_text(&conf)).expect("round trip"), conf);
    }
}
