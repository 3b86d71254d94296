//! Which app keys Kelpie knows: supported fields, their PM2 aliases and the PM2 fields not
//! supported yet (all declared in `settings.rs`), and a "did you mean" for the rest.

/// Canonical (snake_case) app fields Kelpie supports: the settings table's fields, in its
/// order. Derived, never listed twice.
pub(crate) fn supported() -> &'static [&'static str] {
    static SUPPORTED: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| crate::settings::fields().map(|s| s.name).collect());
    &SUPPORTED
}

/// Why a PM2 field is ignored, when "not supported yet" would mislead (it never will be).
pub(crate) fn ignored_because(key: &str) -> Option<&'static str> {
    match key {
        "watch_options" => Some(
            "holds options of PM2's file watcher (chokidar), which do not apply to kelpie's watcher,",
        ),
        _ => None,
    }
}

/// What a (snake_case) key means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A supported field, by canonical name.
    Supported(&'static str),
    /// `env_<profile>`, with the profile name.
    Profile(String),
    /// A PM2 field Kelpie ignores with a warning.
    Unsupported,
    /// Not a field at all; the closest known name when it looks like a typo.
    Unknown(Option<&'static str>),
}

/// Classify a key already passed through [`to_snake_case`].
pub(crate) fn classify(key: &str) -> Kind {
    if let Some(name) = supported().iter().find(|f| **f == key) {
        return Kind::Supported(name);
    }
    if let Some((_, canonical)) = crate::settings::aliases().find(|(alias, _)| *alias == key) {
        return Kind::Supported(canonical);
    }
    if let Some(profile) = key.strip_prefix("env_").filter(|p| !p.is_empty()) {
        return Kind::Profile(profile.to_string());
    }
    if crate::settings::NOT_SUPPORTED.contains(&key) {
        return Kind::Unsupported;
    }
    Kind::Unknown(suggest(key))
}

/// PM2 accepts every key in camelCase too (`maxMemoryRestart`). `env_<profile>` keys are kept as
/// written so the profile name matches `--env` exactly.
pub(crate) fn to_snake_case(key: &str) -> String {
    if key.starts_with("env_") {
        return key.to_string();
    }
    let mut out = String::with_capacity(key.len() + 4);
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// The known key nearest to `key`, if close enough to be a plausible typo.
fn suggest(key: &str) -> Option<&'static str> {
    closest(
        key,
        supported()
            .iter()
            .copied()
            .chain(crate::settings::aliases().map(|(alias, _)| alias))
            .chain(crate::settings::NOT_SUPPORTED.iter().copied()),
    )
}

/// The candidate nearest to `key`, if close enough to be a plausible typo (also used for the
/// keys of `kelpie.toml`).
pub(crate) fn closest<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Longer names tolerate more typos; short ones would match almost anything.
    let limit = match key.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|known| (levenshtein(key, known), known))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Edit distance (insertions, deletions, substitutions), one row at a time.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_becomes_snake_case() {
        assert_eq!(to_snake_case("maxMemoryRestart"), "max_memory_restart");
        assert_eq!(to_snake_case("max_memory_restart"), "max_memory_restart");
        assert_eq!(to_snake_case("windowsHide"), "windows_hide");
        assert_eq!(to_snake_case("envProduction"), "env_production");
        assert_eq!(to_snake_case("env_Staging"), "env_Staging");
        assert_eq!(to_snake_case("PORT"), "port");
    }

    #[test]
    fn classifies_fields_aliases_profiles_and_unsupported() {
        assert_eq!(classify("script"), Kind::Supported("script"));
        assert_eq!(classify("cmd"), Kind::Supported("script"));
        assert_eq!(classify("node_args"), Kind::Supported("interpreter_args"));
        assert_eq!(classify("err_log"), Kind::Supported("error_file"));
        assert_eq!(classify("stop_signal"), Kind::Supported("kill_signal"));
        assert_eq!(classify("log"), Kind::Supported("log_file"));
        assert_eq!(classify("time"), Kind::Supported("time"));
        assert_eq!(
            classify(&to_snake_case("logRotateInterval")),
            Kind::Supported("log_rotate_interval")
        );
        assert_eq!(
            classify("env_production"),
            Kind::Profile("production".into())
        );
        assert_eq!(classify("treekill"), Kind::Unsupported);
        assert_eq!(
            classify("max_memroy_restart"),
            Kind::Unknown(Some("max_memory_restart"))
        );
        assert_eq!(classify("completely_different"), Kind::Unknown(None));
    }

    #[test]
    fn log_fields_are_no_longer_unsupported() {
        for field in [
            "log_file",
            "log",
            "log_date_format",
            "time",
            "log_type",
            "disable_logs",
        ] {
            assert!(!crate::settings::NOT_SUPPORTED.contains(&field), "{field}");
            assert!(matches!(classify(field), Kind::Supported(_)), "{field}");
        }
        assert_eq!(
            classify("log_max_sise"),
            Kind::Unknown(Some("log_max_size"))
        );
    }

    #[test]
    fn the_supported_fields_are_the_rows_of_the_settings_table_each_once() {
        let names = supported();
        let mut unique = names.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        // Fields with flags, under the names files use (`--uid` is `uid`, `--no-vizion` sets
        // `vizion`, the `--health-*` flags make `health_check`)...
        for flag_field in [
            "kill_timeout",
            "uid",
            "vizion",
            "log_compress",
            "health_check",
        ] {
            assert!(names.contains(&flag_field), "{flag_field}");
        }
        // ...and from the fields only a file sets.
        for file_field in ["script", "exec_mode", "increment_var", "append_env_to_name"] {
            assert!(names.contains(&file_field), "{file_field}");
        }
        assert!(!names.contains(&"no_vizion") && !names.contains(&"user"));
    }

    #[test]
    fn closest_suggests_only_plausible_typos() {
        let keys = ["max_size", "retain", "compress", "rotate_interval"];
        assert_eq!(closest("max_sise", keys), Some("max_size"));
        assert_eq!(closest("retian", keys), Some("retain"));
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
