//! `monit` (alias `dashboard`): the full-screen terminal dashboard.
//!
//! Three threads talk to the daemon, each on its own connection, and post what they learn to
//! the screen's thread over one channel:
//! - the poller sends one `List` per interval (and at once after an action);
//! - the log follower streams every app's output (`Logs` with no target follows apps started
//!   later too), kept here per app, so switching apps shows their recent lines at once;
//! - each action (restart, reload, stop, scale) runs on a short-lived thread, so a stop that waits
//!   for a long `kill_timeout` never freezes the screen.
//!
//! The screen's thread only reads keys, applies messages and redraws (ratatui draws only the
//! cells that changed, so a refresh does not flicker). The cpu and memory history is what this
//! screen has seen since it opened.
//!
//! Here: the entry, the screen's loop and what the dashboard holds. Its parts, in `monit/`:
//! what the dashboard shows and how messages change it (`dashboard`), the keys (`keys`), the
//! actions they ask for (`actions`), and the threads that talk to the daemon (`threads`).

mod actions;
mod dashboard;
mod keys;
mod threads;

use crate::client::Client;
use crate::render::monit::{draw, LogEntry};
use crate::render::RawTerminal;
use actions::{Action, Flow};
use anyhow::{bail, Result};
use kelpie_proto::{Home, ProcessInfo};
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::prelude::CrosstermBackend;
use ratatui::Terminal;
use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use threads::{spawn_action, spawn_log_follower, spawn_poller};

/// Samples of cpu and memory kept per instance (the widest chart shows fewer).
const HISTORY: usize = 300;

/// Lines kept per app.
const LOG_LINES: usize = 500;

/// Lines of each stream of each instance asked for when the log stream (re)starts.
const TAIL_LINES: u32 = 30;

/// How long an action's outcome stays in the footer.
const MESSAGE_TIME: Duration = Duration::from_secs(6);

/// How often keys and messages are looked at.
const TICK: Duration = Duration::from_millis(50);

/// What the helper threads report.
enum Msg {
    /// A fresh list, or why there is none.
    List(Result<Vec<ProcessInfo>, threads::NoList>),
    /// The host's use, read with the list.
    Host(Option<kelpie_proto::HostMetrics>),
    /// The log stream (re)started: what was kept is replaced by the tail that follows.
    LogsRestarted,
    /// New lines: (app name, line).
    Logs(Vec<(String, LogEntry)>),
    /// The log stream broke (it is retried).
    LogsProblem(String),
    /// An action finished: its outcome for people, and whether it failed.
    Done(String, bool),
}

/// `monit`: the dashboard until `q`, Esc or Ctrl-C.
pub(super) fn monit(home: &Home, interval: Duration) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("monit needs a terminal; `kelpie list --watch` or `kelpie jlist` work without one");
    }
    // Reach the daemon (starting it) before touching the screen, so a failure is a plain error.
    let client = Client::connect_or_start(home)?;
    let (tx, rx) = mpsc::channel();
    let wake = spawn_poller(home.clone(), client, interval, tx.clone());
    spawn_log_follower(home.clone(), tx.clone());

    let raw = RawTerminal::enter(true)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let mut dashboard = Dashboard::default();
    let result = run(&mut terminal, &raw, &mut dashboard, &rx, |action| {
        spawn_action(home.clone(), action, tx.clone(), wake.clone());
    });
    drop(terminal);
    drop(raw);
    result.map(|()| ExitCode::SUCCESS)
}

