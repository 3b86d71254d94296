//! The title bar (counts, the filter, why the list may be stale) and the footer (an action's
//! outcome, or the keys).

use super::View;
use kelpie_core::Status;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub(super) fn draw_title(frame: &mut Frame, area: Rect, view: &View) {
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

pub(super) fn draw_footer(frame: &mut Frame, area: Rect, view: &View) {
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
