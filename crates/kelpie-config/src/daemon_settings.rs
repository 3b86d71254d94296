//! Daemon-wide settings: `<home>/kelpie.toml`: the log rotation defaults that apply to apps
//! which do not set their own `log_max_size`, `log_retain`, `log_compress` or
//! `log_rotate_interval` (`[logs]`), the web dashboard, HTTP API and metrics (`[web]`), and
//! `strict = true` (top level), which makes warnings about ecosystem files errors, and the
//! targets of notifications (`[[notify]]`, see `notify_targets.rs`).

use crate::convert;
use crate::errors::ConfigError;
use crate::formats::{self, Format};
use kelpie_core::LogRotation;
use serde_json::Value;
use std::path::Path;

/// Log rotation applied to apps that do not set their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDefaults {
    /// Rotate a file once it reaches this many bytes (0 = never by size).
    pub max_size: u64,
    /// Rotated files kept per log file.
    pub retain: u32,
    /// Gzip rotated files.
    pub compress: bool,
    /// Rotate at each boundary of this period in local time (86 400 000 = at midnight; 0 = never
    /// by time).
    pub interval_ms: u64,
}

impl Default for LogDefaults {
    /// 10 MiB, 10 files kept, gzip, daily at local midnight.
    fn default() -> Self {
        LogDefaults {
            max_size: 10 * 1024 * 1024,
            retain: 10,
            compress: true,
            interval_ms: convert::DAILY_MS,
        }
    }
}

impl LogDefaults {
    /// The rotation of one app: its own settings where it has them, these defaults elsewhere.
    pub fn for_app(&self, rotation: &LogRotation) -> LogDefaults {
        LogDefaults {
            max_size: rotation.max_size.unwrap_or(self.max_size),
            retain: rotation.retain.unwrap_or(self.retain),
            compress: rotation.compress.unwrap_or(self.compress),
            interval_ms: rotation.interval_ms.unwrap_or(self.interval_ms),
        }
    }
}

/// Everything `kelpie.toml` configures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonSettings {
    /// The `[logs]` section.
    pub logs: LogDefaults,
    /// The `[web]` section: serve the web page, the HTTP API and `/metrics` (none = do not).
    pub web: Option<WebSettings>,
    /// `strict = true`: `kelpie start` (and restart/reload of a file) treats every warning
    /// about an ecosystem file (unknown fields, PM2 fields without effect) as an error, as
    /// `--strict` does.
    pub strict: bool,
    /// `[[notify]]`: where to say that something went wrong.
    pub notify: Vec<crate::NotifyTarget>,
}

/// Where and how the daemon serves HTTP (`[web]`, or `kelpie web`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// TCP port (PM2's old `pm2 web` used 9615, the default here too).
    pub port: u16,
    /// Address to bind: an IP address, or `localhost`. Default `127.0.0.1`.
    pub host: String,
    /// When set, every API call and `/metrics` needs `Authorization: Bearer <token>`. Required
    /// for any address other than loopback. When not, the daemon uses the token of
    /// `<home>/web.token` (made on first use) for the calls that change something.
    pub token: Option<String>,
    /// On loopback without a token, let the calls that change something (every method but
    /// GET) through without one too. Off by default: any local user could stop your apps.
    pub open_loopback: bool,
    /// `[[web.hosts]]`: other machines' daemons the page shows too (read-only).
    pub hosts: Vec<crate::WebHost>,
}

/// The port of `[web]` and `kelpie web` when none is given.
pub const DEFAULT_WEB_PORT: u16 = 9615;

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            port: DEFAULT_WEB_PORT,
            host: "127.0.0.1".to_string(),
            token: None,
            open_loopback: false,
            hosts: Vec::new(),
        }
    }
}

impl WebSettings {
    /// The address to bind, or why these settings cannot be served: a host that is not an IP
    /// address (or `localhost`), or an address other than loopback without a token.
    pub fn socket_addr(&self) -> Result<std::net::SocketAddr, WebSettingsError> {
        let ip: std::net::IpAddr = if self.host.eq_ignore_ascii_case("localhost") {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            self.host.trim_matches(['[', ']']).parse().map_err(|_| {
                WebSettingsError::HostNotAnAddress {
                    host: self.host.clone(),
                }
            })?
        };
        if let Some(token) = &self.token {
            check_token(token)?;
            if self.open_loopback {
                return Err(WebSettingsError::OpenLoopbackWithToken);
            }
        } else if !ip.is_loopback() {
            return Err(WebSettingsError::NoTokenOffLoopback { ip });
        }
        Ok(std::net::SocketAddr::new(ip, self.port))
    }
}

