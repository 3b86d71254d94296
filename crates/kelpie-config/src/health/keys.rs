//! Reading an object's keys by their canonical names (camelCase accepted), unknown and repeated
//! keys refused with a suggestion, and errors named "field `health_check.x`" as the user wrote
//! the keys.

use crate::fields::{closest, to_snake_case};
use serde_json::{Map, Value};

/// Collects "field `health_check.x`: …" messages, naming keys as the user wrote them.
pub(super) struct Errors<'a> {
    pub(super) field: &'a str,
    pub(super) list: Vec<String>,
}

impl Errors<'_> {
    pub(super) fn push(&mut self, sub: Option<&str>, message: impl std::fmt::Display) {
        let field = self.field;
        match sub {
            Some(sub) => self.list.push(format!("field `{field}.{sub}`: {message}")),
            None => self.list.push(format!("field `{field}`: {message}")),
        }
    }

    /// `read(value)`, or `None` with the error recorded under `sub`.
    pub(super) fn check<T, E: std::fmt::Display>(
        &mut self,
        sub: &str,
        value: &Value,
        read: impl Fn(&Value) -> Result<T, E>,
    ) -> Option<T> {
        match read(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.push(Some(sub), message);
                None
            }
        }
    }
}

/// The keys of an object by canonical name, with the user's spelling; unknown and repeated
/// keys are recorded as errors under `prefix` (`health_check` or `health_check.http`).
pub(super) fn sort_keys<'v>(
    object: &'v Map<String, Value>,
    known: &'static [&'static str],
    prefix: Option<&str>,
    errors: &mut Errors<'_>,
) -> Vec<(&'static str, &'v str, &'v Value)> {
    let mut found: Vec<(&'static str, &'v str, &'v Value)> = Vec::new();
    for (key, value) in object {
        let canonical = to_snake_case(key);
        let Some(name) = known.iter().copied().find(|k| *k == canonical) else {
            let message = match closest(&canonical, known.iter().copied()) {
                Some(suggestion) => format!("unknown key `{key}` (did you mean `{suggestion}`?)"),
                None => format!(
                    "unknown key `{key}` (expected {})",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            errors.push(prefix, message);
            continue;
        };
        match found.iter().find(|(n, _, _)| *n == name) {
            Some((_, previous, _)) => errors.push(
                prefix,
                format!("`{previous}` and `{key}` both set `{name}`; keep one"),
            ),
            None => found.push((name, key.as_str(), value)),
        }
    }
    // In the documented order, whatever the map's: messages then read the same for every format.
    found.sort_by_key(|(name, _, _)| known.iter().position(|k| k == name));
    found
}
