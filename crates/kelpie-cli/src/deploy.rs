//! `kelpie deploy`: PM2's deploy sections, run as releases that go live only when ready.
//!
//! Each host keeps `releases/<time>-<sha>` built from a mirror of the repository, and `current`
//! points at the live one (docs/deploy.md draws the layout). A deploy takes a lock on every host
//! before anything changes, builds the new release on every host before any host switches (a
//! host failing early changes none), then runs `post-deploy` in the new release (by default
//! `kelpie startOrReload <file> --env <env>`: the old processes serve until the new ones are
//! ready) and switches `current` only when that succeeded.
//!
//! Here: the command line and the local checks. A run over the hosts (`run`), its steps
//! (`phases`) and what it says (`report`); the section read and checked (`config`), the
//! command's words (`words`), the scripts the hosts run (`remote`), and ssh (`ssh`).

mod config;
mod fleet;
mod phases;
mod remote;
mod report;
mod run;
mod ssh;
mod words;

use crate::cli::DeployArgs;
use crate::exit::{failed, Status};
use anyhow::{Context, Result};
use run::Run;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use words::Action;

pub(crate) use fleet::fleet;

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
pub(crate) fn deploy(args: DeployArgs) -> Result<ExitCode> {
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
    let (target, file) = load_target(&cwd, words.file, &env)?;
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

/// The deploy section's `env`, from `file` or the first of PM2's default files here; its
/// warnings said on stderr.
fn load_target(cwd: &Path, file: Option<String>, env: &str) -> Result<(config::Target, String)> {
    let file = match file {
        Some(file) => file,
        None => default_file(cwd)?,
    };
    let load = kelpie_config::LoadContext {
        cwd: cwd.to_path_buf(),
        env: std::env::vars().collect(),
        profile: None,
        only: Vec::new(),
    };
    let section = kelpie_config::deploy_section(Path::new(&file), &load)?;
    let mut warnings = Vec::new();
    let target = config::target(section.as_ref(), env, &file, &mut warnings).map_err(|e| {
        let status = match e {
            config::SectionError::NoSuchEnv { .. } => Status::NotFound,
            config::SectionError::Invalid { .. } => Status::Invalid,
        };
        failed(status, e.to_string())
    })?;
    for warning in &warnings {
        eprintln!("[kelpie] warning: {warning}");
    }
    Ok((target, file))
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
