//! Turning targets (`all`, ids, names, namespaces) into instance ids.

use super::Supervisor;
use kelpie_proto::{ErrorKind, Target, WireError};

impl Supervisor {
    /// Ids of the instances named `name`, in id order.
    pub(super) fn ids_named(&self, name: &str) -> Vec<u32> {
        self.apps
            .iter()
            .filter(|(_, e)| e.spec.name == name)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Resolve every target, or fail naming each one that matches nothing (so a typo in one
    /// target changes nothing at all).
    pub(super) fn resolve(&self, targets: &[Target]) -> Result<Vec<u32>, WireError> {
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for target in targets {
            let found: Vec<u32> = match target {
                Target::All => self.apps.keys().copied().collect(),
                Target::Id(id) => self
                    .apps
                    .contains_key(id)
                    .then_some(*id)
                    .into_iter()
                    .collect(),
                Target::Name(name) => {
                    let by_name = self.ids_named(name);
                    if by_name.is_empty() {
                        self.apps
                            .iter()
                            .filter(|(_, e)| &e.spec.namespace == name)
                            .map(|(id, _)| *id)
                            .collect()
                    } else {
                        by_name
                    }
                }
            };
            if found.is_empty() && *target != Target::All {
                unknown.push(match target {
                    Target::Id(id) => format!("id {id}"),
                    Target::Name(name) => format!("`{name}`"),
                    Target::All => String::new(),
                });
            }
            for id in found {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if unknown.is_empty() {
            Ok(ids)
        } else {
            let known: Vec<String> = {
                let mut names: Vec<String> =
                    self.apps.values().map(|e| e.spec.name.clone()).collect();
                names.dedup();
                names
            };
            let hint = if known.is_empty() {
                "no apps are running".to_string()
            } else {
                format!("known apps: {}", known.join(", "))
            };
            Err(WireError {
                kind: ErrorKind::NotFound,
                message: format!(
                    "no app matches {} ({hint}); nothing was changed",
                    unknown.join(", ")
                ),
            })
        }
    }
}
