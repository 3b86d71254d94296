//! The selected instance's details.

use super::super::format::short_duration;
use kelpie_core::Status;
use kelpie_proto::ProcessInfo;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

pub(super) fn draw_details(
    frame: &mut Frame,
    area: Rect,
    selected: Option<&ProcessInfo>,
    now_ms: u64,
) {
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
            Span::raw(kelpie_view::terminal::visible(&last_exit).into_owned()),
        ]),
    ];
    if !said.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("app says ", label),
            Span::raw(kelpie_view::terminal::visible(&said).into_owned()),
        ]));
    }
    let title = format!(" {} · id {} ", p.spec.name, p.pm_id);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}
