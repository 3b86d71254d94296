//! What to serve and how: PM2's `PM2_SERVE_*` variables first, then the command's words
//! (`serve-static [path] [port] [host]`), then PM2's defaults.

use super::auth::Credentials;
use std::path::{Path, PathBuf};

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    /// The directory served (absolute).
    pub root: PathBuf,
    /// Address to listen on.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Unknown paths get the homepage (single-page apps) instead of a 404.
    pub spa: bool,
    /// The page served for `/` (and unknown paths with `spa`), as a path under the root.
    pub homepage: String,
    /// Every request must carry these (HTTP basic authentication).
    pub auth: Option<Credentials>,
}

/// Why the settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SettingsError {
    /// More than `[path] [port] [host]`.
    #[error("too many arguments {0:?}: expected [path] [port] [host]")]
    TooManyArguments(Vec<String>),
    /// A port that is not one.
    #[error("the port `{0}` is not a number from 0 to 65535")]
    Port(String),
    /// Basic authentication without both a user name and a password.
    #[error("basic authentication needs both PM2_SERVE_BASIC_AUTH_USERNAME and PM2_SERVE_BASIC_AUTH_PASSWORD")]
    IncompleteAuth,
}

/// PM2's default homepage (its default host is every interface; Kelpie's is loopback outside
/// a container: `kelpie_config::serve_default_host`).
const DEFAULT_HOMEPAGE: &str = "/index.html";

impl Settings {
    /// The settings from `var` (the environment) and the command's words, relative to `cwd`.
    pub(super) fn read(
        var: impl Fn(&str) -> Option<String>,
        words: &[String],
        cwd: &Path,
    ) -> Result<Settings, SettingsError> {
        if words.len() > 3 {
            return Err(SettingsError::TooManyArguments(words.to_vec()));
        }
        // As in PM2, an empty variable counts as unset.
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let word = |i: usize| words.get(i).filter(|w| !w.is_empty()).cloned();

        let root = var("PM2_SERVE_PATH")
            .or_else(|| word(0))
            .unwrap_or_else(|| ".".to_string());
        let root = cwd.join(root);
        let port = match var("PM2_SERVE_PORT").or_else(|| word(1)) {
            Some(text) => parse_port(&text)?,
            None => kelpie_config::SERVE_DEFAULT_PORT,
        };
        let host = var("PM2_SERVE_HOST")
            .or_else(|| word(2))
            .unwrap_or_else(|| kelpie_config::serve_default_host(var).to_string());
        let homepage = var("PM2_SERVE_HOMEPAGE").unwrap_or_else(|| DEFAULT_HOMEPAGE.to_string());
        let homepage = if homepage.starts_with('/') {
            homepage
        } else {
            format!("/{homepage}")
        };
        Ok(Settings {
            root,
            host,
            port,
            spa: var("PM2_SERVE_SPA").is_some_and(|v| v == "true"),
            homepage,
            auth: credentials(&var)?,
        })
    }
}

fn parse_port(text: &str) -> Result<u16, SettingsError> {
    text.trim()
        .parse()
        .map_err(|_| SettingsError::Port(text.to_string()))
}

/// Basic authentication: on with `PM2_SERVE_BASIC_AUTH=true`, as in PM2, and also when a user
/// name or password is set without it (PM2 would then serve everyone); `false` turns it off.
fn credentials(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, SettingsError> {
    let username = var("PM2_SERVE_BASIC_AUTH_USERNAME");
    let password = var("PM2_SERVE_BASIC_AUTH_PASSWORD");
    let on = match var("PM2_SERVE_BASIC_AUTH").as_deref() {
        Some("true") => true,
        Some(_) => false,
        None => username.is_some() || password.is_some(),
    };
    if !on {
        return Ok(None);
    }
    match (username, password) {
        (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
        _ => Err(SettingsError::IncompleteAuth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn read(vars: &[(&str, &str)], words: &[&str]) -> Result<Settings, SettingsError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Settings::read(|name| vars.get(name).cloned(), &words, Path::new("/srv"))
    }

    #[test]
    fn defaults_are_pm2s_but_loopback_outside_a_container() {
        let s = read(&[], &[]).expect("settings");
        assert_eq!(s.root, Path::new("/srv/."));
        assert_eq!(s.port, 8080);
        assert_eq!(s.host, "127.0.0.1");
        let s = read(&[("KELPIE_RUNTIME", "1")], &[]).expect("settings");
        assert_eq!(s.host, "0.0.0.0", "under kelpie runtime");
        assert!(!s.spa);
        assert_eq!(s.homepage, "/index.html");
        assert_eq!(s.auth, None);
    }

    #[test]
    fn variables_come_before_words() {
        let s = read(&[], &["site", "9000", "127.0.0.1"]).expect("settings");
        assert_eq!(
            (s.root.as_path(), s.port, s.host.as_str()),
            (Path::new("/srv/site"), 9000, "127.0.0.1")
        );
        let s = read(
            &[
                ("PM2_SERVE_PATH", "/var/www"),
                ("PM2_SERVE_PORT", "8081"),
                ("PM2_SERVE_SPA", "true"),
                ("PM2_SERVE_HOMEPAGE", "main.html"),
            ],
            &["site", "9000"],
        )
        .expect("settings");
        assert_eq!(s.root, Path::new("/var/www"));
        assert_eq!(s.port, 8081);
        assert!(s.spa);
        assert_eq!(s.homepage, "/main.html");
        assert!(!read(&[("PM2_SERVE_SPA", "false")], &[]).expect("ok").spa);
        assert_eq!(read(&[("PM2_SERVE_PORT", "")], &[]).expect("ok").port, 8080);
    }

    #[test]
    fn bad_ports_and_extra_words_are_errors() {
        assert!(read(&[("PM2_SERVE_PORT", "http")], &[])
            .expect_err("should fail")
            .to_string()
            .contains("`http` is not a number"));
        assert!(read(&[], &[".", "70000"]).is_err());
        assert!(read(&[], &["a", "1", "h", "x"])
            .expect_err("should fail")
            .to_string()
            .contains("too many arguments"));
    }

    #[test]
    fn basic_auth_needs_both_and_is_on_when_they_are_set() {
        let creds = Some(Credentials {
            username: "u".into(),
            password: "p".into(),
        });
        let both = [
            ("PM2_SERVE_BASIC_AUTH_USERNAME", "u"),
            ("PM2_SERVE_BASIC_AUTH_PASSWORD", "p"),
        ];
        assert_eq!(read(&both, &[]).expect("ok").auth, creds);
        let mut on = both.to_vec();
        on.push(("PM2_SERVE_BASIC_AUTH", "true"));
        assert_eq!(read(&on, &[]).expect("ok").auth, creds);
        let mut off = both.to_vec();
        off.push(("PM2_SERVE_BASIC_AUTH", "false"));
        assert_eq!(read(&off, &[]).expect("ok").auth, None);
        assert_eq!(
            read(&[("PM2_SERVE_BASIC_AUTH", "true")], &[]),
            Err(SettingsError::IncompleteAuth)
        );
        assert!(read(&both[..1], &[]).is_err());
    }
}
