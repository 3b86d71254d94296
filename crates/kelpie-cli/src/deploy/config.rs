//! A `deploy.<env>` section read as data and checked before any connection: PM2's keys with
//! PM2's meaning (docs/deploy.md), every problem named by its key, all of them at once.

use serde_json::{Map, Value};

/// The keys of a `deploy.<env>` section Kelpie reads (PM2's, then Kelpie's own).
const KEYS: &[&str] = &[
    "user",
    "host",
    "port",
    "key",
    "ssh_options",
    "repo",
    "ref",
    "path",
    "fetch",
    "pre-setup",
    "post-setup",
    "pre-deploy-local",
    "pre-deploy",
    "post-deploy",
    "env",
    "forward-agent",
    "needs_tty",
    "keep_releases",
    "shared_dirs",
    "shared_files",
    "parallel",
];

/// The keys a host object of a `host` list may carry, over the section's own.
const HOST_KEYS: &[&str] = &["host", "port", "user", "key", "path"];

/// How many releases a host keeps by default (Capistrano's).
pub const DEFAULT_KEEP_RELEASES: u32 = 5;

/// One `deploy.<env>` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The env's name (`production`).
    pub env: String,
    /// The hosts, in the file's order.
    pub hosts: Vec<Host>,
    /// The git repository the hosts fetch from.
    pub repo: String,
    /// The ref deployed when none is named on the command line.
    pub git_ref: String,
    /// `fetch: 'fast'`: shallow clone and fetch (`--depth 5`).
    pub shallow: bool,
    /// The hooks, as written.
    pub hooks: Hooks,
    /// `env`: exported in every hook, names upper-cased as PM2 does, values as written.
    pub variables: Vec<(String, String)>,
    /// Releases kept on each host (the current and the previous are never removed).
    pub keep_releases: u32,
    /// Directories of `shared/` linked into every release.
    pub shared_dirs: Vec<String>,
    /// Files of `shared/` linked into every release.
    pub shared_files: Vec<String>,
    /// Hosts worked on at the same time (0: all).
    pub parallel: usize,
}

/// The hook commands of a section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Before `setup` (a local file's name as its first word: that file runs on the host).
    pub pre_setup: Option<String>,
    /// After `setup`, in `current`.
    pub post_setup: Option<String>,
    /// On this machine, before anything remote.
    pub pre_deploy_local: Option<String>,
    /// On each host, in `current`, before the fetch.
    pub pre_deploy: Option<String>,
    /// On each host, in the new release, before it goes live (None: start or reload the file's
    /// apps with Kelpie).
    pub post_deploy: Option<String>,
}

/// Where and how to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The login (`user`), or ssh's default.
    pub user: Option<String>,
    /// The host name or address.
    pub host: String,
    /// The SSH port, or ssh's default (its config's, else 22).
    pub port: Option<u16>,
    /// `key`: an identity file (`~/` expanded here).
    pub key: Option<String>,
    /// `ssh_options`: each an `-o` option.
    pub ssh_options: Vec<String>,
    /// `forward-agent`: `-A`.
    pub forward_agent: bool,
    /// `needs_tty`: `-t`.
    pub needs_tty: bool,
    /// The deploy directory on the host: absolute, or `~/…` (expanded there).
    pub path: String,
}

impl Host {
    /// How the host is named in output: `user@host:port`.
    pub fn label(&self) -> String {
        let mut label = String::new();
        if let Some(user) = &self.user {
            label.push_str(user);
            label.push('@');
        }
        label.push_str(&self.host);
        if let Some(port) = self.port {
            label.push_str(&format!(":{port}"));
        }
        label
    }
}

/// Why a section cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SectionError {
    /// The file has no such env (or no `deploy` section at all).
    #[error("`{env}` environment is not defined in {file}'s deploy section{}", known_envs(.known))]
    NoSuchEnv {
        /// The env asked for.
        env: String,
        /// The file as named.
        file: String,
        /// The envs the file has.
        known: Vec<String>,
    },
    /// The section is there but wrong: every problem, one per line.
    #[error("{}", .problems.iter().map(|p| format!("{file}: {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file as named.
        file: String,
        /// Each problem, naming its key.
        problems: Vec<String>,
    },
}

fn known_envs(known: &[String]) -> String {
    if known.is_empty() {
        " (it has none)".to_string()
    } else {
        format!(" (it has: {})", known.join(", "))
    }
}

