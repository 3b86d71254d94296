//! From a parsed document to a list of raw apps: the accepted top-level shapes, and each app's
//! keys sorted into supported fields (aliases and camelCase folded), profiles, PM2 fields not
//! supported yet, and unknown keys (ignored with a warning, as PM2 ignores them).

use crate::fields::{self, Kind};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A value and the key the user wrote for it (messages quote the user's spelling).
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The key as written (`maxMemoryRestart`, `cmd`, ...).
    pub key: String,
    /// Its value.
    pub value: Value,
}

/// One app's keys, sorted but not yet validated.
#[derive(Debug, Default)]
pub(crate) struct RawApp {
    /// 0-based position in the file, to name apps that have neither `name` nor `script`.
    pub index: usize,
    /// Supported fields by canonical name.
    pub fields: BTreeMap<&'static str, Field>,
    /// `env_<profile>` sections by profile name.
    pub profiles: BTreeMap<String, Field>,
    /// Keys (as written) of PM2 fields Kelpie ignores.
    pub unsupported: Vec<String>,
    /// Keys (as written) that are no field at all, each with the known field it most likely
    /// misspells: ignored with a warning, as PM2 ignores them.
    pub unknown: Vec<(String, Option<&'static str>)>,
    /// Problems found while sorting (not an object), without prefix.
    pub errors: Vec<String>,
    /// What PM2 runs but deserves a word (two aliases of one field), without prefix.
    pub warnings: Vec<String>,
}

impl RawApp {
    /// Sort the keys of the app at `index`.
    pub(crate) fn from_value(index: usize, value: &Value) -> RawApp {
        let mut raw = RawApp {
            index,
            ..RawApp::default()
        };
        let Some(object) = value.as_object() else {
            raw.errors.push(format!(
                "expected an app object, got {}",
                crate::convert::describe(value)
            ));
            return raw;
        };
        for (key, value) in object {
            raw.add(key, value.clone());
        }
        raw
    }

    /// Record one key. Public so `kelpie start` flags can be fed through the same checks.
    pub(crate) fn add(&mut self, key: &str, value: Value) {
        match fields::classify(&fields::to_snake_case(key)) {
            Kind::Supported(canonical) => {
                let Some(previous) = self.fields.get(canonical) else {
                    let key = key.to_string();
                    self.fields.insert(canonical, Field { key, value });
                    return;
                };
                // PM2 runs such files: the field's own name wins over an alias (else the
                // first one written), and the other is named.
                if previous.value == value {
                    self.warnings.push(format!(
                        "`{}` and `{key}` both set `{canonical}` (to the same value); keep one",
                        previous.key
                    ));
                    return;
                }
                let new_wins = fields::to_snake_case(key) == canonical
                    && fields::to_snake_case(&previous.key) != canonical;
                let (kept, dropped) = if new_wins {
                    (key.to_string(), previous.key.clone())
                } else {
                    (previous.key.clone(), key.to_string())
                };
                self.warnings.push(format!(
                    "`{}` and `{key}` both set `{canonical}`, differently: `{kept}` is used, `{dropped}` ignored; keep one",
                    previous.key
                ));
                if new_wins {
                    let key = key.to_string();
                    self.fields.insert(canonical, Field { key, value });
                }
            }
            Kind::Profile(profile) => {
                let key = key.to_string();
                self.profiles.insert(profile, Field { key, value });
            }
            // `treekill: false` asks for nothing Kelpie would have to do: no reason to warn.
            Kind::Unsupported if matches!(value, Value::Null | Value::Bool(false)) => {}
            Kind::Unsupported => self.unsupported.push(key.to_string()),
            Kind::Unknown(suggestion) => self.unknown.push((key.to_string(), suggestion)),
        }
    }

    /// The value of a supported field. Asking for a name no declaration has is a reader's typo,
    /// which would silently ignore the setting: debug builds (and so every test) stop there.
    pub(crate) fn get(&self, canonical: &str) -> Option<&Field> {
        debug_assert!(
            fields::supported().contains(&canonical),
            "a reader asks for `{canonical}`, which is not declared: a typo, or a field to declare in the settings table (settings/)"
        );
        #[cfg(test)]
        fields_read::record(canonical);
        self.fields.get(canonical)
    }