/// Why web settings cannot be served ([`WebSettings::socket_addr`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebSettingsError {
    /// A host that is neither an IP address nor `localhost`.
    #[error(
        "web host `{host}` is not an IP address (use 127.0.0.1, ::1, 0.0.0.0, an address of this machine, or localhost)"
    )]
    HostNotAnAddress {
        /// The host as configured.
        host: String,
    },
    /// A token that cannot be sent in a header.
    #[error(transparent)]
    Token(#[from] BadToken),
    /// Both a token and `open_loopback`.
    #[error("{OPEN_LOOPBACK_WITH_TOKEN}")]
    OpenLoopbackWithToken,
    /// An address other than loopback without a token: anyone reaching it could stop the apps.
    #[error(
        "refusing to serve the web API on {ip}, which is not a loopback address, without a token: anyone who can reach it could stop your apps. Set `token` in the `[web]` section of kelpie.toml, or pass --token (or KELPIE_WEB_TOKEN) to `kelpie web`"
    )]
    NoTokenOffLoopback {
        /// The address asked for.
        ip: std::net::IpAddr,
    },
}

/// `open_loopback` and a token contradict each other.
const OPEN_LOOPBACK_WITH_TOKEN: &str = "`open_loopback` only applies without a token (with a token every call needs it): set one or the other";

/// A web token too short, or holding characters a header cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the web token must be at least 16 visible ASCII characters (no spaces); for example the output of `openssl rand -hex 24`"
)]
pub struct BadToken;

/// A token must be usable in an HTTP header: at least 16 visible ASCII characters.
pub fn check_token(token: &str) -> Result<(), BadToken> {
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadToken);
    }
    Ok(())
}

/// The token kept in `path` (`<home>/web.token`), made there first when there is none (or it
/// is not a usable token): 32 random bytes from the kernel in hex, in a file only its owner can
/// read. Two callers at once get the same token: the file appears whole or not at all.
pub fn stored_web_token(path: &Path) -> std::io::Result<String> {
    use std::io::{Read, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(token) = read_stored_token(path)? {
        return Ok(token);
    }
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".web.token.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()?;
        // A hard link never replaces a file: of two makers, the first one's token stays.
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // What is there is not usable (else it was read above): replace it.
                match read_stored_token(path)? {
                    Some(_) => Ok(()),
                    None => std::fs::rename(&temp, path),
                }
            }
            other => other,
        }
    })();
    let _ = std::fs::remove_file(&temp);
    written?;
    read_stored_token(path)?
        .ok_or_else(|| std::io::Error::other(format!("{} holds no usable token", path.display())))
}

/// The token in `path`, if there is a usable one; a file others could read is made private.
fn read_stored_token(path: &Path) -> std::io::Result<Option<String>> {
    use std::os::unix::fs::PermissionsExt;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let token = text.trim();
    if check_token(token).is_err() {
        return Ok(None);
    }
    if std::fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(Some(token.to_string()))
}

/// Sections of `kelpie.toml`.
const SECTIONS: &[&str] = &["logs", "web", "notify"];
/// Keys of `[logs]`.
const LOG_KEYS: &[&str] = &["max_size", "retain", "compress", "rotate_interval"];
/// Keys of `[web]`.
const WEB_KEYS: &[&str] = &["port", "host", "token", "open_loopback", "hosts"];

impl DaemonSettings {
    /// Read `<path>` (TOML). A missing file = defaults. Any error names the file and the key;
    /// every problem of the file is reported at once ([`ConfigError::Invalid`]).
    pub fn load(path: &Path) -> Result<DaemonSettings, ConfigError> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DaemonSettings::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    file,
                    cause: source,
                })
            }
        };
        let document = formats::parse_text(Format::Toml, &text, &file)?;
        let mut settings = DaemonSettings::default();
        let mut errors = Vec::new();
        let Value::Object(sections) = document else {
            // A TOML document is always a table.
            return Ok(settings);
        };
        for (name, value) in &sections {
            match (name.as_str(), value) {
                ("logs", Value::Object(keys)) => {
                    read_logs(keys, &mut settings.logs, &mut errors);
                }
                ("web", Value::Object(keys)) => {
                    settings.web = Some(read_web(keys, &mut errors));
                }
                ("notify", value) => {
                    settings.notify = crate::notify_targets::read_targets(value, &mut errors);
                }
                ("strict", value) => match convert::boolean(value) {
                    Ok(strict) => settings.strict = strict,
                    Err(message) => errors.push(format!("key `strict`: {message}")),
                },
                (section @ ("logs" | "web"), other) => errors.push(format!(
                    "`{section}` must be a section (`[{section}]`), got {}",
                    convert::kind_of(other)
                )),
                (other, _) => errors.push(unknown_top_level(other)),
            }
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid {
                errors: errors.into_iter().map(|e| format!("{file}: {e}")).collect(),
                file,
            })
        }
    }
}

