//! A notification ([`Notice`]) and its shapes: Kelpie's own JSON (webhooks, commands), Slack's
//! incoming-webhook payload (`text`, with `blocks`), Discord's webhook payload (`content`, with
//! one embed), and an email's subject and body.

use kelpie_core::ExitRecord;
use serde_json::{json, Value};
use std::sync::Arc;

/// Lines of an exit's stderr tail carried in a message.
const TAIL_LINES: usize = 15;

/// Discord's limits: an embed's description, and a message's content.
const DISCORD_DESCRIPTION_MAX: usize = 4000;

/// Something to tell.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The event: `crash`, `crash_loop`, `recovered`, `errored`, `memory_restart`, `oom`,
    /// `daemon_restart`, `test`.
    pub event: &'static str,
    /// The app it is about (`None`: the daemon).
    pub app: Option<String>,
    /// The instance.
    pub pm_id: Option<u32>,
    /// One line saying what happened.
    pub title: String,
    /// More, in a few lines.
    pub text: String,
    /// The exit it is about, if one.
    pub exit: Option<Arc<ExitRecord>>,
    /// Crashes counted in the incident (crash loops, recovered, errored).
    pub count: Option<u32>,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Messages of this target held back by its rate limit since its last message.
    pub held_back: u32,
}

impl Notice {
    /// A notice about `app` (or the daemon) now.
    pub fn new(
        event: &'static str,
        app: Option<&str>,
        pm_id: Option<u32>,
        title: String,
    ) -> Notice {
        Notice {
            event,
            app: app.map(str::to_string),
            pm_id,
            title,
            text: String::new(),
            exit: None,
            count: None,
            at_ms: crate::clock::now().wall_ms,
            held_back: 0,
        }
    }

    /// The whole text: the title's details, the exception, the stderr tail, what was held back.
    fn body(&self) -> String {
        let mut body = self.text.clone();
        if let Some(exit) = &self.exit {
            if let Some(exception) = &exit.exception {
                let stack = exception.stack.as_deref().unwrap_or(&exception.message);
                body.push_str(&format!("\n\nException:\n{stack}"));
            }
            let tail = stderr_tail(exit);
            if !tail.is_empty() {
                body.push_str(&format!("\n\nLast lines of stderr:\n{}", tail.join("\n")));
            }
        }
        if self.held_back > 0 {
            body.push_str(&format!(
                "\n\n({} more messages were held back by this target's rate limit)",
                self.held_back
            ));
        }
        body.trim().to_string()
    }

    /// Kelpie's own shape: what a webhook gets, and a command on its stdin.
    pub fn to_json(&self, host: &str) -> Value {
        let exit = self.exit.as_ref().map(|e| {
            json!({
                "code": e.code,
                "signal": e.signal,
                "cause": e.cause.as_str(),
                "reason": e.reason,
                "uptime_ms": e.uptime_ms,
                "pid": e.pid,
                "oom": e.oom.is_some(),
                "exception": e.exception.as_ref().map(|x| json!({
                    "message": x.message,
                    "stack": x.stack,
                })),
                "stderr_tail": stderr_tail(e),
            })
        });
        json!({
            "event": self.event,
            "app": self.app,
            "pm_id": self.pm_id,
            "host": host,
            "title": self.title,
            "text": self.body(),
            "count": self.count,
            "at_ms": self.at_ms,
            "at": jiff::Timestamp::from_millisecond(self.at_ms as i64)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            "exit": exit,
            "held_back": self.held_back,
        })
    }

    /// Slack's incoming-webhook payload: `text` (the notification's line) and blocks.
    pub fn to_slack(&self, host: &str) -> Value {
        let body = self.body();
        let mut blocks = vec![json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*{}*", escape_slack(&self.title))},
        })];
        if !body.is_empty() {
            blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("```{}```", truncate(&escape_slack(&body), 2900))},
            }));
        }
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("kelpie on {} · {}", escape_slack(host), self.event)}],
        }));
        json!({"text": format!("[{host}] {}", self.title), "blocks": blocks})
    }

    /// Discord's webhook payload: `content` and one embed.
    pub fn to_discord(&self, host: &str) -> Value {
        let color = match self.event {
            "recovered" => 0x2e_cc71,
            "test" => 0x34_98db,
            _ => 0xe7_4c3c,
        };
        json!({
            "username": "Kelpie",
            "content": truncate(&format!("[{host}] {}", self.title), 1900),
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": truncate(&self.title, 250),
                "description": truncate(&self.body(), DISCORD_DESCRIPTION_MAX),
                "color": color,
                "footer": {"text": format!("kelpie on {host} · {}", self.event)},
                "timestamp": jiff::Timestamp::from_millisecond(self.at_ms as i64)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            }],
        })
    }

    /// An email's subject and plain-text body.
    pub fn to_email(&self, host: &str) -> (String, String) {
        let subject = format!("[kelpie {host}] {}", self.title);
        (
            one_line(&subject),
            format!("{}\n\n{}\n", self.title, self.body()),
        )
    }
}

/// An exit's stderr tail, its last lines.
fn stderr_tail(exit: &ExitRecord) -> Vec<String> {
    let skip = exit.stderr_tail.len().saturating_sub(TAIL_LINES);
    exit.stderr_tail[skip..].to_vec()
}

/// Slack's three characters to escape in text.
fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters (on a character boundary), with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A header's value: one line, without control characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What an exit was, in a few words: `exit code 1`, `signal SIGKILL`.
pub(super) fn how_it_ended(exit: &ExitRecord) -> String {
    match (&exit.signal, exit.code) {
        (Some(signal), _) => format!("signal {signal}"),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "an unknown status".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash() -> Notice {
        let mut notice = Notice::new("crash", Some("api"), Some(0), "api crashed <x>".into());
        notice.exit = Some(Arc::new(ExitRecord {
            code: Some(1),
            stderr_tail: vec!["Error: boom".into()],
            ..ExitRecord::default()
        }));
        notice
    }

    /// Slack's documented shape: a `text` string, `blocks` of sections and a context, with
    /// `&`, `<`, `>` escaped.
    #[test]
    fn slack_gets_text_and_blocks() {
        let slack = crash().to_slack("web-1");
        assert_eq!(slack["text"], "[web-1] api crashed <x>");
        assert_eq!(slack["blocks"][0]["type"], "section");
        assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
        assert!(slack["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("&lt;x&gt;"));
        assert!(slack["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("Error: boom"));
        assert_eq!(slack["blocks"][2]["type"], "context");
    }

    /// Discord's documented shape: `content` under 2000 characters, an embed with a title,
    /// description, colour and ISO timestamp, and no mentions parsed.
    #[test]
    fn discord_gets_content_and_one_embed() {
        let discord = crash().to_discord("web-1");
        assert!(discord["content"].as_str().unwrap_or("").len() < 2000);
        let embed = &discord["embeds"][0];
        assert_eq!(embed["title"], "api crashed <x>");
        assert!(embed["description"]
            .as_str()
            .unwrap_or("")
            .contains("Error: boom"));
        assert!(embed["color"].is_number());
        assert!(embed["timestamp"].as_str().unwrap_or("").ends_with('Z'));
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
    }
}
