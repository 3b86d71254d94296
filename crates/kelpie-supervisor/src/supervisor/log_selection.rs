//! The logs as the supervisor knows them: which instances a `logs` client reads, the files
//! `describe` shows (`flush` and `reloadLogs` are in `requests/logs.rs`).

use super::apps::Apps;
use super::refusal::Refusal;
use crate::logs::hub::LogFilter;
use crate::logs::LogService;
use crate::spawn_plan::LogPaths;
use crate::supervisor_channel::{LogSelection, SelectedInstance};
use kelpie_proto::{Home, LogFileInfo, Target};

impl Apps {
    /// The instances and follow filter for `targets` (empty = all).
    pub(super) fn log_selection(
        &self,
        targets: &[Target],
        home: &Home,
    ) -> Result<LogSelection, Refusal> {
        let targets = if targets.is_empty() {
            vec![Target::All]
        } else {
            targets.to_vec()
        };
        let ids = self.resolve(&targets)?;
        let mut filter = LogFilter::default();
        for target in &targets {
            match target {
                Target::All => filter.all = true,
                Target::Id(_) => {
                    // A number may be an app's name (`--name 455`): the ids it selects.
                    filter
                        .ids
                        .extend(self.resolve(std::slice::from_ref(target))?);
                }
                Target::Name(name) if !self.ids_named(name).is_empty() => {
                    filter.names.insert(name.clone());
                }
                Target::Name(namespace) => {
                    filter.namespaces.insert(namespace.clone());
                }
                // A pattern or a script path follows the apps it matches now.
                Target::Pattern(_) | Target::NameOrScript { .. } => {
                    for id in self.resolve(std::slice::from_ref(target))? {
                        if let Some(entry) = self.get(id) {
                            filter.names.insert(entry.spec.name.clone());
                        }
                    }
                }
            }
        }
        let instances = ids
            .into_iter()
            .filter_map(|id| {
                let entry = self.get(id)?;
                Some(SelectedInstance {
                    pm_id: id,
                    name: entry.spec.name.clone(),
                    paths: crate::spawn_plan::log_paths(home, &entry.spec, id),
                    line_dates: crate::logs::LineFormat::for_spec(&entry.spec).line_dates(),
                })
            })
            .collect();
        Ok(LogSelection { instances, filter })
    }
}

/// The log files of an instance with their state, for `describe`.
pub(super) fn log_file_infos(logs: &LogService, paths: &LogPaths) -> Vec<LogFileInfo> {
    let files = paths.files();
    [
        ("out", files.out),
        ("err", files.err),
        ("combined", files.combined),
    ]
    .into_iter()
    .filter_map(|(kind, path)| {
        let path = path?;
        let status = logs.status(&path);
        Some(LogFileInfo {
            kind: kind.to_string(),
            path: path.display().to_string(),
            dropped_lines: status.as_ref().map_or(0, |s| s.dropped_lines),
            error: status.and_then(|s| s.error),
        })
    })
    .collect()
}
