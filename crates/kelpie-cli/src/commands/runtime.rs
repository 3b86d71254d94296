//! `runtime`: run apps in the foreground as a container's main process (PM2's pm2-runtime).
//!
//! The apps are loaded here as `start` loads them (ecosystem files, scripts, the same flags),
//! then this process becomes the supervisor itself (`kelpie_daemon::run_foreground`): no
//! daemon in the background, no fork. Their output is printed by a thread of its own, so a
//! stdout that blocks never holds up supervision (lines are dropped and counted instead).

use super::{load_context, logs::json_line, start};
use crate::cli::RuntimeArgs;
use crate::render;
use anyhow::{bail, Result};
use kelpie_core::AppSpec;
use kelpie_daemon::{ForegroundOptions, OutputBatch, OUTPUT_QUEUE};
use kelpie_proto::{Home, LogStream, WireLogLine};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// How lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `id|name | line`, stdout lines on stdout, stderr lines on stderr.
    Prefixed,
    /// The lines alone, each on its stream.
    Raw,
    /// One JSON object per line, all on stdout.
    Json,
}

pub(super) fn runtime(home: Home, args: RuntimeArgs) -> Result<ExitCode> {
    crate::client::refuse_a_home_pm2_runs_in(&home)?;
    // The lines as the apps wrote them by default, as pm2-runtime prints them.
    let style = if args.json {
        Style::Json
    } else if args.format {
        Style::Prefixed
    } else {
        Style::Raw
    };
    // Everything that can be wrong with the apps is found here, before anything runs: a
    // missing script is an error naming it, and the exit is immediate.
    let apps = load_apps(args.start)?;
    if apps.is_empty() {
        bail!("nothing to run: the ecosystem file has no app (check --only)");
    }
    let (output, lines) = std::sync::mpsc::sync_channel(OUTPUT_QUEUE);
    let printer = std::thread::Builder::new()
        .name("kelpie-output".into())
        .spawn(move || print_lines(&lines, style))?;
    let options = ForegroundOptions {
        files: args.log_files,
        output,
    };
    let result = kelpie_daemon::run_foreground(home, apps, options);
    // The supervisor dropped its sender on the way out: the printer ends once it printed all.
    let _ = printer.join();
    Ok(ExitCode::from(result?))
}

/// The apps of the targets, as `start` reads them, without asking any daemon (names of running
/// apps mean nothing here: every target is a file or a script).
fn load_apps(mut args: crate::cli::StartArgs) -> Result<Vec<AppSpec>> {
    let argv: Vec<String> = std::env::args().collect();
    start::script_given_to_log(&mut args, &argv);
    let mut ctx = load_context(args.profile.clone(), args.only.clone())?;
    // The apps know they run under `kelpie runtime`, a container's PID 1: the built-in static
    // server then listens on every interface, as the published ports are the boundary there.
    ctx.env
        .insert(kelpie_config::RUNTIME_VARIABLE.to_string(), "1".to_string());
    let targets = if args.targets.is_empty() {
        match start::DEFAULT_FILES.iter().find(|f| Path::new(f).exists()) {
            Some(file) => vec![(*file).to_string()],
            None => bail!("nothing to run: give a script, a command or an ecosystem file (`kelpie init` writes an example)"),
        }
    } else {
        args.targets.clone()
    };
    let scripts = targets
        .iter()
        .filter(|t| !kelpie_config::is_ecosystem_file(t))
        .count();
    if scripts > 1 && args.app.name.is_some() {
        bail!("--name applies to one script; give the scripts an ecosystem file");
    }
    let mut apps = Vec::new();
    for target in &targets {
        let loaded = if kelpie_config::is_ecosystem_file(target) {
            kelpie_config::load_file(Path::new(target), &ctx)?
        } else {
            if ctx.profile.is_some() {
                bail!("--env selects an env_<profile> of an ecosystem file and cannot be used with a script; put the app in an ecosystem file (`kelpie init`)");
            }
            if let Some(hint) = start::watch_path_read_as_script(&args, target, &ctx.cwd) {
                bail!(hint);
            }
            kelpie_config::from_script(target, &args.app, &ctx)?
        };
        render::print_warnings(&loaded.warnings);
        apps.extend(loaded.apps);
    }
    Ok(apps)
}

/// Print every batch until the supervisor hangs up. Write errors (a closed stdout) drop the
/// lines: the apps keep running, as they would with no terminal at all.
fn print_lines(lines: &std::sync::mpsc::Receiver<OutputBatch>, style: Style) {
    let mut width = 0;
    while let Ok(batch) = lines.recv() {
        let _ = print_batch(&batch, style, &mut width);
    }
}

fn print_batch(batch: &OutputBatch, style: Style, width: &mut usize) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::BufWriter::new(stderr.lock());
    if batch.skipped > 0 {
        writeln!(
            err,
            "[kelpie] {} lines skipped: stdout is read more slowly than the apps write",
            batch.skipped
        )?;
    }
    // Prefixes line up as in `kelpie logs`: `0|api    | `.
    for line in &batch.lines {
        *width = (*width).max(line.pm_id.to_string().len() + 1 + line.app_name.len());
    }
    for line in &batch.lines {
        let stream: &mut dyn Write = match (style, line.stream) {
            (Style::Json, _) | (_, LogStream::Out) => &mut out,
            (_, LogStream::Err) => &mut err,
        };
        write_line(stream, line, style, *width)?;
    }
    out.flush()?;
    err.flush()
}

fn write_line(
    to: &mut dyn Write,
    line: &WireLogLine,
    style: Style,
    width: usize,
) -> std::io::Result<()> {
    match style {
        Style::Json => writeln!(to, "{}", json_line(line)),
        Style::Raw => {
            to.write_all(&line.bytes.0)?;
            to.write_all(b"\n")
        }
        Style::Prefixed => {
            let prefix = format!("{}|{}", line.pm_id, line.app_name);
            write!(to, "{prefix:<width$} | ")?;
            to.write_all(&line.bytes.0)?;
            to.write_all(b"\n")
        }
    }
}
