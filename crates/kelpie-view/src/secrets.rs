//! Secret-looking environment variables: which names they are, and how they are shown masked
//! (`describe`, `jlist`, a password in a repository url).

use std::collections::BTreeMap;

/// What a masked environment value is shown as.
pub const MASK: &str = "****";

/// A variable whose value is kept out of `describe` and `jlist` unless asked for: its name holds
/// TOKEN, SECRET, PASSWORD or KEY (any case).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "KEY"]
        .iter()
        .any(|word| upper.contains(word))
}

/// `env` as shown: the values of secret-looking names replaced by [`MASK`], unless
/// `show_secrets`.
pub fn shown_env(
    env: &BTreeMap<String, String>,
    show_secrets: bool,
) -> std::borrow::Cow<'_, BTreeMap<String, String>> {
    if show_secrets || !env.keys().any(|k| is_secret_name(k)) {
        return std::borrow::Cow::Borrowed(env);
    }
    std::borrow::Cow::Owned(
        env.iter()
            .map(|(k, v)| match is_secret_name(k) {
                true => (k.clone(), MASK.to_string()),
                false => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names_are_masked_unless_asked() {
        for name in [
            "API_TOKEN",
            "db_password",
            "Secret",
            "AWS_ACCESS_KEY_ID",
            "keyring",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PORT", "NODE_ENV", "PASSWD", "TOKE"] {
            assert!(!is_secret_name(name), "{name}");
        }
        let env: BTreeMap<String, String> = [("PORT", "3000"), ("API_TOKEN", "hunter2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let masked = shown_env(&env, false);
        assert_eq!(masked["PORT"], "3000");
        assert_eq!(masked["API_TOKEN"], MASK);
        assert_eq!(shown_env(&env, true)["API_TOKEN"], "hunter2");
    }
}
