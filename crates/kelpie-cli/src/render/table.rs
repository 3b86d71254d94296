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

/// Columns left out, in this order, while the table is wider than the terminal (PM2 shows a
/// condensed list in a narrow one): what is least needed to tell the apps' state goes first.
/// `id`, `name` and `status` always stay.
const DROPPED_FIRST: [&str; 11] = [
    "watching",
    "user",
    "namespace",
    "app status",
    "pid",
    "uptime",
    "mode",
    "↺",
    "cpu",
    "mem",
    "schedule",
];

/// The terminal's width when the table goes to one; `None` (every column) for a pipe or a
/// file, which scripts read.
fn columns(tty: bool) -> Option<usize> {
    if !tty {
        return None;
    }
    ratatui::crossterm::terminal::size()
        .ok()
        .map(|(width, _)| width as usize)
}

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

/// Write the table, the status coloured with `colour` (a terminal, whose width it fits).
pub(crate) fn write_table(
    out: &mut impl Write,
    list: &[ProcessInfo],
    colour: bool,
) -> std::io::Result<()> {
    write_table_within(out, list, colour, columns(colour))
}

/// Write the table within `width` columns when given: columns are left out
/// ([`DROPPED_FIRST`]) until it fits.
fn write_table_within(
    out: &mut impl Write,
    list: &[ProcessInfo],
    colour: bool,
    width: Option<usize>,
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
    // What fits: a column costs its width and 3 (its padding and a border).
    let mut shown: Vec<bool> = vec![true; headers.len()];
    if let Some(width) = width {
        let total = |shown: &[bool]| -> usize {
            1 + widths
                .iter()
                .zip(shown)
                .filter(|(_, s)| **s)
                .map(|(w, _)| w + 3)
                .sum::<usize>()
        };
        for name in DROPPED_FIRST {
            if total(&shown) <= width {
                break;
            }
            if let Some(i) = headers.iter().position(|h| *h == name) {
                shown[i] = false;
            }
        }
    }
    let keep = |i: &usize| shown[*i];
    let status_column = headers.iter().position(|h| *h == "status");
    let headers: Vec<&str> = (0..headers.len())
        .filter(keep)
        .map(|i| headers[i])
        .collect();
    let widths: Vec<usize> = (0..widths.len()).filter(keep).map(|i| widths[i]).collect();
    let status_column = status_column.map(|s| shown[..s].iter().filter(|k| **k).count());
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .enumerate()
                .filter(|(i, _)| shown[*i])
                .map(|(_, c)| c)
                .collect()
        })
        .collect();
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
                if colour && Some(i) == status_column {
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
    fn a_narrow_terminal_gets_the_columns_that_fit_status_last() {
        let app = ProcessInfo {
            pm_id: 0,
            instance: 0,
            spec: kelpie_core::AppSpec {
                name: "reporting-job".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            state: kelpie_core::InstanceState::default(),
            memory: 12 << 20,
            cpu: 1.5,
            uptime_ms: 65_000,
            out_log: String::new(),
            err_log: String::new(),
            username: "root".into(),
            log_files: Vec::new(),
            status_text: Some("exporting the nightly report".into()),
            metrics: Default::default(),
            sdk: Default::default(),
            counters: None,
        };
        let list = [app];
        let text = |width| {
            let mut out = Vec::new();
            write_table_within(&mut out, &list, false, width).expect("write");
            String::from_utf8(out).expect("utf-8")
        };
        let all = text(None);
        assert!(
            all.contains("watching") && all.contains("app status"),
            "{all}"
        );
        for width in [120, 80, 60, 40] {
            let table = text(Some(width));
            for line in table.lines() {
                assert!(line.chars().count() <= width, "{width}: {line}");
            }
            assert!(
                table.contains("reporting-job") && table.contains("status"),
                "{table}"
            );
        }
        let eighty = text(Some(80));
        assert!(
            !eighty.contains("watching") && !eighty.contains("namespace"),
            "{eighty}"
        );
        assert!(eighty.contains("cpu") && eighty.contains("mem"), "{eighty}");
    }

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
