//! Drawing `monit`'s screen with ratatui: a pure function of what the dashboard knows (the
//! [`View`]), so it can be tested on ratatui's test backend. Only the 16 basic colours are used
//! (any terminal, any SSH client), and nothing needs a mouse.

use super::format::{bytes, short_duration};
use kelpie_core::Status;
use kelpie_proto::ProcessInfo;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

/// One line of an app's output, ready to show (control characters removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Instance it came from.
    pub pm_id: u32,
    /// From stderr.
    pub err: bool,
    /// The text.
    pub text: String,
}

impl LogEntry {
    /// A line as received from the daemon: invalid UTF-8 replaced, escape sequences (colours)
    /// dropped, tabs expanded and other control characters shown as `?`, so a line can never
    /// move the cursor or change the terminal's state.
    pub fn new(pm_id: u32, err: bool, bytes: &[u8]) -> LogEntry {
        let raw = String::from_utf8_lossy(bytes);
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
        LogEntry { pm_id, err, text }
    }
}

/// What one frame shows.
pub struct View<'a> {
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
    /// Now (ms since the epoch), for "how long ago".
    pub now_ms: u64,
}

/// The keys, for the help.
pub const KEYS: [(&str, &str); 9] = [
    ("↑ ↓", "select an app (PgUp PgDn Home End too)"),
    ("r", "restart the selected instance (starts it if stopped)"),
    ("g", "reload it: start a new process, then stop the old one"),
    ("s", "stop it"),
    ("+ -", "scale its app up or down by one instance"),
    ("/", "filter by name: type, Enter keeps it, Esc clears it"),
    ("c", "clear the log pane"),
    ("?", "this help (any key closes it)"),
    ("q Esc", "quit (Ctrl-C too)"),
];

/// The lines under the keys in the help.
const HELP_NOTES: [&str; 2] = [
    "Actions ask the daemon as the CLI does; the outcome shows below.",
    "Charts: one sample per refresh, since this screen opened.",
];

/// The help's width: its longest line fits an 80-column terminal with its border.
const HELP_WIDTH: u16 = 76;

