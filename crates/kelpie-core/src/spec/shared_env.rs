//! The environment apps inherit from the shell that started them (`inherited_env`), written once
//! for many specs instead of once per spec: every app of a file carries the same one (about
//! 3 KB), so a request or a state of 10 000 apps held 30 MB of copies of it.
//!
//! While [`write_once`] runs, a spec whose `inherited_env` is the shared one ([`is_shared`]) is
//! serialized without it; the container says, by index, which specs take the shared one back
//! when read. `specs` does that for a list of specs (`#[serde(with = ...)]`), reading the plain
//! list of older clients too.

use super::AppSpec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An inherited environment.
pub type Env = Arc<BTreeMap<String, String>>;

thread_local! {
    /// The environment being written once, while a container serializes its specs.
    static WRITING: RefCell<Option<Env>> = const { RefCell::new(None) };
}

/// Whether `env` is `shared`: the same allocation (the daemon shares one between its apps), or
/// equal (specs built apart).
pub fn is_shared(env: &Env, shared: &Env) -> bool {
    Arc::ptr_eq(env, shared) || (env.len() == shared.len() && **env == **shared)
}

/// Serde's skip test for `AppSpec::inherited_env`: true while [`write_once`] writes this one.
pub(super) fn left_out(env: &Env) -> bool {
    WRITING.with(|writing| {
        writing
            .borrow()
            .as_ref()
            .is_some_and(|shared| !shared.is_empty() && is_shared(env, shared))
    })
}

/// Run `serialize` with the specs whose `inherited_env` is `shared` written without it.
pub fn write_once<R>(shared: &Env, serialize: impl FnOnce() -> R) -> R {
    let before = WRITING.with(|writing| writing.replace(Some(shared.clone())));
    let result = serialize();
    WRITING.with(|writing| *writing.borrow_mut() = before);
    result
}

/// The environment most worth writing once for `envs`: the first one (the apps of one request
/// or one daemon almost always share it).
pub fn pick<'a>(mut envs: impl Iterator<Item = &'a Env>) -> Env {
    envs.next().cloned().unwrap_or_default()
}

/// A list of specs with their shared environment written once:
/// `{"env": {...}, "shared": [0, 1, ...], "specs": [...]}`. Reads the plain list too.
pub mod specs {
    use super::*;

    #[derive(Serialize)]
    struct Written<'a> {
        env: &'a Env,
        shared: Vec<usize>,
        specs: &'a [AppSpec],
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Read {
        Shared {
            env: Env,
            shared: Vec<usize>,
            specs: Vec<AppSpec>,
        },
        Plain(Vec<AppSpec>),
    }

    /// Serialize `specs` with their shared environment once.
    pub fn serialize<S: Serializer>(specs: &[AppSpec], serializer: S) -> Result<S::Ok, S::Error> {
        let env = pick(specs.iter().map(|s| &s.inherited_env));
        let shared = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| !env.is_empty() && is_shared(&s.inherited_env, &env))
            .map(|(i, _)| i)
            .collect();
        write_once(&env, || {
            Written {
                env: &env,
                shared,
                specs,
            }
            .serialize(serializer)
        })
    }

    /// Read specs written by [`serialize`], or a plain list.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<AppSpec>, D::Error> {
        match Read::deserialize(deserializer)? {
            Read::Plain(specs) => Ok(specs),
            Read::Shared {
                env,
                shared,
                mut specs,
            } => {
                for index in shared {
                    if let Some(spec) = specs.get_mut(index) {
                        spec.inherited_env = env.clone();
                    }
                }
                Ok(specs)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Request {
        #[serde(with = "specs")]
        apps: Vec<AppSpec>,
    }

    fn app(name: &str, env: &Env) -> AppSpec {
        AppSpec {
            name: name.into(),
            inherited_env: env.clone(),
            ..AppSpec::default()
        }
    }

    #[test]
    fn the_shared_environment_is_written_once_and_read_back_for_each_spec() {
        let shell: Env = Arc::new(
            (0..50)
                .map(|i| (format!("VAR_{i}"), "x".repeat(60)))
                .collect(),
        );
        let other: Env = Arc::new([("ONLY".to_string(), "mine".to_string())].into());
        // Equal but built apart, as the CLI builds each app's.
        let apps = vec![
            app("a", &shell),
            app("b", &Arc::new((*shell).clone())),
            app("c", &other),
            app("d", &Env::default()),
        ];
        let request = Request { apps: apps.clone() };
        let json = serde_json::to_string(&request).expect("json");
        assert_eq!(json.matches("VAR_49").count(), 1, "written once");
        let read: Request = serde_json::from_str(&json).expect("read");
        assert_eq!(read.apps, apps);
        // A plain list (an older client) is read too.
        let plain = format!(
            "{{\"apps\":{}}}",
            serde_json::to_string(&apps).expect("plain")
        );
        assert_eq!(plain.matches("VAR_49").count(), 2);
        let read: Request = serde_json::from_str(&plain).expect("read plain");
        assert_eq!(read.apps, apps);
        // Outside a container, a spec carries its environment.
        assert!(serde_json::to_string(&apps[0])
            .expect("json")
            .contains("VAR_49"));
    }
}
