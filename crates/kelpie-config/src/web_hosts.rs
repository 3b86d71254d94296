//! `[[web.hosts]]` in kelpie.toml: other machines' Kelpie daemons the web page shows beside this
//! one's apps (read-only), each reached at its web address with its own token.
//!
//! ```toml
//! [[web.hosts]]
//! name = "web-2"
//! url = "http://10.0.0.12:9615"
//! token = "…"          # that host's token: `kelpie web --show-token` there
//! ```
//!
//! The token is a secret: it is sent to that address only, never shown (not in `Debug`, not in
//! an answer of the API, not in a message).

use crate::convert;
use serde_json::Value;

/// Keys of one `[[web.hosts]]` table.
const HOST_KEYS: &[&str] = &["name", "url", "token"];

/// Another machine's daemon, as `[[web.hosts]]` names it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebHost {
    /// How the page names it.
    pub name: String,
    /// Its web address, `http://host:port` (and a path prefix, if a proxy serves it under one),
    /// without the final `/`.
    pub url: String,
    /// Its token (`Authorization: Bearer`), never shown.
    pub token: String,
}

impl std::fmt::Debug for WebHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebHost")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &"(hidden)")
            .finish()
    }
}

/// Read `hosts` (the value of `web.hosts`: a list of tables); each problem is pushed to
/// `errors`, naming the table by its place and key.
pub(crate) fn read_hosts(value: &Value, errors: &mut Vec<String>) -> Vec<WebHost> {
    let Value::Array(tables) = value else {
        errors.push(format!(
            "key `web.hosts`: expected a list of tables (`[[web.hosts]]`), got {}",
            convert::kind_of(value)
        ));
        return Vec::new();
    };
    let mut hosts: Vec<WebHost> = Vec::new();
    for (at, table) in tables.iter().enumerate() {
        let place = format!("web.hosts[{at}]");
        let Value::Object(keys) = table else {
            errors.push(format!(
                "`{place}`: expected a table, got {}",
                convert::kind_of(table)
            ));
            continue;
        };
        if let Some(host) = read_host(keys, &place, errors) {
            if hosts.iter().any(|h| h.name == host.name) {
                errors.push(format!(
                    "key `{place}.name`: another host is named {:?} already",
                    host.name
                ));
                continue;
            }
            hosts.push(host);
        }
    }
    hosts
}

fn read_host(
    keys: &serde_json::Map<String, Value>,
    place: &str,
    errors: &mut Vec<String>,
) -> Option<WebHost> {
    let before = errors.len();
    for key in keys.keys().filter(|k| !HOST_KEYS.contains(&k.as_str())) {
        errors.push(
            match crate::fields::closest(key, HOST_KEYS.iter().copied()) {
                Some(known) => format!("unknown key `{place}.{key}` (did you mean `{known}`?)"),
                None => format!("unknown key `{place}.{key}` (known keys: `name`, `url`, `token`)"),
            },
        );
    }
    let mut field = |key: &str| match keys.get(key) {
        None => {
            errors.push(format!("`{place}`: `{key}` is missing"));
            None
        }
        Some(value) => convert::string(value)
            .map_err(|e| errors.push(format!("key `{place}.{key}`: {e}")))
            .ok(),
    };
    let (name, url, token) = (field("name"), field("url"), field("token"));
    if let Some(name) = &name {
        if name.chars().any(char::is_control) || name.chars().count() > 64 {
            errors.push(format!(
                "key `{place}.name`: at most 64 characters, none of them a control character"
            ));
        }
    }
    let url = url.and_then(|url| match check_url(&url) {
        Ok(url) => Some(url),
        Err(why) => {
            errors.push(format!("key `{place}.url`: {why}"));
            None
        }
    });
    if let Some(token) = &token {
        if let Err(bad) = crate::check_token(token) {
            errors.push(format!("key `{place}.token`: {bad}"));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(WebHost {
        name: name?,
        url: url?,
        token: token?,
    })
}

/// Why a host's `url` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum UrlError {
    #[error(
        "{0:?}: Kelpie reaches other hosts over plain HTTP only (it has no TLS client): use a \
         private network, or an SSH tunnel (`ssh -N -L 19615:127.0.0.1:9615 <host>`) and \
         `http://127.0.0.1:19615`"
    )]
    Https(String),
    #[error("{0:?} is not an http:// address")]
    NotHttp(String),
    #[error("{0:?}: expected http://host:port (no user, no query, no spaces)")]
    Shape(String),
}

/// `http://host[:port][/prefix]`, without its final `/`.
fn check_url(url: &str) -> Result<String, UrlError> {
    let scheme_ends = url.find("://").map(|at| at + 3);
    let scheme = scheme_ends.map(|end| url[..end].to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http://") => {}
        Some("https://") => return Err(UrlError::Https(url.to_string())),
        _ => return Err(UrlError::NotHttp(url.to_string())),
    }
    let rest = &url[scheme_ends.unwrap_or(0)..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let odd = url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control());
    if authority.is_empty() || authority.contains('@') || odd {
        return Err(UrlError::Shape(url.to_string()));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<WebHost>, Vec<String>) {
        let value: Value = serde_json::from_str(text).expect("json");
        let mut errors = Vec::new();
        (read_hosts(&value, &mut errors), errors)
    }

    #[test]
    fn hosts_are_read_and_their_tokens_never_shown() {
        let (hosts, errors) = read(
            r#"[{"name": "web-2", "url": "http://10.0.0.12:9615/", "token": "0123456789abcdef0123"}]"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(hosts[0].url, "http://10.0.0.12:9615");
        assert!(!format!("{hosts:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn every_problem_is_named_by_its_table_and_key() {
        let (hosts, errors) = read(
            r#"[{"name": "a", "url": "https://x:1", "token": "short"},
                {"name": "b", "url": "http://x:1", "tokn": "0123456789abcdef0123"},
                {"name": "c", "url": "http://x:1", "token": "0123456789abcdef0123"},
                {"name": "c", "url": "http://y:1", "token": "0123456789abcdef0123"}]"#,
        );
        assert_eq!(hosts.len(), 1);
        let all = errors.join("\n");
        for expected in [
            "key `web.hosts[0].url`: \"https://x:1\": Kelpie reaches other hosts over plain HTTP",
            "key `web.hosts[0].token`: the web token must be",
            "unknown key `web.hosts[1].tokn` (did you mean `token`?)",
            "`web.hosts[1]`: `token` is missing",
            "key `web.hosts[3].name`: another host is named \"c\" already",
        ] {
            assert!(all.contains(expected), "{expected}\nnot in\n{all}");
        }
        let (_, errors) = read(r#"{"name": "a"}"#);
        assert!(
            errors[0].contains("expected a list of tables"),
            "{errors:?}"
        );
    }
}
