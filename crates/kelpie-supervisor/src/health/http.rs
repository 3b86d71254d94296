//! The HTTP probe: a plain `GET` of an `http://` URL, healthy on 2xx or 3xx (or the status
//! expected); only the status line is read.

use super::tcp::{authority, connect};
use super::{within, ProbeError, UrlError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Longest HTTP status line accepted; real ones are a few dozen bytes.
const STATUS_LINE_MAX: usize = 1024;

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpTarget {
    /// Host for the resolver: a name or an address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// `host:port` for the `Host` header and for reasons.
    pub authority: String,
    /// Path and query, percent-encoded where needed, never empty.
    pub target: String,
}

/// Parse `http://host[:port][/path][?query][#fragment]` (IPv6 in brackets, port 80 by
/// default). Only plain HTTP: there is no TLS client in the daemon.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, UrlError> {
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or_else(|| UrlError::NotHttp(url.to_string()))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host_port, tail) = rest.split_at(end);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| UrlError::Unclosed(url.to_string()))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| UrlError::Port(url.to_string()))?,
                    ),
                ),
            }
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    // The host goes into a header line: nothing that could end it or add another.
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b));
    if !host_ok {
        return Err(UrlError::Host(url.to_string()));
    }
    let port = match port {
        None | Some("") => 80,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| UrlError::Port(url.to_string()))?,
    };
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    Ok(HttpTarget {
        host: host.to_string(),
        port,
        authority: authority(host, port),
        target: request_target(tail),
    })
}

/// The request line's target: `/` first, and every byte that would break the line (spaces,
/// controls, non-ASCII) percent-encoded.
fn request_target(tail: &str) -> String {
    let mut target = String::with_capacity(tail.len() + 1);
    if !tail.starts_with('/') {
        target.push('/');
    }
    for byte in tail.bytes() {
        if byte.is_ascii_graphic() {
            target.push(char::from(byte));
        } else {
            target.push_str(&format!("%{byte:02X}"));
        }
    }
    target
}

pub(super) async fn http_probe(
    url: &str,
    expected: Option<u16>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let target = parse_http_url(url)?;
    let code = within(timeout, url, async {
        let mut stream = connect(&target.host, target.port, &target.authority).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kelpie-health\r\nConnection: close\r\n\r\n",
            target.target, target.authority
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|source| ProbeError::Send {
                at: target.authority.clone(),
                cause: source,
            })?;
        read_status(&mut stream, url).await
    })
    .await?;
    let healthy = match expected {
        Some(want) => code == want,
        None => (200..=399).contains(&code),
    };
    if healthy {
        return Ok(());
    }
    Err(ProbeError::Status {
        code,
        url: url.to_string(),
        expected,
    })
}

/// Read until the status line is complete and return its code; the headers and body are left
/// unread (the connection is closed right after).
async fn read_status(stream: &mut (impl AsyncRead + Unpin), url: &str) -> Result<u16, ProbeError> {
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|source| ProbeError::Read {
                url: url.to_string(),
                cause: source,
            })?;
        if n == 0 {
            if line.is_empty() {
                return Err(ProbeError::Closed {
                    url: url.to_string(),
                });
            }
            // A peer may close right after an unterminated line; judge what came.
            return parse_status_line(&line).ok_or_else(|| not_http(url, &line));
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = memchr::memchr(b'\n', &line) {
            return parse_status_line(&line[..end]).ok_or_else(|| not_http(url, &line[..end]));
        }
        if line.len() > STATUS_LINE_MAX {
            return Err(not_http(url, &line));
        }
    }
}

fn not_http(url: &str, got: &[u8]) -> ProbeError {
    let text = String::from_utf8_lossy(got);
    ProbeError::NotHttp {
        url: url.to_string(),
        start: text.trim().chars().take(60).collect(),
    }
}

/// The code of `HTTP/1.1 200 OK` (any version; the reason phrase may be missing).
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"HTTP/")?;
    let space = memchr::memchr(b' ', rest)?;
    let after_version = &rest[space + 1..];
    let code = after_version.get(..3)?;
    let ends_right = matches!(after_version.get(3), None | Some(b' '));
    if !ends_right || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- parsing ---

    #[test]
    fn http_urls_are_parsed() {
        let t = parse_http_url("http://127.0.0.1:3000/health?deep=1#x").expect("parse");
        assert_eq!(
            t,
            HttpTarget {
                host: "127.0.0.1".into(),
                port: 3000,
                authority: "127.0.0.1:3000".into(),
                target: "/health?deep=1".into(),
            }
        );
        let t = parse_http_url("HTTP://example.com").expect("parse");
        assert_eq!((t.port, t.authority.as_str()), (80, "example.com:80"));
        assert_eq!(t.target, "/");
        let t = parse_http_url("http://[::1]:8080?q").expect("parse");
        assert_eq!(t.host, "::1");
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.target, "/?q");
        let t = parse_http_url("http://[::1]/a b/é").expect("parse");
        assert_eq!(t.port, 80);
        assert_eq!(t.target, "/a%20b/%C3%A9");
        let t = parse_http_url("http://localhost:/").expect("parse");
        assert_eq!(t.port, 80);
    }

    #[test]
    fn bad_http_urls_are_refused_with_a_reason() {
        assert_eq!(
            parse_http_url("https://x/").map(drop),
            Err(UrlError::NotHttp("https://x/".into()))
        );
        assert_eq!(
            parse_http_url("http://x:99999/").map(drop),
            Err(UrlError::Port("http://x:99999/".into()))
        );
        assert_eq!(
            parse_http_url("http://x:99999/")
                .map_err(|e| e.to_string())
                .map(drop),
            Err("bad port in http://x:99999/".into())
        );
        assert!(parse_http_url("http://x:0/").is_err());
        assert!(parse_http_url("http:///health").is_err());
        assert!(parse_http_url("http://[::1/").is_err());
        assert!(parse_http_url("http://[::1]x/").is_err());
        assert!(parse_http_url("http://a\r\nX-Evil: 1/").is_err());
        assert!(parse_http_url("http://user@host/").is_err());
    }

    #[test]
    fn status_lines_are_parsed() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/2 204 No Content"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 abc OK"), None);
    }
}
