//! `kelpie deploy`: PM2's deploy sections, run as releases that go live only when ready.
//!
//! Each host keeps `releases/<time>-<sha>` built from a mirror of the repository, and `current`
//! points at the live one (docs/deploy.md draws the layout). A deploy takes a lock on every host
//! before anything changes, builds the new release on every host before any host switches (a
//! host failing early changes none), then runs `post-deploy` in the new release (by default
//! `kelpie startOrReload <file> --env <env>`: the old processes serve until the new ones are
//! ready) and switches `current` only when that succeeded.
//!
//! Here: the command's flow and its report. The section read and checked (`config`), the
//! command's words (`words`), the scripts the hosts run (`remote`), and ssh (`ssh`).

mod config;
mod remote;
mod ssh;
mod words;

use crate::cli::DeployArgs;
use crate::exit::{failed, Status};
use anyhow::{Context, Result};
use config::Target;
use remote::{PreSetup, Prelude};
use serde_json::json;
use ssh::{Connection, Outcome, Seen};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use words::Action;

/// PM2's usage text for `deploy`, with Kelpie's additions.
const USAGE: &str = "Usage: kelpie deploy [file] <env> [command] [--force] [--json]

Commands:
  setup                prepare the hosts (can be run again)
  update               deploy the config's ref (the default)
  ref <ref>, <ref>     deploy another ref (branch, tag or sha)
  revert [n]           go back n releases (default 1)
  curr[ent]            the live release's short sha
  prev[ious]           the sha deployed before it
  list                 the shas deployed, newest first
  exec|run <cmd>       run a command in the live release on every host
  unlock               remove the lock a killed deploy left

Options:
  --force, -f          skip the local git checks (clean tree, pushed)
  --json               one JSON report on stdout (progress on stderr)

