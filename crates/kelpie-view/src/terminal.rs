//! Text from apps and files made safe for a terminal: what an app prints of itself (its status,
//! its last stderr lines, an exception's message), names and namespaces, paths and metric
//! names reach `list`, `describe`, `events`, `monit` and `inspect` with every control character
//! made visible, so none of them can move the cursor, retitle the window, hide text or reorder
//! what is shown (an escape sequence, OSC, U+202E).
//!
//! Newlines and tabs are kept where a renderer shows multi-line text (a stack trace); a table
//! cell never holds one, since names and namespaces refuse every control character.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must be shown as an escape: C0 controls but newline and tab, DEL, C1 controls,
/// and the bidirectional formatting characters.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || kelpie_core::is_bidi_control(c)
}

/// `text` with every control character (but newline and tab) and every bidirectional
/// formatting character written as an escape (`\x1b`, `\u{202e}`).
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !hidden(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `value` with [`visible`] applied to every string it holds (keys too), for the renderers that
/// show a whole structure: nothing of it can be forgotten. Through its JSON form, which is how
/// the CLI received it; only when some string needs it (the check is one pass over the
/// encoded text).
pub fn visible_strings<T: Serialize + DeserializeOwned>(value: T) -> T {
    let Ok(encoded) = serde_json::to_string(&value) else {
        return value;
    };
    // serde_json writes a control character as an escape (`\n`, `\u001b`): `\u` is the sign,
    // but for newline and tab; the bidirectional characters are written as they are.
    let needs = encoded.contains("\\u")
        || encoded.contains("\\r")
        || encoded.contains("\\b")
        || encoded.contains("\\f")
        || encoded.chars().any(kelpie_core::is_bidi_control);
    if !needs {
        return value;
    }
    let Ok(mut tree) = serde_json::from_str::<serde_json::Value>(&encoded) else {
        return value;
    };
    make_visible(&mut tree);
    serde_json::from_value(tree).unwrap_or(value)
}

fn make_visible(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if let Cow::Owned(shown) = visible(text) {
                *text = shown;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(make_visible),
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let shown = visible(&key).into_owned();
                if let Some(mut inner) = map.remove(&key) {
                    make_visible(&mut inner);
                    map.insert(shown, inner);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_shown_as_escapes() {
        assert_eq!(
            visible("plain text\twith tab\nand line"),
            "plain text\twith tab\nand line"
        );
        assert_eq!(visible("\u{1b}]0;owned\u{7}x"), "\\x1b]0;owned\\x07x");
        assert_eq!(visible("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
        assert_eq!(visible("\u{9b}31m"), "\\x9b31m");
        assert_eq!(visible("cr\rhides"), "cr\\x0dhides");
    }

    #[test]
    fn every_string_of_a_structure_is_made_visible() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(
            "ns\u{1b}[2J".to_string(),
            vec!["ok".to_string(), "bad\u{7}".to_string()],
        );
        let shown = visible_strings(map);
        assert_eq!(
            shown.get("ns\\x1b[2J").map(Vec::as_slice),
            Some(&["ok".to_string(), "bad\\x07".to_string()][..])
        );
        let untouched = visible_strings(vec!["fine".to_string()]);
        assert_eq!(untouched, ["fine"]);
    }
}
