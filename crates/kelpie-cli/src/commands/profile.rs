//! `profile cpu|heap` and `inspect`: a running Node app's CPU profile, heap snapshot or inspector,
//! through the daemon and the Kelpie shim in the app (see `kelpie_daemon`'s `inspection`).

use crate::client::Client;
use anyhow::{bail, Context, Result};
use kelpie_proto::{Home, InspectAction, InspectRequest, Request, Response};
use kelpie_view::terminal::visible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `profile cpu ...` or `profile heap ...`.
pub(super) fn profile(home: &Home, kind: crate::cli::ProfileKind) -> Result<ExitCode> {
    match kind {
        crate::cli::ProfileKind::Cpu {
            target,
            duration,
            interval,
            output,
        } => cpu(home, &target, duration, interval, output.as_deref()),
        crate::cli::ProfileKind::Heap { target, output } => heap(home, &target, output.as_deref()),
    }
}

/// `profile cpu <target> [--duration 10s] [--interval 1000] [-o file]`.
fn cpu(
    home: &Home,
    target: &str,
    duration: Duration,
    interval_us: u32,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let duration_ms = millis(duration);
    let action = InspectAction::CpuProfile {
        duration_ms,
        interval_us,
    };
    let said = format!("for {}", shown_duration(duration_ms));
    write_profile(home, target, action, &said, output, "cpuprofile")
}

/// `profile heap <target> [-o file]`.
fn heap(home: &Home, target: &str, output: Option<&Path>) -> Result<ExitCode> {
    let action = InspectAction::HeapSnapshot;
    write_profile(
        home,
        target,
        action,
        "(heap snapshot)",
        output,
        "heapsnapshot",
    )
}

