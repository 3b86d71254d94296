//! The `list` table, with PM2's columns.

use super::format::{bytes, short_duration};
use kelpie_core::Status;
use kelpie_proto::ProcessInfo;
use kelpie_view::terminal::visible;
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

/// The `app status` column (an app's `STATUS=`), shown only when some app has one, is cut
/// to this many characters so the table stays narrow.
const APP_STATUS_CHARS: usize = 24;

/// `text` within `max` characters, cut with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max - 1).collect();
    format!("{kept}…")
}

fn row(p: &ProcessInfo, app_status: bool, schedule: Option<u64>) -> Vec<String> {
    let running = p.state.status == Status::Online;
    let mut cells = vec![
        p.pm_id.to_string(),
        visible(&p.spec.name).chars().take(40).collect(),
        visible(&p.spec.namespace).into_owned(),
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
    ];
    if app_status {
        let text = p.status_text.as_deref().unwrap_or_default();
        // One line per row, whatever the app sent; nothing that reorders the text around it.
        let text: String = text
            .chars()
            .map(|c| {
                if c.is_control() || kelpie_core::is_bidi_control(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        cells.push(cut(&text, APP_STATUS_CHARS));
    }
    if let Some(now_ms) = schedule {
        cells.push(super::schedule::column(p, now_ms).unwrap_or_default());
    }
    cells
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
pub(crate) fn print_table(list: &[ProcessInfo]) -> std::io::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    write_table(&mut out, list, tty)?;
    out.flush()
}

/// Write the table, the status coloured with `colour`.
pub(crate) fn write_table(
    out: &mut impl Write,
    list: &[ProcessInfo],
    colour: bool,
) -> std::io::Result<()> {
    let app_status = list.iter().any(|p| p.status_text.is_some());
    // Shown only when some app has a schedule: when it runs next, how its last run ended.
    let schedule = list
        .iter()
        .any(|p| p.spec.is_scheduled())
        .then(super::format::now_ms);
    let rows: Vec<Vec<String>> = list.iter().map(|p| row(p, app_status, schedule)).collect();
    let headers: Vec<&str> = HEADERS
        .iter()
        .copied()
        .chain(app_status.then_some("app status"))
        .chain(schedule.map(|_| "schedule"))
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
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
    let header: Vec<String> = headers
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_status_is_cut_to_keep_the_table_narrow() {
        assert_eq!(cut("ready", APP_STATUS_CHARS), "ready");
        let long = "serving 1234 clients on 8 workers";
        let cut_text = cut(long, APP_STATUS_CHARS);
        assert_eq!(cut_text.chars().count(), APP_STATUS_CHARS);
        assert!(cut_text.ends_with('…'));
        assert_eq!(cut("ééééé", 3), "éé…");
    }
}
