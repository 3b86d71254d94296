//! A `deploy.<env>` section read as data and checked before any connection: PM2's keys with
//! PM2's meaning (docs/deploy.md), every problem named by its key, all of them at once.

mod check;

use check::{expand_local_home, truthy, Check, HostDefaults};
use serde_json::Value;

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
pub(super) const DEFAULT_KEEP_RELEASES: u32 = 5;

/// One `deploy.<env>` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
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
pub(super) struct Hooks {
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
pub(super) struct Host {
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
    pub(super) fn label(&self) -> String {
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
pub(super) enum SectionError {
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
pub(super) fn target(
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
    let user = check.optional_text(section, "user");
    if let Some(user) = &user {
        check.not_an_option("user", user);
    }
    let defaults = HostDefaults {
        user,
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
    for (key, value) in [("repo", &repo), ("ref", &git_ref)] {
        if let Some(value) = value {
            check.not_an_option(key, value);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::check::parse_address;
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
            ("-oProxyCommand=touch", "must not start with `-`"),
            ("-oProxyCommand=x@h", "must not start with `-`"),
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

    #[test]
    fn values_that_would_be_options_are_refused_at_the_check() {
        for (key, value) in [
            ("host", json!("-oProxyCommand=sh")),
            ("host", json!({"host": "-oProxyCommand=sh"})),
            ("host", json!({"host": "h", "user": "-oProxyCommand=sh"})),
            ("user", json!("-l")),
            ("repo", json!("--upload-pack=touch /tmp/x")),
            ("ref", json!("--output=/etc/x")),
        ] {
            let mut deploy = base();
            deploy["production"][key] = value.clone();
            let err = read(deploy).expect_err("refused").to_string();
            assert!(
                err.contains("must not start with `-`"),
                "{key} {value}: {err}"
            );
        }
    }
}
