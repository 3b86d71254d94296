//! The `list` table, with PM2's columns.

use super::format::{bytes, short_duration};
use kelpie_core::Status;
use kelpie_proto::ProcessInfo;
use std::io::{IsTerminal, Write};

const HEADERS: [&str; 12] = [
    "id",
    "name",
    "namespace",
    "mode",
    "pid",
    "uptime",
    "↺",
    "status",
    "cpu",
    "mem",
    "user",
    "watching",
];

fn row(p: &ProcessInfo) -> [String; 12] {
    let running = p.state.status == Status::Online;
    [
        p.pm_id.to_string(),
        p.spec.name.chars().take(40).collect(),
        p.spec.namespace.clone(),
        p.spec.exec_mode.short_name().to_string(),
        p.state
            .pid
            .map_or_else(|| "0".into(), |pid| pid.to_string()),
        if running {
            short_duration(p.uptime_ms)
        } else {
            "0".into()
        },
        p.state.restart_time.to_string(),
        match p.state.health {
            // Said next to the status, since an unhealthy app is about to be restarted.
            Some(kelpie_core::Health::Unhealthy) => {
                format!("{} unhealthy", p.state.status.as_str())
            }
            _ => p.state.status.as_str().to_string(),
        },
        format!("{}%", p.cpu),
        bytes(p.memory),
        p.username.clone(),
        if !p.spec.watch.is_empty() && p.state.status != kelpie_core::Status::Stopped {
            "enabled".into()
        } else {
            "disabled".into()
        },
    ]
}

fn status_colour(status: &str) -> &'static str {
    match status {
        "online" => "\x1b[32m",
        "errored" => "\x1b[31m",
        "stopped" => "\x1b[90m",
        _ => "\x1b[33m",
    }
}

/// Print the table (box drawing like PM2; status coloured on a terminal).
pub fn print_table(list: &[ProcessInfo]) -> std::io::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    write_table(&mut out, list, tty)?;
    out.flush()
}

/// Write the table, the status coloured with `colour`.
pub fn write_table(
    out: &mut impl Write,
    list: &[ProcessInfo],
    colour: bool,
) -> std::io::Result<()> {
    let rows: Vec<[String; 12]> = list.iter().map(row).collect();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |l: &str, m: &str, r: &str| -> String {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}", parts.join(m))
    };
    writeln!(out, "{}", line("┌", "┬", "┐"))?;
    let header: Vec<String> = HEADERS
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!(" {h:<w$} "))
        .collect();
    writeln!(out, "│{}│", header.join("│"))?;
    writeln!(out, "{}", line("├", "┼", "┤"))?;
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let padded = format!(" {cell:<w$} ");
                if colour && i == 7 {
                    format!("{}{padded}\x1b[0m", status_colour(cell))
                } else {
                    padded
                }
            })
            .collect();
        writeln!(out, "│{}│", cells.join("│"))?;
    }
    writeln!(out, "{}", line("└", "┴", "┘"))
}
