//! logs, flush, reloadLogs.

mod daemon;

use super::{call, resolve_targets};
use crate::cli::LogsArgs;
use crate::client::Client;
use anyhow::{bail, Result};
use kelpie_core::DateFormat;
use kelpie_proto::{Home, LogStream, Request, Response, WireLogLine};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// `logs [target]`: the last lines, then (unless `--nostream`) every new line until Ctrl-C.
pub(super) fn logs(home: &Home, args: LogsArgs) -> Result<ExitCode> {
    let targets = match &args.target {
        None => Vec::new(),
        Some(target) => vec![super::parse_target(target)?],
    };
    let mut client = Client::connect_or_start(home)?;
    // Every app's lines come with the daemon's own, as PM2 shows its pm2.log: in the default
    // layout only (`--raw` and `--json` are the apps' lines alone), both streams.
    let with_daemon = args.target.is_none() && !args.raw && !args.json && args.out == args.err;
    let color = std::io::stdout().is_terminal();
    // As PM2: no header when no past line is asked for (`--lines 0`).
    if !args.raw && !args.json && args.lines > 0 {
        print_header(&args, color)?;
    }
    if with_daemon {
        let end = daemon::print_tail(&home.daemon_log(), args.lines as usize, color);
        if !args.nostream {
            daemon::follow(home.daemon_log(), end, color);
        }
    }
    // `--out --err` (or neither) means both.
    let (out, err) = match (args.out, args.err) {
        (true, false) => (true, false),
        (false, true) => (false, true),
        _ => (true, true),
    };
    client.send(&Request::Logs(kelpie_proto::LogsRequest {
        targets,
        lines: args.lines,
        out,
        err,
        follow: !args.nostream,
    }))?;
    let mut printer = Printer::new(&args);
    loop {
        match client.receive()? {
            Response::LogLines { lines, skipped } => {
                if printer.print(&lines, skipped).is_err() {
                    // The reader went away (`kelpie logs | head`): that is a normal end.
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Response::Done(_) => return Ok(ExitCode::SUCCESS),
            Response::Error(e) => return Err(crate::exit::from_wire(&e)),
            other => bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
}

/// PM2's first line: what is shown (`--raw` and `--json` print the lines alone, for programs).
fn print_header(args: &LogsArgs, color: bool) -> std::io::Result<()> {
    let which = match &args.target {
        None => "[all] processes".to_string(),
        Some(target) => format!("[{target}] process"),
    };
    let header = format!(
        "[TAILING] Tailing last {} lines for {which} (change the value with --lines option)",
        args.lines
    );
    let mut out = std::io::stdout().lock();
    match color {
        true => writeln!(out, "\x1b[1m\x1b[90m{header}\x1b[39m\x1b[22m"),
        false => writeln!(out, "{header}"),
    }
}

/// How lines are shown.
struct Printer {
    raw: bool,
    json: bool,
    timestamp: Option<DateFormat>,
    color: bool,
    prefix_width: usize,
}

impl Printer {
    fn new(args: &LogsArgs) -> Printer {
        Printer {
            raw: args.raw,
            json: args.json,
            timestamp: args.timestamp.as_deref().map(DateFormat::parse),
            color: !args.raw && !args.json && std::io::stdout().is_terminal(),
            prefix_width: 0,
        }
    }

    fn print(&mut self, lines: &[WireLogLine], skipped: u64) -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        if skipped > 0 && !self.json {
            writeln!(
                out,
                "[kelpie] {skipped} lines skipped: this terminal reads more slowly than the apps write"
            )?;
        }
        // Prefixes line up: `0|api    | ` (PM2's layout).
        for line in lines {
            self.prefix_width = self
                .prefix_width
                .max(line.pm_id.to_string().len() + 1 + line.app_name.len());
        }
        for line in lines {
            if self.json {
                writeln!(out, "{}", json_line(line))?;
            } else if self.raw {
                if line.stream == LogStream::Err {
                    out.flush()?;
                    let mut err = std::io::stderr().lock();
                    self.write_time(&mut err, line)?;
                    err.write_all(&line.bytes.0)?;
                    err.write_all(b"\n")?;
                } else {
                    self.write_time(&mut out, line)?;
                    out.write_all(&line.bytes.0)?;
                    out.write_all(b"\n")?;
                }
            } else {
                self.write_time(&mut out, line)?;
                let prefix = format!("{}|{}", line.pm_id, line.app_name);
                let padded = format!("{prefix:<width$} | ", width = self.prefix_width);
                if self.color {
                    let code = match line.stream {
                        LogStream::Out => "32",
                        LogStream::Err => "31",
                    };
                    write!(out, "\x1b[{code}m{padded}\x1b[39m")?;
                } else {
                    out.write_all(padded.as_bytes())?;
                }
                out.write_all(&line.bytes.0)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }

    /// `--timestamp`: the time the daemon read the line (now, for lines read back from a file).
    fn write_time(&self, out: &mut impl Write, line: &WireLogLine) -> std::io::Result<()> {
        let Some(format) = &self.timestamp else {
            return Ok(());
        };
        let at = line.at_ms.unwrap_or_else(now_ms);
        let offset = kelpie_sys::utc_offset_secs(at.div_euclid(1000));
        write!(out, "{} ", format.format(at, offset))
    }
}

/// PM2's `logs --json` object, its keys in PM2's order.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    message: std::borrow::Cow<'a, str>,
    /// When the line was written; `null` for a line read back from a file that holds no time
    /// for it (no `log_date_format`, older than the daemon's memory).
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    process_id: u32,
    app_name: &'a str,
}

/// PM2's `logs --json` object.
pub(super) fn json_line(line: &WireLogLine) -> String {
    let entry = JsonLine {
        message: String::from_utf8_lossy(&line.bytes.0),
        timestamp: line
            .at_ms
            .map(|at| kelpie_core::format_utc(at.max(0) as u64, true)),
        kind: line.stream.pm2_name(),
        process_id: line.pm_id,
        app_name: &line.app_name,
    };
    serde_json::to_string(&entry).unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `flush [targets]`: empty the log files (all apps without a target).
pub(super) fn flush(home: &Home, targets: &[String], deleted: bool) -> Result<ExitCode> {
    let targets = resolve_targets(targets, &[])?;
    if let Response::Done(message) = call(
        home,
        &Request::Flush(kelpie_proto::FlushRequest { targets, deleted }),
    )? {
        outln!("[kelpie] {message}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `reloadLogs`: reopen every log file.
pub(super) fn reload(home: &Home) -> Result<ExitCode> {
    if let Response::Done(message) = call(home, &Request::ReloadLogs)? {
        outln!("[kelpie] {message}");
    }
    Ok(ExitCode::SUCCESS)
}
