//! PM2's flags that Kelpie accepts without applying: start settings given to `restart` or
//! `reload`, and flags that have no effect in Kelpie. Each is noted in one line, never a usage
//! error, so PM2 command lines keep working.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use kelpie_config::{settings, ScriptOptions};

/// Start flags that PM2's `restart` and `reload` accept without applying them (the app keeps
/// the setting it was started with): accepted with the same one-line note, not a usage error.
/// They are the flags of the settings table's rows that say so (`OnRestart::Kept`), each made
/// hidden from `kelpie start`'s own flag (it takes what that flag takes).
#[derive(Debug, Clone, Default)]
pub(crate) struct StartOnlyFlags {
    /// The flags given, as typed (`--no-vizion`), in the order they were typed.
    given: Vec<String>,
}

impl Args for StartOnlyFlags {
    fn augment_args(command: Command) -> Command {
        let start = ScriptOptions::augment_args(Command::new("start"));
        settings::kept_on_restart().fold(command, |command, long| {
            match start.get_arguments().find(|a| a.get_long() == Some(long)) {
                // Its id is the flag's spelling: never one of a verb's own ids (snake_case).
                Some(arg) => command.arg(arg.clone().id(long).hide(true)),
                None => command,
            }
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for StartOnlyFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given: Vec<(usize, &str)> = settings::kept_on_restart()
            .filter(|long| matches.ids().any(|id| id.as_str() == *long))
            .filter(|long| matches.value_source(long) == Some(ValueSource::CommandLine))
            .map(|long| (matches.index_of(long).unwrap_or(usize::MAX), long))
            .collect();
        given.sort();
        Ok(StartOnlyFlags {
            given: given
                .into_iter()
                .map(|(_, long)| format!("--{long}"))
                .collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl StartOnlyFlags {
    /// Print the one-line note, if any of them was given.
    pub(crate) fn note(&self) {
        if !self.given.is_empty() {
            eprintln!(
                "[kelpie] a start setting, kept as the app was started: {} (delete and start again to change it)",
                self.given.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use kelpie_config::settings::OnRestart;

    /// `restart` and `reload` take exactly the start flags the settings table says they take:
    /// shown and applied (`OnRestart::Applied`), hidden and noted (`Kept`), or not at all.
    #[test]
    fn restart_and_reload_take_the_start_flags_the_settings_table_says() {
        let cli = super::super::Cli::command();
        for verb in ["restart", "reload"] {
            let command = cli.find_subcommand(verb).expect("the verb");
            let arg = |flag: &str| {
                command.get_arguments().find(|a| {
                    a.get_long() == Some(flag)
                        || a.get_all_aliases().is_some_and(|all| all.contains(&flag))
                })
            };
            for setting in settings::fields() {
                for flag in setting.flags {
                    let name = setting.name;
                    match (setting.restart, arg(flag)) {
                        (OnRestart::NotTaken, None) => {}
                        (OnRestart::Kept, Some(a)) if a.is_hide_set() => {}
                        (OnRestart::Applied, Some(a)) if !a.is_hide_set() => {}
                        (rule, taken) => panic!(
                            "`{verb}` {} --{flag}, but the row of `{name}` says {rule:?}",
                            match taken {
                                None => "does not take",
                                Some(a) if a.is_hide_set() => "takes (hidden)",
                                Some(_) => "takes",
                            }
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn the_kept_flags_are_noted_as_typed_in_their_order() {
        let command = StartOnlyFlags::augment_args(Command::new("restart"));
        let matches = command
            .try_get_matches_from([
                "restart",
                "--no-vizion",
                "--filter-env",
                "SECRET",
                "--disable-source-map-support",
            ])
            .expect("parsed");
        let flags = StartOnlyFlags::from_arg_matches(&matches).expect("the flags");
        assert_eq!(
            flags.given,
            [
                "--no-vizion",
                "--filter-env",
                "--disable-source-map-support"
            ]
        );
        let none = StartOnlyFlags::augment_args(Command::new("restart"))
            .try_get_matches_from(["restart"])
            .expect("parsed");
        assert!(StartOnlyFlags::from_arg_matches(&none)
            .expect("the flags")
            .given
            .is_empty());
    }
}
