//! The exception inbox (`kelpie errors`): every uncaught exception, grouped by fingerprint
//! (`traces.rs`), with its count, when it was first and last seen, the apps and instances it
//! hit, its last stack and the lines of stderr just before it. Bounded: [`MAX_GROUPS`] groups
//! (the one seen longest ago goes first), one stack and [`LINES_BEFORE`] lines each, so a burst
//! of ten thousand exceptions costs counts, not memory. Kept in `<home>/exceptions.json`.

use super::traces::Trace;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

/// Groups kept.
pub(super) const MAX_GROUPS: usize = 200;
/// Lines of stderr kept from before an exception.
const LINES_BEFORE: usize = 10;
/// Characters of a line, or of a message, kept.
const LINE_MAX: usize = 500;
/// Instances listed per group.
const MAX_INSTANCES: usize = 64;
/// "Bad behaviour" (PM2 Plus's words): more than this many of one group within [`BAD_WINDOW_MS`].
const BAD_COUNT: usize = 5;
const BAD_WINDOW_MS: u64 = 60_000;

/// One group of exceptions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    /// Its fingerprint (a hash of its type and top frames of the app's own code).
    pub fingerprint: String,
    /// `python`, `go`, `ruby`, `java`, `node`.
    pub language: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The last message.
    pub message: String,
    /// How many times it was seen.
    pub count: u64,
    /// When it was first seen (ms since the epoch).
    pub first_seen_ms: u64,
    /// When it was last seen.
    pub last_seen_ms: u64,
    /// How many times each app saw it.
    pub apps: BTreeMap<String, u64>,
    /// The instances (`pm_id`) it hit.
    pub instances: BTreeSet<u32>,
    /// The last stack, as printed.
    pub stack: String,
    /// The lines of stderr just before its last one (languages that print to stderr).
    pub lines_before: Vec<String>,
    /// When it was seen within the last minute, for bad behaviour (not kept).
    #[serde(skip)]
    recent: VecDeque<u64>,
    /// When bad behaviour was last said (not kept).
    #[serde(skip)]
    bad_said_ms: Option<u64>,
}

/// What recording an exception found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// A group never seen before.
    New,
    /// A known one.
    Again,
    /// A known one, now more than [`BAD_COUNT`] times within a minute (said once a minute).
    BadBehaviour(usize),
}

/// The groups, and whether they changed since they were saved.
#[derive(Default)]
pub struct Inbox {
    groups: HashMap<String, Group>,
    dirty: bool,
}

/// Who an exception hit.
pub(super) struct Hit<'a> {
    pub app: &'a str,
    pub pm_id: u32,
    pub at_ms: u64,
}

impl Inbox {
    /// Record `trace` for `hit`, with the lines printed before it.
    pub(super) fn record(&mut self, hit: &Hit<'_>, trace: &Trace, lines_before: &[String]) -> Seen {
        self.dirty = true;
        let fingerprint = trace.fingerprint();
        if !self.groups.contains_key(&fingerprint) && self.groups.len() >= MAX_GROUPS {
            self.evict_oldest();
        }
        let mut seen = Seen::Again;
        let group = self.groups.entry(fingerprint.clone()).or_insert_with(|| {
            seen = Seen::New;
            Group {
                fingerprint,
                language: trace.language.to_string(),
                kind: trace.kind.clone(),
                message: String::new(),
                count: 0,
                first_seen_ms: hit.at_ms,
                last_seen_ms: hit.at_ms,
                apps: BTreeMap::new(),
                instances: BTreeSet::new(),
                stack: String::new(),
                lines_before: Vec::new(),
                recent: VecDeque::new(),
                bad_said_ms: None,
            }
        });
        group.count += 1;
        group.last_seen_ms = hit.at_ms;
        group.message = cut(&trace.message);
        group.stack = trace.stack.clone();
        let skip = lines_before.len().saturating_sub(LINES_BEFORE);
        group.lines_before = lines_before[skip..].iter().map(|l| cut(l)).collect();
        *group.apps.entry(hit.app.to_string()).or_default() += 1;
        if group.instances.len() < MAX_INSTANCES {
            group.instances.insert(hit.pm_id);
        }
        group.recent.push_back(hit.at_ms);
        while group
            .recent
            .front()
            .is_some_and(|t| hit.at_ms.saturating_sub(*t) > BAD_WINDOW_MS)
        {
            group.recent.pop_front();
        }
        let bad = group.recent.len() > BAD_COUNT;
        let said_lately = group
            .bad_said_ms
            .is_some_and(|said| hit.at_ms.saturating_sub(said) < BAD_WINDOW_MS);
        if seen == Seen::Again && bad && !said_lately {
            group.bad_said_ms = Some(hit.at_ms);
            return Seen::BadBehaviour(group.recent.len());
        }
        seen
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .groups
            .values()
            .min_by_key(|g| g.last_seen_ms)
            .map(|g| g.fingerprint.clone());
        if let Some(oldest) = oldest {
            self.groups.remove(&oldest);
        }
    }

