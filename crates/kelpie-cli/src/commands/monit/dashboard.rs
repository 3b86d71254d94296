//! What the dashboard shows ([`View`]: the instances the filter lets through, the selected
//! one's history and lines) and how the helper threads' messages change it.

use super::actions::Action;
use super::{Dashboard, Msg, HISTORY, LOG_LINES, MESSAGE_TIME};
use crate::render::monit::View;
use kelpie_proto::ProcessInfo;
use std::collections::VecDeque;
use std::time::Instant;

impl Dashboard {
    /// The instances the filter lets through, in list order.
    pub(super) fn visible(&self) -> Vec<&ProcessInfo> {
        let filter = self.filter.to_lowercase();
        self.processes
            .iter()
            .filter(|p| filter.is_empty() || p.spec.name.to_lowercase().contains(&filter))
            .collect()
    }

    /// The selected instance's index among the visible ones (the first when the selected one
    /// is not shown).
    pub(super) fn selected_index(&self, visible: &[&ProcessInfo]) -> Option<usize> {
        if visible.is_empty() {
            return None;
        }
        Some(
            self.selected
                .and_then(|id| visible.iter().position(|p| p.pm_id == id))
                .unwrap_or(0),
        )
    }

    pub(super) fn selected_process(&self) -> Option<&ProcessInfo> {
        let visible = self.visible();
        let index = self.selected_index(&visible)?;
        visible.get(index).copied()
    }

    pub(super) fn view(&self, now_ms: u64) -> View<'_> {
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
            host: self.host.as_ref(),
            now_ms,
            rows,
        }
    }

    /// Move the selection by `delta` rows (clamped).
    pub(super) fn step(&mut self, delta: isize) {
        let visible = self.visible();
        let Some(index) = self.selected_index(&visible) else {
            return;
        };
        let last = visible.len() as isize - 1;
        let next = (index as isize + delta).clamp(0, last) as usize;
        self.selected = Some(visible[next].pm_id);
    }

    pub(super) fn pending(&mut self, action: &Action) {
        self.message = Some((action.doing(), false, None));
    }

    pub(super) fn apply(&mut self, msg: Msg) {
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
            Msg::List(Err(problem)) => self.problem = Some(problem.to_string()),
            Msg::Host(host) => self.host = host,
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
    pub(super) fn expire_message(&mut self) -> bool {
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
