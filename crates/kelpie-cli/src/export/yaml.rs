//! A small YAML writer for the Compose and Kubernetes exports. Hand-written rather than
//! serde_yaml because the output needs comments, a fixed key order, and strings that every YAML
//! reader (1.1 and 1.2) reads back as strings: every string is written double-quoted in JSON
//! syntax, which is valid YAML, so `3000:3000`, `on` or `0755` never turn into numbers or
//! booleans.

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Yaml {
    Str(String),
    Int(i64),
    Bool(bool),
    Map(Vec<Entry>),
    Seq(Vec<Yaml>),
}

/// One line of a mapping: a key and its value, or a comment.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    Field(String, Yaml),
    Comment(String),
}

/// A string value.
pub(super) fn s(text: impl Into<String>) -> Yaml {
    Yaml::Str(text.into())
}

/// A sequence of strings.
pub(super) fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Yaml {
    Yaml::Seq(items.into_iter().map(|i| Yaml::Str(i.into())).collect())
}

/// A mapping being built.
#[derive(Debug, Default)]
pub(super) struct Map(Vec<Entry>);

impl Map {
    pub(super) fn new() -> Map {
        Map(Vec::new())
    }

    /// Add `key: value`.
    pub(super) fn put(&mut self, key: &str, value: Yaml) -> &mut Map {
        self.0.push(Entry::Field(key.to_string(), value));
        self
    }

    /// Add a comment line (several lines are split).
    pub(super) fn comment(&mut self, text: &str) -> &mut Map {
        for line in text.lines() {
            self.0.push(Entry::Comment(line.to_string()));
        }
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn build(self) -> Yaml {
        Yaml::Map(self.0)
    }
}

/// The document's text, with `header` lines as comments first.
pub(super) fn document(header: &[String], value: &Yaml) -> String {
    let mut out = String::new();
    for line in header.iter().flat_map(|h| h.lines()) {
        push_comment(&mut out, 0, line);
    }
    write_block(&mut out, value, 0);
    out
}

fn push_comment(out: &mut String, indent: usize, line: &str) {
    out.push_str(&" ".repeat(indent));
    if line.is_empty() {
        out.push_str("#\n");
    } else {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Str(text) => Some(quote(text)),
        Yaml::Int(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Map(entries) if entries.is_empty() => Some("{}".to_string()),
        Yaml::Seq(items) if items.is_empty() => Some("[]".to_string()),
        Yaml::Map(_) | Yaml::Seq(_) => None,
    }
}

/// JSON string syntax is a YAML double-quoted scalar.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{}\"", text.escape_default()))
}

fn key(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        // YAML 1.1 readers take these words as booleans or null, even as keys.
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        text.to_string()
    } else {
        quote(text)
    }
}

/// Write a mapping or sequence at `indent` (a scalar on its own line).
fn write_block(out: &mut String, value: &Yaml, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Yaml::Map(entries) if !entries.is_empty() => {
            for entry in entries {
                match entry {
                    Entry::Comment(line) => push_comment(out, indent, line),
                    Entry::Field(k, v) => {
                        out.push_str(&pad);
                        out.push_str(&key(k));
                        out.push(':');
                        match scalar(v) {
                            Some(text) => {
                                out.push(' ');
                                out.push_str(&text);
                                out.push('\n');
                            }
                            None => {
                                out.push('\n');
                                write_block(out, v, indent + 2);
                            }
                        }
                    }
                }
            }
        }
        Yaml::Seq(items) if !items.is_empty() => {
            for item in items {
                match scalar(item) {
                    Some(text) => {
                        out.push_str(&pad);
                        out.push_str("- ");
                        out.push_str(&text);
                        out.push('\n');
                    }
                    None => {
                        // The item's block at indent + 2, with its first indentation replaced
                        // by the dash.
                        let mut inner = String::new();
                        write_block(&mut inner, item, indent + 2);
                        out.push_str(&pad);
                        out.push_str("- ");
                        out.push_str(inner.get(indent + 2..).unwrap_or(""));
                    }
                }
            }
        }
        other => {
            if let Some(text) = scalar(other) {
                out.push_str(&pad);
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_nesting_is_indented() {
        let mut inner = Map::new();
        inner.put("port", Yaml::Int(3000));
        let mut root = Map::new();
        root.comment("made by kelpie");
        root.put("ports", strs(["3000:3000"]));
        root.put("list", Yaml::Seq(vec![inner.build()]));
        root.put("on", s("on"));
        root.put("empty", Yaml::Map(Vec::new()));
        let text = document(&["head".to_string()], &root.build());
        assert_eq!(
            text,
            "# head\n# made by kelpie\nports:\n  - \"3000:3000\"\nlist:\n  - port: 3000\n\"on\": \"on\"\nempty: {}\n"
        );
    }
}
