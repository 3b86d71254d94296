//! `prettylist`: a JSON value printed the way Node's `util.inspect` prints it (PM2's
//! `pm2 prettylist` is `util.inspect` of the `jlist` data): unquoted keys, single-quoted
//! strings, and a short object or array on one line (`node_args: [ '--harmony' ]`). Scripts
//! grep this output for `restart_time: 1` or `status: 'online'`, so the spacing of one-line
//! values follows Node's.

use serde_json::Value;

/// Node's default `breakLength`: a value is put on one line only if it fits in this width.
const BREAK_LENGTH: usize = 80;
/// Node's default `compact`: only values nesting fewer levels than this go on one line.
const COMPACT: usize = 3;

/// `value` as `util.inspect(value, { depth: null })` prints it.
pub fn inspect(value: &Value) -> String {
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
    use serde_json::json;

    #[test]
    fn short_values_go_on_one_line_as_node_prints_them() {
        assert_eq!(inspect(&json!({"node_args": []})), "{ node_args: [] }");
        assert_eq!(
            inspect(&json!({"node_args": ["--harmony"]})),
            "{ node_args: [ '--harmony' ] }"
        );
        assert_eq!(
            inspect(&json!({"memory": 53776384, "cpu": 47.8})),
            "{ cpu: 47.8, memory: 53776384 }"
        );
    }

    #[test]
    fn long_values_take_a_line_per_entry() {
        let value = json!([{
            "name": "echo",
            "pm2_env": {"status": "online", "restart_time": 0, "pm_exec_path": "/srv/app/a-rather-long-path/echo.js"},
        }]);
        assert_eq!(
            inspect(&value),
            "[\n  {\n    name: 'echo',\n    pm2_env: {\n      pm_exec_path: '/srv/app/a-rather-long-path/echo.js',\n      restart_time: 0,\n      status: 'online'\n    }\n  }\n]"
        );
    }

    #[test]
    fn keys_and_strings_are_quoted_like_node() {
        assert_eq!(
            inspect(&json!({"a-b": "it's", "c": "x\ny", "_ok": null})),
            "{ _ok: null, 'a-b': \"it's\", c: 'x\\ny' }"
        );
    }
}
