//! What every entry point checks: an app's name, its number of instances; and an app name as a
//! log file name (PM2's sanitising).

/// The most instances one app can have. Every way of asking for instances (a config file,
/// `start -i`, `scale` over the socket or HTTP) is held to it, so a typo such as
/// `scale api 4000000000` is refused instead of making the daemon create processes until
/// memory runs out.
pub const MAX_INSTANCES: u32 = 9999;

/// More instances asked for than [`MAX_INSTANCES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{count} instances asked for; at most {MAX_INSTANCES} per app")]
pub struct TooManyInstances {
    /// How many were asked for.
    pub count: u32,
}

/// Why `count` instances cannot be asked for, if they cannot.
pub fn check_instances(count: u32) -> Result<(), TooManyInstances> {
    if count > MAX_INSTANCES {
        return Err(TooManyInstances { count });
    }
    Ok(())
}

/// Why a name cannot name an app ([`check_app_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppNameError {
    /// Empty or only white space.
    #[error("an app name cannot be empty")]
    Empty,
    /// Holds a newline, a tab or another control character.
    #[error("the app name {0:?} holds a control character (newline, tab...)")]
    ControlCharacter(String),
    /// Holds a character that changes the direction of the text around it (U+202E...), which
    /// makes a name shown in a terminal read as another.
    #[error("the app name {0:?} holds a bidirectional control character (U+202E...), which would show it as another name")]
    Bidi(String),
    /// `all`, the target that means every app.
    #[error("`all` cannot name an app: it is the target for every app")]
    All,
}

/// Why `name` cannot name an app, if it cannot: it must not be empty, nor hold a control
/// character (a newline would break every list and log line that shows it), nor be `all`
/// (a target that means every app).
pub fn check_app_name(name: &str) -> Result<(), AppNameError> {
    if name.trim().is_empty() {
        return Err(AppNameError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(AppNameError::ControlCharacter(name.to_string()));
    }
    if name.chars().any(is_bidi_control) {
        return Err(AppNameError::Bidi(name.to_string()));
    }
    if name == "all" {
        return Err(AppNameError::All);
    }
    Ok(())
}

/// Why a namespace cannot be one: the same rules as a name's (it is shown and targeted the same
/// way), but `all` is allowed (PM2 has no such namespace rule).
pub fn check_namespace(namespace: &str) -> Result<(), AppNameError> {
    match check_app_name(namespace) {
        Err(AppNameError::All) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The characters that reorder the text around them in a terminal (Unicode's bidirectional
/// formatting characters: embeddings, overrides, isolates and marks): `"abc\u{202E}txt.exe"`
/// shows as `abcexe.txt`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// PM2's file-name sanitising of app names: anything but `[A-Za-z0-9.-]` becomes `-`.
pub fn sanitize_log_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The longest app name whose log files are named after it as PM2 names them; longer names (and
/// names with characters other than ASCII) get a shortened form with a hash ([`log_name`]). A
/// file name holds 255 bytes, and `-error-<pm_id>.log` is added to it.
const LOG_NAME_AS_IS: usize = 200;

/// The stem of an app's log files (`<stem>-out.log`): PM2's sanitising ([`sanitize_log_name`])
/// for an ASCII name of up to 200 characters, so files are where PM2 users look; otherwise,
/// where that sanitising would make different names one (`名前` and `数字` are both `--`) or a
/// name too long for a file, the sanitised first 40 characters, `-`, and 16 hex digits of a hash
/// of the whole name. Two names that still meet (`a/b` and `a-b`) are refused at start (the
/// daemon's start checks the names it holds).
pub fn log_name(name: &str) -> String {
    if name.is_ascii() && name.len() <= LOG_NAME_AS_IS {
        return sanitize_log_name(name);
    }
    let head: String = name.chars().take(40).collect();
    format!(
        "{}-{:016x}",
        sanitize_log_name(&head),
        fnv1a(name.as_bytes())
    )
}

/// FNV-1a, 64 bits: stable across versions and machines (the files must keep their names).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_are_pm2s_for_ascii_names_and_distinct_for_the_others() {
        assert_eq!(log_name("api"), "api");
        assert_eq!(log_name("my app/v1.2"), "my-app-v1.2");
        let (a, b) = (log_name("名前"), log_name("数字"));
        assert_ne!(a, b);
        assert!(a.starts_with("---") && a.len() == 2 + 1 + 16, "{a}");
        let long = "x".repeat(300);
        let stem = log_name(&long);
        assert!(
            stem.len() + "-error-9999.log".len() <= 255,
            "{}",
            stem.len()
        );
        assert_ne!(stem, log_name(&"x".repeat(301)));
        assert_eq!(
            log_name("a/b"),
            log_name("a-b"),
            "PM2's sanitising still meets here"
        );
        // Stable: files keep their names across versions.
        assert_eq!(
            log_name("名前"),
            format!("---{:016x}", fnv1a("名前".as_bytes()))
        );
    }

    #[test]
    fn log_names_are_sanitized_like_pm2() {
        assert_eq!(sanitize_log_name("my app/v1.2"), "my-app-v1.2");
    }
}
