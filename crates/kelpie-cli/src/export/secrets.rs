//! Which of an app's variables are secrets, kept out of the Deployments and Compose services
//! the exports write in clear: the values read from `env_file` (a file kept beside the project,
//! usually out of version control), the names Kelpie masks in `describe` and `jlist`, and URLs
//! that hold a password (`postgres://user:pass@db/app`).

use crate::render::is_secret;
use kelpie_config::Written;
use kelpie_core::AppSpec;
use std::collections::BTreeMap;

/// The app's environment split into plain variables and secrets, each sorted by name.
pub(super) struct SplitEnv<'a> {
    pub plain: BTreeMap<&'a str, &'a str>,
    pub secret: BTreeMap<&'a str, &'a str>,
}

pub(super) fn split_env<'a>(app: &'a AppSpec, written: &Written) -> SplitEnv<'a> {
    let mut split = SplitEnv {
        plain: BTreeMap::new(),
        secret: BTreeMap::new(),
    };
    for (name, value) in &app.env {
        let secret = written.env_from_files.contains(name) || is_secret(name, value);
        let side = if secret {
            &mut split.secret
        } else {
            &mut split.plain
        };
        side.insert(name.as_str(), value.as_str());
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_names_env_file_values_and_passwords_in_urls() {
        let app = AppSpec {
            env: [
                ("NODE_ENV", "production"),
                ("JWT_SECRET", "s3cret"),
                ("DATABASE_URL", "postgres://app:pw@db:5432/app"),
                ("REDIS_URL", "redis://redis:6379"),
                ("FROM_FILE", "x"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..AppSpec::default()
        };
        let written = Written {
            env_from_files: ["FROM_FILE".to_string()].into(),
            ..Written::default()
        };
        let split = split_env(&app, &written);
        assert_eq!(
            split.plain.keys().copied().collect::<Vec<_>>(),
            ["NODE_ENV", "REDIS_URL"]
        );
        assert_eq!(
            split.secret.keys().copied().collect::<Vec<_>>(),
            ["DATABASE_URL", "FROM_FILE", "JWT_SECRET"]
        );
    }
}
