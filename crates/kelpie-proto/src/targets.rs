//! What a target means, in one place for the daemon and the CLI: `all`, an id, or a name —
//! the instances with that name, or, when no app has it, the instances of that namespace.

use crate::{ProcessInfo, Target};

impl Target {
    /// Read a target as typed on the command line: `all`, a number (id), else a name.
    pub fn parse(arg: &str) -> Target {
        if arg == "all" {
            Target::All
        } else if let Ok(id) = arg.parse::<u32>() {
            Target::Id(id)
        } else {
            Target::Name(arg.to_string())
        }
    }

    /// How to name this target in a message.
    pub fn describe(&self) -> String {
        match self {
            Target::All => "all".into(),
            Target::Id(id) => format!("id {id}"),
            Target::Name(name) => format!("`{name}`"),
        }
    }
}

/// One instance as targets see it.
#[derive(Debug, Clone, Copy)]
pub struct Targetable<'a> {
    /// Its id.
    pub pm_id: u32,
    /// Its app's name.
    pub name: &'a str,
    /// Its app's namespace.
    pub namespace: &'a str,
}

impl ProcessInfo {
    /// This instance as targets see it.
    pub fn targetable(&self) -> Targetable<'_> {
        Targetable {
            pm_id: self.pm_id,
            name: &self.spec.name,
            namespace: &self.spec.namespace,
        }
    }
}

/// The ids `targets` select among `instances` (in the order found, without repeats), or every
/// target that selects nothing (`all` always selects, even nothing).
pub fn resolve_targets(
    targets: &[Target],
    instances: &[Targetable<'_>],
) -> Result<Vec<u32>, Vec<Target>> {
    let mut ids = Vec::new();
    let mut unknown = Vec::new();
    for target in targets {
        let matching = |keep: &dyn Fn(&Targetable<'_>) -> bool| -> Vec<u32> {
            instances
                .iter()
                .filter(|i| keep(i))
                .map(|i| i.pm_id)
                .collect()
        };
        let found = match target {
            Target::All => matching(&|_| true),
            Target::Id(id) => matching(&|i| i.pm_id == *id),
            Target::Name(name) => {
                let by_name = matching(&|i| i.name == name);
                if by_name.is_empty() {
                    matching(&|i| i.namespace == name)
                } else {
                    by_name
                }
            }
        };
        if found.is_empty() && *target != Target::All {
            unknown.push(target.clone());
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
        Err(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<Targetable<'static>> {
        vec![
            Targetable {
                pm_id: 0,
                name: "api",
                namespace: "web",
            },
            Targetable {
                pm_id: 1,
                name: "api",
                namespace: "web",
            },
            Targetable {
                pm_id: 2,
                name: "web",
                namespace: "default",
            },
            Targetable {
                pm_id: 3,
                name: "mail",
                namespace: "jobs",
            },
        ]
    }

    #[test]
    fn names_win_over_namespaces_and_ids_are_not_repeated() {
        let t = table();
        assert_eq!(resolve_targets(&[Target::parse("api")], &t), Ok(vec![0, 1]));
        // `web` is both an app and a namespace: the app is meant.
        assert_eq!(resolve_targets(&[Target::parse("web")], &t), Ok(vec![2]));
        assert_eq!(
            resolve_targets(&[Target::parse("jobs"), Target::parse("3")], &t),
            Ok(vec![3])
        );
        assert_eq!(resolve_targets(&[Target::parse("all")], &[]), Ok(vec![]));
    }

    #[test]
    fn every_unknown_target_is_reported() {
        let t = table();
        let err = resolve_targets(
            &[
                Target::parse("api"),
                Target::parse("nope"),
                Target::parse("9"),
            ],
            &t,
        );
        assert_eq!(err, Err(vec![Target::Name("nope".into()), Target::Id(9)]));
    }
}
