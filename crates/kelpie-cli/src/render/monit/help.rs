//! The help: the keys and what they do, over the screen until a key closes it.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

/// The keys, for the help.
pub(super) const KEYS: [(&str, &str); 9] = [
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

pub(super) fn draw_help(frame: &mut Frame, area: Rect) {
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
}
