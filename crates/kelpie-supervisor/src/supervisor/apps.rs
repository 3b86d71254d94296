//! The app table: each instance by `pm_id` (its spec, the state it last reported, its mailbox,
//! what the monitor and its process told of it), the next id to hand out, and the deleted
//! instances whose process is still stopping. Resolving targets is in `targets.rs`.

use crate::clock;
use crate::dump::{DumpFile, DumpedApp, DUMP_VERSION};
use crate::instance::InstanceMsg;
use crate::monitor::{Reading, Target as Sampled};
use crate::state::{PersistedInstance, StateFile, STATE_VERSION};
use kelpie_core::limits::{LimitWatch, Usage};
use kelpie_core::{AppSpec, InstanceState, Lifecycle};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::oneshot;

/// One instance in the table.
pub(super) struct Entry {
    pub instance: u32,
    pub spec: Arc<AppSpec>,
    pub state: InstanceState,
    pub mailbox: crate::mailbox::Sender<InstanceMsg>,
    /// The last reading of its process tree, with the main pid it was taken for.
    pub usage: Option<(u32, Usage)>,
    /// What its limits have seen.
    pub limits: LimitWatch,
    /// Its current process's cgroup, if any.
    pub cgroup: Option<std::path::PathBuf>,
    /// What its process published on its notify socket (`STATUS=`, metrics).
    pub published: kelpie_core::Published,
    /// What its current process's PM2 SDK said (`@pm2/io`), kept by the process's link.
    pub sdk: Option<crate::link::SharedSdk>,
    /// CPU time its processes used since this daemon started (seconds), for `/metrics`.
    pub cpu_seconds: f64,
    /// Failed health-check probes that counted, for `/metrics`.
    pub health_failures: u64,
}

impl Entry {
    /// An instance whose task was just spawned, with nothing read or reported yet.
    pub(super) fn new(
        instance: u32,
        spec: Arc<AppSpec>,
        state: InstanceState,
        mailbox: crate::mailbox::Sender<InstanceMsg>,
    ) -> Entry {
        Entry {
            instance,
            spec,
            state,
            mailbox,
            usage: None,
            limits: LimitWatch::default(),
            cgroup: None,
            published: Default::default(),
            sdk: None,
            cpu_seconds: 0.0,
            health_failures: 0,
        }
    }

    /// The last reading, if it is of the current process.
    pub(super) fn current_usage(&self) -> Option<Usage> {
        self.usage
            .filter(|(pid, _)| self.state.pid == Some(*pid))
            .map(|(_, usage)| usage)
    }
}

/// Every instance, by `pm_id`.
#[derive(Default)]
pub(super) struct Apps {
    entries: BTreeMap<u32, Entry>,
    next_id: u32,
    /// Instances deleted while their process was still stopping.
    leaving: BTreeSet<u32>,
    /// The inherited environment of the app created last, which the next ones share when
    /// they have the same (see [`Apps::share_inherited_env`]).
    shared_env: Option<Arc<BTreeMap<String, String>>>,
    /// The instances' tasks: each ends once its instance is removed and its process stopped
    /// (let go of by [`Apps::task_ended`]); whatever is left is aborted with the table.
    tasks: tokio::task::JoinSet<()>,
}

impl Apps {
    /// Where the instances' tasks are kept (see [`crate::instance::spawn`]).
    pub(super) fn tasks(&mut self) -> &mut tokio::task::JoinSet<()> {
        &mut self.tasks
    }

    /// Ready when an instance's task has ended, its record let go: a task's memory (its
    /// future's room, about 4 KB) is freed only then. Never ready while none has ended.
    pub(super) async fn task_ended(&mut self) {
        match self.tasks.join_next().await {
            Some(Err(e)) if e.is_panic() => crate::daemon_log!("an instance's task failed: {e}"),
            Some(_) => {}
            None => std::future::pending().await,
        }
    }

    pub(super) fn get(&self, pm_id: u32) -> Option<&Entry> {
        self.entries.get(&pm_id)
    }

    pub(super) fn get_mut(&mut self, pm_id: u32) -> Option<&mut Entry> {
        self.entries.get_mut(&pm_id)
    }

