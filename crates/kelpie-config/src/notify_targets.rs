//! `[[notify]]` in kelpie.toml: where the daemon says that something went wrong (a crash, a
//! crash loop and its end, a memory-limit restart, an OOM kill, the daemon restarting after a
//! crash). One table per target; each takes exactly one of the kinds below, the events it
//! wants (all by default) and the apps (all by default).
//!
//! ```toml
//! [[notify]]
//! webhook = "https://example.com/hooks/kelpie"   # the event as JSON, by POST
//! # slack = "https://hooks.slack.com/services/…"  # Slack's incoming-webhook payload
//! # discord = "https://discord.com/api/webhooks/…" # Discord's webhook payload
//! # command = "/usr/local/bin/page-me"            # the event as JSON on its stdin
//! # smtp = "smtp://user:password@mail.example.com:587", from = "…", to = ["…"]
//! events = ["crash_loop", "errored", "oom"]
//! apps = ["api"]
//! per_minute = 10                                # messages; more are summed up later
//! ```
//!
//! A target's address holds its secret (Slack's and Discord's URLs are their credential): it
//! is never shown whole ([`NotifyTarget::shown`]).

use crate::convert;
use serde_json::Value;

/// Every event a target can ask for, as written in `events`.
pub const NOTIFY_EVENTS: &[&str] = &[
    "crash",
    "crash_loop",
    "recovered",
    "errored",
    "memory_restart",
    "oom",
    "health_failed",
    "health_recovered",
    "exception",
    "bad_behaviour",
    "deploy",
    "daemon_restart",
];

/// The kinds of target, as keys of a `[[notify]]` table.
const KINDS: &[&str] = &["webhook", "slack", "discord", "command", "smtp"];

/// Keys of one `[[notify]]` table besides its kind.
const OTHER_KEYS: &[&str] = &["events", "apps", "per_minute", "from", "to", "ca_file"];

/// Messages a target gets per minute when `per_minute` is not set.
pub const DEFAULT_PER_MINUTE: u32 = 10;

/// Where a target's messages go.
#[derive(Clone, PartialEq, Eq)]
pub enum NotifyKind {
    /// The event as JSON, POSTed to the URL.
    Webhook(String),
    /// A Slack incoming webhook: `{"text", "blocks"}`.
    Slack(String),
    /// A Discord webhook: `{"content", "embeds"}`.
    Discord(String),
    /// A shell command run with the event as JSON on its stdin.
    Command(String),
    /// Email over SMTP (STARTTLS when the server offers it, required for `smtp://` with auth).
    Smtp {
        /// `smtp://[user:password@]host[:port]` or `smtps://…`.
        url: String,
        /// The sender's address.
        from: String,
        /// The recipients.
        to: Vec<String>,
    },
}

/// One `[[notify]]` table.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// Where its messages go.
    pub kind: NotifyKind,
    /// The events it wants (empty: all of them).
    pub events: Vec<String>,
    /// The apps it wants to hear about (empty: all); events of the daemon always go.
    pub apps: Vec<String>,
    /// Messages per minute; what goes beyond is counted and summed up in the next message.
    pub per_minute: u32,
    /// A PEM file of certificate authorities to trust for this target's TLS (a private CA).
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyTarget")
            .field("target", &self.shown())
            .field("events", &self.events)
            .field("apps", &self.apps)
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl NotifyTarget {
    /// The target as it may be shown: its kind and its address with the secret parts masked
    /// (`slack https://hooks.slack.com/services/***`).
    pub fn shown(&self) -> String {
        match &self.kind {
            NotifyKind::Webhook(url) => format!("webhook {}", mask_url(url)),
            NotifyKind::Slack(url) => format!("slack {}", mask_url(url)),
            NotifyKind::Discord(url) => format!("discord {}", mask_url(url)),
            NotifyKind::Command(command) => {
                // Only the program: its arguments may hold a token.
                let program = command.split_whitespace().next().unwrap_or("");
                format!("command {program}")
            }
            NotifyKind::Smtp { url, to, .. } => {
                format!("smtp {} to {}", mask_url(url), to.join(", "))
            }
        }
    }

    /// Whether it wants `event` about `app` (`None`: about the daemon itself).
    pub fn wants(&self, event: &str, app: Option<&str>) -> bool {
        let event_ok = self.events.is_empty() || self.events.iter().any(|e| e == event);
        let app_ok = match app {
            Some(app) => self.apps.is_empty() || self.apps.iter().any(|a| a == app),
            None => true,
        };
        event_ok && app_ok
    }
}

/// A URL with what may be secret masked: the password of its user part, its query, and every
/// part of its path after the first (`https://hooks.slack.com/services/T0/B0/XYZ` →
/// `https://hooks.slack.com/services/***`).
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let name = user.split(':').next().unwrap_or("");
            format!("{name}:***@{host}")
        }
        None => authority.to_string(),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let shown_path = match (segments.next(), segments.next()) {
        (Some(first), Some(_)) => format!("/{first}/***"),
        (Some(first), None) if path.len() > first.len() + 1 || url.contains('?') => {
            format!("/{first}/***")
        }
        (Some(first), None) => format!("/{first}"),
        _ if url.contains('?') => "/***".to_string(),
        _ => String::new(),
    };
    format!("{scheme}{authority}{shown_path}")
}