The file is the first found of: ecosystem.json, ecosystem.yml, ecosystem.yaml,
ecosystem.config.js, .cjs, .mjs, ecosystem.json5, package.json. See docs/deploy.md.";

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// Run `kelpie deploy`.
pub fn deploy(args: DeployArgs) -> Result<ExitCode> {
    let (words, force, json) = split_options(args);
    let words = match words::parse(&words) {
        Ok(words) => words,
        Err(why) => {
            eprintln!("kelpie: error: deploy: {why}\n\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(env) = words.env else {
        outln!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let file = match words.file {
        Some(file) => file,
        None => default_file(&cwd)?,
    };
    let load = kelpie_config::LoadContext {
        cwd: cwd.clone(),
        env: std::env::vars().collect(),
        profile: None,
        only: Vec::new(),
    };
    let section = kelpie_config::deploy_section(Path::new(&file), &load)?;
    let mut warnings = Vec::new();
    let target = config::target(section.as_ref(), &env, &file, &mut warnings).map_err(|e| {
        let status = match e {
            config::SectionError::NoSuchEnv { .. } => Status::NotFound,
            config::SectionError::Invalid { .. } => Status::Invalid,
        };
        failed(status, e.to_string())
    })?;
    for warning in &warnings {
        eprintln!("[kelpie] warning: {warning}");
    }
    let run = Run::new(target, &file, json)?;
    let code = match words.action {
        Action::Setup => run.setup(&cwd),
        Action::Deploy(git_ref) => {
            if !force {
                local_check(&cwd)?;
            }
            run.deploy(Release::Ref(git_ref))
        }
        Action::Revert(back) => run.deploy(Release::Back(back)),
        Action::Current => run.query(|p| p.current()),
        Action::Previous => run.query(|p| p.previous()),
        Action::List => run.query(|p| p.list()),
        Action::Exec(command) => run.exec(&command),
        Action::Unlock => run.unlock(),
    };
    run.close();
    code
}

/// The words, and the options PM2's deploy takes among them (`--force`, `-F`; `-f` as its
/// usage says), plus `--json`. Everything after `exec <cmd>` belongs to the command.
fn split_options(args: DeployArgs) -> (Vec<String>, bool, bool) {
    let (mut force, mut json) = (args.force, args.json);
    let mut words = Vec::new();
    let mut in_command = false;
    for word in args.words {
        if !in_command {
            match word.as_str() {
                "--force" | "-f" | "-F" => {
                    force = true;
                    continue;
                }
                "--json" => {
                    json = true;
                    continue;
                }
                "exec" | "run" if !words.is_empty() => in_command = true,
                _ => {}
            }
        }
        words.push(word);
    }
    (words, force, json)
}

/// The first of PM2's default files found in `cwd`.
fn default_file(cwd: &Path) -> Result<String> {
    words::DEFAULT_FILES
        .iter()
        .find(|name| cwd.join(name).is_file())
        .map(|name| name.to_string())
        .ok_or_else(|| {
            failed(
                Status::NotFound,
                format!(
                    "no ecosystem file here to deploy from (looked for {}); name one: kelpie deploy <file> <env>",
                    words::DEFAULT_FILES.join(", ")
                ),
            )
        })
}

/// PM2's local check before a deploy (skipped with `--force`): nothing uncommitted, nothing
/// unpushed. Outside a git work tree, or without an upstream, it is a note, not an error.
fn local_check(cwd: &Path) -> Result<()> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
    };
    match git(&["rev-parse", "--is-inside-work-tree"]) {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!("[kelpie] note: not in a git work tree here: the check for uncommitted and unpushed changes is skipped");
            return Ok(());
        }
    }
    for args in [
        &["diff", "--quiet"][..],
        &["diff", "--cached", "--quiet"][..],
    ] {
        if git(args).is_ok_and(|out| out.status.code() == Some(1)) {
            return Err(failed(
                Status::Failure,
                "commit or stash your changes before deploying (or deploy anyway with --force)",
            ));
        }
    }
    match git(&["rev-list", "@{upstream}..", "-n", "1"]) {
        Ok(out) if out.status.success() => {
            if !out.stdout.trim_ascii().is_empty() {
                return Err(failed(
                    Status::Failure,
                    "push your changes before deploying: the hosts fetch from the repository (or deploy anyway with --force)",
                ));
            }
        }
        _ => eprintln!(
            "[kelpie] note: this branch has no upstream: the check for unpushed changes is skipped"
        ),
    }
    Ok(())
}

/// What a deploy makes live.
enum Release {
    /// A ref (the config's when `None`).
    Ref(Option<String>),
    /// The n-th previous release.
    Back(u32),
}

/// How one host ended.
#[derive(Debug, Clone)]
enum HostEnd {
    /// It did what was asked; the words say what.
    Done(String),
    /// It failed; the words say where and why.
    Failed(String),
    /// Nothing changed on it because of another host.
    Unchanged(String),
}

/// One run of the command: the section, a connection per host, where output goes.
struct Run {
    target: Target,
    connections: Vec<Connection>,
    control_dir: PathBuf,
    post_deploy: String,
    owner: String,
    token: String,
    json: bool,
    interrupted: Arc<AtomicBool>,
    /// Lines of several hosts are prefixed with their host.
    prefixed: bool,
    /// Serialises output lines of hosts working at once.
    output: Mutex<()>,
    /// When the command began (progress lines say how long since).
    began: std::time::Instant,
}