    /// Every instance, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries.iter().map(|(pm_id, entry)| (*pm_id, entry))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The id the next instance gets.
    pub(super) fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Set `count` ids aside for instances about to be created, after every id given; the
    /// first of them.
    pub(super) fn reserve(&mut self, count: u32) -> u32 {
        let first = self.next_id;
        self.next_id += count;
        first
    }

    /// Go on numbering from `next_id` (a state restored from disk).
    pub(super) fn number_from(&mut self, next_id: u32) {
        self.next_id = next_id;
    }

    /// Put an instance in the table (a new one, or one restored or taken back).
    pub(super) fn insert(&mut self, pm_id: u32, entry: Entry) {
        self.leaving.remove(&pm_id);
        self.entries.insert(pm_id, entry);
        self.next_id = self.next_id.max(pm_id + 1);
    }

    /// Take an instance out of the table (delete); while its process still runs, it is
    /// leaving. PM2 starts numbering again once the list is empty.
    pub(super) fn take(&mut self, pm_id: u32) -> Option<Entry> {
        let entry = self.entries.remove(&pm_id);
        if entry
            .as_ref()
            .is_some_and(|entry| entry.state.status.has_process())
        {
            self.leaving.insert(pm_id);
        }
        if self.entries.is_empty() {
            self.next_id = 0;
        }
        entry
    }

