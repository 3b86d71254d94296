//! PM2's configuration store (`set`, `get`, `unset`, `multiset`, `conf`) and its module
//! commands (`install`, `uninstall`): Kelpie has no modules, and pm2-logrotate's work is built
//! in (its keys set the daemon-wide log rotation).

use super::call;
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use kelpie_config::module_conf::{self, LOGROTATE};
use kelpie_proto::{ConfRequest, Home, Request, Response};
use serde_json::Value;
use std::process::ExitCode;

/// The commands of this module, flattened into the CLI's.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfCommand {
    /// Set a key of the configuration store (`kelpie set pm2-logrotate:max_size 10M`)
    ///
    /// The pm2-logrotate keys (max_size, retain, compress, rotateInterval…) set the log rotation
    /// of every app without its own, at once, over kelpie.toml's [logs]; `<app>.<key>` puts the
    /// key in that app's environment and restarts it
    Set {
        /// `section:key`, `section.key` or `key`
        key: String,
        /// The value (stored as text)
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Set several keys at once: `kelpie multiset "k1 v1 k2 v2"`
    Multiset {
        /// Pairs of key and value, separated by spaces (a value in double quotes may hold spaces)
        pairs: String,
    },
    /// Show the configuration store, a section of it, or one value
    Get {
        /// `section:key`, a section, or nothing (or `all`) for everything
        key: Option<String>,
    },
    /// Remove a key from the configuration store (`all`: every key)
    Unset {
        /// `section:key`, a section, or `all`
        key: String,
    },
    /// Without arguments show the configuration store; with a key show it, with a value set it
    #[command(alias = "config")]
    Conf {
        /// `section:key`
        key: Option<String>,
        /// A value to set
        #[arg(allow_hyphen_values = true)]
        value: Option<String>,
    },
    /// PM2 modules: pm2-logrotate and pm2-server-monit, whose work is built in
    ///
    /// `kelpie install pm2-logrotate` says how rotation is configured, `install
    /// pm2-server-monit` where the host's metrics are shown; other modules fail with what Kelpie
    /// offers instead
    #[command(alias = "module:install")]
    Install {
        /// The module's name
        module: String,
        /// PM2's install flags (`--tarball`, `--safe`…): accepted, nothing is installed
        #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// PM2 modules: nothing to uninstall (pm2-logrotate's and pm2-server-monit's work is built in)
    #[command(alias = "module:uninstall")]
    Uninstall {
        /// The module's name
        module: String,
    },
}

/// Run one of these commands.
pub(crate) fn run(home: &Home, command: ConfCommand) -> Result<ExitCode> {
    match command {
        ConfCommand::Set { key, value } => set(home, vec![(key, value)]),
        ConfCommand::Multiset { pairs } => {
            let pairs =
                module_conf::parse_multiset(&pairs).map_err(|e| anyhow!("multiset: {e}"))?;
            set(home, pairs)
        }
        ConfCommand::Get { key } => get(home, key.as_deref()),
        ConfCommand::Unset { key } => {
            let store = ask(home, ConfRequest::Unset { key })?.0;
            display(&store, None);
            Ok(ExitCode::SUCCESS)
        }
        ConfCommand::Conf { key, value } => match (key, value) {
            (Some(key), Some(value)) => set(home, vec![(key, value)]),
            (key, _) => get(home, key.as_deref()),
        },
        ConfCommand::Install { module, .. } => install(&module),
        ConfCommand::Uninstall { module } => uninstall(&module),
    }
}

/// The store, the instances restarted and the notes of a conf request.
fn ask(home: &Home, request: ConfRequest) -> Result<(Value, Vec<u32>, Vec<String>)> {
    match call(home, &Request::Conf(request))? {
        Response::Conf {
            store,
            restarted,
            notes,
        } => Ok((store, restarted, notes)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

fn set(home: &Home, pairs: Vec<(String, String)>) -> Result<ExitCode> {
    // The section of the first key, shown after the change (as PM2 does).
    let section = pairs
        .first()
        .and_then(|(key, _)| module_conf::split_key(key).ok())
        .filter(|parts| parts.len() > 1)
        .map(|parts| parts[0].clone());
    let (store, restarted, notes) = ask(home, ConfRequest::Set { pairs })?;
    for note in &notes {
        outln!("[kelpie] {note}");
    }
    if !restarted.is_empty() {
        let ids: Vec<String> = restarted.iter().map(u32::to_string).collect();
        outln!(
            "[kelpie] {} restarted with the new value in its environment (ids: {})",
            section.as_deref().unwrap_or("app"),
            ids.join(", ")
        );
    }
    if section.is_some() {
        outln!("[kelpie] Setting changed");
    }
    display(&store, section.as_deref());
    Ok(ExitCode::SUCCESS)
}

fn get(home: &Home, key: Option<&str>) -> Result<ExitCode> {
    let store = ask(home, ConfRequest::Get)?.0;
    let Some(key) = key.filter(|k| *k != "all") else {
        display(&store, None);
        return Ok(ExitCode::SUCCESS);
    };
    let map = store.as_object().cloned().unwrap_or_default();
    let Some(value) = module_conf::get(&map, key) else {
        bail!("no value for `{key}` in the configuration store (`kelpie get` lists them)");
    };
    let parts = module_conf::split_key(key).map_err(|e| anyhow!(e))?;
    match parts.split_first() {
        Some((module, rest)) if !rest.is_empty() => {
            outln!(
                "Value for module {module} key {}: {}",
                rest.join("."),
                text(value)
            );
        }
        _ if value.is_object() => {
            display(&store, Some(key));
            outln!("Modules configuration. Copy/Paste line to edit values.");
        }
        _ => outln!("{}", text(value)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A stored value as shown: strings as they are, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as typed back into a shell.
fn shell_word(value: &Value) -> String {
    let text = text(value);
    if text.is_empty()
        || text.contains(|c: char| c.is_whitespace() || "\"'$`\\;&|<>*?#".contains(c))
    {
        format!("'{}'", text.replace('\'', r"'\''"))
    } else {
        text
    }
}

/// The store as PM2 shows it, one `$ kelpie set` line per key, a section at a time (only
/// `section` when given).
fn display(store: &Value, section: Option<&str>) {
    let Some(map) = store.as_object() else {
        return;
    };
    for (name, value) in map {
        if section.is_some_and(|only| only != name) {
            continue;
        }
        match value {
            Value::Object(keys) => {
                outln!("Module: {name}");
                for (key, value) in keys {
                    outln!("$ kelpie set {name}:{key} {}", shell_word(value));
                }
            }
            other => outln!("$ kelpie set {name} {}", shell_word(other)),
        }
    }
}

/// How to configure the built-in rotation, for `install` and `uninstall`.
const ROTATION_HOWTO: &str = "\
Configure it as with pm2-logrotate, taking effect at once for every app without its own settings:
  kelpie set pm2-logrotate:max_size 10M            # rotate at this size (0: never by size)
  kelpie set pm2-logrotate:retain 30               # rotated files kept per log file
  kelpie set pm2-logrotate:compress true           # gzip rotated files
  kelpie set pm2-logrotate:rotateInterval '0 0 * * *'   # daily at midnight (or hourly, 6h, never)
or in the [logs] section of <home>/kelpie.toml (max_size, retain, compress, rotate_interval), or
per app with log_max_size, log_retain, log_compress and log_rotate_interval. See docs/logs.md.";

fn install(module: &str) -> Result<ExitCode> {
    if module == LOGROTATE || module.starts_with("pm2-logrotate@") {
        outln!(
            "[kelpie] Nothing to install: log rotation is built into Kelpie and on by default \
             (10M, 10 files kept, gzip, daily at midnight)."
        );
        outln!("{ROTATION_HOWTO}");
        return Ok(ExitCode::SUCCESS);
    }
    if module == SERVER_MONIT || module.starts_with("pm2-server-monit@") {
        outln!(
            "[kelpie] Nothing to install: the host's metrics are built into Kelpie and always on."
        );
        outln!("{SERVER_MONIT_HOWTO}");
        return Ok(ExitCode::SUCCESS);
    }
    let instead = match module.trim_start_matches('@') {
        m if m.contains("monit") || m.contains("prometheus") || m.contains("metrics") || m.starts_with("pm2/io") || m == "pm2-io" || m.contains("pmx") => {
            "\nFor metrics: `kelpie web` serves Prometheus metrics at /metrics (cpu, memory, restarts, and what apps publish), an HTTP API and a dashboard; `kelpie monit` shows them in the terminal."
        }
        m if m.contains("auto-pull") || m.contains("deploy") => {
            "\nTo restart on changes: `kelpie start <app> --watch`; to replace the daemon's program: `kelpie update`."
        }
        _ => "",
    };
    eprintln!(
        "kelpie: error: cannot install `{module}`: Kelpie has no module system. The PM2 modules it knows are pm2-logrotate and pm2-server-monit, whose work is built in (`kelpie install <module>` says how to use it).{instead}\nTo run another program next to your apps, start it as an app: `kelpie start <command> --name <name>`."
    );
    Ok(ExitCode::FAILURE)
}

/// PM2's module that adds the host's figures to `pm2 ls` and pm2.io.
const SERVER_MONIT: &str = "pm2-server-monit";

/// Where Kelpie shows what pm2-server-monit collects.
const SERVER_MONIT_HOWTO: &str = "The host's cpu, memory, load, disk and network rates are shown under `kelpie list` (and `list --watch`), on the second line of `kelpie monit` and on `kelpie web`'s page (GET /api/host), and `kelpie web` serves them at /metrics under node_exporter's names (node_cpu_seconds_total, node_load1, node_memory_MemAvailable_bytes, node_network_receive_bytes_total, node_disk_read_bytes_total, node_filesystem_avail_bytes...).";

fn uninstall(module: &str) -> Result<ExitCode> {
    if module == LOGROTATE {
        outln!(
            "[kelpie] Nothing to uninstall: log rotation is built into Kelpie. To stop rotating \
             by size and by time: `kelpie set pm2-logrotate:max_size 0` and \
             `kelpie set pm2-logrotate:rotateInterval never`."
        );
        return Ok(ExitCode::SUCCESS);
    }
    if module == SERVER_MONIT {
        outln!("[kelpie] Nothing to uninstall: the host's metrics are built into Kelpie (reading them costs a few small /proc reads a second).");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "kelpie: error: `{module}` is not installed: Kelpie has no module system (pm2-logrotate's rotation is built in)."
    );
    Ok(ExitCode::FAILURE)
}