impl Run {
    fn new(target: Target, file: &str, json: bool) -> Result<Run> {
        let control_dir = control_dir()?;
        let connections: Vec<Connection> = target
            .hosts
            .iter()
            .map(|host| Connection::new(host.clone(), &control_dir))
            .collect();
        let interrupted = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
        }
        // PM2's default: the file as typed, run from the release (an absolute path here means
        // nothing there: its name is used).
        let typed = Path::new(file);
        let remote_file = if typed.is_absolute() {
            typed
                .file_name()
                .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned())
        } else {
            file.to_string()
        };
        let post_deploy = target.hooks.post_deploy.clone().unwrap_or_else(|| {
            format!(
                "kelpie startOrReload {} --env {}",
                remote::quote(&remote_file),
                remote::quote(&target.env)
            )
        });
        let prefixed = connections.len() > 1;
        Ok(Run {
            owner: owner(&target.env),
            token: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            target,
            connections,
            control_dir,
            post_deploy,
            json,
            interrupted,
            prefixed,
            output: Mutex::new(()),
            began: std::time::Instant::now(),
        })
    }

    fn prelude<'a>(&'a self, connection: &'a Connection) -> Prelude<'a> {
        Prelude {
            target: &self.target,
            host: &connection.host,
            post_deploy: &self.post_deploy,
            owner: &self.owner,
            token: &self.token,
        }
    }

    /// A line of a host's output (a hook's, git's), shown as it comes.
    fn show(&self, connection: &Connection, text: &str) {
        let _serial = self.output.lock().unwrap_or_else(|p| p.into_inner());
        let line = if self.prefixed {
            format!("[{}] {text}", connection.label)
        } else {
            text.to_string()
        };
        if self.json {
            eprintln!("{line}");
        } else {
            outln!("{line}");
        }
    }

    /// Progress: which host is at which step, and when (seconds since the command began).
    fn progress(&self, connection: &Connection, step: &str) {
        let _serial = self.output.lock().unwrap_or_else(|p| p.into_inner());
        let at = self.began.elapsed().as_secs_f64();
        if self.json {
            eprintln!("--> {at:5.1}s {}: {step}", connection.label);
        } else {
            outln!("--> {at:5.1}s {}: {step}", connection.label);
        }
    }

    /// Run a script on one host, its output shown and its steps as progress.
    fn run_on(&self, connection: &Connection, script: &str) -> Outcome {
        connection.run(script, &|seen| match seen {
            Seen::Line(text) => self.show(connection, text),
            Seen::Step(step) => self.progress(connection, step),
        })
    }

    /// `f` on every host, `parallel` at a time; results in the hosts' order.
    fn each<T: Send>(&self, f: impl Fn(&Connection) -> T + Sync) -> Vec<T> {
        let count = self.connections.len();
        let workers = match self.target.parallel {
            0 => count,
            n => n.min(count),
        };
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(connection) = self.connections.get(index) else {
                        break;
                    };
                    let result = f(connection);
                    results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
            .collect()
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// `setup` on every host.
    fn setup(&self, cwd: &Path) -> Result<ExitCode> {
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
    fn deploy(&self, release: Release) -> Result<ExitCode> {
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
        let locks = self.each(|connection| {
            self.progress(connection, "lock");
            self.run_on(connection, &self.prelude(connection).lock())
        });
        let locked: Vec<bool> = locks.iter().map(|o| o.report("locked").is_some()).collect();
        if locked.iter().any(|l| !l) || self.interrupted() {
            let held = locks.iter().any(|o| o.report("held").is_some());
            let ends = self.give_up(&locked, &[], |index, connection| {
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
                    HostEnd::Unchanged("not changed: another host could not be locked".into())
                } else {
                    HostEnd::Failed(self.explain(connection, outcome))
                }
            });
            return self.finish_with(
                action,
                &ends,
                if held {
                    Status::Conflict
                } else {
                    Status::Failure
                },
            );
        }
        // R2-R4: pre-deploy, fetch and build on every host (the barrier).
        let git_ref = match &release {
            Release::Ref(git_ref) => git_ref
                .clone()
                .unwrap_or_else(|| self.target.git_ref.clone()),
            Release::Back(_) => String::new(),
        };
        let prepared = self.each(|connection| {
            self.progress(
                connection,
                &match &release {
                    Release::Ref(_) => format!("prepare {git_ref}"),
                    Release::Back(n) => format!("prepare revert {n}"),
                },
            );
            let prelude = self.prelude(connection);
            let script = match release {
                Release::Ref(_) => prelude.prepare(&git_ref),
                Release::Back(back) => prelude.prepare_revert(back),
            };
            self.run_on(connection, &script)
        });
        let releases: Vec<Option<(String, String, bool)>> = prepared
            .iter()
            .map(|outcome| {
                let rest = outcome.report("release")?;
                let mut parts = rest.split(' ');
                let id = parts.next()?.to_string();
                let sha = parts.next()?.to_string();
                Some((id, sha, parts.next() == Some("new")))
            })
            .collect();
        if releases.iter().any(Option::is_none) || self.interrupted() {
            let new: Vec<Option<String>> = releases
                .iter()
                .map(|r| {
                    r.as_ref()
                        .filter(|(_, _, new)| *new)
                        .map(|(id, _, _)| id.clone())
                })
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
                return Ok(ExitCode::from(INTERRUPTED));
            }
            return self.finish(action, &ends);
        }
        // R5-R6: post-deploy in the new release, then the switch, host by host.
        let ends = self.each(|connection| {
            let index = self
                .connections
                .iter()
                .position(|c| std::ptr::eq(c, connection))
                .unwrap_or(0);
            let Some((id, sha, _)) = &releases[index] else {
                return HostEnd::Failed("no release".into());
            };
            self.progress(connection, &format!("activate releases/{id}"));
            let outcome = self.run_on(connection, &self.prelude(connection).activate(id, sha));
            if outcome.report("live").is_none() && outcome.report("fail").is_none() {
                // The script did not get to the end (the connection dropped, Ctrl-C): the
                // lock it holds is released; the release stays for a later revert or prune.
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
        });
        self.finish(action, &ends)
    }

    /// Undo what a deploy did before any switch: remove the releases it built (`new`), release
    /// the locks it took (`locked`); each host's end comes from `end`.
    fn give_up(
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

    fn pre_deploy_local(&self, hook: &str) -> Result<()> {
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
    fn query(&self, script: impl Fn(&Prelude<'_>) -> String + Sync) -> Result<ExitCode> {
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
    fn exec(&self, command: &str) -> Result<ExitCode> {
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
    fn unlock(&self) -> Result<ExitCode> {
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

    /// A failed script in words: the host, the step and its status, with a hint for 127.
    fn explain(&self, connection: &Connection, outcome: &Outcome) -> String {
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
    fn finish(&self, action: &str, ends: &[HostEnd]) -> Result<ExitCode> {
        self.finish_with(action, ends, Status::Failure)
    }

    fn finish_with(&self, action: &str, ends: &[HostEnd], status: Status) -> Result<ExitCode> {
        self.report(action, ends);
        self.failure(action, ends, status)
    }

    /// Only the failures (for queries, whose answer is their output).
    fn finish_quietly(&self, ends: &[HostEnd]) -> Result<ExitCode> {
        if self.json {
            self.report("query", ends);
        }
        self.failure("query", ends, Status::Failure)
    }

    fn failure(&self, action: &str, ends: &[HostEnd], status: Status) -> Result<ExitCode> {
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
    fn report(&self, action: &str, ends: &[HostEnd]) {
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

    /// Close every connection and remove their sockets' directory.
    fn close(&self) {
        self.each(Connection::close);
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}

fn outln_or_err(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        outln!("{line}");
    }
}

/// A private directory for the connections' sockets (short: a socket path has ~100 bytes).
fn control_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let temp = std::env::temp_dir();
    // Those of deploys that were killed (their process is gone) are removed first.
    if let Ok(entries) = std::fs::read_dir(&temp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("kelpie-deploy-"));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = temp.join(format!("kelpie-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Who deploys, as the lock names them: `user@machine (pid, since): deploy <env>`.
fn owner(env: &str) -> String {
    let user = kelpie_sys::username(kelpie_sys::current_uid());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let since = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    format!(
        "{user}@{machine} (pid {}, since {since}) deploying {env}",
        std::process::id()
    )
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
