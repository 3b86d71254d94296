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

use crate::client::Client;
use crate::render::monit::{draw, LogEntry, View};
use crate::render::RawTerminal;
use anyhow::{anyhow, bail, Result};
use kelpie_proto::{Home, LogStream, ProcessInfo, Request, Response, ScaleCount, Target};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::prelude::CrosstermBackend;
use ratatui::Terminal;
use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

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
    List(Result<Vec<ProcessInfo>, String>),
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
pub fn monit(home: &Home, interval: Duration) -> Result<ExitCode> {
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

/// What a key asks for.
#[derive(Debug, PartialEq)]
enum Flow {
    Continue,
    Quit,
    Act(Action),
}

/// A change asked of the daemon.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Restart { id: u32, name: String },
    Reload { id: u32, name: String },
    Stop { id: u32, name: String },
    Scale { name: String, count: ScaleCount },
}

impl Action {
    /// "restarting api (id 0)…"
    fn doing(&self) -> String {
        match self {
            Action::Restart { id, name } => format!("restarting {name} (id {id})…"),
            Action::Reload { id, name } => format!("reloading {name} (id {id})…"),
            Action::Stop { id, name } => format!("stopping {name} (id {id})…"),
            Action::Scale { name, count } => format!("scaling {name} {}…", scale_word(*count)),
        }
    }

    /// "restarted api (id 0)"
    fn done(&self) -> String {
        match self {
            Action::Restart { id, name } => format!("restarted {name} (id {id})"),
            Action::Reload { id, name } => format!("reloaded {name} (id {id})"),
            Action::Stop { id, name } => format!("stopped {name} (id {id})"),
            Action::Scale { name, count } => format!("scaled {name} {}", scale_word(*count)),
        }
    }

    fn request(&self) -> Request {
        match self {
            Action::Restart { id, .. } => Request::Restart {
                targets: vec![Target::Id(*id)],
                update_env: None,
            },
            Action::Reload { id, .. } => Request::Reload {
                targets: vec![Target::Id(*id)],
                apps: Vec::new(),
                update_env: None,
                parallel: 1,
            },
            Action::Stop { id, .. } => Request::Stop {
                targets: vec![Target::Id(*id)],
            },
            Action::Scale { name, count } => Request::Scale {
                name: name.clone(),
                count: *count,
            },
        }
    }
}

