//! Sending one message to one target, bounded by [`TIMEOUT`].
//!
//! HTTP (webhooks, Slack, Discord) and email go through `curl`, on every server and Mac: the
//! daemon, root on most servers, carries no TLS stack of its own, and curl brings the system's
//! certificate authorities, proxies (`HTTPS_PROXY`) and STARTTLS. What holds a secret (the URL,
//! SMTP credentials) goes to curl in a config file only the daemon's user can read, never on
//! its command line, where any local user would see it. A `command` target runs with the
//! message as JSON on its stdin. Each runs in a process group of its own, killed at the
//! timeout.

use super::payload::Notice;
use kelpie_config::{NotifyKind, NotifyTarget};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one try may take, all included.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of a failed command's stderr quoted in its error.
const STDERR_KEEP: usize = 400;

/// Why a message did not reach its target.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No curl on the daemon's PATH.
    #[error(
        "curl is not installed: Kelpie sends HTTP and email with it (install the `curl` package)"
    )]
    NoCurl,
    /// The program could not be started.
    #[error("cannot run {program}: {cause}")]
    Spawn {
        program: String,
        cause: std::io::Error,
    },
    /// curl's private config file could not be written.
    #[error("cannot write curl's config in {dir}: {cause}")]
    ConfigFile { dir: String, cause: std::io::Error },
    /// No answer in time.
    #[error("no answer within {0} s")]
    Timeout(u64),
    /// Waiting for the program failed.
    #[error("waiting for {program}: {cause}")]
    Wait {
        program: String,
        cause: std::io::Error,
    },
    /// The program failed (curl: the receiver refused, or could not be reached).
    #[error("{program} failed ({status}){detail}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        /// `: ` and what it said, or nothing.
        detail: String,
    },
    /// The target's queue is full (`kelpie notify test`).
    #[error("its queue is full: it is behind with earlier messages")]
    QueueFull,
    /// The target's task ended (the targets were read again meanwhile).
    #[error("the daemon stopped notifying it")]
    Stopped,
}

/// Send `notice` to `target`: what the receiver answered (an HTTP status), or why it failed.
pub(super) async fn send(
    target: &NotifyTarget,
    notice: &Notice,
    host: &str,
    home: &Path,
) -> Result<String, DeliveryError> {
    match &target.kind {
        NotifyKind::Command(command) => {
            let body = notice.to_json(host).to_string();
            let env = [
                ("KELPIE_EVENT", notice.event.to_string()),
                ("KELPIE_APP", notice.app.clone().unwrap_or_default()),
            ];
            run("/bin/sh", &["-c", command], &env, body.as_bytes()).await
        }
        kind => {
            let (config, stdin) = curl_config(kind, target.ca_file.as_deref(), notice, host);
            let file =
                PrivateFile::write(home, &config).map_err(|cause| DeliveryError::ConfigFile {
                    dir: home.display().to_string(),
                    cause,
                })?;
            let path = file.0.display().to_string();
            let answered = run("curl", &["--disable", "-K", &path], &[], &stdin).await;
            drop(file);
            answered.map(|status| match status.trim() {
                "" => "sent".to_string(),
                code => format!("HTTP {code}"),
            })
        }
    }
}

/// curl's config for `kind` (its lines quoted as curl reads them) and what goes on its stdin.
fn curl_config(
    kind: &NotifyKind,
    ca_file: Option<&str>,
    notice: &Notice,
    host: &str,
) -> (String, Vec<u8>) {
    let mut lines = vec![
        "silent".to_string(),
        "show-error".to_string(),
        format!("max-time = {}", TIMEOUT.as_secs().saturating_sub(1)),
    ];
    if let Some(ca) = ca_file {
        lines.push(format!("cacert = {}", quoted(ca)));
    }
    let stdin = match kind {
        NotifyKind::Smtp { url, from, to } => {
            lines.push(format!("url = {}", quoted(url)));
            lines.push(format!("mail-from = {}", quoted(from)));
            for rcpt in to {
                lines.push(format!("mail-rcpt = {}", quoted(rcpt)));
            }
            // STARTTLS: required when the URL carries credentials (they never go in clear),
            // used when offered otherwise.
            let credentials = url
                .split("://")
                .nth(1)
                .is_some_and(|rest| rest.split('/').next().unwrap_or("").contains('@'));
            lines.push(if credentials { "ssl-reqd" } else { "ssl" }.to_string());
            lines.push("upload-file = \"-\"".to_string());
            lines.push("crlf".to_string());
            email(notice, host, from, to).into_bytes()
        }
        NotifyKind::Webhook(url) | NotifyKind::Slack(url) | NotifyKind::Discord(url) => {
            lines.push(format!("url = {}", quoted(url)));
            lines.push("proto = \"=http,https\"".to_string());
            lines.push("fail".to_string());
            lines.push("header = \"Content-Type: application/json\"".to_string());
            lines.push(format!(
                "user-agent = \"kelpie/{}\"",
                env!("CARGO_PKG_VERSION")
            ));
            lines.push("data-binary = \"@-\"".to_string());
            lines.push("output = \"/dev/null\"".to_string());
            lines.push("write-out = \"%{http_code}\"".to_string());
            let body = match kind {
                NotifyKind::Slack(_) => notice.to_slack(host),
                NotifyKind::Discord(_) => notice.to_discord(host),
                _ => notice.to_json(host),
            };
            body.to_string().into_bytes()
        }
        NotifyKind::Command(_) => Vec::new(),
    };
    (lines.join("\n") + "\n", stdin)
}

