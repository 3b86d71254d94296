//! Checking a `deploy.<env>` section's values, each problem named by its key: the hosts and
//! their addresses, paths, ports, hooks' environment and lists.

use super::{Host, SectionError, HOST_KEYS};
use serde_json::{Map, Value};

/// What a host of the list inherits from the section.
pub(super) struct HostDefaults {
    pub(super) user: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) key: Option<String>,
    pub(super) ssh_options: Vec<String>,
    pub(super) forward_agent: bool,
    pub(super) needs_tty: bool,
    pub(super) path: Option<String>,
}

/// The problems found so far, each named by its key under `at`.
pub(super) struct Check {
    pub(super) at: String,
    pub(super) problems: Vec<String>,
}

impl Check {
    pub(super) fn problem(&mut self, key: &str, what: &str) {
        let at = if key.is_empty() {
            self.at.clone()
        } else if key.starts_with('[') {
            format!("{}{key}", self.at)
        } else {
            format!("{}.{key}", self.at)
        };
        self.problems.push(format!("{at} {what}"));
    }

    pub(super) fn into_error(self, file: &str) -> SectionError {
        SectionError::Invalid {
            file: file.to_string(),
            problems: self.problems,
        }
    }

    pub(super) fn optional_text(
        &mut self,
        section: &Map<String, Value>,
        key: &str,
    ) -> Option<String> {
        match section.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.problem(key, "is empty");
                None
            }
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                self.problem(key, &format!("must be a string (got {other})"));
                None
            }
        }
    }

    pub(super) fn required_text(
        &mut self,
        section: &Map<String, Value>,
        key: &str,
    ) -> Option<String> {
        if section.get(key).is_none_or(Value::is_null) {
            self.problem(key, "is missing");
            return None;
        }
        self.optional_text(section, key)
    }

    /// A port as a number or a string of digits (PM2 ignores a number: a bug).
    /// A value that reaches a command line where an option could be (ssh's user, git's
    /// repository and ref): one starting with `-` is refused.
    pub(super) fn not_an_option(&mut self, key: &str, value: &str) {
        if value.trim_start().starts_with('-') {
            self.problem(
                key,
                &format!("must not start with `-`, which ssh or git would read as an option (got {value:?})"),
            );
        }
    }

    pub(super) fn port(&mut self, value: Option<&Value>, key: &str) -> Option<u16> {
        let value = value.filter(|v| !v.is_null())?;
        let parsed = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match parsed
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
        {
            Some(port) => Some(port),
            None => {
                self.problem(key, &format!("must be 1-65535 (got {value})"));
                None
            }
        }
    }

    pub(super) fn path(
        &mut self,
        value: Option<&Value>,
        key: &str,
        required: bool,
    ) -> Option<String> {
        match value {
            None | Some(Value::Null) => {
                if required {
                    self.problem(key, "is missing");
                }
                None
            }
            Some(Value::String(path)) if is_remote_path(path) => {
                Some(path.trim_end_matches('/').to_string()).filter(|p| !p.is_empty())
            }
            Some(other) => {
                self.problem(
                    key,
                    &format!("must be absolute or start with ~/ (got {other})"),
                );
                None
            }
        }
    }

    pub(super) fn ssh_options(&mut self, value: Option<&Value>) -> Vec<String> {
        let items: Vec<&Value> = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single) => vec![single],
        };
        let mut options = Vec::new();
        for item in items {
            match item.as_str().map(str::trim) {
                Some(option) if !option.is_empty() => {
                    // `-o X=y` and `X=y` both mean the option `X=y`.
                    let option = option.strip_prefix("-o").map_or(option, str::trim_start);
                    options.push(option.to_string());
                }
                _ => self.problem("ssh_options", &format!("must be strings (got {item})")),
            }
        }
        options
    }

    pub(super) fn env(&mut self, value: Option<&Value>) -> Vec<(String, String)> {
        let object = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Object(object)) => object,
            Some(other) => {
                self.problem(
                    "env",
                    &format!("must be an object of variables (got {other})"),
                );
                return Vec::new();
            }
        };
        let mut vars = Vec::new();
        for (name, value) in object {
            let upper = name.to_uppercase();
            if !is_variable_name(&upper) {
                self.problem(&format!("env.{name}"), "is not a variable name");
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                other => {
                    self.problem(
                        &format!("env.{name}"),
                        &format!("must be a string, number or boolean (got {other})"),
                    );
                    continue;
                }
            };
            vars.push((upper, text));
        }
        vars
    }

    pub(super) fn relative_list(&mut self, value: Option<&Value>, key: &str) -> Vec<String> {
        let items = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(single) => vec![single.clone()],
        };
        let mut list = Vec::new();
        for item in items {
            match item.as_str().map(|s| s.trim().trim_end_matches('/')) {
                Some(path)
                    if !path.is_empty()
                        && !path.starts_with('/')
                        && !path.split('/').any(|part| part == ".." || part == ".") =>
                {
                    list.push(path.to_string());
                }
                _ => self.problem(
                    key,
                    &format!("must be paths inside the release (got {item})"),
                ),
            }
        }
        list
    }

    pub(super) fn hosts(&mut self, value: Option<&Value>, defaults: &HostDefaults) -> Vec<Host> {
        let items: Vec<&Value> = match value {
            None | Some(Value::Null) => {
                self.problem("host", "is missing");
                return Vec::new();
            }
            Some(Value::Array(items)) if items.is_empty() => {
                self.problem("host", "is an empty list");
                return Vec::new();
            }
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single) => vec![single],
        };
        let listed = matches!(value, Some(Value::Array(_)));
        let mut hosts = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let key = if listed {
                format!("host[{index}]")
            } else {
                "host".to_string()
            };
            if let Some(host) = self.host(item, &key, defaults) {
                hosts.push(host);
            }
        }
        hosts
    }

    pub(super) fn host(
        &mut self,
        item: &Value,
        key: &str,
        defaults: &HostDefaults,
    ) -> Option<Host> {
        let mut host = Host {
            user: defaults.user.clone(),
            host: String::new(),
            port: defaults.port,
            key: defaults.key.clone(),
            ssh_options: defaults.ssh_options.clone(),
            forward_agent: defaults.forward_agent,
            needs_tty: defaults.needs_tty,
            path: defaults.path.clone().unwrap_or_default(),
        };
        let address = match item {
            Value::String(text) => text.clone(),
            Value::Object(object) => {
                for name in object.keys() {
                    if !HOST_KEYS.contains(&name.as_str()) {
                        self.problem(
                            &format!("{key}.{name}"),
                            "is not a host setting (host, port, user, key, path)",
                        );
                    }
                }
                if let Some(user) = self.optional_text(object, "user") {
                    self.not_an_option(&format!("{key}.user"), &user);
                    host.user = Some(user);
                }
                if let Some(port) = self.port(object.get("port"), &format!("{key}.port")) {
                    host.port = Some(port);
                }
                if let Some(k) = self.optional_text(object, "key") {
                    host.key = Some(expand_local_home(&k));
                }
                if let Some(path) = self.path(object.get("path"), &format!("{key}.path"), false) {
                    host.path = path;
                }
                match object.get("host").and_then(Value::as_str) {
                    Some(address) => address.to_string(),
                    None => {
                        self.problem(&format!("{key}.host"), "is missing");
                        return None;
                    }
                }
            }
            other => {
                self.problem(
                    key,
                    &format!("must be a string or a host object (got {other})"),
                );
                return None;
            }
        };
        match parse_address(&address) {
            Ok((user, name, port)) => {
                if user.is_some() {
                    host.user = user;
                }
                if port.is_some() {
                    host.port = port;
                }
                host.host = name;
            }
            Err(why) => {
                self.problem(key, &why.to_string());
                return None;
            }
        }
        if host.path.is_empty() {
            // The section's own `path` is reported missing already when it is the only one.
            return None;
        }
        Some(host)
    }
}