    /// The `name` field, when it is a non-empty string.
    pub(crate) fn explicit_name(&self) -> Option<&str> {
        self.get("name")
            .and_then(|f| f.value.as_str())
            .filter(|n| !n.trim().is_empty())
    }
}

/// A document's top level: its apps, and what else it says.
#[derive(Debug, Default)]
pub(crate) struct TopLevel {
    /// The app objects, in file order.
    pub apps: Vec<Value>,
    /// Warnings about ignored top-level keys, without the file's name.
    pub notes: Vec<String>,
    /// The `deploy` section, whose `<env>.env` is merged into every app's env under `--env`.
    pub deploy: Option<Value>,
}

/// The apps of a document and warnings about ignored top-level keys. Accepted shapes, as in
/// PM2: `{apps: [...]}` (or `apps` as one object, or PM2's older `pm2` key), a bare array of
/// apps, or one app object. Other top-level keys next to `apps` are ignored with a warning, as
/// PM2 ignores them.
pub(crate) fn top_level(doc: &Value) -> Result<TopLevel, ShapeError> {
    let mut top = TopLevel::default();
    match doc {
        Value::Array(items) => top.apps = items.clone(),
        Value::Object(object) if has_apps_key(object) || object.contains_key("static") => {
            container(object, &mut top)?
        }
        Value::Object(object) if object.keys().all(|k| k == "deploy") => {
            return Err(ShapeError::NoApps);
        }
        Value::Object(_) => top.apps = vec![doc.clone()],
        other => {
            return Err(ShapeError::NotApps {
                kind: crate::convert::kind_of(other),
            })
        }
    }
    if top.apps.is_empty() {
        return Err(ShapeError::NoApps);
    }
    Ok(top)
}

/// Why a document is not an app list. `Display` follows the file's name in
/// [`ConfigError::Shape`](crate::ConfigError::Shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Not an object, a list or one app.
    #[error("expected an object with `apps`, a list of apps or one app object, got {kind}")]
    NotApps {
        /// The JSON type found, in words.
        kind: &'static str,
    },
    /// An empty list, or only a `deploy` section.
    #[error("declares no apps (expected `apps: [...]`)")]
    NoApps,
    /// Both `apps` and PM2's older `pm2`.
    #[error("both `apps` and `pm2` are set; keep `apps`")]
    AppsAndPm2,
    /// `apps` (or `pm2`) that is neither a list nor one object.
    #[error("`{key}` must be a list of apps or one app object, got {kind}")]
    AppsNotAList {
        /// `apps` or `pm2`.
        key: String,
        /// The JSON type found, in words.
        kind: &'static str,
    },
    /// The `static` section is wrong.
    #[error(transparent)]
    Static(#[from] crate::serve::StaticError),
}

fn has_apps_key(object: &Map<String, Value>) -> bool {
    object.contains_key("apps") || object.contains_key("pm2")
}

/// The top-level keys Kelpie reads.
const TOP_LEVEL_KEYS: &[&str] = &["apps", "deploy", "static"];

fn container(object: &Map<String, Value>, top: &mut TopLevel) -> Result<(), ShapeError> {
    if object.contains_key("apps") && object.contains_key("pm2") {
        return Err(ShapeError::AppsAndPm2);
    }
    let mut statics = Vec::new();
    for (key, value) in object {
        match key.as_str() {
            "apps" | "pm2" => {
                top.apps = match value {
                    Value::Array(items) => items.clone(),
                    Value::Object(_) => vec![value.clone()],
                    other => {
                        return Err(ShapeError::AppsNotAList {
                            key: key.clone(),
                            kind: crate::convert::kind_of(other),
                        })
                    }
                }
            }
            // Only `deploy.<env>.env` concerns starting apps; the rest is for `pm2 deploy`.
            "deploy" => top.deploy = Some(value.clone()),
            "static" => statics = crate::serve::static_section(value)?,
            other => top.notes.push(
                match fields::closest(other, TOP_LEVEL_KEYS.iter().copied()) {
                    Some(known) => format!(
                        "unknown top-level key `{other}` is ignored (did you mean `{known}`?)"
                    ),
                    None => format!(
                        "unknown top-level key `{other}` is ignored (kelpie reads `apps`, `deploy` and `static`)"
                    ),
                },
            ),
        }
    }
    // After the apps, as in PM2.
    top.apps.extend(statics);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_three_top_level_shapes() {
        let top = top_level(&json!({"apps": [{"name": "a"}, {"name": "b"}]})).expect("apps");
        assert_eq!(top.apps.len(), 2);
        let top = top_level(&json!({"apps": {"name": "a"}})).expect("single apps");
        assert_eq!(top.apps.len(), 1);
        let top = top_level(&json!([{"name": "a"}])).expect("array");
        assert_eq!(top.apps.len(), 1);
        let top = top_level(&json!({"name": "a", "script": "x"})).expect("object");
        assert_eq!(top.apps[0]["name"], "a");
    }

    #[test]
    fn deploy_is_kept_and_unknown_keys_are_ignored_with_a_warning() {
        let top = top_level(&json!({"apps": [{"name": "a"}], "deploy": {"prod": {}},
                                    "static": [], "extra": 1, "aps": 2}))
        .expect("ok");
        assert_eq!(top.apps.len(), 1);
        assert_eq!(top.deploy, Some(json!({"prod": {}})));
        assert_eq!(
            top.notes,
            [
                "unknown top-level key `aps` is ignored (did you mean `apps`?)",
                "unknown top-level key `extra` is ignored (kelpie reads `apps`, `deploy` and `static`)",
            ]
        );
    }

    #[test]
    fn static_entries_follow_the_apps() {
        let top =
            top_level(&json!({"static": [{"port": 8081}], "apps": [{"name": "a"}]})).expect("ok");
        assert_eq!(top.apps.len(), 2);
        assert_eq!(top.apps[0]["name"], "a");
        assert_eq!(top.apps[1]["script"], "serve");
        let top = top_level(&json!({"static": [{"path": "dist"}]})).expect("static only");
        assert_eq!(top.apps[0]["name"], "static-page-server-8080");
        assert!(top_level(&json!({"static": []}))
            .expect_err("should fail")
            .to_string()
            .contains("declares no apps"));
    }

    #[test]
    fn rejects_other_shapes_clearly() {
        assert!(top_level(&json!("x"))
            .expect_err("should fail")
            .to_string()
            .contains("got a string"));
        assert!(top_level(&json!(null))
            .expect_err("should fail")
            .to_string()
            .contains("got nothing"));
        assert!(top_level(&json!([]))
            .expect_err("should fail")
            .to_string()
            .contains("declares no apps"));
        assert!(top_level(&json!({"deploy": {}}))
            .expect_err("should fail")
            .to_string()
            .contains("no apps"));
        assert!(top_level(&json!({"apps": 3}))
            .expect_err("should fail")
            .to_string()
            .contains("`apps` must be"));
    }

    #[test]
    fn sorts_keys_of_an_app() {
        let raw = RawApp::from_value(
            0,
            &json!({
                "name": "api", "cmd": "x.js", "maxMemoryRestart": "1G", "env_production": {},
                "automation": true, "treekill": false, "max_memroy_restart": 1, "bogus_thing_here": 1
            }),
        );
        assert_eq!(raw.get("script").map(|f| f.key.as_str()), Some("cmd"));
        assert_eq!(
            raw.get("max_memory_restart").map(|f| f.key.as_str()),
            Some("maxMemoryRestart")
        );
        assert!(raw.profiles.contains_key("production"));
        assert_eq!(raw.unsupported, ["automation"]);
        assert!(raw.errors.is_empty(), "{:?}", raw.errors);
        assert_eq!(
            raw.unknown,
            [
                ("bogus_thing_here".to_string(), None),
                ("max_memroy_restart".to_string(), Some("max_memory_restart"))
            ]
        );
    }

    #[test]
    fn two_aliases_of_one_field_are_run_as_pm2_runs_them_and_named() {
        // serde_json's map is ordered by key: `cmd` comes before `script`.
        let raw = RawApp::from_value(0, &json!({"script": "a", "cmd": "b"}));
        assert!(raw.errors.is_empty(), "{:?}", raw.errors);
        assert_eq!(
            raw.warnings,
            ["`cmd` and `script` both set `script`, differently: `script` is used, `cmd` ignored; keep one"]
        );
        assert_eq!(raw.get("script").map(|f| f.value.clone()), Some(json!("a")));
        let raw = RawApp::from_value(
            0,
            &json!({"merge_logs": true, "combine_logs": true, "node_args": "-r x", "interpreter_args": "-r y"}),
        );
        assert_eq!(
            raw.warnings,
            [
                "`combine_logs` and `merge_logs` both set `merge_logs` (to the same value); keep one",
                "`interpreter_args` and `node_args` both set `interpreter_args`, differently: `interpreter_args` is used, `node_args` ignored; keep one",
            ]
        );
    }

    #[test]
    fn non_object_apps_are_errors() {
        let raw = RawApp::from_value(0, &json!(3));
        assert_eq!(raw.errors, ["expected an app object, got 3"]);
    }
}

/// Which fields the readers asked for, on this thread (tests only): a field that is declared
/// but that no reader asks for is a setting accepted and then ignored.
#[cfg(test)]
pub(crate) mod fields_read {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    thread_local! {
        static READ: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
    }

    pub(crate) fn record(field: &str) {
        READ.with(|read| read.borrow_mut().insert(field.to_string()));
    }

    /// Every field asked for on this thread so far.
    pub(crate) fn taken() -> BTreeSet<String> {
        READ.with(|read| std::mem::take(&mut *read.borrow_mut()))
    }
}