/// A value as curl's config reads it: in double quotes, `\` and `"` escaped.
fn quoted(value: &str) -> String {
    let escaped: String = value
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '\\' | '"' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// The email of `notice`: its headers, then its text.
fn email(notice: &Notice, host: &str, from: &str, to: &[String]) -> String {
    let (subject, body) = notice.to_email(host);
    // Headers are ASCII: anything else becomes `?` (the body is UTF-8).
    let ascii = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect()
    };
    let date = jiff::Zoned::now()
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string();
    format!(
        "From: {}\nTo: {}\nSubject: {}\nDate: {date}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}",
        ascii(from),
        ascii(&to.join(", ")),
        ascii(&subject),
    )
}

/// A file only the daemon's user can read, removed when dropped.
struct PrivateFile(PathBuf);

impl PrivateFile {
    fn write(dir: &Path, text: &str) -> std::io::Result<PrivateFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".notify-{}-{n}.curl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let file_guard = PrivateFile(path);
        file.write_all(text.as_bytes())?;
        Ok(file_guard)
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run `program` with `stdin`, in its own process group, within [`TIMEOUT`]: its stdout when
/// it exits 0, else why not.
async fn run(
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    stdin: &[u8],
) -> Result<String, DeliveryError> {
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    // Recorded as ours before anyone can reap it (see `crate::reaper`): tokio waits for it.
    let spawning = crate::reaper::spawning();
    let spawned = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn();
    spawning.record(spawned.as_ref().ok().and_then(|c| c.id()));
    let mut child = spawned.map_err(|cause| match cause.kind() {
        std::io::ErrorKind::NotFound if program == "curl" => DeliveryError::NoCurl,
        _ => DeliveryError::Spawn {
            program: program.to_string(),
            cause,
        },
    })?;
    let group = child.id();
    let outcome = tokio::time::timeout(TIMEOUT, async {
        if let Some(mut input) = child.stdin.take() {
            // A program that does not read its stdin is not an error.
            let _ = input.write_all(stdin).await;
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let read_out = async {
            if let Some(pipe) = stdout.as_mut() {
                let _ = pipe.take(4096).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(pipe) = stderr.as_mut() {
                let _ = pipe.take(STDERR_KEEP as u64).read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    })
    .await;
    if let Some(pgid) = group {
        // What it left behind goes with it (ESRCH, nothing left, is the usual outcome).
        let _ = kelpie_sys::kill_group(pgid, kelpie_sys::SIGKILL);
    }
    let (status, out, err) = outcome.map_err(|_| DeliveryError::Timeout(TIMEOUT.as_secs()))?;
    let status = status.map_err(|cause| DeliveryError::Wait {
        program: program.to_string(),
        cause,
    })?;
    let stdout = String::from_utf8_lossy(&out).trim().to_string();
    if status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&err);
    let said = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let detail = if said.is_empty() {
        stdout
    } else {
        said.to_string()
    };
    Err(DeliveryError::Failed {
        program: program.to_string(),
        status,
        detail: match detail.is_empty() {
            true => String::new(),
            false => format!(": {detail}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_values_are_quoted_and_secrets_stay_off_the_command_line() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        let notice = Notice::new("test", None, None, "t".into());
        let (config, body) = curl_config(
            &NotifyKind::Slack("https://hooks.slack.com/services/T/B/SECRET".into()),
            None,
            &notice,
            "h",
        );
        assert!(config.contains("url = \"https://hooks.slack.com/services/T/B/SECRET\""));
        assert!(String::from_utf8_lossy(&body).contains("\"blocks\""));
        let (config, mail) = curl_config(
            &NotifyKind::Smtp {
                url: "smtp://u:p@127.0.0.1:2525".into(),
                from: "k@example.com".into(),
                to: vec!["a@example.com".into(), "b@example.com".into()],
            },
            Some("/etc/ca.pem"),
            &notice,
            "h",
        );
        assert!(
            config.contains("ssl-reqd"),
            "credentials need STARTTLS: {config}"
        );
        assert_eq!(config.matches("mail-rcpt").count(), 2);
        assert!(config.contains("cacert = \"/etc/ca.pem\""));
        assert!(String::from_utf8_lossy(&mail).contains("Subject: [kelpie h] t"));
    }
}
