//! `kelpie completions <shell>`: the completion script clap_complete generates from the CLI's
//! definition, with a few lines added that complete app names; and the hidden
//! `kelpie complete-apps` those lines call.
//!
//! Whether a word is an app (`kelpie stop <TAB>`, but not `kelpie stop --only <TAB>` nor
//! `kelpie signal <TAB>`) is decided here, in Rust, from the same clap definition, so the three
//! shells' additions stay a few lines each: they pass the words typed so far to
//! `kelpie complete-apps`, offer what it prints, and fall back to the generated completion when
//! it prints nothing.

use crate::cli::Cli;
use crate::client::Client;
use anyhow::{bail, Result};
use clap::{CommandFactory, ValueEnum};
use kelpie_proto::{Home, Request, Response};
use std::process::ExitCode;

/// The shells `kelpie completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The name the scripts complete (and call back for app names).
const BIN: &str = "kelpie";

/// What each shell's script gets after the generated part (see the files for how each hooks in).
const BASH_APPS: &str = include_str!("completions/apps.bash");
const ZSH_APPS: &str = include_str!("completions/apps.zsh");
const FISH_APPS: &str = include_str!("completions/apps.fish");

/// `kelpie completions <shell>`: print the script.
pub(crate) fn completions(shell: Shell) -> Result<ExitCode> {
    out!("{}", script(shell)?);
    Ok(ExitCode::SUCCESS)
}

/// The whole script for `shell`: clap_complete's, with app names added.
pub(crate) fn script(shell: Shell) -> Result<String> {
    let generated = generated(shell)?;
    Ok(match shell {
        Shell::Bash => format!("{generated}\n{BASH_APPS}"),
        Shell::Zsh => zsh_with_apps(&generated)?,
        Shell::Fish => format!("{generated}\n{FISH_APPS}"),
    })
}

/// clap_complete's script for `shell`, from the CLI's definition.
fn generated(shell: Shell) -> Result<String> {
    let mut command = without_hidden_commands(Cli::command());
    let mut text = Vec::new();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, BIN, &mut text)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, BIN, &mut text)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, BIN, &mut text)
        }
    }
    Ok(String::from_utf8(text)?)
}

/// The CLI without its hidden commands (`daemon`, `complete-apps`, `man`), which clap_complete
/// would offer: a copy of the top command with its own settings and options and the visible
/// commands (clap cannot remove a command from one).
fn without_hidden_commands(cli: clap::Command) -> clap::Command {
    let mut pruned = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .propagate_version(true)
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    if let Some(about) = cli.get_about() {
        pruned = pruned.about(about.clone());
    }
    pruned
}

/// The first line of the generated zsh script's ending, which calls `_kelpie` (when loaded
/// from `fpath` as the file `_kelpie`) or registers it (when sourced).
const ZSH_DISPATCH: &str = "if [ \"$funcstack[1]\" = \"_kelpie\" ]; then";
/// The generated zsh completion function's first line.
const ZSH_FUNCTION: &str = "\n_kelpie() {\n";
/// Its first line once renamed, to be called by the `_kelpie` that offers app names.
const ZSH_CLAP_FUNCTION: &str = "\n_kelpie_clap() {\n";

/// zsh: `compinit` registers the function named like the file, `_kelpie`, and calls it for every
/// completion; so the generated function is renamed `_kelpie_clap`, and `_kelpie` becomes the
/// one that offers app names and otherwise calls it. The generated ending (call or register) is
/// kept, after the new function.
fn zsh_with_apps(generated: &str) -> Result<String> {
    let (Some(dispatch), 1) = (
        generated.find(ZSH_DISPATCH),
        generated.matches(ZSH_FUNCTION).count(),
    ) else {
        bail!(
            "clap_complete's zsh script does not have the shape kelpie expects (one `{}` function, then `{ZSH_DISPATCH}`)",
            ZSH_FUNCTION.trim()
        );
    };
    let (body, ending) = generated.split_at(dispatch);
    let body = body.replacen(ZSH_FUNCTION, ZSH_CLAP_FUNCTION, 1);
    Ok(format!("{body}{ZSH_APPS}\n{ending}"))
}

