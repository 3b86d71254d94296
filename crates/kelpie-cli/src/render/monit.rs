//! Drawing `monit`'s screen with ratatui: a pure function of what the dashboard knows (the
//! [`View`]), so it can be tested on ratatui's test backend. Only the 16 basic colours are used
//! (any terminal, any SSH client), and nothing needs a mouse.
//!
//! Here: what a frame shows ([`View`], [`LogEntry`]) and its layout. The panels, in `monit/`:
//! the title bar and footer (`bars`), the list (`list`), the selected instance's details
//! (`details`), its cpu and memory charts (`charts`), its code metrics (`metrics`), its app's
//! output (`logs`) and the help (`help`).

mod bars;
mod charts;
mod details;
mod help;
mod list;
mod metrics;
mod output_pane;

use bars::{draw_footer, draw_title};
use charts::draw_charts;
use details::draw_details;
use help::draw_help;
use kelpie_core::Status;
use kelpie_proto::ProcessInfo;
use list::draw_list;
use metrics::draw_metrics;
use output_pane::draw_logs;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::Color;
use ratatui::Frame;

/// One line of an app's output, ready to show (control characters removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// Instance it came from.
    pub pm_id: u32,
    /// From stderr.
    pub err: bool,
    /// The text.
    pub text: String,
}

impl LogEntry {
    /// A line as received from the daemon, invalid UTF-8 replaced and made [`printable`].
    pub(crate) fn new(pm_id: u32, err: bool, bytes: &[u8]) -> LogEntry {
        let text = printable(&String::from_utf8_lossy(bytes));
        LogEntry { pm_id, err, text }
    }
}

/// Text an app chose (a log line, a metric's name or value) made safe to draw: escape sequences
/// (colours) dropped, tabs expanded and other control characters shown as `?`, so it can never
/// move the cursor or change the terminal's state.
pub(crate) fn printable(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI (`ESC [ … final`) or a two-character escape.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => text.push_str("    "),
            c if c.is_control() => text.push('?'),
            c => text.push(c),
        }
    }
    text
}

/// What one frame shows.
pub(crate) struct View<'a> {
    /// The instances shown (after the filter), in list order.
    pub rows: Vec<&'a ProcessInfo>,
    /// How many instances there are in all.
    pub total: usize,
    /// Index in `rows` of the selected one.
    pub selected: Option<usize>,
    /// CPU samples of the selected instance, oldest first (percent of one core).
    pub cpu: Vec<f64>,
    /// Memory samples of the selected instance, oldest first (bytes).
    pub memory: Vec<u64>,
    /// The selected app's recent output, oldest first.
    pub logs: Vec<&'a LogEntry>,
    /// The name filter.
    pub filter: &'a str,
    /// The filter is being typed.
    pub editing_filter: bool,
    /// The help is open.
    pub help: bool,
    /// A message for the footer (an action's outcome), and whether it is an error.
    pub message: Option<(&'a str, bool)>,
    /// Why the list may be stale (the daemon does not answer), shown in the title bar.
    pub problem: Option<&'a str>,
    /// The host's use, on the line under the title.
    pub host: Option<&'a kelpie_proto::HostMetrics>,
    /// Now (ms since the epoch), for "how long ago".
    pub now_ms: u64,
}

/// Draw the whole screen.
pub(crate) fn draw(frame: &mut Frame, view: &View) {
    let [title, host, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_title(frame, title, view);
    if let Some(metrics) = view.host {
        frame.render_widget(
            ratatui::widgets::Paragraph::new(format!(" {}", crate::render::host_line(metrics))),
            host,
        );
    }
    draw_footer(frame, footer, view);

    // The list gets what its rows need, up to 40 % of the body; the details and charts 7 rows
    // (6 on a small screen); the code metrics, when the app has some, up to half of what is
    // left (at least 1 row of them, at most 8); the logs the rest (at least 3 rows).
    let wanted = view.rows.len().max(1) as u16 + 3;
    let list_height = wanted.min((body.height * 2 / 5).max(4));
    let middle_height = if body.height >= 20 { 7 } else { 6 };
    let selected = view.selected.and_then(|i| view.rows.get(i)).copied();
    let spare = body.height.saturating_sub(list_height + middle_height);
    let metric_rows = selected
        .map(|p| metrics::fitted(p, body.width, spare))
        .unwrap_or_default();
    let metrics_height = match metric_rows.len() {
        0 => 0,
        n => n as u16 + 2,
    };
    let [list, middle, code_metrics, logs] = Layout::vertical([
        Constraint::Length(list_height),
        Constraint::Length(middle_height),
        Constraint::Length(metrics_height),
        Constraint::Min(3),
    ])
    .areas(body);
    draw_list(frame, list, view);
    let [details, charts] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    draw_details(frame, details, selected, view.now_ms);
    draw_charts(frame, charts, view);
    if !metric_rows.is_empty() {
        draw_metrics(frame, code_metrics, &metric_rows);
    }
    draw_logs(frame, logs, selected, view);
    if view.help {
        draw_help(frame, frame.area());
    }
}

fn status_colour(status: Status) -> Color {
    match status {
        Status::Online => Color::Green,
        Status::Errored => Color::Red,
        Status::Stopped => Color::DarkGray,
        _ => Color::Yellow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_cannot_drive_the_terminal() {
        let entry = LogEntry::new(3, true, b"\x1b[31mred\x1b[0m\tx\x07\xff\x1b]y");
        assert_eq!(entry.text, "red    x?\u{fffd}y");
        assert_eq!(entry.pm_id, 3);
    }
}