    /// The groups (of `app`'s, if given), the one seen last first.
    pub fn list(&self, app: Option<&str>) -> Vec<Group> {
        let mut groups: Vec<Group> = self
            .groups
            .values()
            .filter(|g| app.is_none_or(|app| g.apps.contains_key(app)))
            .cloned()
            .collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.last_seen_ms));
        groups
    }

    /// Forget every group (of `app`'s, if given: its counts, and the groups only it saw).
    pub fn clear(&mut self, app: Option<&str>) -> usize {
        self.dirty = true;
        let before = self.groups.len();
        match app {
            None => self.groups.clear(),
            Some(app) => {
                self.groups.retain(|_, g| {
                    if let Some(count) = g.apps.remove(app) {
                        g.count = g.count.saturating_sub(count);
                    }
                    !g.apps.is_empty()
                });
            }
        }
        before - self.groups.len()
    }

    /// Each app's count of each group, for `/metrics`.
    pub fn counts(&self) -> Vec<(String, String, String, u64)> {
        let mut counts: Vec<_> = self
            .groups
            .values()
            .flat_map(|g| {
                g.apps
                    .iter()
                    .map(|(app, n)| (app.clone(), g.fingerprint.clone(), g.kind.clone(), *n))
            })
            .collect();
        counts.sort();
        counts
    }

    /// What to write, if anything changed since the last time.
    pub(super) fn changes_to_save(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        serde_json::to_vec(&self.list(None)).ok()
    }

    /// The inbox kept in `path`; empty when there is none, or it cannot be read (then said).
    pub(super) fn load(path: &Path) -> Inbox {
        let groups: Vec<Group> = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                crate::daemon_log!(
                    "exceptions: {} cannot be read ({e}); starting empty",
                    path.display()
                );
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Inbox {
            groups: groups
                .into_iter()
                .take(MAX_GROUPS)
                .map(|g| (g.fingerprint.clone(), g))
                .collect(),
            dirty: false,
        }
    }
}

/// At most [`LINE_MAX`] characters.
fn cut(text: &str) -> String {
    text.chars().take(LINE_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(kind: &str, function: &str) -> Trace {
        Trace {
            language: "python",
            kind: kind.into(),
            message: "m".into(),
            frames: vec![format!("{function} app.py")],
            stack: "Traceback …".into(),
        }
    }

    fn hit(app: &str, at_ms: u64) -> Hit<'_> {
        Hit {
            app,
            pm_id: 0,
            at_ms,
        }
    }

    #[test]
    fn groups_count_and_bad_behaviour_is_said_once_a_minute() {
        let mut inbox = Inbox::default();
        let boom = trace("ValueError", "charge");
        assert_eq!(inbox.record(&hit("api", 0), &boom, &[]), Seen::New);
        let seen: Vec<Seen> = (1..=8)
            .map(|n| inbox.record(&hit("api", n * 1000), &boom, &[]))
            .collect();
        assert_eq!(
            seen.iter()
                .filter(|s| matches!(s, Seen::BadBehaviour(_)))
                .count(),
            1,
            "{seen:?}"
        );
        assert_eq!(seen[4], Seen::BadBehaviour(6));
        assert_eq!(
            inbox.record(&hit("web", 9000), &trace("KeyError", "charge"), &[]),
            Seen::New
        );
        let groups = inbox.list(None);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].count, 9);
        assert_eq!(inbox.list(Some("web")).len(), 1);
        assert_eq!(inbox.clear(Some("web")), 1);
        assert_eq!(inbox.list(None).len(), 1);
    }

    /// Ten thousand distinct exceptions keep at most MAX_GROUPS groups, the latest.
    #[test]
    fn a_burst_is_bounded_in_groups_and_lines() {
        let mut inbox = Inbox::default();
        let long = vec!["x".repeat(5_000); 50];
        for n in 0..10_000u64 {
            inbox.record(&hit("api", n), &trace("E", &format!("f{n}")), &long);
        }
        let groups = inbox.list(None);
        assert_eq!(groups.len(), MAX_GROUPS);
        assert_eq!(groups[0].last_seen_ms, 9_999);
        assert!(groups.iter().all(|g| g.lines_before.len() <= LINES_BEFORE));
        assert!(groups
            .iter()
            .all(|g| g.lines_before.iter().all(|l| l.len() <= LINE_MAX)));
    }

    #[test]
    fn it_is_kept_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("exceptions.json");
        let mut inbox = Inbox::default();
        inbox.record(
            &hit("api", 5),
            &trace("ValueError", "charge"),
            &["before".into()],
        );
        std::fs::write(&path, inbox.changes_to_save().expect("changed")).expect("write");
        assert!(inbox.changes_to_save().is_none(), "saved: nothing new");
        let back = Inbox::load(&path);
        assert_eq!(back.list(None)[0].lines_before, ["before"]);
        assert_eq!(back.list(None)[0].count, 1);
    }
}
