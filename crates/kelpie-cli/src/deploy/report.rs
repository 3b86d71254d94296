//! What a run says: a failed script in words, one line per host (or one JSON object), and the
//! exit status.

use super::run::Run;
use super::ssh::{Connection, Outcome};
use super::HostEnd;
use crate::exit::{failed, Status};
use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

impl Run {
    /// A failed script in words: the host, the step and its status, with a hint for 127.
    pub(super) fn explain(&self, connection: &Connection, outcome: &Outcome) -> String {
        if outcome.report("notsetup").is_some() {
            return format!(
                "{} is not set up; run `kelpie deploy {} setup`",
                connection.host.path, self.target.env
            );
        }
        if let Some(git_ref) = outcome.report("noref") {
            return format!("unknown ref `{git_ref}` in {}", self.target.repo);
        }
        if let Some(back) = outcome.report("norevert") {
            return format!("no release {back} back to revert to in .deploys");
        }
        if outcome.report("nodeploys").is_some() {
            return "nothing deployed yet (no .deploys)".to_string();
        }
        if let Some(path) = outcome.report("missing").filter(|m| m.starts_with("git")) {
            return format!(
                "git is not installed on the host (PATH {})",
                path.trim_start_matches("git").trim()
            );
        }
        let failure = outcome.failure();
        if failure.step == "connect" {
            let why = outcome.stderr.join("; ");
            return format!(
                "cannot connect with ssh{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
        }
        let mut text = match failure.status {
            Some(status) => format!("{} exited with status {status}", failure.step),
            None => format!("{} failed", failure.step),
        };
        if failure.status == Some(127) {
            text.push_str(&format!(
                " (command not found: non-interactive SSH does not read ~/.bashrc, where nvm and others set PATH; set PATH in deploy.{}.env or in ~/.profile on the host)",
                self.target.env
            ));
        }
        if failure.step == "script" && !outcome.stderr.is_empty() {
            text.push_str(&format!(": {}", outcome.stderr.join("; ")));
        }
        text
    }

    /// The report, and the exit status: 0 when every host did it, else 1.
    pub(super) fn finish(&self, action: &str, ends: &[HostEnd]) -> Result<ExitCode> {
        self.finish_with(action, ends, Status::Failure)
    }

    pub(super) fn finish_with(
        &self,
        action: &str,
        ends: &[HostEnd],
        status: Status,
    ) -> Result<ExitCode> {
        self.report(action, ends);
        if matches!(action, "deploy" | "revert") {
            self.tell_daemon(action, ends);
        }
        self.failure(action, ends, status)
    }

    /// The daemon running here, if one runs, tells its notification targets (`deploy`) how
    /// each host ended. None is started for it; a failure to tell changes nothing of the run.
    fn tell_daemon(&self, action: &str, ends: &[HostEnd]) {
        let hosts = self
            .connections
            .iter()
            .zip(ends)
            .filter_map(|(connection, end)| match end {
                HostEnd::Done(what) => Some((connection.label.clone(), true, what.clone())),
                HostEnd::Failed(why) => Some((connection.label.clone(), false, why.clone())),
                HostEnd::Unchanged(_) => None,
            })
            .collect();
        let outcome = kelpie_proto::DeployOutcome {
            env: self.target.env.clone(),
            action: action.to_string(),
            hosts,
        };
        let home = kelpie_proto::Home::from_env();
        if let Ok(Some(mut client)) = crate::client::Client::connect(&home) {
            let request =
                kelpie_proto::Request::Notify(kelpie_proto::NotifyRequest::Deploy(outcome));
            let _ = client.request(&request);
        }
    }

    /// Only the failures (for queries, whose answer is their output).
    pub(super) fn finish_quietly(&self, ends: &[HostEnd]) -> Result<ExitCode> {
        if self.json {
            self.report("query", ends);
        }
        self.failure("query", ends, Status::Failure)
    }

    pub(super) fn failure(
        &self,
        action: &str,
        ends: &[HostEnd],
        status: Status,
    ) -> Result<ExitCode> {
        let failures: Vec<String> = self
            .connections
            .iter()
            .zip(ends)
            .filter_map(|(connection, end)| match end {
                HostEnd::Failed(why) => Some(format!("  {}: {why}", connection.label)),
                _ => None,
            })
            .collect();
        if failures.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        Err(failed(
            status,
            format!(
                "{action} to {} failed on {} of {} host{}:\n{}",
                self.target.env,
                failures.len(),
                ends.len(),
                if ends.len() == 1 { "" } else { "s" },
                failures.join("\n")
            ),
        ))
    }

    /// One summary line per host (or, with --json, one JSON object).
    pub(super) fn report(&self, action: &str, ends: &[HostEnd]) {
        if self.json {
            let hosts: Vec<serde_json::Value> = self
                .connections
                .iter()
                .zip(ends)
                .map(|(connection, end)| {
                    let (ok, state, detail) = match end {
                        HostEnd::Done(what) => (true, "done", what),
                        HostEnd::Failed(why) => (false, "failed", why),
                        HostEnd::Unchanged(why) => (false, "unchanged", why),
                    };
                    json!({"host": connection.label, "path": connection.host.path,
                        "ok": ok, "state": state, "detail": detail})
                })
                .collect();
            let ok = ends.iter().all(|e| matches!(e, HostEnd::Done(_)));
            outln!(
                "{}",
                json!({"env": self.target.env, "action": action, "ok": ok, "hosts": hosts})
            );
            return;
        }
        for (connection, end) in self.connections.iter().zip(ends) {
            match end {
                HostEnd::Done(what) if what.is_empty() => {}
                HostEnd::Done(what) => outln!("{}  ok  {what}", connection.label),
                HostEnd::Failed(why) => outln!("{}  FAILED  {why}", connection.label),
                HostEnd::Unchanged(why) => outln!("{}  {why}", connection.label),
            }
        }
    }
}
