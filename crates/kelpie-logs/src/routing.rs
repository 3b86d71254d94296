//! Where an instance's output goes: its [`Route`] for one process, and the sink of each file,
//! shared by every instance that writes it.

use super::format::LineFormat;
use super::hub::AppLabel;
use super::sink::{lock, Sink};
use super::writer::WriterMsg;
use super::{LogFiles, LogService, Route};
use kelpie_core::{AppSpec, LogRotation};
use std::path::Path;
use std::sync::{Arc, Weak};

impl LogService {
    /// The route for the next process of an instance; `None` when the app discards its output.
    pub fn route(
        &self,
        spec: &AppSpec,
        pm_id: u32,
        instance: u32,
        files: &LogFiles,
    ) -> Option<Arc<Route>> {
        if spec.disable_logs {
            return None;
        }
        let overrides = spec.log_rotation;
        // Without files (`kelpie runtime`), only the files the app names are written, as
        // pm2-runtime writes them; no other sink is made (a sink creates its file).
        let wanted = |named: &Option<String>| self.files || named.is_some();
        let combined = files
            .combined
            .as_deref()
            .filter(|_| wanted(&spec.log_file))
            .map(|p| self.sink(p, &overrides));
        let with_combined = |own: Option<&Path>, named: &Option<String>| -> Vec<Arc<Sink>> {
            own.filter(|_| wanted(named))
                .map(|p| self.sink(p, &overrides))
                .into_iter()
                .chain(combined.clone())
                .collect()
        };
        let out = with_combined(files.out.as_deref(), &spec.out_file);
        let err = with_combined(files.err.as_deref(), &spec.error_file);
        Some(Arc::new(Route {
            pm_id,
            instance,
            app: Arc::new(AppLabel {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
            }),
            format: LineFormat::for_spec(spec),
            out,
            err,
        }))
    }

    /// The sink of `path`, created (and its file opened by the writer) if new.
    pub(super) fn sink(&self, path: &Path, overrides: &LogRotation) -> Arc<Sink> {
        let policy = lock(&self.defaults).for_app(overrides);
        let mut registry = self.registry.lock();
        if let Some(sink) = registry.get(path).and_then(Weak::upgrade) {
            let before = std::mem::replace(&mut *lock(&sink.policy), policy);
            *lock(&sink.overrides) = *overrides;
            if before != policy {
                let _ = self.shared.writer.send(WriterMsg::PolicyChanged);
            }
            return sink;
        }
        let sink = self
            .registry
            .insert_new(&mut registry, Sink::new(path.to_path_buf(), policy));
        *lock(&sink.overrides) = *overrides;
        // Create the file now, as PM2 does, rather than at the first line.
        sink.queued
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.shared.writer.send(WriterMsg::Write(sink.clone()));
        sink
    }
}
