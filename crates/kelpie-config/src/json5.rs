//! PM2 evaluates `.json` ecosystem files as JavaScript object literals, so real-world files use
//! unquoted keys, single quotes, trailing commas and comments. This reads JSON5
//! (<https://spec.json5.org>), a superset of JSON that covers those, into a JSON tree, and says
//! where (1-based line and column, in characters) the text stops making sense.

use serde_json::{Map, Number, Value};

/// Why the text is not JSON5, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What was wrong, worded like serde_json's messages.
    pub message: String,
}

/// Nesting deeper than this is refused rather than risking the stack (serde_json's limit too).
const MAX_DEPTH: usize = 128;

/// Parse a whole JSON5 document (the tests' shorthand).
#[cfg(test)]
fn parse(text: &str) -> Result<Value, SyntaxError> {
    parse_noting_duplicates(text).map(|(value, _)| value)
}

/// A key given twice in one object: the later value is used, as in JavaScript, but the earlier
/// one is most likely a mistake the author wants to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DuplicateKey {
    /// 1-based line of the later one.
    pub line: usize,
    /// The key.
    pub key: String,
}

/// Parse a whole JSON5 document, and say which keys were given twice in an object.
pub(crate) fn parse_noting_duplicates(
    text: &str,
) -> Result<(Value, Vec<DuplicateKey>), SyntaxError> {
    let mut parser = Parser {
        text,
        pos: 0,
        depth: 0,
        duplicates: Vec::new(),
    };
    // A UTF-8 byte order mark is whitespace to JavaScript.
    parser.skip_space()?;
    let value = parser.value()?;
    parser.skip_space()?;
    if parser.pos < text.len() {
        return Err(parser.error_at(parser.pos, "trailing characters"));
    }
    Ok((value, parser.duplicates))
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    depth: usize,
    /// Keys given twice in an object, as met.
    duplicates: Vec<DuplicateKey>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut chars = self.text[self.pos..].chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> SyntaxError {
        let before = &self.text[..pos.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SyntaxError {
            line,
            column,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        self.error_at(self.pos, message)
    }

    /// Whitespace (JavaScript's, which includes the BOM and Unicode spaces) and comments.
    fn skip_space(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                Some('/') if self.peek_second() == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' || c == '\r' || c == '\u{2028}' || c == '\u{2029}' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_second() == Some('*') => {
                    let start = self.pos;
                    match self.text[self.pos + 2..].find("*/") {
                        Some(end) => self.pos += 2 + end + 2,
                        None => return Err(self.error_at(start, "unterminated comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some('{') => self.nested(Self::object),
            Some('[') => self.nested(Self::array),
            Some(quote @ ('"' | '\'')) => {
                self.bump();
                self.string(quote).map(Value::String)
            }
            Some(c) if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
            Some(c) if is_identifier_start(c) => {
                let start = self.pos;
                let word = self.identifier();
                match word {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    "Infinity" | "NaN" => Err(self.error_at(start, not_finite(word))),
                    _ => Err(self.error_at(start, "expected value")),
                }
            }
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn nested(
        &mut self,
        read: fn(&mut Self) -> Result<Value, SyntaxError>,
    ) -> Result<Value, SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.depth += 1;
        let value = read(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Result<Value, SyntaxError> {
        self.bump(); // `{`
        let mut map = Map::new();
        loop {
            self.skip_space()?;
            let key_at = self.pos;
            let key = match self.peek() {
                None => return Err(self.error("EOF while parsing an object")),
                Some('}') => {
                    self.bump();
                    return Ok(Value::Object(map));
                }
                Some(quote @ ('"' | '\'')) => {
                    self.bump();
                    self.string(quote)?
                }
                Some(c) if is_identifier_start(c) => self.identifier().to_string(),
                Some(_) => {
                    return Err(self.error("expected a key (a string or a name like `script`)"))
                }
            };
            self.skip_space()?;
            match self.peek() {
                Some(':') => {
                    self.bump();
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            self.skip_space()?;
            let value = self.value()?;
            // Later keys win, as in JavaScript; noted.
            if map.contains_key(&key) {
                let line = self.error_at(key_at, "").line;
                self.duplicates.push(DuplicateKey {
                    line,
                    key: key.clone(),
                });
            }
            map.insert(key, value);
            self.skip_space()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    return Ok(Value::Object(map));
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, SyntaxError> {
        self.bump(); // `[`
        let mut items = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                None => return Err(self.error("EOF while parsing a list")),
                Some(']') => {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                Some(_) => items.push(self.value()?),
            }
            self.skip_space()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// A name: letters, digits, `_` and `$`, not starting with a digit.
    fn identifier(&mut self) -> &'a str {
        let text: &'a str = self.text;
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_identifier_start(c) || c.is_alphanumeric() || c == '\u{200c}' || c == '\u{200d}' {
                self.bump();
            } else {
                break;
            }
        }
        &text[start..self.pos]
    }

    /// The rest of a string whose opening `quote` was read.
    fn string(&mut self, quote: char) -> Result<String, SyntaxError> {
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(c) if c == quote => return Ok(out),
                Some('\n' | '\r') => {
                    return Err(self.error_at(
                        at,
                        "unterminated string (a line break in a string must be written \\n)",
                    ))
                }
                Some('\\') => self.escape(&mut out, at)?,
                Some(c) => out.push(c),
            }
        }
    }

    /// One escape sequence, after its backslash (at byte `at`).
    fn escape(&mut self, out: &mut String, at: usize) -> Result<(), SyntaxError> {
        let Some(c) = self.bump() else {
            return Err(self.error("EOF while parsing a string"));
        };
        match c {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0' if !self.peek().is_some_and(|d| d.is_ascii_digit()) => out.push('\0'),
            '1'..='9' | '0' => return Err(self.error_at(at, "invalid escape")),
            'x' => {
                let code = self.hex_digits(2, at)?;
                out.push(char::from_u32(code).ok_or_else(|| self.error_at(at, "invalid escape"))?);
            }
            'u' => {
                let code = self.hex_digits(4, at)?;
                let c = if (0xD800..0xDC00).contains(&code) {
                    // A high surrogate must be followed by `\u` and a low one.
                    let low_at = self.pos;
                    let low = if self.text[self.pos..].starts_with("\\u") {
                        self.pos += 2;
                        self.hex_digits(4, low_at)?
                    } else {
                        0
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error_at(at, "lone leading surrogate in hex escape"));
                    }
                    char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
                } else {
                    char::from_u32(code)
                };
                out.push(c.ok_or_else(|| self.error_at(at, "invalid unicode code point"))?);
            }
            // A backslash before a line break continues the string on the next line.
            '\r' => {
                if self.peek() == Some('\n') {
                    self.bump();
                }
            }
            '\n' | '\u{2028}' | '\u{2029}' => {}
            // Any other character stands for itself (`\'`, `\"`, `\\`, `\/`, ...).
            other => out.push(other),
        }
        Ok(())
    }

    fn hex_digits(&mut self, count: usize, at: usize) -> Result<u32, SyntaxError> {
        let digits = self.text[self.pos..].get(..count);
        match digits.filter(|d| d.chars().all(|c| c.is_ascii_hexdigit())) {
            Some(digits) => {
                self.pos += count;
                u32::from_str_radix(digits, 16).map_err(|_| self.error_at(at, "invalid escape"))
            }
            None => Err(self.error_at(at, "invalid escape")),
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.bump();
                true
            }
            Some('+') => {
                self.bump();
                false
            }
            _ => false,
        };
        if self.peek().is_some_and(is_identifier_start) {
            let word = self.identifier();
            return Err(self.error_at(
                start,
                match word {
                    "Infinity" | "NaN" => not_finite(word),
                    _ => "invalid number".to_string(),
                },
            ));
        }
        let invalid = |p: &Self| p.error_at(start, "invalid number");
        if self.text[self.pos..].starts_with("0x") || self.text[self.pos..].starts_with("0X") {
            self.pos += 2;
            let digits_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.bump();
            }
            let digits = &self.text[digits_start..self.pos];
            if digits.is_empty() || self.peek().is_some_and(is_identifier_part) {
                return Err(invalid(self));
            }
            let value = match u64::from_str_radix(digits, 16) {
                Ok(n) if !negative => Value::from(n),
                Ok(n) => match i64::try_from(n) {
                    Ok(n) => Value::from(-n),
                    Err(_) => float(-(n as f64)).ok_or_else(|| invalid(self))?,
                },
                // Too long for 64 bits: JavaScript reads it as a float.
                Err(_) => {
                    let magnitude = digits
                        .chars()
                        .filter_map(|c| c.to_digit(16))
                        .fold(0f64, |acc, d| acc * 16.0 + f64::from(d));
                    float(if negative { -magnitude } else { magnitude })
                        .ok_or_else(|| invalid(self))?
                }
            };
            return Ok(value);
        }
        let digits_start = self.pos;
        let int_len = self.skip_digits();
        let int_digits = &self.text[digits_start..digits_start + int_len];
        if int_digits.len() > 1 && int_digits.starts_with('0') {
            return Err(self.error_at(start, "invalid number (leading zero)"));
        }
        let mut fractional = false;
        let mut frac_len = 0;
        if self.peek() == Some('.') {
            self.bump();
            fractional = true;
            frac_len = self.skip_digits();
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid(self));
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            fractional = true;
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if self.skip_digits() == 0 {
                return Err(invalid(self));
            }
        }
        if self.peek().is_some_and(is_identifier_part) {
            return Err(invalid(self));
        }
        let text = self.text[start..self.pos].trim_start_matches('+');
        if !fractional {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::from(n));
            }
            if let Ok(n) = text.parse::<u64>() {
                return Ok(Value::from(n));
            }
        }
        // Rust's float syntax takes `5.`, `.5` and `1e3` as JavaScript does.
        text.parse::<f64>()
            .ok()
            .and_then(float)
            .ok_or_else(|| invalid(self))
    }

    /// Skip ASCII digits and return how many there were.
    fn skip_digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.pos - start
    }
}

fn is_identifier_start(c: char) -> bool {
    c == '_' || c == '$' || c.is_alphabetic()
}

fn is_identifier_part(c: char) -> bool {
    is_identifier_start(c) || c.is_alphanumeric()
}

/// A finite float as a JSON number.
fn float(f: f64) -> Option<Value> {
    Number::from_f64(f).map(Value::Number)
}

fn not_finite(word: &str) -> String {
    format!("{word} is not a usable value here (no setting takes it); write a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_noted_with_its_line_and_the_later_value_wins() {
        let text = "{apps: [{\n  name: 'a',\n  script: 'x.js',\n  script: 'y.js',\n  env: {A: 1, A: 2}\n}]}";
        let (value, duplicates) = parse_noting_duplicates(text).expect("parses");
        assert_eq!(value["apps"][0]["script"], "y.js");
        assert_eq!(value["apps"][0]["env"]["A"], 2);
        assert_eq!(
            duplicates,
            [
                DuplicateKey {
                    line: 4,
                    key: "script".into()
                },
                DuplicateKey {
                    line: 5,
                    key: "A".into()
                },
            ]
        );
    }
    use serde_json::json;

    fn ok(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn err(text: &str) -> (usize, usize, String) {
        let e = parse(text).expect_err(text);
        (e.line, e.column, e.message)
    }

    #[test]
    fn plain_json_parses_as_serde_json_does() {
        let text = r#"{"apps": [{"name": "a", "n": -12, "f": 1.5, "e": 1e3, "b": true, "z": null, "s": "\u00e9\n\"", "l": []}]}"#;
        let expected: Value = serde_json::from_str(text).expect("json");
        assert_eq!(ok(text), expected);
    }

    #[test]
    fn javascript_object_literals_parse() {
        let text = "// PM2 file\n{\n  apps: [{\n    name: 'api', /* inline */ script: \"app.js\",\n    $x_1: 'it\\'s', env: {PORT: 3000, RATE: .5, H: 0xFF, P: +1, T: 5.,},\n    multi: 'a\\\n b',\n  },],\n}\n";
        assert_eq!(
            ok(text),
            json!({"apps": [{
                "name": "api", "script": "app.js", "$x_1": "it's",
                "env": {"PORT": 3000, "RATE": 0.5, "H": 255, "P": 1, "T": 5.0},
                "multi": "a b"
            }]})
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            ok(r#"'\x41\u00e9\ud83d\ude00\t\v\0\/\q'"#),
            json!("Aé😀\t\u{b}\0/q")
        );
        assert_eq!(ok("\"a\\\r\nb\""), json!("ab"));
        assert_eq!(ok("'say \"hi\"'"), json!("say \"hi\""));
    }

    #[test]
    fn numbers_keep_integers_integral() {
        assert_eq!(ok("-0x10"), json!(-16));
        assert_eq!(ok("18446744073709551615"), json!(u64::MAX));
        assert!(ok("1e2").is_f64());
        assert_eq!(ok("-.25"), json!(-0.25));
    }

    #[test]
    fn errors_have_line_and_column() {
        assert_eq!(
            err("{\n  \"apps\": [\n    {\"name\": \"a\" \"script\": \"x\"}\n  ]\n}"),
            (3, 18, "expected `,` or `}`".into())
        );
        assert_eq!(err("{a: 1,\n b 2}"), (2, 4, "expected `:`".into()));
        assert_eq!(err("[1, 2"), (1, 6, "EOF while parsing a list".into()));
        assert_eq!(err("{a: 'x"), (1, 7, "EOF while parsing a string".into()));
        assert_eq!(err("'a\nb'"), (1, 3, err("'a\nb'").2));
        assert_eq!(err("{} x"), (1, 4, "trailing characters".into()));
        assert_eq!(err(""), (1, 1, "EOF while parsing a value".into()));
        assert_eq!(err("/* open"), (1, 1, "unterminated comment".into()));
        assert_eq!(err("{1: 2}").0, 1);
        assert_eq!(err("[undefined]"), (1, 2, "expected value".into()));
        assert_eq!(err("[01]").2, "invalid number (leading zero)");
        assert!(err("{x: NaN}").2.contains("NaN"));
        assert!(err("{x: -Infinity}").2.contains("Infinity"));
        assert_eq!(err("'\\ud800'").2, "lone leading surrogate in hex escape");
        assert_eq!(err("'\\x4'").2, "invalid escape");
        assert_eq!(err("[1 2]").2, "expected `,` or `]`");
        assert_eq!(err("[1,,]").2, "expected value");
        assert_eq!(err("0x").2, "invalid number");
        assert_eq!(err("1ea").2, "invalid number");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert_eq!(err(&deep).2, "recursion limit exceeded");
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(err("{é: 'ü' x}"), (1, 9, "expected `,` or `}`".into()));
    }
}