/// Draw the whole screen.
pub fn draw(frame: &mut Frame, view: &View) {
    let [title, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_title(frame, title, view);
    draw_footer(frame, footer, view);

    // The list gets what its rows need, up to 40 % of the body; the details and charts 7 rows
    // (6 on a small screen); the logs the rest (at least 5 rows when the terminal allows).
    let wanted = view.rows.len().max(1) as u16 + 3;
    let list_height = wanted.min((body.height * 2 / 5).max(4));
    let middle_height = if body.height >= 20 { 7 } else { 6 };
    let [list, middle, logs] = Layout::vertical([
        Constraint::Length(list_height),
        Constraint::Length(middle_height),
        Constraint::Min(3),
    ])
    .areas(body);
    draw_list(frame, list, view);
    let [details, charts] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    let selected = view.selected.and_then(|i| view.rows.get(i)).copied();
    draw_details(frame, details, selected, view.now_ms);
    draw_charts(frame, charts, view);
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

fn draw_title(frame: &mut Frame, area: Rect, view: &View) {
    let online = view
        .rows
        .iter()
        .filter(|p| p.state.status == Status::Online)
        .count();
    let mut spans = vec![
        Span::styled(
            " kelpie monit ",
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(if view.rows.len() == view.total {
            format!("  {} instances, {online} online", view.total)
        } else {
            format!(
                "  {} of {} instances shown, {online} online",
                view.rows.len(),
                view.total
            )
        }),
    ];
    if !view.filter.is_empty() && !view.editing_filter {
        spans.push(Span::styled(
            format!("  filter: {}", view.filter),
            Style::new().fg(Color::Cyan),
        ));
    }
    if let Some(problem) = view.problem {
        spans.push(Span::styled(
            format!("  {problem}"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, view: &View) {
    let line = if view.editing_filter {
        Line::from(vec![
            Span::styled(" filter: ", Style::new().fg(Color::Cyan)),
            Span::raw(view.filter),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "   Enter keep · Esc clear",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else if let Some((message, error)) = view.message {
        let style = if error {
            Style::new().fg(Color::Red)
        } else {
            Style::new().fg(Color::Green)
        };
        Line::from(Span::styled(format!(" {message}"), style))
    } else {
        let mut spans = Vec::new();
        for (key, what) in [
            ("↑↓", "select"),
            ("r", "restart"),
            ("g", "reload"),
            ("s", "stop"),
            ("+-", "scale"),
            ("/", "filter"),
            ("?", "help"),
            ("q", "quit"),
        ] {
            spans.push(Span::styled(
                format!(" {key}"),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::styled(
                format!(" {what}"),
                Style::new().fg(Color::DarkGray),
            ));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_list(frame: &mut Frame, area: Rect, view: &View) {
    let header = Row::new(["id", "name", "pid", "status", "↺", "cpu", "mem", "uptime"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = view.rows.iter().map(|p| {
        let online = p.state.status == Status::Online;
        Row::new([
            Cell::from(p.pm_id.to_string()),
            Cell::from(p.spec.name.clone()),
            Cell::from(
                p.state
                    .pid
                    .map_or_else(|| "-".into(), |pid| pid.to_string()),
            ),
            Cell::from(p.state.status.as_str())
                .style(Style::new().fg(status_colour(p.state.status))),
            Cell::from(p.state.restart_time.to_string()),
            Cell::from(format!("{:.1}%", p.cpu)),
            Cell::from(bytes(p.memory)),
            Cell::from(if online {
                short_duration(p.uptime_ms)
            } else {
                "-".into()
            }),
        ])
    });
    let widths = [
        Constraint::Length(3),
        Constraint::Min(8),
        Constraint::Length(7),
        Constraint::Length(15),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(6),
    ];
    let title = if view.rows.is_empty() && view.total > 0 {
        " Apps: none matches the filter ".to_string()
    } else if view.total == 0 {
        " Apps: none yet (kelpie start …) ".to_string()
    } else {
        " Apps ".to_string()
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶")
        .column_spacing(1);
    let mut state = TableState::default().with_selected(view.selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_details(frame: &mut Frame, area: Rect, selected: Option<&ProcessInfo>, now_ms: u64) {
    let Some(p) = selected else {
        frame.render_widget(Block::bordered().title(" Details "), area);
        return;
    };
    let label = Style::new().fg(Color::DarkGray);
    let pair = |k1: &str, v1: String, k2: &str, v2: String| {
        Line::from(vec![
            Span::styled(format!("{k1:<7}"), label),
            Span::raw(format!("{v1:<12}")),
            Span::styled(format!("{k2:<9}"), label),
            Span::raw(v2),
        ])
    };
    let mode = format!("{} ×{}", p.spec.exec_mode.short_name(), p.spec.instances);
    let port = match (&p.spec.listen, p.spec.reuse_port) {
        (Some(address), _) => address.to_string(),
        (None, true) => "reuseport".into(),
        (None, false) => "-".into(),
    };
    let health = match p.state.health {
        Some(h) => h.as_str().to_string(),
        None => "-".into(),
    };
    let uptime = if p.state.status == Status::Online {
        short_duration(p.uptime_ms)
    } else {
        "-".into()
    };
    let last_exit = match p.state.exits.back() {
        Some(exit) => {
            let how = match (&exit.signal, exit.code) {
                (Some(signal), _) => signal.clone(),
                (None, Some(code)) => format!("code {code}"),
                (None, None) => "-".into(),
            };
            format!(
                "{} ago, {how}, {}",
                short_duration(now_ms.saturating_sub(exit.at_ms)),
                exit.cause.as_str()
            )
        }
        None => "none".into(),
    };
    // What the app says about itself on its notify socket (`STATUS=`, `X_KELPIE_METRIC=`).
    let said = {
        let metrics = p
            .metrics
            .iter()
            .map(|(name, value)| format!("{name}={value}"));
        let text: Vec<String> = p.status_text.iter().cloned().chain(metrics).collect();
        text.join("  ")
    };
    let mut lines = vec![
        pair(
            "status",
            p.state.status.as_str().into(),
            "pid",
            p.state
                .pid
                .map_or_else(|| "-".into(), |pid| pid.to_string()),
        ),
        pair("mode", mode, "port", port),
        pair(
            "uptime",
            uptime,
            "restarts",
            p.state.restart_time.to_string(),
        ),
        pair("health", health, "user", p.username.clone()),
        Line::from(vec![
            Span::styled("last exit ", label),
            Span::raw(last_exit),
        ]),
    ];
    if !said.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("app says ", label),
            Span::raw(said),
        ]));
    }
    let title = format!(" {} · id {} ", p.spec.name, p.pm_id);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

fn draw_charts(frame: &mut Frame, area: Rect, view: &View) {
    let block = Block::bordered().title(" cpu / memory, 1 sample per refresh ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if view.selected.is_none() || inner.height < 2 {
        return;
    }
    let [cpu_row, mem_row] =
        Layout::vertical([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(inner);
    // Each chart spans 0 to its peak, so the shape of a small load shows; the labels give the
    // numbers.
    let cpu_now = view.cpu.last().copied().unwrap_or(0.0);
    let cpu_peak = view.cpu.iter().copied().fold(0.0, f64::max);
    let cpu_data: Vec<u64> = view.cpu.iter().map(|c| (c * 10.0) as u64).collect();
    sparkline_row(
        frame,
        cpu_row,
        [
            format!("cpu {cpu_now:>6.1}%"),
            format!("peak{cpu_peak:>6.1}%"),
        ],
        &cpu_data,
        ((cpu_peak * 10.0) as u64).max(10),
        Color::Cyan,
    );
    let mem_now = view.memory.last().copied().unwrap_or(0);
    let mem_peak = view.memory.iter().copied().max().unwrap_or(0);
    sparkline_row(
        frame,
        mem_row,
        [
            format!("mem {:>7}", bytes(mem_now)),
            format!("peak{:>7}", bytes(mem_peak)),
        ],
        &view.memory,
        mem_peak.max(1),
        Color::Magenta,
    );
}

/// A label on the left, then the newest samples that fit, ending at the right edge.
fn sparkline_row(
    frame: &mut Frame,
    area: Rect,
    label: [String; 2],
    data: &[u64],
    max: u64,
    colour: Color,
) {
    let [label_area, spark] =
        Layout::horizontal([Constraint::Length(12), Constraint::Min(0)]).areas(area);
    let [now, peak] = label;
    frame.render_widget(
        Paragraph::new(vec![
            Line::raw(now),
            Line::styled(peak, Style::new().fg(Color::DarkGray)),
        ]),
        label_area,
    );
    let width = spark.width as usize;
    let newest = &data[data.len().saturating_sub(width)..];
    // Right-aligned: pad the left so the newest sample is always at the edge.
    let pad = width.saturating_sub(newest.len()) as u16;
    let spark = Rect {
        x: spark.x + pad,
        width: spark.width - pad,
        ..spark
    };
    frame.render_widget(
        Sparkline::default()
            .data(newest)
            .max(max)
            .style(Style::new().fg(colour)),
        spark,
    );
}

fn draw_logs(frame: &mut Frame, area: Rect, selected: Option<&ProcessInfo>, view: &View) {
    let title = match selected {
        Some(p) => format!(" {} logs (live) ", p.spec.name),
        None => " logs ".into(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    let shown = &view.logs[view.logs.len().saturating_sub(inner.height as usize)..];
    let lines: Vec<Line> = shown
        .iter()
        .map(|entry| {
            let text_style = if entry.err {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(
                    format!("{}|", entry.pm_id),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(entry.text.as_str(), text_style),
            ])
        })
        .collect();
    let lines = if lines.is_empty() && selected.is_some() {
        vec![Line::styled(
            "no output yet",
            Style::new().fg(Color::DarkGray),
        )]
    } else {
        lines
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = area.width.min(HELP_WIDTH);
    let height = (KEYS.len() + 1 + HELP_NOTES.len() + 2) as u16;
    let height = height.min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {key:<6} "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    for note in HELP_NOTES {
        lines.push(Line::styled(
            format!(" {note}"),
            Style::new().fg(Color::DarkGray),
        ));
    }
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" kelpie monit: keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_help_line_fits_inside_the_border() {
        let inner = usize::from(HELP_WIDTH) - 2;
        for (key, what) in KEYS {
            let line = format!(" {key:<6} {what}");
            assert!(line.chars().count() <= inner, "{line}");
        }
        for note in HELP_NOTES {
            assert!(note.chars().count() < inner, "{note}");
        }
    }

    #[test]
    fn log_entries_cannot_drive_the_terminal() {
        let entry = LogEntry::new(3, true, b"\x1b[31mred\x1b[0m\tx\x07\xff\x1b]y");
        assert_eq!(entry.text, "red    x?\u{fffd}y");
        assert_eq!(entry.pm_id, 3);
    }
}