/// `kelpie complete-apps [-- WORDS]`: the names of the running daemon's apps, one per line,
/// each once (in id order). With `words` (the command line being completed, from `kelpie` to
/// the word before the one being completed), only when that word is an app. Nothing, and success, when no daemon runs: a
/// completion must not start one. Any other failure (a daemon of another version, a home that
/// is not ours) also prints nothing: a completion has nowhere to show an error, and the shell
/// falls back to its other completions.
pub(crate) fn complete_apps(home: &Home, words: &[String]) -> Result<ExitCode> {
    if !words.is_empty() && !is_app_position(words) {
        return Ok(ExitCode::SUCCESS);
    }
    let Ok(Some(mut client)) = Client::connect(home) else {
        return Ok(ExitCode::SUCCESS);
    };
    let Ok(Response::Processes(processes)) = client.request(&Request::List) else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut names: Vec<&str> = Vec::new();
    for process in &processes {
        if !names.contains(&process.spec.name.as_str()) {
            names.push(&process.spec.name);
        }
    }
    for name in names {
        outln!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Which positional arguments of a command are apps.
#[derive(Debug, Clone, Copy)]
enum Apps {
    /// This one (0 = the first) and every later one (`stop a b c`).
    From(usize),
    /// This one only (`scale api 3`).
    At(usize),
}

/// The commands whose arguments are apps, by name (their aliases are found through clap).
/// `start` is not here: its arguments are mostly scripts and files, which the shell completes.
const APP_COMMANDS: &[(&str, Apps)] = &[
    ("stop", Apps::From(0)),
    ("restart", Apps::From(0)),
    ("reload", Apps::From(0)),
    ("delete", Apps::From(0)),
    ("reset", Apps::From(0)),
    ("flush", Apps::From(0)),
    ("signal", Apps::From(1)),
    ("scale", Apps::At(0)),
    ("pid", Apps::At(0)),
    ("env", Apps::At(0)),
    ("id", Apps::At(0)),
    ("describe", Apps::At(0)),
    ("events", Apps::At(0)),
    ("logs", Apps::At(0)),
];

/// Whether the word after `words` (`kelpie stop --only web`) is an app: the command is one of
/// [`APP_COMMANDS`] (or an alias), and the positional argument the next word would be is one
/// of its apps. Options are skipped, with their value when they take one (`--lines 20`); the
/// next word as an option's value (`--only <TAB>`) is not an app.
fn is_app_position(words: &[String]) -> bool {
    let mut root = Cli::command();
    root.build();
    // words[0] is the program, as typed (`kelpie`, `./kelpie`).
    let Some((first, rest)) = words.get(1..).and_then(|w| w.split_first()) else {
        return false;
    };
    let Some(command) = root.find_subcommand(first) else {
        return false;
    };
    let Some(&(_, apps)) = APP_COMMANDS
        .iter()
        .find(|(name, _)| *name == command.get_name())
    else {
        return false;
    };
    let mut positionals = 0;
    let mut value_next = false;
    let mut options_done = false;
    for word in rest {
        if word == "=" && !options_done {
            // bash splits `--lines=20` into `--lines`, `=`, `20`: the option's value follows.
            value_next = true;
        } else if value_next {
            value_next = false;
        } else if options_done || word == "-" || !word.starts_with('-') {
            positionals += 1;
        } else if word == "--" {
            options_done = true;
        } else {
            value_next = takes_separate_value(command, word);
        }
    }
    !value_next
        && match apps {
            Apps::From(first) => positionals >= first,
            Apps::At(index) => positionals == index,
        }
}

/// Whether `word` (`--lines`, `-n`) is an option of `command` whose value is the next word:
/// one that needs a value, given without `=` or an attached value.
fn takes_separate_value(command: &clap::Command, word: &str) -> bool {
    let option = if let Some(long) = word.strip_prefix("--") {
        if long.contains('=') {
            return false;
        }
        command.get_arguments().find(|arg| {
            arg.get_long() == Some(long) || arg.get_all_aliases().is_some_and(|a| a.contains(&long))
        })
    } else {
        let mut chars = word.chars().skip(1);
        match (chars.next(), chars.next()) {
            (Some(short), None) => command.get_arguments().find(|arg| {
                arg.get_short() == Some(short)
                    || arg
                        .get_all_short_aliases()
                        .is_some_and(|a| a.contains(&short))
            }),
            // `-n3`, or flags run together: no separate value.
            _ => None,
        }
    };
    option.is_some_and(|arg| {
        arg.get_action().takes_values() && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_app(line: &str) -> bool {
        let words: Vec<String> = format!("kelpie {line}")
            .split_whitespace()
            .map(String::from)
            .collect();
        is_app_position(&words)
    }

    #[test]
    fn app_positions_follow_the_cli_definition() {
        assert!(at_app("stop"));
        assert!(at_app("stop api"));
        assert!(at_app("del api"));
        assert!(at_app("restart --update-env"));
        assert!(at_app("restart -a api"));
        assert!(at_app("logs --lines 20"));
        assert!(at_app("logs --lines=20"));
        assert!(at_app("signal SIGUSR2"));
        assert!(at_app("scale"));
        assert!(at_app("describe --json"));
        assert!(at_app("logs --lines = 20"));
        assert!(at_app("stop -- --weird-name"));
        assert!(!at_app(""));
        assert!(!at_app("stop --only"));
        assert!(!at_app("stop --only ="));
        assert!(!at_app("restart --name"));
        assert!(!at_app("restart --node-args"));
        assert!(!at_app("signal"));
        assert!(!at_app("scale api"));
        assert!(!at_app("describe api"));
        assert!(!at_app("start"));
        assert!(!at_app("list"));
        assert!(!at_app("nope"));
        assert!(!at_app("-v"));
    }

    /// Every command of the table exists, and the positional it names is called like an app
    /// (`target`, `targets`, `name`): a change to cli.rs that moves them fails here.
    #[test]
    fn the_app_commands_are_the_cli_s() {
        let mut root = Cli::command();
        root.build();
        for (name, apps) in APP_COMMANDS {
            let command = root
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no command `{name}`"));
            let index = match apps {
                Apps::From(i) | Apps::At(i) => *i,
            };
            let positional = command
                .get_positionals()
                .nth(index)
                .unwrap_or_else(|| panic!("`{name}` has no positional {index}"));
            assert!(
                ["target", "targets", "name"].contains(&positional.get_id().as_str()),
                "`{name}`'s positional {index} is `{}`",
                positional.get_id()
            );
        }
    }

    /// Each script calls `complete-apps`, and offers no hidden command.
    #[test]
    fn every_shell_gets_a_script_without_the_hidden_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = script(shell).expect("script");
            assert!(script.contains("kelpie complete-apps -- "), "{shell:?}");
            let generated = generated(shell).expect("generated");
            for hidden in [
                "complete-apps",
                "handoff-format",
                "handoff-formats",
                "--keeper",
            ] {
                assert!(!generated.contains(hidden), "{shell:?} offers {hidden}");
            }
            assert!(generated.contains("resurrect"), "{shell:?}");
        }
    }
}
