//! How an instance's process is started: command line, environment, log files.

use crate::logs::LogFiles;
use kelpie_core::{sanitize_log_name, AppSpec};
use kelpie_proto::{Home, HOME_ENV};
use std::path::PathBuf;
use std::process::Stdio;

/// Paths that mean "discard this stream" (PM2 accepts both).
fn is_discard(path: &str) -> bool {
    path == "/dev/null" || path == "NULL"
}

/// Where one instance's output goes, as shown to users (`/dev/null` when discarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    /// stdout.
    pub out: String,
    /// stderr.
    pub err: String,
    /// Both streams (`log_file`), if asked for.
    pub combined: Option<String>,
}

impl LogPaths {
    /// The files to write; `None` for a discarded stream.
    pub fn files(&self) -> LogFiles {
        let file = |path: &str| (!is_discard(path)).then(|| PathBuf::from(path));
        LogFiles {
            out: file(&self.out),
            err: file(&self.err),
            combined: self.combined.as_deref().and_then(file),
        }
    }
}

/// Where one instance's output goes: PM2's names (`<home>/logs/<name>-out.log`, `-error.log`,
/// `<name>.log` for the combined file), a `-<pm_id>` suffix when the app has several instances
/// and does not merge its logs.
pub fn log_paths(home: &Home, spec: &AppSpec, pm_id: u32) -> LogPaths {
    if spec.disable_logs {
        return LogPaths {
            out: "/dev/null".into(),
            err: "/dev/null".into(),
            combined: None,
        };
    }
    let name = sanitize_log_name(&spec.name);
    let logs = home.logs_dir();
    let per_instance = spec.instances > 1 && !spec.merge_logs;
    let resolve = |custom: Option<&str>, default_name: String| -> String {
        let path = match custom {
            Some(path) if !path.is_empty() => path.to_string(),
            _ => logs.join(default_name).display().to_string(),
        };
        if per_instance && !is_discard(&path) {
            with_instance_suffix(&path, pm_id)
        } else {
            path
        }
    };
    LogPaths {
        out: resolve(spec.out_file.as_deref(), format!("{name}-out.log")),
        err: resolve(spec.error_file.as_deref(), format!("{name}-error.log")),
        combined: spec
            .log_file
            .as_deref()
            .map(|path| resolve(Some(path), format!("{name}.log"))),
    }
}

/// `/x/app-out.log` → `/x/app-out-3.log` (PM2's per-instance naming).
fn with_instance_suffix(path: &str, pm_id: u32) -> String {
    match path.strip_suffix(".log") {
        Some(stem) => format!("{stem}-{pm_id}.log"),
        None => format!("{path}-{pm_id}"),
    }
}

/// The write ends of an instance's output pipes, given to the child.
pub struct OutputPipes {
    /// stdout's write end.
    pub out: std::io::PipeWriter,
    /// stderr's write end.
    pub err: std::io::PipeWriter,
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
/// process it starts), stdin from /dev/null, stdout/stderr into the log pipes (or /dev/null when
/// the app disables its logs), and exactly the environment the spec defines plus Kelpie's
/// variables.
pub fn command(
    spec: &AppSpec,
    who: &InstanceIdentity<'_>,
    output: Option<OutputPipes>,
) -> tokio::process::Command {
    let argv = spec.command_line();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.merged_env())
        .envs(kelpie_variables(spec, who))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(false);
    match output {
        Some(pipes) => cmd.stdout(pipes.out).stderr(pipes.err),
        None => cmd.stdout(Stdio::null()).stderr(Stdio::null()),
    };
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
        let paths = log_paths(&home, &spec, 4);
        assert_eq!(
            (paths.out.as_str(), paths.err.as_str(), paths.combined),
            ("/h/logs/my-api-out.log", "/h/logs/my-api-error.log", None)
        );
        let many = AppSpec {
            instances: 2,
            ..spec.clone()
        };
        assert_eq!(log_paths(&home, &many, 4).out, "/h/logs/my-api-out-4.log");
        let merged = AppSpec {
            merge_logs: true,
            ..many
        };
        assert_eq!(log_paths(&home, &merged, 4).out, "/h/logs/my-api-out.log");
        let custom = AppSpec {
            out_file: Some("/var/log/x.log".into()),
            error_file: Some("/dev/null".into()),
            instances: 2,
            ..spec
        };
        let paths = log_paths(&home, &custom, 1);
        assert_eq!(
            (paths.out.as_str(), paths.err.as_str()),
            ("/var/log/x-1.log", "/dev/null")
        );
        assert_eq!(paths.files().err, None, "a discarded stream has no file");
        let combined = AppSpec {
            log_file: Some(String::new()),
            ..AppSpec::default()
        };
        let mut combined = combined;
        combined.name = "w".into();
        assert_eq!(
            log_paths(&home, &combined, 0).combined.as_deref(),
            Some("/h/logs/w.log")
        );
        let disabled = AppSpec {
            disable_logs: true,
            ..combined
        };
        let paths = log_paths(&home, &disabled, 0);
        assert_eq!(
            paths.files(),
            LogFiles {
                out: None,
                err: None,
                combined: None
            }
        );
    }
}