/// The section `env` of the file's `deploy` value, checked; `warnings` gets unknown keys.
pub fn target(
    deploy: Option<&Value>,
    env: &str,
    file: &str,
    warnings: &mut Vec<String>,
) -> Result<Target, SectionError> {
    let sections = deploy.and_then(Value::as_object);
    let Some(section) = sections.and_then(|s| s.get(env)) else {
        return Err(SectionError::NoSuchEnv {
            env: env.to_string(),
            file: file.to_string(),
            known: sections.map_or_else(Vec::new, |s| s.keys().cloned().collect()),
        });
    };
    let mut check = Check {
        at: format!("deploy.{env}"),
        problems: Vec::new(),
    };
    let Some(section) = section.as_object() else {
        check.problem("", "must be an object");
        return Err(check.into_error(file));
    };
    for key in section.keys() {
        if !KEYS.contains(&key.as_str()) {
            warnings.push(format!(
                "{file}: {}.{key} is not a deploy setting Kelpie knows: ignored",
                check.at
            ));
        }
    }
    let defaults = HostDefaults {
        user: check.optional_text(section, "user"),
        port: check.port(section.get("port"), "port"),
        key: check
            .optional_text(section, "key")
            .map(|k| expand_local_home(&k)),
        ssh_options: check.ssh_options(section.get("ssh_options")),
        forward_agent: section.get("forward-agent").is_some_and(truthy),
        needs_tty: section.get("needs_tty").is_some_and(truthy),
        path: check.path(section.get("path"), "path", true),
    };
    let hosts = check.hosts(section.get("host"), &defaults);
    let repo = check.required_text(section, "repo");
    let git_ref = check.required_text(section, "ref");
    let shallow = match section.get("fetch") {
        None | Some(Value::Null) => false,
        Some(Value::String(mode)) => mode == "fast",
        Some(_) => {
            check.problem("fetch", "must be \"fast\" or left out");
            false
        }
    };
    let hooks = Hooks {
        pre_setup: check.optional_text(section, "pre-setup"),
        post_setup: check.optional_text(section, "post-setup"),
        pre_deploy_local: check.optional_text(section, "pre-deploy-local"),
        pre_deploy: check.optional_text(section, "pre-deploy"),
        post_deploy: check.optional_text(section, "post-deploy"),
    };
    let env_vars = check.env(section.get("env"));
    let keep_releases = match section.get("keep_releases") {
        None | Some(Value::Null) => DEFAULT_KEEP_RELEASES,
        Some(value) => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => n,
            _ => {
                check.problem("keep_releases", &format!("must be 1 or more (got {value})"));
                DEFAULT_KEEP_RELEASES
            }
        },
    };
    let shared_dirs = check.relative_list(section.get("shared_dirs"), "shared_dirs");
    let shared_files = check.relative_list(section.get("shared_files"), "shared_files");
    let parallel = match section.get("parallel") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => 0,
        Some(Value::Bool(false)) => 1,
        Some(value) => match value.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n >= 1 => n,
            _ => {
                check.problem(
                    "parallel",
                    &format!("must be true, false or a number of hosts (got {value})"),
                );
                0
            }
        },
    };
    if !check.problems.is_empty() {
        return Err(check.into_error(file));
    }
    Ok(Target {
        env: env.to_string(),
        hosts,
        repo: repo.unwrap_or_default(),
        git_ref: git_ref.unwrap_or_default(),
        shallow,
        hooks,
        variables: env_vars,
        keep_releases,
        shared_dirs,
        shared_files,
        parallel,
    })
}

/// What a host of the list inherits from the section.
struct HostDefaults {
    user: Option<String>,
    port: Option<u16>,
    key: Option<String>,
    ssh_options: Vec<String>,
    forward_agent: bool,
    needs_tty: bool,
    path: Option<String>,
}

/// The problems found so far, each named by its key under `at`.
struct Check {
    at: String,
    problems: Vec<String>,
}

impl Check {
    fn problem(&mut self, key: &str, what: &str) {
        let at = if key.is_empty() {
            self.at.clone()
        } else if key.starts_with('[') {
            format!("{}{key}", self.at)
        } else {
            format!("{}.{key}", self.at)
        };
        self.problems.push(format!("{at} {what}"));
    }

    fn into_error(self, file: &str) -> SectionError {
        SectionError::Invalid {
            file: file.to_string(),
            problems: self.problems,
        }
    }