/// An unknown top-level name: a misspelt section, or a `[logs]` key written outside it.
fn unknown_top_level(name: &str) -> String {
    if LOG_KEYS.contains(&name) {
        return format!("unknown key `{name}` (did you mean `{name}` in the `[logs]` section?)");
    }
    if WEB_KEYS.contains(&name) {
        return format!("unknown key `{name}` (did you mean `{name}` in the `[web]` section?)");
    }
    if crate::fields::closest(name, ["strict"]).is_some() {
        return format!("unknown key `{name}` (did you mean `strict`?)");
    }
    match crate::fields::closest(name, SECTIONS.iter().copied()) {
        Some(section) => format!("unknown section `{name}` (did you mean `[{section}]`?)"),
        None => format!(
            "unknown section `{name}` (known sections: {})",
            SECTIONS
                .iter()
                .map(|s| format!("`[{s}]`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn read_web(keys: &serde_json::Map<String, Value>, errors: &mut Vec<String>) -> WebSettings {
    let mut web = WebSettings::default();
    for (key, value) in keys {
        let problem = match key.as_str() {
            "port" => convert::port(value).map(|v| web.port = v).err(),
            "host" => convert::string(value).map(|v| web.host = v).err(),
            "token" => match convert::string(value) {
                Ok(token) => {
                    match check_token(&token) {
                        Ok(()) => web.token = Some(token),
                        Err(bad) => errors.push(format!("key `web.{key}`: {bad}")),
                    }
                    None
                }
                Err(e) => Some(e),
            },
            "open_loopback" => convert::boolean(value).map(|v| web.open_loopback = v).err(),
            "hosts" => {
                web.hosts = crate::web_hosts::read_hosts(value, errors);
                None
            }
            other => {
                errors.push(
                    match crate::fields::closest(other, WEB_KEYS.iter().copied()) {
                        Some(k) => format!("unknown key `web.{other}` (did you mean `{k}`?)"),
                        None => format!(
                            "unknown key `web.{other}` (known keys: `port`, `host`, `token`, `open_loopback`, `hosts`)"
                        ),
                    },
                );
                None
            }
        };
        if let Some(message) = problem {
            errors.push(format!("key `web.{key}`: {message}"));
        }
    }
    if web.open_loopback && web.token.is_some() {
        errors.push(format!("`[web]`: {OPEN_LOOPBACK_WITH_TOKEN}"));
    }
    web
}

fn read_logs(
    keys: &serde_json::Map<String, Value>,
    logs: &mut LogDefaults,
    errors: &mut Vec<String>,
) {
    for (key, value) in keys {
        let problem = match key.as_str() {
            "max_size" => convert::bytes(value).map(|v| logs.max_size = v).err(),
            "retain" => convert::count(value).map(|v| logs.retain = v).err(),
            "compress" => convert::boolean(value).map(|v| logs.compress = v).err(),
            "rotate_interval" => convert::rotate_interval(value)
                .map(|v| logs.interval_ms = v)
                .err(),
            other => {
                let known = LOG_KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.push(
                    match crate::fields::closest(other, LOG_KEYS.iter().copied()) {
                        Some(k) => format!("unknown key `logs.{other}` (did you mean `{k}`?)"),
                        None => format!("unknown key `logs.{other}` (known keys: {known})"),
                    },
                );
                None
            }
        };
        if let Some(message) = problem {
            errors.push(format!("key `logs.{key}`: {message}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> (tempfile::TempDir, Result<DaemonSettings, ConfigError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kelpie.toml");
        std::fs::write(&path, text).expect("write");
        let result = DaemonSettings::load(&path);
        (dir, result)
    }

    /// The error lines of an invalid file, with the temporary directory replaced by `<home>`.
    fn errors(text: &str) -> Vec<String> {
        let (dir, result) = load_text(text);
        let prefix = dir.path().display().to_string();
        match result {
            Err(ConfigError::Invalid { errors, .. }) => errors
                .into_iter()
                .map(|e| e.replace(&prefix, "<home>"))
                .collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let logs = LogDefaults::default();
        assert_eq!(logs.max_size, 10 * 1024 * 1024);
        assert_eq!(logs.retain, 10);
        assert!(logs.compress);
        assert_eq!(logs.interval_ms, 86_400_000);
        assert_eq!(DaemonSettings::default().logs, logs);
    }

    #[test]
    fn missing_or_empty_file_gives_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = DaemonSettings::load(&dir.path().join("kelpie.toml")).expect("missing");
        assert_eq!(settings, DaemonSettings::default());
        let (_dir, settings) = load_text("");
        assert_eq!(settings.expect("empty"), DaemonSettings::default());
        let (_dir, settings) = load_text("[logs]\n");
        assert_eq!(settings.expect("empty section"), DaemonSettings::default());
    }

    #[test]
    fn strict_is_a_top_level_switch() {
        let (_dir, settings) = load_text("strict = true\n[logs]\nretain = 3\n");
        let settings = settings.expect("valid");
        assert!(settings.strict);
        assert_eq!(settings.logs.retain, 3);
        assert!(!DaemonSettings::default().strict);
        assert_eq!(
            errors("strict = \"yes\"\nstrickt = true\n"),
            [
                "<home>/kelpie.toml: unknown key `strickt` (did you mean `strict`?)",
                "<home>/kelpie.toml: key `strict`: expected true or false, got \"yes\"",
            ]
        );
    }

    #[test]
    fn full_file_is_read() {
        let (_dir, settings) = load_text(
            "[logs]\nmax_size = \"512K\"\nretain = 3\ncompress = false\nrotate_interval = \"hourly\"\n",
        );
        assert_eq!(
            settings.expect("valid").logs,
            LogDefaults {
                max_size: 512 * 1024,
                retain: 3,
                compress: false,
                interval_ms: 3_600_000,
            }
        );
    }

    #[test]
    fn values_use_the_app_field_forms() {
        let (_dir, settings) = load_text(
            "[logs]\nmax_size = 1048576\nrotate_interval = \"6h\"\n# comment\nretain = 0\n",
        );
        let logs = settings.expect("valid").logs;
        assert_eq!(logs.max_size, 1 << 20);
        assert_eq!(logs.interval_ms, 6 * 3_600_000);
        assert_eq!(logs.retain, 0);
        assert!(logs.compress, "unset keys keep their default");
        let (_dir, settings) = load_text("[logs]\nmax_size = \"0\"\nrotate_interval = \"never\"\n");
        let logs = settings.expect("valid").logs;
        assert_eq!((logs.max_size, logs.interval_ms), (0, 0));
        let (_dir, settings) = load_text("[logs]\nrotate_interval = \"daily\"\n");
        assert_eq!(settings.expect("valid").logs.interval_ms, 86_400_000);
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        assert_eq!(
            errors(
                "[logs]\nmax_size = \"lots\"\nretain = -1\ncompress = \"yes\"\nrotate_interval = \"10s\"\n"
            ),
            [
                "<home>/kelpie.toml: key `logs.compress`: expected true or false, got \"yes\"",
                "<home>/kelpie.toml: key `logs.max_size`: expected a size like 200M, 1G or a number of bytes, got \"lots\"",
                "<home>/kelpie.toml: key `logs.retain`: expected a whole number ≥ 0, got -1",
                "<home>/kelpie.toml: key `logs.rotate_interval`: expected at least 1 minute (or \"never\"), got \"10s\"",
            ]
        );
        assert_eq!(
            errors("[logs]\nrotate_interval = \"weekly\"\n"),
            ["<home>/kelpie.toml: key `logs.rotate_interval`: expected \"daily\", \"hourly\", \"never\" or a duration like 6h, 30m or a number of milliseconds, got \"weekly\""]
        );
    }

    #[test]
    fn unknown_keys_and_sections_suggest_the_right_name() {
        assert_eq!(
            errors("[logs]\nmax_sise = \"1M\"\nflavour = 1\n"),
            [
                "<home>/kelpie.toml: unknown key `logs.flavour` (known keys: `max_size`, `retain`, `compress`, `rotate_interval`)",
                "<home>/kelpie.toml: unknown key `logs.max_sise` (did you mean `max_size`?)",
            ]
        );
        assert_eq!(
            errors("[log]\nretain = 3\n"),
            ["<home>/kelpie.toml: unknown section `log` (did you mean `[logs]`?)"]
        );
        assert_eq!(
            errors("retain = 3\n[daemon]\n"),
            [
                "<home>/kelpie.toml: unknown section `daemon` (known sections: `[logs]`, `[web]`, `[notify]`)",
                "<home>/kelpie.toml: unknown key `retain` (did you mean `retain` in the `[logs]` section?)",
            ]
        );
        assert_eq!(
            errors("logs = 3\n"),
            ["<home>/kelpie.toml: `logs` must be a section (`[logs]`), got a number"]
        );
    }

    #[test]
    fn web_section_reads_port_host_and_token() {
        let (_dir, settings) = load_text("[web]\n");
        assert_eq!(
            settings.expect("empty web").web,
            Some(WebSettings::default())
        );
        let (_dir, settings) =
            load_text("[web]\nport = 8080\nhost = \"0.0.0.0\"\ntoken = \"0123456789abcdef0123\"\n");
        let web = settings.expect("web").web.expect("section");
        assert_eq!(web.port, 8080);
        assert_eq!(web.host, "0.0.0.0");
        assert_eq!(web.token.as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(
            web.socket_addr().expect("with a token"),
            "0.0.0.0:8080".parse().expect("addr")
        );
        assert_eq!(
            errors("[web]\nport = 0\ntoken = \"short\"\nprt = 1\n"),
            [
                "<home>/kelpie.toml: key `web.port`: expected a port number between 1 and 65535, got 0",
                "<home>/kelpie.toml: unknown key `web.prt` (did you mean `port`?)",
                "<home>/kelpie.toml: key `web.token`: the web token must be at least 16 visible ASCII characters (no spaces); for example the output of `openssl rand -hex 24`",
            ]
        );
    }

    #[test]
    fn open_loopback_is_read_and_refused_with_a_token() {
        let (_dir, settings) = load_text("[web]\nopen_loopback = true\n");
        let web = settings.expect("web").web.expect("section");
        assert!(web.open_loopback);
        assert!(web.socket_addr().is_ok());
        let both = errors("[web]\nopen_loopback = true\ntoken = \"0123456789abcdef0123\"\n");
        assert_eq!(both.len(), 1, "{both:?}");
        assert!(both[0].contains("only applies without a token"), "{both:?}");
    }

    #[test]
    fn the_stored_web_token_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.token");
        let token = stored_web_token(&path).expect("made");
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(stored_web_token(&path).expect("kept"), token);
        // Made readable by others: made private again; emptied: a new one.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(stored_web_token(&path).expect("kept"), token);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "").expect("empty");
        let new = stored_web_token(&path).expect("remade");
        assert_ne!(new, token);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn other_hosts_are_tables_of_the_web_section() {
        let (_dir, settings) = load_text(
            "[web]\nport = 9615\n\n[[web.hosts]]\nname = \"web-2\"\nurl = \"http://10.0.0.12:9615\"\ntoken = \"0123456789abcdef0123\"\n",
        );
        let web = settings.expect("web").web.expect("section");
        assert_eq!(web.hosts.len(), 1);
        assert_eq!(web.hosts[0].name, "web-2");
        let (_dir, settings) = load_text("[[web.hosts]]\nname = \"x\"\n");
        let message = settings.expect_err("incomplete").to_string();
        assert!(
            message.contains("`web.hosts[0]`: `url` is missing"),
            "{message}"
        );
    }

    #[test]
    fn web_beyond_loopback_needs_a_token() {
        let web = |host: &str| WebSettings {
            host: host.to_string(),
            ..WebSettings::default()
        };
        assert!(web("127.0.0.1").socket_addr().is_ok());
        assert!(web("localhost").socket_addr().is_ok());
        assert!(web("::1").socket_addr().is_ok());
        let refused = web("0.0.0.0")
            .socket_addr()
            .expect_err("no token")
            .to_string();
        assert!(refused.contains("without a token"), "{refused}");
        let bad = web("example.com")
            .socket_addr()
            .expect_err("not an address")
            .to_string();
        assert!(bad.contains("not an IP address"), "{bad}");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let (dir, result) = load_text("[logs]\nretain = \n");
        let err = result.expect_err("should fail").to_string();
        let prefix = dir.path().display().to_string();
        assert!(
            err.starts_with(&format!("{prefix}/kelpie.toml:2:")),
            "{err}"
        );
    }

    #[test]
    fn unreadable_path_is_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = DaemonSettings::load(dir.path()).expect_err("a directory");
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    }

    #[test]
    fn app_settings_win_over_defaults() {
        let defaults = LogDefaults::default();
        assert_eq!(defaults.for_app(&LogRotation::default()), defaults);
        let own = LogRotation {
            max_size: Some(0),
            retain: None,
            compress: Some(false),
            interval_ms: None,
        };
        assert_eq!(
            defaults.for_app(&own),
            LogDefaults {
                max_size: 0,
                retain: 10,
                compress: false,
                interval_ms: 86_400_000,
            }
        );
    }
}
