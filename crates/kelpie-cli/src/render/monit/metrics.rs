//! The selected process's code metrics (what `@pm2/io` reports, `pm2 monit`'s "Custom Metrics"),
//! laid out in columns like `ls`: `name  value unit`, in the order `describe` lists them (the
//! runtime's first), each runtime metric with its meaning when the panel has room for all.

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
/// And with a meaning after the value.
const EXPLAINED_MAX: usize = 80;

/// Each metric of `p` as its printable name, `value unit` and meaning (runtime metrics), in
/// the order `describe` lists them.
fn entries(p: &ProcessInfo) -> Vec<(String, String, Option<&'static str>)> {
    super::super::describe::runtime::ordered(&p.sdk.monitor)
        .into_iter()
        .map(|(name, entry, meaning)| (printable(name), printable(&sdk_metric(entry)), meaning))
        .collect()
}

/// The metrics with each runtime one's meaning after its value (values aligned), when all of
/// them fit in `width` and `max_rows` that way.
fn explained(
    entries: &[(String, String, Option<&'static str>)],
    width: usize,
    max_rows: usize,
) -> Option<Vec<String>> {
    let value_width = widest(entries.iter().map(|e| &e.1)).min(VALUE_MAX);
    let metrics: Vec<(String, String)> = entries
        .iter()
        .map(|(name, value, meaning)| match meaning {
            Some(meaning) => (name.clone(), format!("{value:<value_width$}  {meaning}")),
            None => (name.clone(), value.clone()),
        })
        .collect();
    let (_, _, _, columns) = layout(&metrics, width, EXPLAINED_MAX);
    (metrics.len() <= columns * max_rows)
        .then(|| rows_within(&metrics, width, max_rows, EXPLAINED_MAX))
}

/// The rows of `p`'s metrics for a panel as wide as the screen (`width`), under which the
/// logs share the `spare` rows: the panel takes up to half of them, borders included (at least
/// one row of metrics, at most 8), so the logs keep at least 3. None without metrics or room.
pub(super) fn fitted(p: &ProcessInfo, width: u16, spare: u16) -> Vec<String> {
    if spare < 6 {
        return Vec::new();
    }
    let entries = entries(p);
    let (width, max_rows) = (
        usize::from(width.saturating_sub(2)),
        usize::from((spare / 2).saturating_sub(2).clamp(1, 8)),
    );
    if let Some(rows) = explained(&entries, width, max_rows) {
        return rows;
    }
    let plain: Vec<(String, String)> = entries.into_iter().map(|(n, v, _)| (n, v)).collect();
    rows(&plain, width, max_rows)
}

/// How `metrics` lay out in `width` with values of at most `value_max` characters: the name
/// and value widths, a cell's width and the number of columns.
fn layout(
    metrics: &[(String, String)],
    width: usize,
    value_max: usize,
) -> (usize, usize, usize, usize) {
    let name_width = widest(metrics.iter().map(|(n, _)| n)).min(NAME_MAX);
    let value_width = widest(metrics.iter().map(|(_, v)| v)).min(value_max);
    let cell_width = (name_width + 2 + value_width).min(width);
    let columns = ((width + GAP) / (cell_width + GAP)).max(1);
    (name_width, value_width, cell_width, columns)
}

/// The text rows showing `metrics` in `width` columns of text and at most `max_rows` rows:
/// as many columns as fit, filled top to bottom then left to right; when they do not all fit,
/// the last cell says how many more there are. No rows for no metrics (or no room).
pub(super) fn rows(metrics: &[(String, String)], width: usize, max_rows: usize) -> Vec<String> {
    rows_within(metrics, width, max_rows, VALUE_MAX)
}

/// [`rows`], values cut at `value_max` characters.
fn rows_within(
    metrics: &[(String, String)],
    width: usize,
    max_rows: usize,
    value_max: usize,
) -> Vec<String> {
    if metrics.is_empty() || width == 0 || max_rows == 0 {
        return Vec::new();
    }
    let (name_width, _, cell_width, columns) = layout(metrics, width, value_max);
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
