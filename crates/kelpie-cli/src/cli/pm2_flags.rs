//! PM2's flags that Kelpie accepts without applying: start settings given to `restart` or
//! `reload`, and flags that have no effect in Kelpie. Each is noted in one line, never a usage
//! error, so PM2 command lines keep working.

use clap::Args;

/// Start flags that PM2's `restart` and `reload` accept without applying them (the app keeps
/// the setting it was started with): accepted with the same one-line note, not a usage error.
#[derive(Debug, Args, Default)]
pub(crate) struct StartOnlyFlags {
    #[arg(long, hide = true)]
    no_vizion: bool,
    #[arg(long, hide = true)]
    no_pmx: bool,
    #[arg(long, hide = true)]
    source_map_support: bool,
    #[arg(long, hide = true)]
    disable_source_map_support: bool,
    #[arg(long, hide = true, value_name = "TEXT")]
    filter_env: Vec<String>,
}

impl StartOnlyFlags {
    /// Print the one-line note, if any of them was given.
    pub(crate) fn note(&self) {
        let given: Vec<&str> = [
            (self.no_vizion, "--no-vizion"),
            (self.no_pmx, "--no-pmx"),
            (self.source_map_support, "--source-map-support"),
            (
                self.disable_source_map_support,
                "--disable-source-map-support",
            ),
            (!self.filter_env.is_empty(), "--filter-env"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            eprintln!(
                "[kelpie] a start setting, kept as the app was started: {} (delete and start again to change it)",
                given.join(", ")
            );
        }
    }
}

/// PM2 flags that change nothing in Kelpie, accepted so that PM2 command lines keep working;
/// naming them prints one line (docs/differences-from-pm2.md says why each has no effect).
#[derive(Debug, Args, Default)]
pub(crate) struct IgnoredPm2Flags {
    #[arg(short = 'x', long, hide = true)]
    execute_command: bool,
    #[arg(long, hide = true)]
    no_automation: bool,
    #[arg(long, hide = true)]
    no_treekill: bool,
    #[arg(long, hide = true)]
    trace: bool,
    #[arg(long, hide = true)]
    disable_trace: bool,
    #[arg(long, hide = true)]
    v8: bool,
    #[arg(long, hide = true)]
    event_loop_inspector: bool,
    #[arg(long, hide = true)]
    deep_monitoring: bool,
    #[arg(long, hide = true)]
    attach: bool,
    #[arg(long, hide = true)]
    no_daemon: bool,
    #[arg(long, hide = true, value_name = "EXTENSIONS")]
    ext: Option<String>,
    /// PM2's `--silent` and `--no-color`: Kelpie's messages are short and colourless already
    #[arg(short = 's', long, hide = true)]
    silent: bool,
    #[arg(long, hide = true)]
    no_color: bool,
}

impl IgnoredPm2Flags {
    /// The flags given that have no effect, as typed (`--silent` and `--no-color` are not
    /// worth a note).
    pub(crate) fn given(&self) -> Vec<&'static str> {
        [
            (self.execute_command, "-x"),
            (self.no_automation, "--no-automation"),
            (self.no_treekill, "--no-treekill"),
            (self.trace, "--trace"),
            (self.disable_trace, "--disable-trace"),
            (self.v8, "--v8"),
            (self.event_loop_inspector, "--event-loop-inspector"),
            (self.deep_monitoring, "--deep-monitoring"),
            (self.attach, "--attach"),
            (self.no_daemon, "--no-daemon"),
            (self.ext.is_some(), "--ext"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    /// Print the one-line note, if any of them was given.
    pub(crate) fn note(&self) {
        let given = self.given();
        if !given.is_empty() {
            eprintln!(
                "[kelpie] no effect in Kelpie, ignored: {} (see docs/differences-from-pm2.md)",
                given.join(", ")
            );
        }
    }
}