/// `inspect <target> [--port N] [--for 10m] [--close]`.
pub(super) fn inspect(
    home: &Home,
    target: &str,
    port: u16,
    open_for: Duration,
    close: bool,
) -> Result<ExitCode> {
    let action = if close {
        InspectAction::CloseInspector
    } else {
        InspectAction::OpenInspector {
            port,
            open_ms: millis(open_for),
        }
    };
    let mut client = Client::connect_or_start(home)?;
    let (name, pm_id, _) = begin(&mut client, target, action)?;
    let end = match client.receive()? {
        Response::Json(end) => end,
        Response::Error(e) => return Err(crate::exit::from_wire(&e)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    };
    if let Some(error) = end.get("error").and_then(|e| e.as_str()) {
        bail!("{name} (id {pm_id}): {}", visible(error));
    }
    if close {
        outln!("[kelpie] closed the inspector of {name} (id {pm_id})");
        return Ok(ExitCode::SUCCESS);
    }
    // What the app's process says is shown as text, never as terminal controls.
    let url = visible(end.get("url").and_then(|u| u.as_str()).unwrap_or_default()).into_owned();
    let address = url.trim_start_matches("ws://");
    outln!("[kelpie] the inspector of {name} (id {pm_id}) listens at {url}");
    outln!("  Chrome: open chrome://inspect (Configure: add {}), or devtools://devtools/bundled/js_app.html?v8only=true&ws={address}", address.split('/').next().unwrap_or(address));
    if end.get("own").and_then(serde_json::Value::as_bool) == Some(true) {
        outln!("  (the app opened it itself: Kelpie leaves it as it is)");
    } else {
        let open_ms = end
            .get("open_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        outln!(
            "  It closes in {} (or now with `kelpie inspect {target} --close`). While it is open, any local user can run code in the app through it.",
            shown_duration(open_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Ask for a profile and write its text to `output` (`-` for stdout; by default
/// `<app>-<id>-<date>.<extension>` here) as it comes.
fn write_profile(
    home: &Home,
    target: &str,
    action: InspectAction,
    said: &str,
    output: Option<&Path>,
    extension: &str,
) -> Result<ExitCode> {
    let mut client = Client::connect_or_start(home)?;
    let (name, pm_id, pid) = begin(&mut client, target, action)?;
    let to_stdout = output == Some(Path::new("-"));
    let path = match output {
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(format!(
            "{}-{pm_id}-{}.{extension}",
            file_safe(&name),
            local_stamp()
        )),
    };
    let progress = |line: String| {
        if to_stdout {
            eprintln!("{line}");
        } else {
            outln!("{line}");
        }
    };
    progress(format!(
        "[kelpie] profiling {name} (id {pm_id}, pid {pid}) {said}..."
    ));
    let mut sink = Sink::open(&path, to_stdout)?;
    let end = loop {
        match client.receive()? {
            Response::ProfilePart(text) => sink.write(text.as_bytes())?,
            Response::Json(end) => break end,
            Response::Error(e) => {
                sink.abandon();
                return Err(crate::exit::from_wire(&e));
            }
            other => {
                sink.abandon();
                bail!("unexpected answer from the daemon: {other:?}")
            }
        }
    };
    if let Some(error) = end.get("error").and_then(|e| e.as_str()) {
        sink.abandon();
        bail!(
            "{name} (id {pm_id}) could not make the profile: {}",
            visible(error)
        );
    }
    let bytes = sink.finish()?;
    if to_stdout {
        return Ok(ExitCode::SUCCESS);
    }
    let pause = end
        .get("pause_ms")
        .and_then(serde_json::Value::as_f64)
        .map(|ms| format!("; the app paused {ms:.0} ms while V8 took the snapshot"))
        .unwrap_or_default();
    progress(format!(
        "[kelpie] wrote {} ({}){pause}: open it in {}",
        path.display(),
        shown_bytes(bytes),
        if extension == "cpuprofile" {
            "Chrome DevTools (Performance, Load profile) or https://www.speedscope.app"
        } else {
            "Chrome DevTools (Memory, Load)"
        }
    ));
    Ok(ExitCode::SUCCESS)
}

/// Send the request and read which process answers.
fn begin(client: &mut Client, target: &str, action: InspectAction) -> Result<(String, u32, u32)> {
    client.send(&Request::Inspect(InspectRequest {
        target: super::parse_target(target)?,
        action,
    }))?;
    match client.receive()? {
        Response::Inspecting { pm_id, name, pid } => Ok((name, pm_id, pid)),
        Response::Error(e) => Err(crate::exit::from_wire(&e)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Where a profile's text goes: stdout, or a file written beside its name and renamed once
/// whole (a profile cut short never looks like one).
struct Sink {
    out: Box<dyn Write>,
    partial: Option<(PathBuf, PathBuf)>,
    bytes: u64,
}

impl Sink {
    fn open(path: &Path, to_stdout: bool) -> Result<Sink> {
        if to_stdout {
            return Ok(Sink {
                out: Box::new(std::io::BufWriter::new(std::io::stdout())),
                partial: None,
                bytes: 0,
            });
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        Ok(Sink {
            out: Box::new(std::io::BufWriter::new(file)),
            partial: Some((partial, path.to_path_buf())),
            bytes: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes += bytes.len() as u64;
        if let Err(e) = self.out.write_all(bytes) {
            self.abandon();
            return Err(e).context("cannot write the profile");
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.out.flush().context("cannot write the profile")?;
        if let Some((partial, path)) = self.partial.take() {
            std::fs::rename(&partial, &path).with_context(|| {
                format!("cannot rename {} to {}", partial.display(), path.display())
            })?;
        }
        Ok(self.bytes)
    }

    fn abandon(&mut self) {
        if let Some((partial, _)) = self.partial.take() {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// Now, local time, as `20261128-183000`.
fn local_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    kelpie_core::DateFormat::parse("YYYYMMDD-HHmmss")
        .format(now, kelpie_sys::utc_offset_secs(now.div_euclid(1000)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn shown_duration(ms: u64) -> String {
    match ms {
        ms if ms % 60_000 == 0 && ms > 0 => format!("{} min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

fn shown_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KB", b as f64 / f64::from(1 << 10)),
        b => format!("{b} bytes"),
    }
}

/// An app's name as part of a file name: what is not a letter, digit, `-`, `_` or `.` becomes
/// `_` (a name may hold `/` or spaces).
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
