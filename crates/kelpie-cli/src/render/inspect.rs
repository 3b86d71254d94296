//! `prettylist`: a JSON value printed the way Node's `util.inspect` prints it (PM2's
//! `pm2 prettylist` is `util.inspect` of the `jlist` data): unquoted keys, single-quoted
//! strings, and a short object or array on one line (`node_args: [ '--harmony' ]`). Scripts
//! grep this output for `restart_time: 1` or `status: 'online'`, so the spacing of one-line
//! values follows Node's. Keys stay in the order they were written (PM2's): scripts take lines
//! by what precedes and follows them (`pm_id: 0,` with its comma).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their keys in the order they came (`serde_json::Value`
/// sorts them).
#[derive(Debug)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// `json` read as a value, its objects' keys in their order.
    pub(super) fn parse(json: &[u8]) -> serde_json::Result<Value> {
        serde_json::from_slice(json)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Value::Object(entries))
    }
}

/// Node's default `breakLength`: a value is put on one line only if it fits in this width.
const BREAK_LENGTH: usize = 80;
/// Node's default `compact`: only values nesting fewer levels than this go on one line.
const COMPACT: usize = 3;

/// `value` as `util.inspect(value, { depth: null })` prints it.
pub(super) fn inspect(value: &Value) -> String {
    format_value(value, 0).text
}

/// A formatted value, and how many levels of objects or arrays it holds inside itself.
struct Formatted {
    text: String,
    depth: usize,
}

fn format_value(value: &Value, indentation: usize) -> Formatted {
    match value {
        Value::Null => leaf("null".into()),
        Value::Bool(b) => leaf(b.to_string()),
        Value::Number(n) => leaf(n.to_string()),
        Value::String(s) => leaf(quote(s)),
        Value::Array(items) if items.is_empty() => leaf("[]".into()),
        Value::Object(map) if map.is_empty() => leaf("{}".into()),
        Value::Array(items) => {
            let parts: Vec<Formatted> = items
                .iter()
                .map(|item| format_value(item, indentation + 2))
                .collect();
            join(parts, ('[', ']'), indentation)
        }
        Value::Object(map) => {
            let parts: Vec<Formatted> = map
                .iter()
                .map(|(key, item)| {
                    let inner = format_value(item, indentation + 2);
                    Formatted {
                        text: format!("{}: {}", key_text(key), inner.text),
                        depth: inner.depth,
                    }
                })
                .collect();
            join(parts, ('{', '}'), indentation)
        }
    }
}

fn leaf(text: String) -> Formatted {
    Formatted { text, depth: 0 }
}

/// Entries between braces: on one line when they nest little and fit (Node's
/// `reduceToSingleString`), else one per line.
fn join(parts: Vec<Formatted>, (open, close): (char, char), indentation: usize) -> Formatted {
    let depth = 1 + parts.iter().map(|p| p.depth).max().unwrap_or(0);
    let start = parts.len() + indentation + 1 + 10;
    let total = start + parts.len() + parts.iter().map(|p| p.text.len()).sum::<usize>();
    let one_line = depth - 1 < COMPACT
        && total <= BREAK_LENGTH
        && parts.iter().all(|p| !p.text.contains('\n'));
    let texts: Vec<String> = parts.into_iter().map(|p| p.text).collect();
    let text = if one_line {
        format!("{open} {} {close}", texts.join(", "))
    } else {
        let pad = " ".repeat(indentation);
        format!(
            "{open}\n{pad}  {}\n{pad}{close}",
            texts.join(&format!(",\n{pad}  "))
        )
    };
    Formatted { text, depth }
}

/// A key as Node prints it: bare when it is an identifier, else single-quoted.
fn key_text(key: &str) -> String {
    let mut chars = key.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if identifier {
        key.to_string()
    } else {
        quote(key)
    }
}

/// A string as Node prints it: single quotes, or double quotes when it holds single quotes
/// and no double quotes; control characters escaped.
fn quote(s: &str) -> String {
    let mark = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(mark);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if c == mark => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(mark);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_json(json: &str) -> String {
        inspect(&Value::parse(json.as_bytes()).expect("test JSON"))
    }

    #[test]
    fn short_values_go_on_one_line_as_node_prints_them() {
        assert_eq!(inspect_json(r#"{"node_args": []}"#), "{ node_args: [] }");
        assert_eq!(
            inspect_json(r#"{"node_args": ["--harmony"]}"#),
            "{ node_args: [ '--harmony' ] }"
        );
        assert_eq!(
            inspect_json(r#"{"memory": 53776384, "cpu": 47.8}"#),
            "{ memory: 53776384, cpu: 47.8 }"
        );
    }

    #[test]
    fn long_values_take_a_line_per_entry() {
        let value = r#"[{
            "name": "echo",
            "pm2_env": {"status": "online", "restart_time": 0, "pm_exec_path": "/srv/app/a-rather-long-path/echo.js"}
        }]"#;
        assert_eq!(
            inspect_json(value),
            "[\n  {\n    name: 'echo',\n    pm2_env: {\n      status: 'online',\n      restart_time: 0,\n      pm_exec_path: '/srv/app/a-rather-long-path/echo.js'\n    }\n  }\n]"
        );
    }

    #[test]
    fn keys_and_strings_are_quoted_like_node() {
        assert_eq!(
            inspect_json(r#"{"a-b": "it's", "c": "x\ny", "_ok": null}"#),
            "{ 'a-b': \"it's\", c: 'x\\ny', _ok: null }"
        );
    }
}
