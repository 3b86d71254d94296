//! The commands' steps over the hosts: `setup`, a deploy (lock, prepare, activate), giving up
//! before any switch, `pre-deploy-local`, the queries, `exec` and `unlock`.

use super::remote::{PreSetup, Prelude};
use super::run::{outln_or_err, short, Run};
use super::ssh::Connection;
use super::{HostEnd, Release, INTERRUPTED};
use crate::exit::{failed, Status};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// Whether a deploy goes on to its next stage, or stops here with this end.
enum Stage<T> {
    Go(T),
    Stop(Result<ExitCode>),
}

/// A release ready on a host: its directory's name, its commit, and whether this deploy built
/// it (a revert finds one that exists).
struct Built {
    id: String,
    sha: String,
    new: bool,
}

impl Run {
    /// `setup` on every host.
    pub(super) fn setup(&self, cwd: &Path) -> Result<ExitCode> {
        let local_script = self
            .target
            .hooks
            .pre_setup
            .as_deref()
            .and_then(|hook| hook.split_whitespace().next())
            .map(|first| cwd.join(first))
            .filter(|path| path.is_file());
        let script_text = match &local_script {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read pre-setup's {}", path.display()))?,
            ),
            None => None,
        };
        let pre_setup = match (&script_text, &self.target.hooks.pre_setup) {
            (Some(text), _) => PreSetup::LocalFile(text),
            (None, Some(command)) => PreSetup::Command(command),
            (None, None) => PreSetup::None,
        };
        let ends = self.each(|connection| {
            self.progress(connection, "setup");
            let outcome = self.run_on(connection, &self.prelude(connection).setup(pre_setup));
            if let Some(path) = outcome.report("missing").filter(|m| m.starts_with("kelpie")) {
                self.show(
                    connection,
                    &format!(
                        "[kelpie] warning: neither kelpie nor pm2 is on this host's PATH for a login shell ({}); the default post-deploy runs `kelpie`",
                        path.trim_start_matches("kelpie").trim()
                    ),
                );
            }
            match outcome.report("ready") {
                Some(sha) if outcome.status == Some(0) => {
                    let what = match (outcome.report("adopted"), outcome.report("built")) {
                        (Some(id), _) => format!("set up (PM2's checkout adopted as releases/{id})"),
                        (None, Some(built)) => format!(
                            "set up, current -> releases/{}",
                            built.split(' ').next().unwrap_or("")
                        ),
                        (None, None) => "already set up".to_string(),
                    };
                    HostEnd::Done(format!("{what} ({})", short(sha)))
                }
                _ => HostEnd::Failed(self.explain(connection, &outcome)),
            }
        });
        self.finish("setup", &ends)
    }

    /// A deploy (or revert) on every host: lock, prepare everywhere, then activate.
    pub(super) fn deploy(&self, release: Release) -> Result<ExitCode> {
        if let Release::Ref(_) = release {
            if let Some(hook) = &self.target.hooks.pre_deploy_local {
                self.pre_deploy_local(hook)?;
            }
        }
        let action = match &release {
            Release::Ref(_) => "deploy",
            Release::Back(_) => "revert",
        };
        // R1: the lock on every host before anything changes.
        if let Stage::Stop(end) = self.lock_everywhere(action) {
            return end;
        }
        // R2-R4: pre-deploy, fetch and build on every host (the barrier).
        let releases = match self.prepare_everywhere(action, &release) {
            Stage::Go(releases) => releases,
            Stage::Stop(end) => return end,
        };
        // R5-R6: post-deploy in the new release, then the switch, host by host.
        let ends = self.each(|connection| {
            let index = self
                .connections
                .iter()
                .position(|c| std::ptr::eq(c, connection))
                .unwrap_or(0);
            match &releases[index] {
                Some(built) => self.activate(connection, built),
                None => HostEnd::Failed("no release".into()),
            }
        });
        self.finish(action, &ends)
    }

    /// Take the lock on every host; if one cannot be taken, release those taken and stop.
    fn lock_everywhere(&self, action: &str) -> Stage<()> {
        let locks = self.each(|connection| {
            self.progress(connection, "lock");
            self.run_on(connection, &self.prelude(connection).lock())
        });
        let locked: Vec<bool> = locks.iter().map(|o| o.report("locked").is_some()).collect();
        if !locked.iter().any(|l| !l) && !self.interrupted() {
            return Stage::Go(());
        }
        let held = locks.iter().any(|o| o.report("held").is_some());
        // Ctrl-C can end a host's `ssh` after the lock was taken there and before it said so:
        // that lock is ours, unreported. Released too (the release only removes a lock that
        // holds this deploy's token, so a lock another deploy took is left alone).
        let release: Vec<bool> = locks
            .iter()
            .zip(&locked)
            .map(|(outcome, &locked)| {
                locked || (self.interrupted() && outcome.report("held").is_none())
            })
            .collect();
        let ends = self.give_up(&release, &[], |index, connection| {
            let outcome = &locks[index];
            if let Some(owner) = outcome.report("held") {
                let owner = if owner.trim().is_empty() {
                    "a deploy that has not written its name yet"
                } else {
                    owner
                };
                HostEnd::Failed(format!(
                    "locked by {owner}; if that deploy is no longer running: kelpie deploy {} unlock",
                    self.target.env
                ))
            } else if locked[index] {
                HostEnd::Unchanged(if self.interrupted() {
                    "not changed: interrupted".to_string()
                } else {
                    "not changed: another host could not be locked".to_string()
                })
            } else {
                HostEnd::Failed(self.explain(connection, outcome))
            }
        });
        // Ctrl-C while the locks were being taken: every host locked, none changed, and the
        // deploy says so and fails as interrupted (it exited 0 there before: nothing failed).
        if self.interrupted() {
            self.report(action, &ends);
            return Stage::Stop(Ok(ExitCode::from(INTERRUPTED)));
        }
        let status = if held {
            Status::Conflict
        } else {
            Status::Failure
        };
        Stage::Stop(self.finish_with(action, &ends, status))
    }

    /// Build the release on every host (or find the one to revert to); if any host fails, undo
    /// the others' new releases and stop: no host changes unless all are ready.
    fn prepare_everywhere(&self, action: &str, release: &Release) -> Stage<Vec<Option<Built>>> {
        let git_ref = match release {
            Release::Ref(git_ref) => git_ref
                .clone()
                .unwrap_or_else(|| self.target.git_ref.clone()),
            Release::Back(_) => String::new(),
        };
        let prepared = self.each(|connection| {
            self.progress(
                connection,
                &match release {
                    Release::Ref(_) => format!("prepare {git_ref}"),
                    Release::Back(n) => format!("prepare revert {n}"),
                },
            );
            let prelude = self.prelude(connection);
            let script = match release {
                Release::Ref(_) => prelude.prepare(&git_ref),
                Release::Back(back) => prelude.prepare_revert(*back),
            };
            self.run_on(connection, &script)
        });
        let releases: Vec<Option<Built>> = prepared
            .iter()
            .map(|outcome| {
                let rest = outcome.report("release")?;
                let mut parts = rest.split(' ');
                let id = parts.next()?.to_string();
                let sha = parts.next()?.to_string();
                Some(Built {
                    id,
                    sha,
                    new: parts.next() == Some("new"),
                })
            })
            .collect();
        if !releases.iter().any(Option::is_none) && !self.interrupted() {
            return Stage::Go(releases);
        }
        let new: Vec<Option<String>> = releases
            .iter()
            .map(|r| r.as_ref().filter(|b| b.new).map(|b| b.id.clone()))
            .collect();
        let everyone = vec![true; self.connections.len()];
        let ends = self.give_up(&everyone, &new, |index, connection| {
            if releases[index].is_some() {
                HostEnd::Unchanged(if self.interrupted() {
                    "not changed: interrupted".to_string()
                } else {
                    "not changed: another host failed before the switch".to_string()
                })
            } else {
                HostEnd::Failed(self.explain(connection, &prepared[index]))
            }
        });
        if self.interrupted() {
            self.report(action, &ends);
            return Stage::Stop(Ok(ExitCode::from(INTERRUPTED)));
        }
        Stage::Stop(self.finish(action, &ends))
    }

    /// Post-deploy in `built`, then the switch of `current`, on one host.
    fn activate(&self, connection: &Connection, built: &Built) -> HostEnd {
        let Built { id, sha, .. } = built;
        self.progress(connection, &format!("activate releases/{id}"));
        let outcome = self.run_on(connection, &self.prelude(connection).activate(id, sha));
        if outcome.report("live").is_none() && outcome.report("fail").is_none() {
            // The script did not get to the end (the connection dropped, Ctrl-C): the lock it
            // holds is released; the release stays for a later revert or prune.
            let _ = connection.run(&self.prelude(connection).abort(None), &|_| {});
        }
        match outcome.report("live") {
            Some(_) if outcome.status == Some(0) => {
                HostEnd::Done(format!("live: releases/{id} ({})", short(sha)))
            }
            _ => {
                let mut why = self.explain(connection, &outcome);
                why.push_str("; current not switched: the previous release still serves");
                if let Some(status) = outcome.report("restored") {
                    why.push_str(&if status.trim() == "0" {
                        "; its apps were activated again from current".to_string()
                    } else {
                        format!(
                            "; activating its apps again from current failed too (status {})",
                            status.trim()
                        )
                    });
                }
                HostEnd::Failed(why)
            }
        }
    }

    /// Undo what a deploy did before any switch: remove the releases it built (`new`), release
    /// the locks it took (`locked`); each host's end comes from `end`.
    pub(super) fn give_up(
        &self,
        locked: &[bool],
        new: &[Option<String>],
        end: impl Fn(usize, &Connection) -> HostEnd + Sync,
    ) -> Vec<HostEnd> {
        self.each(|connection| {
            let index = self
                .connections
                .iter()
                .position(|c| std::ptr::eq(c, connection))
                .unwrap_or(0);
            if locked.get(index).copied().unwrap_or(false) {
                let release = new.get(index).and_then(|r| r.as_deref());
                let _ = connection.run(&self.prelude(connection).abort(release), &|_| {});
            }
            end(index, connection)
        })
    }

    pub(super) fn pre_deploy_local(&self, hook: &str) -> Result<()> {
        let mut command = Command::new("sh");
        command.arg("-c").arg(hook).stdin(Stdio::null());
        for (name, value) in &self.target.variables {
            command.env(name, value);
        }
        if self.json {
            // stdout stays the report's.
            command.stdout(std::io::stderr());
        }
        outln_or_err(self.json, "--> pre-deploy-local");
        let status = command
            .status()
            .context("cannot run pre-deploy-local with sh")?;
        if !status.success() {
            return Err(failed(
                Status::Failure,
                format!(
                    "pre-deploy-local exited with status {}: nothing was changed on the hosts",
                    status
                        .code()
                        .map_or("(killed)".to_string(), |c| c.to_string())
                ),
            ));
        }
        Ok(())
    }

    /// `curr`, `prev`, `list`: the host's answer as it prints it.
    pub(super) fn query(&self, script: impl Fn(&Prelude<'_>) -> String + Sync) -> Result<ExitCode> {
        let ends = self.each(|connection| {
            let outcome = self.run_on(connection, &script(&self.prelude(connection)));
            if outcome.status == Some(0) {
                HostEnd::Done(String::new())
            } else {
                HostEnd::Failed(self.explain(connection, &outcome))
            }
        });
        self.finish_quietly(&ends)
    }

    /// `exec <cmd>`: one host gives its status; several, 1 if any failed.
    pub(super) fn exec(&self, command: &str) -> Result<ExitCode> {
        let outcomes = self
            .each(|connection| self.run_on(connection, &self.prelude(connection).exec(command)));
        let mut worst = 0u8;
        let mut ends = Vec::new();
        for (connection, outcome) in self.connections.iter().zip(&outcomes) {
            match outcome
                .report("exit")
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                Some(0) => ends.push(HostEnd::Done(String::new())),
                Some(code) => {
                    worst = if self.prefixed {
                        1
                    } else {
                        u8::try_from(code).unwrap_or(1)
                    };
                    ends.push(HostEnd::Failed(format!("exited with status {code}")));
                }
                None => {
                    worst = 1;
                    ends.push(HostEnd::Failed(self.explain(connection, outcome)));
                }
            }
        }
        if self.json {
            self.report("exec", &ends);
        } else if worst != 0
            && ends
                .iter()
                .any(|e| matches!(e, HostEnd::Failed(w) if !w.starts_with("exited")))
        {
            self.finish_quietly(&ends)?;
        }
        Ok(ExitCode::from(worst))
    }

    /// `unlock` on every host.
    pub(super) fn unlock(&self) -> Result<ExitCode> {
        let ends = self.each(|connection| {
            let outcome = self.run_on(connection, &self.prelude(connection).unlock());
            match outcome.report("unlocked") {
                Some(owner) if outcome.status == Some(0) => {
                    HostEnd::Done(if owner.trim().is_empty() {
                        "not locked".to_string()
                    } else {
                        format!("unlocked (was held by {owner})")
                    })
                }
                _ => HostEnd::Failed(self.explain(connection, &outcome)),
            }
        });
        self.finish("unlock", &ends)
    }
}
