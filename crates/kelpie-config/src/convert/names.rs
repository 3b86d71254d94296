//! Names, paths and addresses: an environment variable's name, an account, app names, watched
//! paths, a port or a listening address.

use super::{expected, integer, out_of_range, ValueError};
use kelpie_core::ListenAddress;
use serde_json::Value;

/// The name of an environment variable: a letter or `_`, then letters, digits or `_`.
pub(crate) fn env_var_name(value: &Value) -> Result<String, ValueError> {
    let name = value.as_str().map(str::trim).unwrap_or_default();
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(expected(
            "an environment variable name (letters, digits and _, not starting with a digit)",
            value,
        ))
    }
}

/// `uid`/`gid`: a name or a number, kept as text. Whether it exists is the daemon's check (it
/// is the one that switches to it, maybe on another machine's user database).
pub(crate) fn account(value: &Value, what: &str) -> Result<String, ValueError> {
    match value {
        Value::String(s) if !s.trim().is_empty() && !s.trim().contains(char::is_whitespace) => {
            Ok(s.trim().to_string())
        }
        Value::Number(_) => integer(value)
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| n.to_string())
            .ok_or_else(|| expected(what, value)),
        _ => Err(expected(what, value)),
    }
}

/// `depends_on`: an app name or a list of them; repeated names count once.
pub(crate) fn app_names(value: &Value) -> Result<Vec<String>, ValueError> {
    let one = |item: &Value| match item {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        other => Err(expected("an app name or a list of app names", other)),
    };
    let names: Vec<String> = match value {
        Value::Array(items) => items.iter().map(one).collect::<Result<_, _>>()?,
        other => vec![one(other)?],
    };
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

/// `watch`: `true` (the app's directory, returned as `.`), `false` (nothing), a path or a list
/// of paths, as written: the caller resolves them against the app's cwd.
pub(crate) fn watch(value: &Value) -> Result<Vec<String>, ValueError> {
    let what = "true, false, a path or a list of paths";
    match value {
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(vec![".".to_string()]),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Vec::new()),
        Value::Bool(true) => Ok(vec![".".to_string()]),
        Value::Bool(false) => Ok(Vec::new()),
        Value::String(s) if !s.trim().is_empty() => Ok(vec![s.trim().to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(expected("a list of paths", other)),
            })
            .collect(),
        _ => Err(expected(what, value)),
    }
}

/// A TCP port, 1 to 65535.
pub(crate) fn port(value: &Value) -> Result<u16, ValueError> {
    const WHAT: &str = "a port number between 1 and 65535";
    let n = integer(value).ok_or_else(|| expected(WHAT, value))?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| out_of_range(WHAT, value))
}

/// What `port` accepts, for messages.
const LISTEN_FORMS: &str =
    "a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:/run/app.sock)";

/// `port`: a port number, or a string read by [`ListenAddress::parse`] (`3000`,
/// `127.0.0.1:3000`, `[::1]:3000`, `unix:/run/app.sock`, `/run/app.sock`).
pub(crate) fn listen(value: &Value) -> Result<ListenAddress, ValueError> {
    match value {
        Value::String(s) => ListenAddress::parse(s).map_err(|_| expected(LISTEN_FORMS, value)),
        Value::Number(_) => port(value).map(|port| ListenAddress::Tcp { host: None, port }),
        _ => Err(expected(LISTEN_FORMS, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_are_checked() {
        assert_eq!(port(&json!(8080)), Ok(8080));
        assert_eq!(port(&json!("3000")), Ok(3000));
        assert!(port(&json!(0)).is_err());
        assert!(port(&json!(70000)).is_err());
    }

    #[test]
    fn listen_addresses_take_numbers_and_strings() {
        let tcp = |host: Option<&str>, port| ListenAddress::Tcp {
            host: host.map(str::to_string),
            port,
        };
        assert_eq!(listen(&json!(3000)), Ok(tcp(None, 3000)));
        assert_eq!(listen(&json!("3000")), Ok(tcp(None, 3000)));
        assert_eq!(
            listen(&json!("127.0.0.1:80")),
            Ok(tcp(Some("127.0.0.1"), 80))
        );
        assert_eq!(listen(&json!("[::1]:80")), Ok(tcp(Some("::1"), 80)));
        let unix = ListenAddress::Unix {
            path: "/run/a.sock".into(),
        };
        assert_eq!(listen(&json!("unix:/run/a.sock")), Ok(unix.clone()));
        assert_eq!(listen(&json!("/run/a.sock")), Ok(unix));
        assert_eq!(
            listen(&json!(0)).map_err(|e| e.to_string()),
            Err("expected a port number between 1 and 65535, got 0".into())
        );
        assert_eq!(
            listen(&json!("web:x")).map_err(|e| e.to_string()),
            Err(format!("expected {LISTEN_FORMS}, got \"web:x\""))
        );
        assert!(listen(&json!("unix:a.sock")).is_err());
        assert!(listen(&json!(true)).is_err());
    }

    #[test]
    fn env_var_names_are_checked() {
        assert_eq!(env_var_name(&json!("PORT")), Ok("PORT".into()));
        assert_eq!(env_var_name(&json!("_x1")), Ok("_x1".into()));
        assert_eq!(env_var_name(&json!(" INST ")), Ok("INST".into()));
        for bad in [json!(""), json!("1X"), json!("A-B"), json!("A=B"), json!(3)] {
            assert!(env_var_name(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watch_takes_booleans_paths_and_lists() {
        assert_eq!(watch(&json!(true)), Ok(vec![".".into()]));
        assert_eq!(watch(&json!("TRUE")), Ok(vec![".".into()]));
        assert_eq!(watch(&json!(false)), Ok(vec![]));
        assert_eq!(watch(&json!(" src ")), Ok(vec!["src".into()]));
        assert_eq!(watch(&json!(["a", "b"])), Ok(vec!["a".into(), "b".into()]));
        assert_eq!(watch(&json!([])), Ok(vec![]));
        assert!(watch(&json!([true])).is_err());
        assert!(watch(&json!({})).is_err());
    }

    #[test]
    fn app_names_take_one_or_many_once_each() {
        assert_eq!(app_names(&json!("db")), Ok(vec!["db".into()]));
        assert_eq!(
            app_names(&json!(["db", " cache ", "db"])),
            Ok(vec!["db".into(), "cache".into()])
        );
        assert_eq!(app_names(&json!([])), Ok(vec![]));
        assert!(app_names(&json!("")).is_err());
        assert!(app_names(&json!([1])).is_err());
    }
}
