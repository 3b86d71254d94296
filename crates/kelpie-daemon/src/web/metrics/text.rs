//! Prometheus's text format, written straight into the exposition: a family's header, then
//! its samples, with no string made per label value or number (a scrape of 500 apps writes
//! about 8 000 samples).

use std::fmt::Write;

/// One metric family: its header, then its samples.
pub(super) struct Family<'a> {
    text: &'a mut String,
}

impl<'a> Family<'a> {
    pub(super) fn new(text: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        Family { text }
    }

    /// One sample, written straight into the text: no string is made per label or value (a
    /// scrape of 500 apps writes about 7 000 samples).
    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let text = &mut *self.text;
        text.push_str(name);
        if !labels.is_empty() {
            text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(key);
                text.push_str("=\"");
                escape_into(text, value);
                text.push('"');
            }
            text.push('}');
        }
        text.push(' ');
        number_into(text, value);
        text.push('\n');
    }
}

/// A label value with `\`, `"` and newlines escaped.
#[cfg(test)]
pub(super) fn escape(value: &str) -> String {
    let mut text = String::new();
    escape_into(&mut text, value);
    text
}

/// `value` appended with `\`, `"` and newlines escaped.
fn escape_into(text: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        text.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '"' => text.push_str("\\\""),
            '\n' => text.push_str("\\n"),
            c => text.push(c),
        }
    }
}

pub(super) fn number(value: f64) -> String {
    let mut text = String::new();
    number_into(&mut text, value);
    text
}

/// `value` appended as Prometheus reads it: whole numbers without a fraction.
fn number_into(text: &mut String, value: f64) {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(text, "{}", value as i64);
    } else {
        let _ = write!(text, "{value}");
    }
}