/// A host string that is not `user@host:port`; `Display` follows the key's name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum AddressError {
    #[error("has an empty user (got {0:?})")]
    EmptyUser(String),
    #[error("is not user@host:port (got {0:?})")]
    NotHostPort(String),
    #[error("must name a host (got {0:?})")]
    NoHost(String),
    #[error("has a port that is not 1-65535 (got {0:?})")]
    BadPort(String),
    #[error("must not start with `-`, which ssh would read as an option (got {0:?})")]
    Option(String),
}

/// `user@host:port`, `host:port`, `[v6]:port` or a bare host.
pub(super) fn parse_address(
    address: &str,
) -> Result<(Option<String>, String, Option<u16>), AddressError> {
    let address = address.trim();
    let (user, rest) = match address.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(AddressError::EmptyUser(address.to_string())),
        None => (None, address),
    };
    let (name, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((name, "")) => (name, None),
            Some((name, port)) => match port.strip_prefix(':') {
                Some(port) => (name, Some(port)),
                None => return Err(AddressError::NotHostPort(address.to_string())),
            },
            None => return Err(AddressError::NotHostPort(address.to_string())),
        }
    } else {
        match rest.split_once(':') {
            // An IPv6 address without brackets has several colons: no port.
            Some((name, port)) if !port.contains(':') => (name, Some(port)),
            _ => (rest, None),
        }
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(AddressError::NoHost(address.to_string()));
    }
    if name.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
        return Err(AddressError::Option(address.to_string()));
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>().ok().filter(|p| *p > 0) {
            Some(port) => Some(port),
            None => return Err(AddressError::BadPort(address.to_string())),
        },
    };
    Ok((user, name.to_string(), port))
}

fn is_remote_path(path: &str) -> bool {
    path.starts_with('/') || path == "~" || path.starts_with("~/")
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// PM2's reading of a flag: any value but `false`, `null`, `0` and `""`.
pub(super) fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty() && s != "false",
        _ => true,
    }
}

/// `~/x` → `$HOME/x` on this machine (the key is read here).
pub(super) fn expand_local_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => path.to_string(),
    }
}
