//! The selected app's recent output, newest at the bottom, stderr in red.

use super::View;
use kelpie_proto::ProcessInfo;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

pub(super) fn draw_logs(
    frame: &mut Frame,
    area: Rect,
    selected: Option<&ProcessInfo>,
    view: &View,
) {
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
                Span::styled(kelpie_view::terminal::visible(&entry.text), text_style),
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