    /// Forget every instance (`kill`): their tasks were told to end.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.next_id = 0;
    }

    /// A deleted instance's process is gone: whether it was leaving.
    pub(super) fn left(&mut self, pm_id: u32) -> bool {
        self.leaving.remove(&pm_id)
    }

    /// Whether a deleted instance's process is still stopping.
    pub(super) fn is_leaving(&self, pm_id: u32) -> bool {
        self.leaving.contains(&pm_id)
    }

    /// Whether any deleted instance's process is still stopping.
    pub(super) fn any_leaving(&self) -> bool {
        !self.leaving.is_empty()
    }

    pub(super) fn send(&self, pm_id: u32, msg: InstanceMsg) {
        if let Some(entry) = self.entries.get(&pm_id) {
            let _ = entry.mailbox.send(msg);
        }
    }

    /// Ask every instance with the message `ask` makes of a reply channel; the answers to
    /// wait for, by id.
    pub(super) fn ask_all<T>(
        &self,
        ask: impl Fn(oneshot::Sender<T>) -> InstanceMsg,
    ) -> Vec<(u32, oneshot::Receiver<T>)> {
        self.entries
            .iter()
            .map(|(pm_id, entry)| {
                let (tx, rx) = oneshot::channel();
                let _ = entry.mailbox.send(ask(tx));
                (*pm_id, rx)
            })
            .collect()
    }

    /// Send `lifecycle` to instance `pm_id`; the receiver fires once it has settled.
    pub(super) fn command(&self, pm_id: u32, lifecycle: Lifecycle) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.send(pm_id, InstanceMsg::Lifecycle(lifecycle, Some(tx)));
        rx
    }

    /// Tell every instance task to stop its process and end.
    pub(super) fn shut_down_all(&self) -> Vec<oneshot::Receiver<()>> {
        self.entries
            .values()
            .map(|entry| {
                let (tx, rx) = oneshot::channel();
                let _ = entry.mailbox.send(InstanceMsg::Shutdown(tx));
                rx
            })
            .collect()
    }

    /// Edit the spec of instance `pm_id`; its new spec.
    pub(super) fn edit_spec(
        &mut self,
        pm_id: u32,
        edit: impl Fn(&mut AppSpec),
    ) -> Option<Arc<AppSpec>> {
        let entry = self.entries.get_mut(&pm_id)?;
        let mut spec = (*entry.spec).clone();
        edit(&mut spec);
        entry.spec = Arc::new(spec);
        Some(entry.spec.clone())
    }

    /// The apps of one `start` (or of one shell) have the same inherited environment: keep one
    /// copy of it for all, not one per app (it is most of a spec's size). `spec` must not be
    /// shared yet (it is not copied).
    pub(super) fn share_inherited_env(&mut self, spec: &mut Arc<AppSpec>) {
        match &self.shared_env {
            Some(shared) if Arc::ptr_eq(shared, &spec.inherited_env) => {}
            Some(shared) if **shared == *spec.inherited_env => {
                Arc::make_mut(spec).inherited_env = shared.clone();
            }
            _ => self.shared_env = Some(spec.inherited_env.clone()),
        }
    }

    /// PM2 gives each instance the lowest index not used by another instance of the same name.
    pub(super) fn lowest_free_instance(&self, name: &str) -> u32 {
        let used: Vec<u32> = self
            .entries
            .values()
            .filter(|e| e.spec.name == name)
            .map(|e| e.instance)
            .collect();
        (0..).find(|i| !used.contains(i)).unwrap_or(0)
    }

    /// The spec of app `name` (its first instance's).
    pub(super) fn spec_of(&self, name: &str) -> Option<Arc<AppSpec>> {
        self.entries
            .values()
            .find(|e| e.spec.name == name)
            .map(|e| e.spec.clone())
    }

    /// Instances of the apps `names`.
    pub(super) fn instances_of(&self, names: &[String]) -> Vec<u32> {
        self.entries
            .iter()
            .filter(|(_, entry)| names.contains(&entry.spec.name))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The descriptors the daemon holds for the instances (see [`crate::descriptors`]).
    pub(super) fn descriptors(&self) -> usize {
        self.entries
            .values()
            .map(|entry| crate::descriptors::per_instance(&entry.spec))
            .sum()
    }

    /// The process the monitor samples for instance `pm_id`: its current one, if any.
    pub(super) fn sampled(&self, pm_id: u32) -> Option<Sampled> {
        let entry = self.entries.get(&pm_id)?;
        entry.state.pid.map(|pid| Sampled {
            pm_id,
            pid,
            cgroup: entry.cgroup.clone(),
        })
    }

    /// Keep the readings for `list`, and ask the instances over their limits to restart.
    pub(super) fn on_readings(&mut self, batch: Vec<Reading>) {
        let now = clock::now();
        for reading in batch {
            let Some(entry) = self.entries.get_mut(&reading.pm_id) else {
                continue;
            };
            // A reading of a process the instance no longer runs is stale.
            if entry.state.pid != Some(reading.pid) {
                continue;
            }
            entry.usage = Some((reading.pid, reading.usage));
            entry.cpu_seconds += reading.cpu_seconds;
            if !matches!(
                entry.state.status,
                kelpie_core::Status::Online | kelpie_core::Status::Launching
            ) {
                continue;
            }
            if let Some(why) = entry
                .limits
                .observe(&entry.spec, &reading.usage, now.mono_ms)
            {
                let _ = entry.mailbox.send(InstanceMsg::AutoRestart {
                    why: Box::new(why),
                    reload: true,
                    of_pid: Some(reading.pid),
                });
            }
        }
    }

    /// The table as `state.json` keeps it.
    pub(super) fn state_file(&self) -> StateFile {
        let apps = self
            .entries
            .iter()
            .map(|(pm_id, entry)| PersistedInstance {
                pm_id: *pm_id,
                instance: entry.instance,
                spec: entry.spec.clone(),
                state: entry.state.clone(),
                run: entry.state.wants_to_run(),
                pid_start_ticks: None,
            })
            .collect();
        StateFile {
            version: STATE_VERSION,
            next_id: self.next_id,
            apps,
        }
    }

    /// The list as `save` keeps it: one entry per app with its number of instances, run when
    /// any of them runs.
    pub(super) fn dump(&self) -> DumpFile {
        let mut apps: Vec<DumpedApp> = Vec::new();
        for (pm_id, entry) in &self.entries {
            let running = !entry.state.status.is_down();
            let paused = !running && entry.state.stopped_by_user;
            match apps.iter_mut().find(|a| a.spec.name == entry.spec.name) {
                Some(app) => {
                    Arc::make_mut(&mut app.spec).instances += 1;
                    app.run |= running;
                    app.paused &= paused;
                    app.ids.push(*pm_id);
                }
                None => {
                    let mut spec = (*entry.spec).clone();
                    spec.instances = 1;
                    apps.push(DumpedApp {
                        spec: Arc::new(spec),
                        run: running,
                        paused,
                        ids: vec![*pm_id],
                    });
                }
            }
        }
        DumpFile {
            version: DUMP_VERSION,
            apps,
        }
    }

    /// An app that would depend on itself through the registered apps and `apps` (the specs of
    /// a start, which replace registered ones of the same name): the cycle, for an error.
    pub(super) fn dependency_cycle(&self, apps: &[AppSpec]) -> Option<String> {
        let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in self.entries.values() {
            graph.insert(entry.spec.name.clone(), entry.spec.depends_on.clone());
        }
        for spec in apps {
            graph.insert(spec.name.clone(), spec.depends_on.clone());
        }
        for spec in apps {
            let mut path = vec![spec.name.clone()];
            if let Some(cycle) = find_cycle(&graph, &mut path) {
                return Some(cycle.join(" -> "));
            }
        }
        None
    }

    /// Apps of `apps` whose default log files would be another app's (`a/b` and `a-b` both
    /// write `a-b-out.log`): a flush or a rotation of one would hit the other, and their lines
    /// would mix. Checked against the registered apps and among `apps`.
    pub(super) fn shared_log_files(&self, apps: &[AppSpec]) -> Vec<String> {
        // Each default log file's stem, and the app that writes it: one pass, whatever the count.
        let mut writers: std::collections::HashMap<String, &AppSpec> =
            std::collections::HashMap::new();
        for entry in self.entries.values() {
            if uses_default_logs(&entry.spec) {
                writers.insert(kelpie_core::log_name(&entry.spec.name), &entry.spec);
            }
        }
        let mut shared = Vec::new();
        for spec in apps.iter().filter(|spec| uses_default_logs(spec)) {
            let stem = kelpie_core::log_name(&spec.name);
            match writers.get(&stem) {
                Some(other) if other.name != spec.name && same_default_logs(spec, other) => {
                    shared.push(format!(
                        "app `{}`: its log files would be app `{}`'s (both are {stem}-out.log and -error.log in the logs directory): give one of them another name, or out_file and error_file of its own",
                        spec.name, other.name
                    ));
                }
                Some(_) => {}
                None => {
                    writers.insert(stem, spec);
                }
            }
        }
        shared
    }

    /// Apps of `apps` that depend on an app that is neither among them nor registered.
    pub(super) fn missing_dependencies(&self, apps: &[AppSpec]) -> Vec<String> {
        let mut missing = Vec::new();
        for spec in apps {
            for dependency in &spec.depends_on {
                let here = apps.iter().any(|other| &other.name == dependency);
                if !here && self.ids_named(dependency).is_empty() {
                    missing.push(format!(
                        "app `{}` depends on `{dependency}`, which is neither started with it nor known to the daemon",
                        spec.name
                    ));
                }
            }
        }
        missing
    }
}