    fn optional_text(&mut self, section: &Map<String, Value>, key: &str) -> Option<String> {
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

    fn required_text(&mut self, section: &Map<String, Value>, key: &str) -> Option<String> {
        if section.get(key).is_none_or(Value::is_null) {
            self.problem(key, "is missing");
            return None;
        }
        self.optional_text(section, key)
    }

    /// A port as a number or a string of digits (PM2 ignores a number: a bug).
    fn port(&mut self, value: Option<&Value>, key: &str) -> Option<u16> {
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

    fn path(&mut self, value: Option<&Value>, key: &str, required: bool) -> Option<String> {
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

    fn ssh_options(&mut self, value: Option<&Value>) -> Vec<String> {
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

    fn env(&mut self, value: Option<&Value>) -> Vec<(String, String)> {
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

    fn relative_list(&mut self, value: Option<&Value>, key: &str) -> Vec<String> {
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

    fn hosts(&mut self, value: Option<&Value>, defaults: &HostDefaults) -> Vec<Host> {
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

    fn host(&mut self, item: &Value, key: &str, defaults: &HostDefaults) -> Option<Host> {
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
enum AddressError {
    #[error("has an empty user (got {0:?})")]
    EmptyUser(String),
    #[error("is not user@host:port (got {0:?})")]
    NotHostPort(String),
    #[error("must name a host (got {0:?})")]
    NoHost(String),
    #[error("has a port that is not 1-65535 (got {0:?})")]
    BadPort(String),
}

/// `user@host:port`, `host:port`, `[v6]:port` or a bare host.
fn parse_address(address: &str) -> Result<(Option<String>, String, Option<u16>), AddressError> {
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
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty() && s != "false",
        _ => true,
    }
}

/// `~/x` → `$HOME/x` on this machine (the key is read here).
fn expand_local_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(deploy: Value) -> Result<Target, SectionError> {
        target(Some(&deploy), "production", "eco.json", &mut Vec::new())
    }

    fn base() -> Value {
        json!({"production": {"user": "deploy", "host": "10.0.0.1", "repo": "git@x:y.git",
            "ref": "origin/main", "path": "/srv/app"}})
    }

    #[test]
    fn pm2s_keys_with_pm2s_meaning_and_a_numeric_port() {
        let mut deploy = base();
        deploy["production"]["port"] = json!(2222);
        deploy["production"]["ssh_options"] = json!("StrictHostKeyChecking=no");
        deploy["production"]["env"] = json!({"node_env": "production", "n": 3});
        deploy["production"]["post-deploy"] = json!("echo \"it's\" $HOME !");
        let target = read(deploy).expect("ok");
        assert_eq!(target.hosts.len(), 1);
        let host = &target.hosts[0];
        assert_eq!(host.label(), "deploy@10.0.0.1:2222");
        assert_eq!(host.ssh_options, ["StrictHostKeyChecking=no"]);
        assert_eq!(host.path, "/srv/app");
        assert_eq!(
            target.variables,
            [
                ("N".to_string(), "3".to_string()),
                ("NODE_ENV".to_string(), "production".to_string())
            ]
        );
        assert_eq!(
            target.hooks.post_deploy.as_deref(),
            Some("echo \"it's\" $HOME !")
        );
        assert_eq!(target.keep_releases, DEFAULT_KEEP_RELEASES);
    }

    #[test]
    fn hosts_as_strings_with_user_and_port_or_as_objects() {
        let mut deploy = base();
        deploy["production"]["host"] = json!([
            "ops@a.example:2200",
            {"host": "b.example", "port": "2201", "user": "kd2", "path": "~/pair"},
            "[::1]:22"
        ]);
        let target = read(deploy).expect("ok");
        let labels: Vec<String> = target.hosts.iter().map(Host::label).collect();
        assert_eq!(
            labels,
            ["ops@a.example:2200", "kd2@b.example:2201", "deploy@::1:22"]
        );
        assert_eq!(target.hosts[1].path, "~/pair");
        assert_eq!(target.hosts[0].path, "/srv/app");
    }

    #[test]
    fn every_problem_is_named_by_its_key_at_once() {
        let deploy = json!({"production": {"host": [], "port": "abc", "path": "app",
            "keep_releases": 0}});
        let Err(SectionError::Invalid { problems, .. }) = read(deploy) else {
            panic!("expected problems");
        };
        let text = problems.join("\n");
        for expected in [
            "deploy.production.host is an empty list",
            "deploy.production.port must be 1-65535 (got \"abc\")",
            "deploy.production.path must be absolute or start with ~/",
            "deploy.production.repo is missing",
            "deploy.production.ref is missing",
            "deploy.production.keep_releases must be 1 or more",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }

    #[test]
    fn each_required_key_missing_is_named() {
        for key in ["host", "repo", "path", "ref"] {
            let mut deploy = base();
            deploy["production"]
                .as_object_mut()
                .expect("ok")
                .remove(key);
            let error = read(deploy).expect_err("an error").to_string();
            assert!(
                error.contains(&format!("eco.json: deploy.production.{key} is missing")),
                "{error}"
            );
        }
    }

    #[test]
    fn an_env_not_in_the_file_names_the_ones_it_has() {
        let error =
            target(Some(&base()), "staging", "eco.json", &mut Vec::new()).expect_err("an error");
        assert_eq!(
            error.to_string(),
            "`staging` environment is not defined in eco.json's deploy section (it has: production)"
        );
        assert!(matches!(
            target(None, "staging", "eco.json", &mut Vec::new()),
            Err(SectionError::NoSuchEnv { .. })
        ));
    }

    #[test]
    fn unknown_keys_are_warned_about() {
        let mut deploy = base();
        deploy["production"]["colour"] = json!("blue");
        let mut warnings = Vec::new();
        target(Some(&deploy), "production", "eco.json", &mut warnings).expect("ok");
        assert_eq!(
            warnings,
            ["eco.json: deploy.production.colour is not a deploy setting Kelpie knows: ignored"]
        );
    }

    #[test]
    fn bad_host_addresses_are_refused() {
        for (address, why) in [
            ("@x", "empty user"),
            ("x:99999", "not 1-65535"),
            ("x:abc", "not 1-65535"),
            ("a b", "must name a host"),
        ] {
            assert!(
                parse_address(address)
                    .expect_err("an error")
                    .to_string()
                    .contains(why),
                "{address}"
            );
        }
        assert_eq!(
            parse_address("u@h:22").expect("ok"),
            (Some("u".into()), "h".into(), Some(22))
        );
    }
}