/// Read `notify` (the value of the top-level `notify` key: a list of tables); each problem is
/// pushed to `errors`, naming the table by its place and key.
pub(crate) fn read_targets(value: &Value, errors: &mut Vec<String>) -> Vec<NotifyTarget> {
    let Value::Array(tables) = value else {
        errors.push(format!(
            "key `notify`: expected a list of tables (`[[notify]]`), got {}",
            convert::kind_of(value)
        ));
        return Vec::new();
    };
    let mut targets = Vec::new();
    for (at, table) in tables.iter().enumerate() {
        let place = format!("notify[{at}]");
        let Value::Object(keys) = table else {
            errors.push(format!(
                "`{place}`: expected a table, got {}",
                convert::kind_of(table)
            ));
            continue;
        };
        if let Some(target) = read_target(&place, keys, errors) {
            targets.push(target);
        }
    }
    targets
}

/// What one table says, before its kind is put together.
#[derive(Default)]
struct Parts {
    kind: Option<(&'static str, String)>,
    events: Vec<String>,
    apps: Vec<String>,
    per_minute: Option<u32>,
    from: Option<String>,
    to: Vec<String>,
    ca_file: Option<String>,
}

fn read_target(
    place: &str,
    keys: &serde_json::Map<String, Value>,
    errors: &mut Vec<String>,
) -> Option<NotifyTarget> {
    let before = errors.len();
    let mut parts = Parts::default();
    for (key, value) in keys {
        let problem = read_key(place, key, value, &mut parts, errors);
        if let Some(message) = problem {
            errors.push(format!("key `{place}.{key}`: {message}"));
        }
    }
    let Some((kind_key, address)) = parts.kind.take() else {
        // A kind given with a bad address was said already.
        let kind_named = keys.keys().any(|key| KINDS.contains(&key.as_str()));
        if !kind_named {
            errors.push(format!(
                "`{place}`: say where to send: one of {}",
                KINDS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return None;
    };
    let kind = match kind_key {
        "webhook" => NotifyKind::Webhook(address),
        "slack" => NotifyKind::Slack(address),
        "discord" => NotifyKind::Discord(address),
        "command" => NotifyKind::Command(address),
        _ => {
            let Some(from) = parts.from.take() else {
                errors.push(format!(
                    "`{place}`: an `smtp` target needs `from` (the sender's address)"
                ));
                return None;
            };
            if parts.to.is_empty() {
                errors.push(format!(
                    "`{place}`: an `smtp` target needs `to` (a list of addresses)"
                ));
                return None;
            }
            NotifyKind::Smtp {
                url: address,
                from,
                to: std::mem::take(&mut parts.to),
            }
        }
    };
    if !matches!(kind, NotifyKind::Smtp { .. }) && (parts.from.is_some() || !parts.to.is_empty()) {
        errors.push(format!(
            "`{place}`: `from` and `to` are for an `smtp` target only"
        ));
    }
    (errors.len() == before).then_some(NotifyTarget {
        kind,
        events: parts.events,
        apps: parts.apps,
        per_minute: parts.per_minute.unwrap_or(DEFAULT_PER_MINUTE),
        ca_file: parts.ca_file,
    })
}

/// One key of a table into `parts`; the problem with its value, if any.
fn read_key(
    place: &str,
    key: &str,
    value: &Value,
    parts: &mut Parts,
    errors: &mut Vec<String>,
) -> Option<String> {
    if let Some(kind) = KINDS.iter().find(|k| **k == key) {
        let address = match convert::string(value) {
            Ok(address) => address,
            Err(e) => return Some(e.to_string()),
        };
        if let Some((other, _)) = &parts.kind {
            return Some(format!("a target has one kind; this one already is `{other}` (write a `[[notify]]` table for each)"));
        }
        if let Some(problem) = check_address(kind, &address) {
            return Some(problem);
        }
        parts.kind = Some((kind, address));
        return None;
    }
    match key {
        "events" => match convert::words(value) {
            Ok(events) => {
                for event in &events {
                    if !NOTIFY_EVENTS.contains(&event.as_str()) {
                        errors.push(format!(
                            "key `{place}.events`: unknown event `{event}` (known events: {})",
                            NOTIFY_EVENTS.join(", ")
                        ));
                    }
                }
                parts.events = events;
                None
            }
            Err(e) => Some(e.to_string()),
        },
        "apps" => convert::words(value)
            .map(|v| parts.apps = v)
            .err()
            .map(|e| e.to_string()),
        "per_minute" => convert::positive_count(value)
            .map(|v| parts.per_minute = Some(v))
            .err()
            .map(|e| e.to_string()),
        "from" => convert::string(value)
            .map(|v| parts.from = Some(v))
            .err()
            .map(|e| e.to_string()),
        "to" => convert::words(value)
            .map(|v| parts.to = v)
            .err()
            .map(|e| e.to_string()),
        "ca_file" => convert::string(value)
            .map(|v| parts.ca_file = Some(v))
            .err()
            .map(|e| e.to_string()),
        other => {
            let known = KINDS.iter().chain(OTHER_KEYS).copied();
            errors.push(match crate::fields::closest(other, known) {
                Some(k) => format!("unknown key `{place}.{other}` (did you mean `{k}`?)"),
                None => format!(
                    "unknown key `{place}.{other}` (known keys: {})",
                    KINDS
                        .iter()
                        .chain(OTHER_KEYS)
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            None
        }
    }
}

/// Why an address cannot be used for a kind of target, if it cannot.
fn check_address(kind: &str, address: &str) -> Option<String> {
    let schemes: &[&str] = match kind {
        "command" => {
            return address
                .trim()
                .is_empty()
                .then(|| "the command is empty".to_string())
        }
        "smtp" => &["smtp://", "smtps://"],
        _ => &["http://", "https://"],
    };
    let lower = address.to_ascii_lowercase();
    let Some(scheme) = schemes.iter().find(|s| lower.starts_with(**s)) else {
        return Some(format!(
            "`{}` is not a URL starting with {}",
            mask_url(address),
            schemes.join(" or ")
        ));
    };
    let host = &address[scheme.len()..];
    if host.is_empty() || host.starts_with('/') {
        return Some(format!("`{}` names no host", mask_url(address)));
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("a URL has no spaces or control characters".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(toml: &str) -> (Vec<NotifyTarget>, Vec<String>) {
        let value: Value =
            crate::formats::parse_text(crate::formats::Format::Toml, toml, "kelpie.toml")
                .expect("TOML");
        let mut errors = Vec::new();
        let targets = read_targets(&value["notify"], &mut errors);
        (targets, errors)
    }

    #[test]
    fn each_kind_reads_with_its_events_apps_and_rate() {
        let (targets, errors) = read(
            r#"
[[notify]]
webhook = "http://127.0.0.1:9000/hook"
[[notify]]
slack = "https://hooks.slack.com/services/T0/B0/SECRET"
events = ["crash_loop", "errored"]
apps = ["api"]
per_minute = 3
[[notify]]
command = "/usr/local/bin/page-me --token abc"
[[notify]]
smtp = "smtp://me:pw@127.0.0.1:2525"
from = "kelpie@example.com"
to = ["ops@example.com"]
"#,
        );
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(targets.len(), 4);
        assert_eq!(targets[0].per_minute, DEFAULT_PER_MINUTE);
        assert!(targets[0].wants("crash", Some("any")));
        assert!(targets[1].wants("crash_loop", Some("api")));
        assert!(!targets[1].wants("crash", Some("api")));
        assert!(!targets[1].wants("errored", Some("web")));
        assert!(
            targets[1].wants("errored", None),
            "the daemon's events go to every target"
        );
        assert_eq!(targets[1].per_minute, 3);
        // Secrets never shown.
        assert_eq!(
            targets[1].shown(),
            "slack https://hooks.slack.com/services/***"
        );
        assert_eq!(targets[2].shown(), "command /usr/local/bin/page-me");
        assert_eq!(
            targets[3].shown(),
            "smtp smtp://me:***@127.0.0.1:2525 to ops@example.com"
        );
        assert!(!format!("{:?}", targets[1]).contains("SECRET"));
    }

    #[test]
    fn bad_tables_name_the_table_and_key() {
        let (_, errors) = read(
            r#"
[[notify]]
events = ["crash"]
[[notify]]
webhook = "ftp://x/y"
[[notify]]
webhook = "http://a/b"
slack = "https://c/d"
[[notify]]
discord = "https://discord.com/api/webhooks/1/T"
events = ["crashes"]
per_minut = 4
[[notify]]
smtp = "smtp://h:25"
to = ["a@b"]
"#,
        );
        let text = errors.join("\n");
        assert!(text.contains("`notify[0]`: say where to send"), "{text}");
        assert!(
            text.contains("key `notify[1].webhook`: `ftp://x/y` is not a URL"),
            "{text}"
        );
        assert!(
            text.contains("key `notify[2].webhook`") || text.contains("key `notify[2].slack`"),
            "{text}"
        );
        assert!(text.contains("unknown event `crashes`"), "{text}");
        assert!(
            text.contains("unknown key `notify[3].per_minut` (did you mean `per_minute`?)"),
            "{text}"
        );
        assert!(
            text.contains("`notify[4]`: an `smtp` target needs `from`"),
            "{text}"
        );
    }

    #[test]
    fn masking_keeps_scheme_host_and_first_segment() {
        assert_eq!(
            mask_url("https://discord.com/api/webhooks/1/TOKEN"),
            "https://discord.com/api/***"
        );
        assert_eq!(
            mask_url("http://127.0.0.1:9000/hook"),
            "http://127.0.0.1:9000/hook"
        );
        assert_eq!(mask_url("http://h/hook?key=SECRET"), "http://h/hook/***");
        assert_eq!(mask_url("https://u:SECRET@h/x"), "https://u:***@h/x");
    }
}
