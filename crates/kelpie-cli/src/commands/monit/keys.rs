//! The keys: moving the selection, the filter, help, clearing lines, and the actions on the
//! selected instance.

use super::actions::{Action, Flow};
use super::Dashboard;
use kelpie_proto::ScaleCount;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

impl Dashboard {
    pub(super) fn key(&mut self, key: KeyEvent) -> Flow {
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
}
