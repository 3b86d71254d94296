//! Decoding what the URL says: `%XX` in path segments, and the query parameters of
//! `/api/logs` and `/api/events` ([`Query`]).

use crate::follow::TooManyLines;
use kelpie_proto::LogsRequest;
use kelpie_proto::Target;

/// Why the query of `/api/logs` or `/api/events` is refused (a 400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum QueryError {
    /// `lines` is not a number.
    #[error("`lines` must be a whole number, got `{0}`")]
    Lines(String),
    /// `lines` is more than a client may ask for.
    #[error("`lines`: {0}")]
    TooManyLines(TooManyLines),
    /// `stream` is none of `out`, `err`, `all`.
    #[error("`stream` must be `out`, `err` or `all`, got `{0}`")]
    Stream(String),
}

/// The cause is in the message (`lines: <why>`), so not also a `#[source]` (see
/// docs/architecture.md, "Errors are types, not strings").
impl From<TooManyLines> for QueryError {
    fn from(cause: TooManyLines) -> Self {
        QueryError::TooManyLines(cause)
    }
}

/// `%XX` sequences of a path segment decoded (an app name may hold spaces).
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters of `/api/logs` and `/api/events`.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(&v.replace('+', " ")))
                })
                .collect(),
        )
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `target` (repeatable; none = all), `lines`, `stream` (`out`, `err`, or both).
    pub(super) fn logs_request(
        &self,
        follow: bool,
        default_lines: u32,
    ) -> Result<LogsRequest, QueryError> {
        let targets = self
            .0
            .iter()
            .filter(|(k, v)| k == "target" && !v.is_empty())
            .map(|(_, v)| Target::parse(v))
            .collect();
        let lines = match self.get("lines") {
            Some(n) => {
                let lines = n
                    .parse::<u32>()
                    .map_err(|_| QueryError::Lines(n.to_string()))?;
                crate::follow::check_tail_lines(lines)?;
                lines
            }
            None => default_lines,
        };
        let (out, err) = match self.get("stream") {
            None | Some("" | "all") => (true, true),
            Some("out") => (true, false),
            Some("err") => (false, true),
            Some(other) => return Err(QueryError::Stream(other.to_string())),
        };
        Ok(LogsRequest {
            targets,
            lines,
            out,
            err,
            follow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("my%20app"), "my app");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn a_bad_query_says_which_parameter() {
        let refused = |query: &str| Query::parse(query).logs_request(false, 100).err();
        assert_eq!(refused("lines=x"), Some(QueryError::Lines("x".into())));
        assert_eq!(
            refused("lines=20000").map(|e| e.to_string()),
            Some("`lines`: 20000 lines asked for; at most 10000 lines of each stream".into())
        );
        assert_eq!(
            refused("stream=both"),
            Some(QueryError::Stream("both".into()))
        );
        assert_eq!(refused("lines=5&stream=err"), None);
    }
}
