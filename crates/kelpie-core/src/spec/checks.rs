//! What every entry point checks: an app's name, its number of instances; and an app name as a
//! log file name (PM2's sanitising).

/// The most instances one app can have. Every way of asking for instances (a config file,
/// `start -i`, `scale` over the socket or HTTP) is held to it, so a typo such as
/// `scale api 4000000000` is refused instead of making the daemon create processes until
/// memory runs out.
pub const MAX_INSTANCES: u32 = 9999;

/// Why `count` instances cannot be asked for, if they cannot.
pub fn check_instances(count: u32) -> Result<(), String> {
    if count > MAX_INSTANCES {
        return Err(format!(
            "{count} instances asked for; at most {MAX_INSTANCES} per app"
        ));
    }
    Ok(())
}

/// Why `name` cannot name an app, if it cannot: it must not be empty, nor hold a control
/// character (a newline would break every list and log line that shows it), nor be `all`
/// (a target that means every app).
pub fn check_app_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("an app name cannot be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "the app name {name:?} holds a control character (newline, tab...)"
        ));
    }
    if name == "all" {
        return Err("`all` cannot name an app: it is the target for every app".into());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_are_sanitized_like_pm2() {
        assert_eq!(sanitize_log_name("my app/v1.2"), "my-app-v1.2");
    }
}
