//! The list of instances, the selected one highlighted.

use super::super::format::{bytes, short_duration};
use super::{status_colour, View};
use kelpie_core::Status;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

pub(super) fn draw_list(frame: &mut Frame, area: Rect, view: &View) {
    let header = Row::new([
        "id", "name", "pid", "status", "↺", "cpu", "mem", "uptime", "loop", "lag95",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = view.rows.iter().map(|p| {
        let online = p.state.status == Status::Online;
        Row::new([
            Cell::from(p.pm_id.to_string()),
            Cell::from(kelpie_view::terminal::visible(&p.spec.name).into_owned()),
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
            Cell::from(
                runtime(p, "internal/libuv/utilization")
                    .map_or_else(|| "-".into(), |percent| format!("{percent:.0}%")),
            ),
            Cell::from(
                runtime(p, "internal/libuv/latency/p95").map_or_else(|| "-".into(), milliseconds),
            ),
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
        Constraint::Length(4),
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

/// The value of the Node runtime metric with PM2 id `id` that `p` reported, if any (event loop
/// utilisation in %, latency p95 in ms): a number, or text holding one (PM2's SDK sends text).
fn runtime(p: &kelpie_proto::ProcessInfo, id: &str) -> Option<f64> {
    let entry = p
        .sdk
        .monitor
        .values()
        .find(|entry| entry["type"].as_str() == Some(id))?;
    match &entry["value"] {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A delay in ms as the column shows it: `180ms`, `2.5s`.
fn milliseconds(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!("{ms:.0}ms")
    }
}
