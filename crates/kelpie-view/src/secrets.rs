//! Secret-looking environment variables: the one rule for which they are (by name or by value),
//! how they are shown masked (`describe`, `jlist`, `env`, the web API, a password in a
//! repository url), and Kelpie's own control secrets, which never reach an app.

use std::collections::BTreeMap;

/// What a masked environment value is shown as.
pub const MASK: &str = "****";

/// Kelpie's own control secrets: never handed to an app (the CLI leaves them out of the
/// environment it sends, the daemon out of every process it starts), so an app run as another
/// user cannot drive the daemon's web API with the token of the shell that started it.
pub const CONTROL_SECRETS: &[&str] = &["KELPIE_WEB_TOKEN"];

/// Whether `name` is one of [`CONTROL_SECRETS`].
pub fn is_control_secret(name: &str) -> bool {
    CONTROL_SECRETS.contains(&name)
}

/// Parts of a name that make it secret wherever they appear (any case): `API_TOKEN`,
/// `db_password`, `DB_PASSWD`, `AWS_ACCESS_KEY_ID`, `GOOGLE_CREDENTIALS`, `SENTRY_DSN`...
/// Masking a harmless value by mistake costs a `--show-secrets`; showing a secret costs more.
const SECRET_PARTS: [&str; 9] = [
    "TOKEN",
    "SECRET",
    "PASS",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
    "AUTHORIZATION",
    "COOKIE",
    "DSN",
];

/// Whole words of a name (between `_`, `-` or `.`) that make it secret, too short to be
/// looked for inside words: `STRIPE_SK`, `DB_PWD` (but not the shell's own `PWD`).
const SECRET_WORDS: [&str; 3] = ["SK", "PWD", "PW"];

/// The one rule for secret-looking variables, used wherever an app's environment is shown or
/// written (`describe`, `jlist`, `env`, the web API, the exports): by its name
/// ([`is_secret_name`]) or by its value ([`is_secret_value`]).
pub fn is_secret(name: &str, value: &str) -> bool {
    is_secret_name(name) || is_secret_value(value)
}

/// A name that says its value is a secret: it holds one of [`SECRET_PARTS`] (any case), or has
/// one of [`SECRET_WORDS`] as a word of several.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if SECRET_PARTS.iter().any(|part| upper.contains(part)) {
        return true;
    }
    let words: Vec<&str> = upper.split(['_', '-', '.']).collect();
    words.len() > 1 && words.iter().any(|word| SECRET_WORDS.contains(word))
}

/// A value that is a secret whatever it is called: a URL that carries a password
/// (`postgres://app:pw@db/app`), or a PEM private key.
pub fn is_secret_value(value: &str) -> bool {
    url_has_password(value) || (value.contains("-----BEGIN") && value.contains("PRIVATE KEY"))
}

/// `scheme://user:password@host…`.
fn url_has_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit_once('@').is_some_and(|(user_info, _)| {
        user_info
            .split_once(':')
            .is_some_and(|(_, p)| !p.is_empty())
    })
}

/// `env` as shown: the values of secret-looking names replaced by [`MASK`], unless
/// `show_secrets`.
pub fn shown_env(
    env: &BTreeMap<String, String>,
    show_secrets: bool,
) -> std::borrow::Cow<'_, BTreeMap<String, String>> {
    if show_secrets || !env.iter().any(|(k, v)| is_secret(k, v)) {
        return std::borrow::Cow::Borrowed(env);
    }
    std::borrow::Cow::Owned(
        env.iter()
            .map(|(k, v)| match is_secret(k, v) {
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
            "DB_PASS",
            "PASSWD",
            "GOOGLE_CREDENTIALS",
            "STRIPE_SK",
            "db_pwd",
            "SENTRY_DSN",
            "HTTP_AUTHORIZATION",
            "SSH_PRIVATE",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "PORT",
            "NODE_ENV",
            "TOKE",
            "PWD",
            "OLDPWD",
            "SKIP_BUILD",
            "HOME",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert!(is_secret("DATABASE_URL", "postgres://app:pw@db:5432/app"));
        assert!(!is_secret("REDIS_URL", "redis://redis:6379"));
        assert!(!is_secret("REDIS_URL", "redis://user@redis:6379/x?a=b:c@d"));
        assert!(is_secret("TLS", "-----BEGIN RSA PRIVATE KEY-----\nMII..."));
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
