//! The selected process's code metrics (what `@pm2/io` reports, `pm2 monit`'s "Custom Metrics"),
//! laid out in columns like `ls`: `name  value unit`, in the order `describe` lists them.

use super::super::format::sdk_metric;
use super::printable;
use kelpie_proto::ProcessInfo;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

/// The panel's title, `describe`'s wording.
const TITLE: &str = " Code metrics (@pm2/io) ";
/// Spaces between two columns.
const GAP: usize = 3;
/// Longest name and value shown whole: a longer one is cut, so that one long string metric
/// does not force everything else into a single column.
const NAME_MAX: usize = 28;
const VALUE_MAX: usize = 24;

/// Each metric of `p` as its printable name and `value unit`, in the map's order (by name, as
/// `describe` lists them).
fn entries(p: &ProcessInfo) -> Vec<(String, String)> {
    p.sdk
        .monitor
        .iter()
        .map(|(name, entry)| (printable(name), printable(&sdk_metric(entry))))
        .collect()
}

/// The rows of `p`'s metrics for a panel as wide as the screen (`width`), under which the
/// logs share the `spare` rows: the panel takes up to half of them, borders included (at least
/// one row of metrics, at most 8), so the logs keep at least 3. None without metrics or room.
pub(super) fn fitted(p: &ProcessInfo, width: u16, spare: u16) -> Vec<String> {
    if spare < 6 {
        return Vec::new();
    }
    rows(
        &entries(p),
        usize::from(width.saturating_sub(2)),
        usize::from((spare / 2).saturating_sub(2).clamp(1, 8)),
    )
}

/// The text rows showing `metrics` in `width` columns of text and at most `max_rows` rows:
/// as many columns as fit, filled top to bottom then left to right; when they do not all fit,
/// the last cell says how many more there are. No rows for no metrics (or no room).
pub(super) fn rows(metrics: &[(String, String)], width: usize, max_rows: usize) -> Vec<String> {
    if metrics.is_empty() || width == 0 || max_rows == 0 {
        return Vec::new();
    }
    let name_width = widest(metrics.iter().map(|(n, _)| n)).min(NAME_MAX);
    let value_width = widest(metrics.iter().map(|(_, v)| v)).min(VALUE_MAX);
    let cell_width = (name_width + 2 + value_width).min(width);
    let columns = ((width + GAP) / (cell_width + GAP)).max(1);
    let mut cells: Vec<String> = metrics
        .iter()
        .map(|(name, value)| {
            let name = fit(name, name_width);
            fit(&format!("{name:<name_width$}  {value}"), cell_width)
        })
        .collect();
    let room = columns * max_rows;
    if cells.len() > room {
        // The last cell that fits tells what is missing (and where to see it all).
        let more = cells.len() - (room - 1);
        cells.truncate(room - 1);
        cells.push(fit(&format!("+{more} more: kelpie describe"), cell_width));
    }
    let row_count = cells.len().div_ceil(columns);
    (0..row_count)
        .map(|row| {
            let line: Vec<String> = cells
                .iter()
                .skip(row)
                .step_by(row_count)
                .map(|cell| format!("{cell:<cell_width$}"))
                .collect();
            line.join(&" ".repeat(GAP)).trim_end().to_string()
        })
        .collect()
}

/// The panel: a border, the title and `rows` (from [`rows`]).
pub(super) fn draw_metrics(frame: &mut Frame, area: Rect, rows: &[String]) {
    let lines: Vec<Line> = rows.iter().map(|row| Line::from(row.as_str())).collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(TITLE)),
        area,
    );
}

/// The width of the widest text, in characters.
fn widest<'a>(texts: impl Iterator<Item = &'a String>) -> usize {
    texts.map(|t| t.chars().count()).max().unwrap_or(0)
}

/// `text` cut to `width` characters, ending with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn metrics_fill_columns_top_to_bottom_aligned() {
        let m = metrics(&[
            ("Heap Size", "10.48 MiB"),
            ("Realtime users", "42 users"),
            ("reqs", "7"),
        ]);
        // 25-character cells: three fit in 81 columns, so one row.
        assert_eq!(
            rows(&m, 81, 3),
            ["Heap Size       10.48 MiB   Realtime users  42 users    reqs            7"]
        );
        // Two in 80: the first column gets two rows.
        assert_eq!(
            rows(&m, 80, 3),
            [
                "Heap Size       10.48 MiB   reqs            7",
                "Realtime users  42 users",
            ]
        );
    }

    #[test]
    fn what_does_not_fit_is_cut_or_counted() {
        let m = metrics(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        // One column, two rows: one metric, then how many more.
        assert_eq!(rows(&m, 4, 2), ["a  1", "+3 …"]);
        assert_eq!(rows(&m, 40, 0), Vec::<String>::new());
        assert_eq!(rows(&[], 40, 3), Vec::<String>::new());
        // A long value is cut, with a mark, so others still share the row.
        let long = "x".repeat(50);
        let m = metrics(&[("big", &long), ("n", "1")]);
        let shown = rows(&m, 80, 1);
        assert_eq!(shown.len(), 1);
        assert!(
            shown[0].starts_with(&format!("big  {}…", "x".repeat(23))),
            "{shown:?}"
        );
        assert!(shown[0].ends_with("n    1"), "{shown:?}");
    }
}
