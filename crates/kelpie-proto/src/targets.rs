//! What a target means, in one place for the daemon and the CLI: `all`, an id, a name (the
//! instances with that name, or, when no app has it, the instances of that namespace), a
//! `/regular expression/` on names, or a script's path.

use crate::{ProcessInfo, Target};

impl Target {
    /// Read a target as typed on the command line: `all`, a number (id), `/regex/`, else a
    /// name. (The CLI also reads a word that may be a path as [`Target::NameOrScript`]: that
    /// needs the directory it was typed in.)
    pub fn parse(arg: &str) -> Target {
        if arg == "all" {
            Target::All
        } else if let Ok(id) = arg.parse::<u32>() {
            Target::Id(id)
        } else if let Some(pattern) = pattern_of(arg) {
            Target::Pattern(pattern.to_string())
        } else {
            Target::Name(arg.to_string())
        }
    }

    /// How to name this target in a message.
    pub fn describe(&self) -> String {
        match self {
            Target::All => "all".into(),
            Target::Id(id) => format!("id {id}"),
            Target::Name(name) | Target::NameOrScript { name, .. } => format!("`{name}`"),
            Target::Pattern(pattern) => format!("/{pattern}/"),
        }
    }
}

/// The regular expression of a `/regex/` word (at least one character between the slashes),
/// if it is one.
pub fn pattern_of(arg: &str) -> Option<&str> {
    arg.strip_prefix('/')?
        .strip_suffix('/')
        .filter(|inner| !inner.is_empty())
}

/// A `/regex/` target whose expression does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("/{pattern}/ is not a valid regular expression: {cause}")]
pub struct InvalidPattern {
    /// The expression, without its slashes.
    pub pattern: String,
    /// Why the regex crate refused it.
    pub cause: regex::Error,
}

/// Check a target's regular expression, for an error before anything is sent.
pub fn check_pattern(pattern: &str) -> Result<(), InvalidPattern> {
    regex::Regex::new(pattern)
        .map(|_| ())
        .map_err(|source| InvalidPattern {
            pattern: pattern.to_string(),
            cause: source,
        })
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
    /// Its app's script (absolute path, or command line).
    pub script: &'a str,
}

impl ProcessInfo {
    /// This instance as targets see it.
    pub fn targetable(&self) -> Targetable<'_> {
        Targetable {
            pm_id: self.pm_id,
            name: &self.spec.name,
            namespace: &self.spec.namespace,
            script: &self.spec.script,
        }
    }
}

/// The ids `targets` select among `instances` (in the order found, without repeats), or every
/// target that selects nothing (`all` always selects, even nothing; an invalid pattern selects
/// nothing).
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
            // As in PM2, a number is an app's name first (`--name 455`), else an id.
            Target::Id(id) => {
                let as_name = id.to_string();
                let by_name = matching(&|i| i.name == as_name);
                if by_name.is_empty() {
                    matching(&|i| i.pm_id == *id)
                } else {
                    by_name
                }
            }
            Target::Name(name) => {
                let by_name = matching(&|i| i.name == name);
                if by_name.is_empty() {
                    matching(&|i| i.namespace == name)
                } else {
                    by_name
                }
            }
            Target::NameOrScript { name, script } => {
                let mut found = matching(&|i| i.name == name);
                if found.is_empty() {
                    found = matching(&|i| i.script == script);
                }
                if found.is_empty() {
                    found = matching(&|i| i.namespace == name);
                }
                found
            }
            Target::Pattern(pattern) => match regex::Regex::new(pattern) {
                Ok(regex) => matching(&|i| regex.is_match(i.name)),
                Err(_) => Vec::new(),
            },
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
                script: "/srv/api/index.js",
            },
            Targetable {
                pm_id: 1,
                name: "api",
                namespace: "web",
                script: "/srv/api/index.js",
            },
            Targetable {
                pm_id: 2,
                name: "web",
                namespace: "default",
                script: "/srv/web/app.js",
            },
            Targetable {
                pm_id: 3,
                name: "mail",
                namespace: "jobs",
                script: "/srv/mail/app.js",
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

    #[test]
    fn a_number_is_a_name_first_then_an_id() {
        let mut t = table();
        t.push(Targetable {
            pm_id: 4,
            name: "0",
            namespace: "default",
            script: "/srv/zero.js",
        });
        assert_eq!(resolve_targets(&[Target::parse("0")], &t), Ok(vec![4]));
        assert_eq!(resolve_targets(&[Target::parse("1")], &t), Ok(vec![1]));
    }

    #[test]
    fn patterns_match_names() {
        let t = table();
        assert_eq!(
            Target::parse("/^(web|mail)$/"),
            Target::Pattern("^(web|mail)$".into())
        );
        assert_eq!(
            resolve_targets(&[Target::parse("/^(web|mail)$/")], &t),
            Ok(vec![2, 3])
        );
        assert_eq!(
            resolve_targets(&[Target::parse("/a/")], &t),
            Ok(vec![0, 1, 3])
        );
        // `/` alone and `//` are names, not patterns.
        assert_eq!(Target::parse("/"), Target::Name("/".into()));
        assert_eq!(Target::parse("//"), Target::Name("//".into()));
        let bad = Target::Pattern("(".into());
        assert_eq!(
            resolve_targets(std::slice::from_ref(&bad), &t),
            Err(vec![bad])
        );
        assert!(check_pattern("(").is_err());
    }

    #[test]
    fn a_path_selects_by_name_then_script_then_namespace() {
        let t = table();
        let script = |name: &str, script: &str| Target::NameOrScript {
            name: name.into(),
            script: script.into(),
        };
        assert_eq!(
            resolve_targets(&[script("app.js", "/srv/web/app.js")], &t),
            Ok(vec![2])
        );
        assert_eq!(
            resolve_targets(&[script("web", "/elsewhere/web")], &t),
            Ok(vec![2])
        );
        assert_eq!(
            resolve_targets(&[script("jobs", "/srv/jobs")], &t),
            Ok(vec![3])
        );
        let unknown = script("other.js", "/srv/other.js");
        assert_eq!(
            resolve_targets(std::slice::from_ref(&unknown), &t),
            Err(vec![unknown])
        );
    }
}
