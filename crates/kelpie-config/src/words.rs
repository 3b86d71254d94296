//! Quote-aware splitting of a command-line string into words (`args: "--port 80 'a b'"`).

/// A quote opened and never closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unterminated {quote} quote in {text:?}")]
pub struct UnterminatedQuote {
    /// `'` or `"`.
    pub quote: char,
    /// The whole string being split.
    pub text: String,
}

/// Split on whitespace, honouring single quotes (literal), double quotes (where `\` escapes `"`
/// and `\`) and backslash escapes outside quotes, like a POSIX shell without expansions.
pub(crate) fn split_words(s: &str) -> Result<Vec<String>, UnterminatedQuote> {
    let mut words = Vec::new();
    let mut current = String::new();
    // A word can be empty but present (`''`), so track presence separately from content.
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' && matches!(chars.peek(), Some('"' | '\\')) => {
                current.extend(chars.next());
            }
            Some(_) => current.push(c),
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                match c {
                    '\'' | '"' => quote = Some(c),
                    '\\' => current.push(chars.next().unwrap_or('\\')),
                    _ => current.push(c),
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(UnterminatedQuote {
            quote: q,
            text: s.to_string(),
        });
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            split_words("  --port  80\t-v ").expect("splits"),
            ["--port", "80", "-v"]
        );
        assert!(split_words("   ").expect("splits").is_empty());
    }

    #[test]
    fn honours_quotes_and_escapes() {
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\"" f\ g ''"#).expect("splits"),
            ["a", "b c", "d \"e\"", "f g", ""]
        );
        assert_eq!(split_words(r#"--x="1 2""#).expect("splits"), ["--x=1 2"]);
    }

    #[test]
    fn rejects_unterminated_quotes() {
        assert!(split_words("a 'b")
            .expect_err("should fail")
            .to_string()
            .contains("unterminated"));
    }
}