/// Whether the app writes one of its default log files (named after it).
fn uses_default_logs(spec: &AppSpec) -> bool {
    !spec.disable_logs && (spec.out_file.is_none() || spec.error_file.is_none())
}

/// Whether two apps (whose names give the same log file stem) write the same default file.
fn same_default_logs(a: &AppSpec, b: &AppSpec) -> bool {
    let both_default = |x: &Option<String>, y: &Option<String>| x.is_none() && y.is_none();
    both_default(&a.out_file, &b.out_file) || both_default(&a.error_file, &b.error_file)
}

/// A path from `path`'s last app back to one already on it, depth first.
fn find_cycle(
    graph: &BTreeMap<String, Vec<String>>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let last = path.last()?.clone();
    for next in graph.get(&last).into_iter().flatten() {
        if let Some(start) = path.iter().position(|name| name == next) {
            let mut cycle = path[start..].to_vec();
            cycle.push(next.clone());
            return Some(cycle);
        }
        // Bounded by the number of apps: a path never repeats a name.
        path.push(next.clone());
        if let Some(cycle) = find_cycle(graph, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn an_ended_task_is_let_go_of_and_a_running_one_kept() {
        let mut apps = Apps::default();
        let (_keep_tx, keep) = oneshot::channel::<()>();
        apps.tasks().spawn(async {
            let _ = keep.await;
        });
        apps.tasks().spawn(async {});
        tokio::time::timeout(Duration::from_secs(1), apps.task_ended())
            .await
            .expect("the ended task is reported");
        assert_eq!(apps.tasks().len(), 1, "only the running task is kept");
        let none = tokio::time::timeout(Duration::from_secs(60), apps.task_ended()).await;
        assert!(none.is_err(), "nothing more has ended");
    }
}