fn scale_word(count: ScaleCount) -> String {
    match count {
        ScaleCount::Up(n) => format!("up by {n}"),
        ScaleCount::Down(n) => format!("down by {n}"),
        ScaleCount::To(n) => format!("to {n}"),
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

impl Dashboard {
    /// The instances the filter lets through, in list order.
    fn visible(&self) -> Vec<&ProcessInfo> {
        let filter = self.filter.to_lowercase();
        self.processes
            .iter()
            .filter(|p| filter.is_empty() || p.spec.name.to_lowercase().contains(&filter))
            .collect()
    }

    /// The selected instance's index among the visible ones (the first when the selected one
    /// is not shown).
    fn selected_index(&self, visible: &[&ProcessInfo]) -> Option<usize> {
        if visible.is_empty() {
            return None;
        }
        Some(
            self.selected
                .and_then(|id| visible.iter().position(|p| p.pm_id == id))
                .unwrap_or(0),
        )
    }

    fn selected_process(&self) -> Option<&ProcessInfo> {
        let visible = self.visible();
        let index = self.selected_index(&visible)?;
        visible.get(index).copied()
    }

    fn view(&self, now_ms: u64) -> View<'_> {
        let rows = self.visible();
        let selected = self.selected_index(&rows);
        let process = selected.and_then(|i| rows.get(i)).copied();
        let history = process.and_then(|p| self.history.get(&p.pm_id));
        let logs = process
            .and_then(|p| self.logs.get(&p.spec.name))
            .map(|lines| lines.iter().collect())
            .unwrap_or_default();
        View {
            total: self.processes.len(),
            selected,
            cpu: history
                .map(|h| h.cpu.iter().copied().collect())
                .unwrap_or_default(),
            memory: history
                .map(|h| h.memory.iter().copied().collect())
                .unwrap_or_default(),
            logs,
            filter: &self.filter,
            editing_filter: self.editing_filter,
            help: self.help,
            message: self
                .message
                .as_ref()
                .map(|(text, error, _)| (text.as_str(), *error)),
            problem: self.problem.as_deref(),
            now_ms,
            rows,
        }
    }

    /// Move the selection by `delta` rows (clamped).
    fn step(&mut self, delta: isize) {
        let visible = self.visible();
        let Some(index) = self.selected_index(&visible) else {
            return;
        };
        let last = visible.len() as isize - 1;
        let next = (index as isize + delta).clamp(0, last) as usize;
        self.selected = Some(visible[next].pm_id);
    }

    fn key(&mut self, key: KeyEvent) -> Flow {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Flow::Quit;
        }
        if self.help {
            self.help = false;
            return Flow::Continue;
        }
        match key.code {
            KeyCode::Up => self.step(-1),
            KeyCode::Down => self.step(1),
            KeyCode::PageUp => self.step(-10),
            KeyCode::PageDown => self.step(10),
            KeyCode::Home => self.step(isize::MIN / 2),
            KeyCode::End => self.step(isize::MAX / 2),
            _ if self.editing_filter => self.filter_key(key.code),
            KeyCode::Char('q') | KeyCode::Esc => return Flow::Quit,
            KeyCode::Char('k') => self.step(-1),
            KeyCode::Char('j') => self.step(1),
            KeyCode::Char('/') | KeyCode::Char('f') => {
                self.editing_filter = true;
                self.after_filter_change();
            }
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => self.help = true,
            KeyCode::Char('c') => {
                if let Some(name) = self.selected_process().map(|p| p.spec.name.clone()) {
                    self.logs.remove(&name);
                }
            }
            KeyCode::Char(c) => {
                if let Some(action) = self.action_for(c) {
                    return Flow::Act(action);
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    fn filter_key(&mut self, code: KeyCode) {
        match code {
            KeyCode::Enter => self.editing_filter = false,
            KeyCode::Esc => {
                self.filter.clear();
                self.editing_filter = false;
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.push(c),
            _ => {}
        }
        self.after_filter_change();
    }

    /// Keep a visible instance selected.
    fn after_filter_change(&mut self) {
        let visible = self.visible();
        self.selected = self
            .selected_index(&visible)
            .map(|i| visible[i].pm_id)
            .or(self.selected);
    }

    fn action_for(&self, key: char) -> Option<Action> {
        let p = self.selected_process()?;
        let (id, name) = (p.pm_id, p.spec.name.clone());
        Some(match key {
            'r' => Action::Restart { id, name },
            'g' => Action::Reload { id, name },
            's' => Action::Stop { id, name },
            '+' | '=' => Action::Scale {
                name,
                count: ScaleCount::Up(1),
            },
            '-' | '_' => Action::Scale {
                name,
                count: ScaleCount::Down(1),
            },
            _ => return None,
        })
    }

    fn pending(&mut self, action: &Action) {
        self.message = Some((action.doing(), false, None));
    }

    fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::List(Ok(list)) => {
                self.problem = None;
                for p in &list {
                    let history = self.history.entry(p.pm_id).or_default();
                    push_capped(&mut history.cpu, p.cpu, HISTORY);
                    push_capped(&mut history.memory, p.memory, HISTORY);
                }
                self.history
                    .retain(|id, _| list.iter().any(|p| p.pm_id == *id));
                if self.selected.is_none() {
                    self.selected = list.first().map(|p| p.pm_id);
                }
                self.processes = list;
            }
            Msg::List(Err(problem)) => self.problem = Some(problem),
            Msg::LogsRestarted => self.logs.clear(),
            Msg::Logs(lines) => {
                for (app, entry) in lines {
                    push_capped(self.logs.entry(app).or_default(), entry, LOG_LINES);
                }
            }
            Msg::LogsProblem(problem) => {
                if self.problem.is_none() {
                    self.problem = Some(format!("logs: {problem}"));
                }
            }
            Msg::Done(text, error) => {
                self.message = Some((text, error, Some(Instant::now() + MESSAGE_TIME)));
            }
        }
    }

    /// Drop an outcome shown long enough; whether the screen changes.
    fn expire_message(&mut self) -> bool {
        let expired =
            matches!(&self.message, Some((_, _, Some(until))) if Instant::now() >= *until);
        if expired {
            self.message = None;
        }
        expired
    }
}

fn push_capped<T>(queue: &mut VecDeque<T>, value: T, cap: usize) {
    if queue.len() == cap {
        queue.pop_front();
    }
    queue.push_back(value);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One `List` per interval, and one at once after each wake-up. Returns the wake-up handle.
fn spawn_poller(home: Home, client: Client, interval: Duration, tx: Sender<Msg>) -> Sender<()> {
    let (wake, woken) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut client = Some(client);
        loop {
            if tx.send(Msg::List(list(&home, &mut client))).is_err() {
                return;
            }
            match woken.recv_timeout(interval) {
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(()) | Err(RecvTimeoutError::Timeout) => while woken.try_recv().is_ok() {},
            }
        }
    });
    wake
}

/// The list, reconnecting when the connection broke (a daemon that was restarted or updated).
/// A daemon that is gone is not started again: that is the user's call.
fn list(home: &Home, client: &mut Option<Client>) -> Result<Vec<ProcessInfo>, String> {
    if client.is_none() {
        *client = Client::connect(home).map_err(|e| format!("{e:#}"))?;
    }
    let Some(connection) = client.as_mut() else {
        return Err("the daemon is not running (kelpie ping starts it)".into());
    };
    match connection.request(&Request::List) {
        Ok(Response::Processes(list)) => Ok(list),
        Ok(other) => Err(format!("unexpected answer from the daemon: {other:?}")),
        Err(e) => {
            *client = None;
            Err(format!("{e:#}"))
        }
    }
}

/// Follow every app's output; reconnect a second after the stream breaks.
fn spawn_log_follower(home: Home, tx: Sender<Msg>) {
    std::thread::spawn(move || loop {
        match follow_logs(&home, &tx) {
            Ok(()) => return,
            Err(e) => {
                if tx.send(Msg::LogsProblem(format!("{e:#}"))).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    });
}

/// Stream the logs until the screen is gone (`Ok`) or the connection breaks (`Err`).
fn follow_logs(home: &Home, tx: &Sender<Msg>) -> Result<()> {
    let mut client = Client::connect(home)?.ok_or_else(|| anyhow!("the daemon is not running"))?;
    client.send(&Request::Logs {
        targets: Vec::new(),
        lines: TAIL_LINES,
        out: true,
        err: true,
        follow: true,
    })?;
    if tx.send(Msg::LogsRestarted).is_err() {
        return Ok(());
    }
    loop {
        match client.receive()? {
            Response::LogLines { lines, .. } => {
                let lines = lines
                    .into_iter()
                    .map(|line| {
                        let entry =
                            LogEntry::new(line.pm_id, line.stream == LogStream::Err, &line.bytes.0);
                        (line.app_name, entry)
                    })
                    .collect();
                if tx.send(Msg::Logs(lines)).is_err() {
                    return Ok(());
                }
            }
            Response::Error(e) => return Err(crate::exit::from_wire(&e)),
            Response::Done(_) => bail!("the daemon ended the log stream"),
            other => bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
}

/// Carry out an action on its own connection; report, then refresh the list.
fn spawn_action(home: Home, action: Action, tx: Sender<Msg>, wake: Sender<()>) {
    std::thread::spawn(move || {
        let outcome = (|| -> Result<String> {
            let mut client =
                Client::connect(&home)?.ok_or_else(|| anyhow!("the daemon is not running"))?;
            match client.request(&action.request())? {
                Response::Error(e) => Err(crate::exit::from_wire(&e)),
                _ => Ok(action.done()),
            }
        })();
        let msg = match outcome {
            Ok(text) => Msg::Done(text, false),
            Err(e) => Msg::Done(format!("{e:#}"), true),
        };
        let _ = tx.send(msg);
        let _ = wake.send(());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

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
}
