//! How an instance's process is started: command line, environment, log files.

use kelpie_core::{sanitize_log_name, AppSpec};
use kelpie_proto::{Home, HOME_ENV};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Stdio;

/// Paths that mean "discard this stream" (PM2 accepts both).
fn is_discard(path: &str) -> bool {
    path == "/dev/null" || path == "NULL"
}

/// Where one instance's stdout and stderr go.
pub fn log_paths(home: &Home, spec: &AppSpec, pm_id: u32) -> (String, String) {
    let name = sanitize_log_name(&spec.name);
    let logs = home.logs_dir();
    let per_instance = spec.instances > 1 && !spec.merge_logs;
    let resolve = |custom: &Option<String>, stream: &str| -> String {
        let path = custom.clone().unwrap_or_else(|| {
            logs.join(format!("{name}-{stream}.log"))
                .display()
                .to_string()
        });
        if per_instance && !is_discard(&path) {
            with_instance_suffix(&path, pm_id)
        } else {
            path
        }
    };
    (
        resolve(&spec.out_file, "out"),
        resolve(&spec.error_file, "error"),
    )
}

/// `/x/app-out.log` → `/x/app-out-3.log` (PM2's per-instance naming).
fn with_instance_suffix(path: &str, pm_id: u32) -> String {
    match path.strip_suffix(".log") {
        Some(stem) => format!("{stem}-{pm_id}.log"),
        None => format!("{path}-{pm_id}"),
    }
}

/// The open log files of an instance, reused (duplicated) for each process it starts.
#[derive(Debug, Default)]
pub struct LogFiles {
    out: Option<File>,
    err: Option<File>,
}

impl LogFiles {
    /// Open (append, create) both files and their directories. Blocking: call off the async
    /// workers. A file that cannot be opened is reported and its stream discarded, so the app
    /// still runs.
    pub fn open(out: &str, err: &str) -> (LogFiles, Vec<String>) {
        let mut problems = Vec::new();
        let mut open = |path: &str| -> Option<File> {
            if is_discard(path) {
                return None;
            }
            if let Some(dir) = Path::new(path).parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(file) => Some(file),
                Err(e) => {
                    problems.push(format!(
                        "cannot open log file {path}: {e}; output discarded"
                    ));
                    None
                }
            }
        };
        let files = LogFiles {
            out: open(out),
            err: open(err),
        };
        (files, problems)
    }

    fn stdio(file: &Option<File>) -> Stdio {
        file.as_ref()
            .and_then(|f| f.try_clone().ok())
            .map(Stdio::from)
            .unwrap_or_else(Stdio::null)
    }
}

/// Identity of an instance, for the variables Kelpie sets in its environment.
pub struct InstanceIdentity<'a> {
    /// The home the daemon serves.
    pub home: &'a Home,
    /// Its id.
    pub pm_id: u32,
    /// Its index among its app's instances.
    pub instance: u32,
}

/// The command that starts one process of `spec`: its own process group (so a stop reaches every
/// process it starts), stdin from /dev/null, stdout/stderr to its log files, and exactly the
/// environment the spec defines plus Kelpie's variables.
pub fn command(
    spec: &AppSpec,
    who: &InstanceIdentity<'_>,
    logs: &LogFiles,
) -> tokio::process::Command {
    let argv = spec.command_line();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.merged_env())
        .envs(kelpie_variables(spec, who))
        .stdin(Stdio::null())
        .stdout(LogFiles::stdio(&logs.out))
        .stderr(LogFiles::stdio(&logs.err))
        .process_group(0)
        .kill_on_drop(false);
    cmd
}

/// Variables Kelpie adds to every app (they win over the app's own, as in PM2).
fn kelpie_variables(spec: &AppSpec, who: &InstanceIdentity<'_>) -> Vec<(&'static str, String)> {
    vec![
        (HOME_ENV, who.home.root().display().to_string()),
        ("KELPIE_APP_NAME", spec.name.clone()),
        ("pm_id", who.pm_id.to_string()),
        ("name", spec.name.clone()),
        ("namespace", spec.namespace.clone()),
        ("NODE_APP_INSTANCE", who.instance.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_follow_pm2_naming() {
        let home = Home::at("/h".into());
        let spec = AppSpec {
            name: "my api".into(),
            ..AppSpec::default()
        };
        assert_eq!(
            log_paths(&home, &spec, 4),
            (
                "/h/logs/my-api-out.log".into(),
                "/h/logs/my-api-error.log".into()
            )
        );
        let many = AppSpec {
            instances: 2,
            ..spec.clone()
        };
        assert_eq!(log_paths(&home, &many, 4).0, "/h/logs/my-api-out-4.log");
        let merged = AppSpec {
            merge_logs: true,
            ..many
        };
        assert_eq!(log_paths(&home, &merged, 4).0, "/h/logs/my-api-out.log");
        let custom = AppSpec {
            out_file: Some("/var/log/x.log".into()),
            error_file: Some("/dev/null".into()),
            instances: 2,
            ..spec
        };
        assert_eq!(
            log_paths(&home, &custom, 1),
            ("/var/log/x-1.log".into(), "/dev/null".into())
        );
    }
}
