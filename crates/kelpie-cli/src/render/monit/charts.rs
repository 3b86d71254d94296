//! The selected instance's cpu and memory history, as sparklines.

use super::super::format::bytes;
use super::View;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

pub(super) fn draw_charts(frame: &mut Frame, area: Rect, view: &View) {
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
