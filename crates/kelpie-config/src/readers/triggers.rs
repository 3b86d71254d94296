//! What the app reacts to besides its own exits: its `cron_restart` schedule, watched files, a
//! health check or watchdog; and the apps whose start it waits for (`depends_on`).

use super::Reader;
use crate::convert;
use crate::paths::{absolutize, expand_tilde};
use kelpie_core::AppSpec;
use std::path::Path;

/// `cron_restart` (`0` = none) and the time zone it is read in.
pub(super) fn read_cron(r: &mut Reader<'_>, spec: &mut AppSpec) {
    spec.cron_restart = r.get("cron_restart", convert::cron).flatten();
    spec.cron_timezone = r.get("cron_timezone", convert::time_zone);
}

/// `watch` paths made absolute against the app's cwd (after `~` expansion; `true` is the cwd
/// itself), `ignore_watch` globs and `watch_delay`.
pub(super) fn read_watch(r: &mut Reader<'_>, spec: &mut AppSpec, cwd: &Path, home: Option<&str>) {
    for path in r.get("watch", convert::watch).unwrap_or_default() {
        let path = absolutize(cwd, Path::new(&expand_tilde(&path, home)))
            .display()
            .to_string();
        if !spec.watch.contains(&path) {
            spec.watch.push(path);
        }
    }
    spec.ignore_watch = r.get("ignore_watch", convert::globs).unwrap_or_default();
    if let Some(ms) = r.get("watch_delay", convert::duration) {
        spec.watch_delay_ms = ms;
    }
}

/// `health_check` (or the `http` block of PM2 production templates) and `watchdog`.
pub(super) fn read_health(r: &mut Reader<'_>, spec: &mut AppSpec) {
    match (r.raw.get("health_check"), r.raw.get("http")) {
        (Some(check), Some(http)) => r.errors.push(format!(
            "fields `{}` and `{}` both set a health check; keep one",
            check.key, http.key
        )),
        (Some(found), None) => match crate::health::read(&found.key, &found.value, spec) {
            Ok(check) => spec.health_check = check,
            Err(errors) => r.errors.extend(errors),
        },
        (None, Some(found)) => {
            match crate::health::read_http_block(&found.key, &found.value, spec) {
                Ok(check) => spec.health_check = check,
                Err(errors) => r.errors.extend(errors),
            }
        }
        (None, None) => {}
    }
    spec.watchdog_ms = r.get("watchdog", convert::watchdog);
}

/// `depends_on`. Names that are not apps of the same file are allowed (the app may already run
/// in the daemon, which checks); cycles across a file are checked when the file is loaded.
pub(super) fn read_dependencies(r: &mut Reader<'_>, spec: &mut AppSpec) {
    let Some(names) = r.get("depends_on", convert::app_names) else {
        return;
    };
    if !spec.name.is_empty() && names.contains(&spec.name) {
        let key = r.spelled("depends_on");
        r.errors.push(format!(
            "field `{key}`: app `{}` cannot depend on itself",
            spec.name
        ));
        return;
    }
    spec.depends_on = names;
}
