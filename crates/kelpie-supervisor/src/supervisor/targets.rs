//! Turning targets (`all`, ids, names, namespaces) into instance ids, with the rule shared
//! with the CLI (`kelpie_proto::resolve_targets`).

use super::apps::Apps;
use super::refusal::Refusal;
use kelpie_proto::{resolve_targets, Target, Targetable};

impl Apps {
    /// Ids of the instances named `name`, in id order.
    pub(super) fn ids_named(&self, name: &str) -> Vec<u32> {
        self.iter()
            .filter(|(_, e)| e.spec.name == name)
            .map(|(id, _)| id)
            .collect()
    }

    /// Resolve every target, or fail naming each one that matches nothing (so a typo in one
    /// target changes nothing at all).
    pub(super) fn resolve(&self, targets: &[Target]) -> Result<Vec<u32>, Refusal> {
        let instances: Vec<Targetable<'_>> = self
            .iter()
            .map(|(pm_id, e)| Targetable {
                pm_id,
                name: &e.spec.name,
                namespace: &e.spec.namespace,
                script: &e.spec.script,
            })
            .collect();
        resolve_targets(targets, &instances).map_err(|unknown| {
            let mut names: Vec<&str> = instances.iter().map(|i| i.name).collect();
            names.dedup();
            let hint = if names.is_empty() {
                "no apps are running".to_string()
            } else {
                format!("known apps: {}", names.join(", "))
            };
            let unknown: Vec<String> = unknown.iter().map(Target::describe).collect();
            Refusal::NoMatch {
                unknown: unknown.join(", "),
                hint,
            }
        })
    }

    /// [`Self::resolve`] for a command that changes apps: `all` with no app is an error too,
    /// as in PM2 (`kelpie restart all` with nothing to restart exits non-zero).
    pub(super) fn resolve_some(&self, targets: &[Target]) -> Result<Vec<u32>, Refusal> {
        let ids = self.resolve(targets)?;
        if ids.is_empty() {
            return Err(Refusal::NoneRunning);
        }
        Ok(ids)
    }
}
