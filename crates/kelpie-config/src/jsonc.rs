//! PM2 evaluates `.json` files as JavaScript, so real-world files contain comments and trailing
//! commas. These are blanked out (byte for byte, newlines kept) so serde_json's line and column
//! still point at the user's text.

/// `text` with `//` and `/* */` comments and trailing commas replaced by spaces.
pub fn relax(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    blank_comments(&mut bytes);
    blank_trailing_commas(&mut bytes);
    // Only whole ASCII-delimited comments and commas were replaced, so this cannot fail; falling
    // back to the original text keeps the function total anyway.
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

fn blank_comments(b: &mut [u8]) {
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        if in_string {
            match b[i] {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (b[i], b.get(i + 1)) {
            (b'"', _) => {
                in_string = true;
                i += 1;
            }
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    b[i] = b' ';
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let mut j = i + 2;
                while j < b.len() && !(b[j] == b'*' && b.get(j + 1) == Some(&b'/')) {
                    j += 1;
                }
                // An unterminated comment runs to the end; serde_json then reports EOF.
                let end = (j + 2).min(b.len());
                for byte in &mut b[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
            }
            _ => i += 1,
        }
    }
}

fn blank_trailing_commas(b: &mut [u8]) {
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b',' {
            let next = b[i + 1..].iter().find(|x| !x.is_ascii_whitespace());
            if matches!(next, Some(b'}' | b']')) {
                b[i] = b' ';
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_become_spaces() {
        let text = "{\n  // note\n  \"a\": \"x // y\", /* c\n */ \"b\": [1, 2,],\n}";
        let relaxed = relax(text);
        assert_eq!(relaxed.len(), text.len());
        assert_eq!(relaxed.matches('\n').count(), text.matches('\n').count());
        let v: serde_json::Value = serde_json::from_str(&relaxed).expect("valid json");
        assert_eq!(v["a"], "x // y");
        assert_eq!(v["b"], serde_json::json!([1, 2]));
    }

    #[test]
    fn strings_with_escaped_quotes_are_left_alone() {
        let text = r#"{"a": "q\"/*,]", "b": 1}"#;
        assert_eq!(relax(text), text);
    }
}