/// The screen's loop.
fn run(
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    raw: &RawTerminal,
    dashboard: &mut Dashboard,
    rx: &Receiver<Msg>,
    mut act: impl FnMut(Action),
) -> Result<()> {
    let mut dirty = true;
    loop {
        if dirty {
            let now_ms = now_ms();
            terminal.draw(|frame| draw(frame, &dashboard.view(now_ms)))?;
            dirty = false;
        }
        if raw.signalled() {
            return Ok(());
        }
        if event::poll(TICK)? {
            match event::read()? {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    match dashboard.key(key) {
                        Flow::Quit => return Ok(()),
                        Flow::Act(action) => {
                            dashboard.pending(&action);
                            act(action);
                        }
                        Flow::Continue => {}
                    }
                    dirty = true;
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        while let Ok(msg) = rx.try_recv() {
            dashboard.apply(msg);
            dirty = true;
        }
        dirty |= dashboard.expire_message();
    }
}

/// Samples of one instance.
#[derive(Default)]
struct History {
    cpu: VecDeque<f64>,
    memory: VecDeque<u64>,
}

/// Everything the screen knows.
#[derive(Default)]
struct Dashboard {
    processes: Vec<ProcessInfo>,
    host: Option<kelpie_proto::HostMetrics>,
    problem: Option<String>,
    history: HashMap<u32, History>,
    logs: HashMap<String, VecDeque<LogEntry>>,
    /// The selected instance, by id (it stays selected when the list changes around it).
    selected: Option<u32>,
    filter: String,
    editing_filter: bool,
    help: bool,
    /// The footer's message, whether it is an error, and when it goes (`None`: while pending).
    message: Option<(String, bool, Option<Instant>)>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_proto::ScaleCount;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    // InstanceState has private fields: it can only be built from its default.
    #[allow(clippy::field_reassign_with_default)]
    fn process(pm_id: u32, name: &str) -> ProcessInfo {
        let spec = kelpie_core::AppSpec {
            name: name.into(),
            instances: 1,
            ..Default::default()
        };
        let mut state = kelpie_core::InstanceState::default();
        state.status = kelpie_core::Status::Online;
        state.pid = Some(1000 + pm_id);
        ProcessInfo {
            pm_id,
            instance: 0,
            spec,
            state,
            memory: 12 << 20,
            cpu: 1.5,
            uptime_ms: 65_000,
            out_log: String::new(),
            err_log: String::new(),
            username: "me".into(),
            log_files: Vec::new(),
            status_text: None,
            metrics: Default::default(),
            sdk: Default::default(),
            counters: None,
        }
    }

    fn press(dashboard: &mut Dashboard, code: KeyCode) -> Flow {
        dashboard.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn screen(dashboard: &Dashboard, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal
            .draw(|frame| draw(frame, &dashboard.view(0)))
            .expect("draw");
        let buffer = terminal.backend().buffer().clone();
        let mut text = String::new();
        for y in 0..height {
            for x in 0..width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn dashboard() -> Dashboard {
        let mut d = Dashboard::default();
        d.apply(Msg::List(Ok(vec![
            process(0, "api"),
            process(1, "worker"),
            process(2, "api-admin"),
        ])));
        d.apply(Msg::Logs(vec![(
            "worker".into(),
            LogEntry::new(1, false, b"hello from worker"),
        )]));
        d
    }

    #[test]
    fn keys_select_filter_and_act_on_the_selected_instance() {
        let mut d = dashboard();
        assert_eq!(d.selected, Some(0));
        press(&mut d, KeyCode::Down);
        assert_eq!(
            press(&mut d, KeyCode::Char('r')),
            Flow::Act(Action::Restart {
                id: 1,
                name: "worker".into()
            })
        );
        assert_eq!(
            press(&mut d, KeyCode::Char('+')),
            Flow::Act(Action::Scale {
                name: "worker".into(),
                count: ScaleCount::Up(1)
            })
        );
        // Typing a filter: letters go to the filter, not to actions.
        press(&mut d, KeyCode::Char('/'));
        for c in "api".chars() {
            assert_eq!(press(&mut d, KeyCode::Char(c)), Flow::Continue);
        }
        assert_eq!(d.visible().len(), 2);
        assert_eq!(d.selected, Some(0), "the selection moves to a visible app");
        press(&mut d, KeyCode::Enter);
        assert_eq!(d.filter, "api");
        assert_eq!(press(&mut d, KeyCode::Char('q')), Flow::Quit);
        // Esc while typing clears the filter instead of quitting.
        press(&mut d, KeyCode::Char('/'));
        assert_eq!(press(&mut d, KeyCode::Esc), Flow::Continue);
        assert_eq!(d.visible().len(), 3);
        assert_eq!(
            d.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Flow::Quit
        );
    }

    #[test]
    fn the_screen_fits_80_by_24() {
        let mut d = dashboard();
        press(&mut d, KeyCode::Down);
        let text = screen(&d, 80, 24);
        for expected in [
            "kelpie monit",
            "api",
            "worker",
            "online",
            "worker · id 1",
            "pid      1001",
            "hello from worker",
            "r restart",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        // The help covers the screen without breaking it.
        press(&mut d, KeyCode::Char('?'));
        let text = screen(&d, 80, 24);
        assert!(text.contains("scale its app"), "{text}");
        // Even a tiny terminal draws without panicking.
        screen(&d, 20, 5);
    }

    #[test]
    fn the_selected_app_s_code_metrics_show_with_their_units() {
        let mut api = process(0, "api");
        let metrics = serde_json::json!({
            "Realtime users": {"value": 42, "unit": "users", "historic": true},
            "Heap Size": {"value": "10.48", "unit": "MiB"},
        });
        if let serde_json::Value::Object(monitor) = metrics {
            api.sdk.monitor = monitor;
        }
        let mut d = Dashboard::default();
        d.apply(Msg::List(Ok(vec![api, process(1, "worker")])));
        let text = screen(&d, 80, 24);
        assert!(text.contains("Code metrics (@pm2/io)"), "{text}");
        // By name, as `describe` lists them, names aligned.
        assert!(
            text.contains("Heap Size       10.48 MiB   Realtime users  42 users"),
            "{text}"
        );
        // The logs keep their panel.
        assert!(text.contains("api logs (live)"), "{text}");
        // Too short for both: the logs win, and a tiny terminal still draws.
        assert!(!screen(&d, 80, 16).contains("Code metrics"));
        screen(&d, 20, 5);
        // An app without metrics gets no panel.
        press(&mut d, KeyCode::Down);
        let text = screen(&d, 80, 24);
        assert!(!text.contains("Code metrics"), "{text}");
    }
}
