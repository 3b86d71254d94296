//! PM2 takes any of its options on any verb (they all live on its root command), so PM2
//! command lines put start flags on `stop` (`pm2 stop api --wait-ready`, a guide's "graceful
//! stop"), `--env` on `delete`, `-i` on `logs`... Before clap reads the command line, each PM2
//! option the verb does not take is removed, with its value, and named in one line on stderr:
//! nothing a user typed is dropped silently, and nothing PM2 runs is refused.

use clap::CommandFactory;

/// Whether a PM2 option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A flag.
    Nothing,
    /// The next word (or `=value`).
    Value,
    /// `=value` only: the next word is never taken (it may be a target).
    Optional,
}

/// PM2 7's options (`lib/binaries/CLI.js`, the root commander): long name, short, value.
const PM2_OPTIONS: &[(&str, Option<char>, Takes)] = &[
    ("name", Some('n'), Takes::Value),
    ("instances", Some('i'), Takes::Value),
    ("interpreter", None, Takes::Value),
    ("interpreter-args", None, Takes::Value),
    ("node-args", None, Takes::Value),
    ("execute-command", Some('x'), Takes::Nothing),
    ("cwd", None, Takes::Value),
    ("namespace", None, Takes::Value),
    ("output", Some('o'), Takes::Value),
    ("error", Some('e'), Takes::Value),
    ("log", Some('l'), Takes::Optional),
    ("log-type", None, Takes::Value),
    ("log-date-format", None, Takes::Value),
    ("time", None, Takes::Nothing),
    ("disable-logs", None, Takes::Nothing),
    ("merge-logs", None, Takes::Nothing),
    ("env", None, Takes::Value),
    ("update-env", Some('a'), Takes::Nothing),
    ("filter-env", None, Takes::Optional),
    ("force", Some('f'), Takes::Nothing),
    ("parallel", None, Takes::Value),
    ("shutdown-with-message", None, Takes::Nothing),
    ("pid", Some('p'), Takes::Value),
    ("kill-timeout", Some('k'), Takes::Value),
    ("listen-timeout", None, Takes::Value),
    ("wait-ready", None, Takes::Nothing),
    ("max-memory-restart", None, Takes::Value),
    ("restart-delay", None, Takes::Value),
    ("exp-backoff-restart-delay", None, Takes::Value),
    ("max-restarts", None, Takes::Optional),
    ("cron", Some('c'), Takes::Value),
    ("cron-restart", None, Takes::Value),
    ("watch", None, Takes::Optional),
    ("ignore-watch", None, Takes::Value),
    ("watch-delay", None, Takes::Value),
    ("ext", None, Takes::Value),
    ("no-autostart", None, Takes::Nothing),
    ("no-autorestart", None, Takes::Nothing),
    ("stop-exit-codes", None, Takes::Value),
    ("no-treekill", None, Takes::Nothing),
    ("uid", None, Takes::Value),
    ("gid", None, Takes::Value),
    ("user", Some('u'), Takes::Value),
    ("hp", None, Takes::Value),
    ("service-name", None, Takes::Value),
    ("wait-ip", None, Takes::Nothing),
    ("no-daemon", None, Takes::Nothing),
    ("source-map-support", None, Takes::Nothing),
    ("disable-source-map-support", None, Takes::Nothing),
    ("only", None, Takes::Value),
    ("no-vizion", None, Takes::Nothing),
    ("no-pmx", None, Takes::Nothing),
    ("no-automation", None, Takes::Nothing),
    ("trace", None, Takes::Nothing),
    ("disable-trace", None, Takes::Nothing),
    ("v8", None, Takes::Nothing),
    ("event-loop-inspector", None, Takes::Nothing),
    ("deep-monitoring", None, Takes::Nothing),
    ("write", Some('w'), Takes::Nothing),
    ("attach", None, Takes::Nothing),
    ("sort", None, Takes::Value),
    ("mini-list", Some('m'), Takes::Nothing),
    ("silent", Some('s'), Takes::Nothing),
    ("no-color", None, Takes::Nothing),
];

/// The PM2 options `verb` is given that it does not take, removed from `args` (the whole
/// command line, program name first), as typed; nothing when there is no such verb.
pub(crate) fn remove_foreign_options(args: &mut Vec<String>) -> Vec<String> {
    // Most command lines have no PM2 option: the command's definition is built only for those
    // that do (`list` stays as fast as it was).
    if !args.iter().skip(1).any(|word| is_pm2_option(word)) {
        return Vec::new();
    }
    let command = super::Cli::command();
    let Some(verb_at) = args
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-'))
        .map(|i| i + 1)
    else {
        return Vec::new();
    };
    let Some(mut verb) = command.find_subcommand(&args[verb_at]) else {
        return Vec::new();
    };
    // A verb with verbs of its own (`profile cpu`): the options are the inner verb's.
    let mut verb_at = verb_at;
    while let Some(inner) = args
        .get(verb_at + 1)
        .and_then(|word| verb.find_subcommand(word))
    {
        verb = inner;
        verb_at += 1;
    }
    // Whether an option of the verb (or of its subcommands' shared flags) has this name.
    let takes_long = |name: &str| {
        verb.get_arguments().any(|a| {
            a.get_long() == Some(name)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        })
    };
    let takes_short = |short: char| {
        verb.get_arguments().any(|a| {
            a.get_short() == Some(short)
                || a.get_all_short_aliases()
                    .is_some_and(|aliases| aliases.contains(&short))
        })
    };
    let mut removed = Vec::new();
    let mut kept = args[..=verb_at].to_vec();
    let mut words = args[verb_at + 1..].iter().peekable();
    while let Some(word) = words.next() {
        if word == "--" {
            kept.push(word.clone());
            kept.extend(words.by_ref().cloned());
            break;
        }
        let option = match (word.strip_prefix("--"), word.strip_prefix('-')) {
            (Some(long), _) => {
                let (name, inline) = long
                    .split_once('=')
                    .map_or((long, false), |(n, _)| (n, true));
                PM2_OPTIONS
                    .iter()
                    .find(|(pm2, _, _)| *pm2 == name)
                    .filter(|_| !takes_long(name))
                    .map(|(_, _, takes)| (*takes, inline))
            }
            (None, Some(short)) if short.chars().count() == 1 => {
                let short = short.chars().next().unwrap_or_default();
                PM2_OPTIONS
                    .iter()
                    .find(|(_, s, _)| *s == Some(short))
                    .filter(|_| !takes_short(short))
                    .map(|(_, _, takes)| (*takes, false))
            }
            _ => None,
        };
        let Some((takes, inline)) = option else {
            kept.push(word.clone());
            continue;
        };
        let mut typed = word.clone();
        if takes == Takes::Value && !inline {
            if let Some(value) = words.next() {
                typed = format!("{typed} {value}");
            }
        }
        removed.push(typed);
    }
    if !removed.is_empty() {
        *args = kept;
    }
    removed
}

/// Whether `word` is one of PM2's options (`--wait-ready`, `--env=x`, `-i`).
fn is_pm2_option(word: &str) -> bool {
    match (word.strip_prefix("--"), word.strip_prefix('-')) {
        (Some(long), _) => {
            let name = long.split_once('=').map_or(long, |(name, _)| name);
            PM2_OPTIONS.iter().any(|(pm2, _, _)| *pm2 == name)
        }
        (None, Some(short)) => {
            let mut chars = short.chars();
            matches!((chars.next(), chars.next()), (Some(c), None)
                if PM2_OPTIONS.iter().any(|(_, s, _)| *s == Some(c)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> (Vec<String>, Vec<String>) {
        let mut args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let removed = remove_foreign_options(&mut args);
        (args, removed)
    }

    #[test]
    fn options_a_verb_does_not_take_are_removed_with_their_value() {
        let (args, removed) = run("kelpie stop api --wait-ready");
        assert_eq!(args, ["kelpie", "stop", "api"]);
        assert_eq!(removed, ["--wait-ready"]);
        let (args, removed) = run("kelpie delete api -i 4 --env production --max-restarts=3");
        assert_eq!(args, ["kelpie", "delete", "api"]);
        assert_eq!(removed, ["-i 4", "--env production", "--max-restarts=3"]);
        // What the verb takes stays, and so does everything after `--`.
        let (args, removed) = run("kelpie start app.js --wait-ready -i 2 -- --env x");
        assert!(removed.is_empty(), "{removed:?}");
        assert_eq!(args.len(), 9);
        // An option PM2 does not have is left to clap (a typo is still an error).
        let (args, removed) = run("kelpie stop api --wiat-ready");
        assert!(removed.is_empty());
        assert_eq!(args, ["kelpie", "stop", "api", "--wiat-ready"]);
        // A verb's own verb keeps its options (`-o` is PM2's `--output` elsewhere).
        let (args, removed) = run("kelpie profile cpu api -o x.cpuprofile -i 4");
        assert_eq!(
            args,
            ["kelpie", "profile", "cpu", "api", "-o", "x.cpuprofile"]
        );
        assert_eq!(removed, ["-i 4"]);
    }

    #[test]
    fn every_pm2_option_is_taken_by_every_verb() {
        let command = crate::cli::Cli::command();
        let verbs: Vec<String> = command
            .get_subcommands()
            .filter(|verb| !verb.is_hide_set())
            .map(|verb| verb.get_name().to_string())
            .collect();
        assert!(verbs.len() > 30, "{verbs:?}");
        let mut refused = Vec::new();
        for verb in &verbs {
            for (long, short, takes) in PM2_OPTIONS {
                let forms = [Some(format!("--{long}")), short.map(|s| format!("-{s}"))];
                for option in forms.into_iter().flatten() {
                    let mut args = vec!["kelpie".to_string(), verb.clone(), option.clone()];
                    if *takes == Takes::Value {
                        args.push("1".into());
                    }
                    remove_foreign_options(&mut args);
                    if let Err(e) = <crate::cli::Cli as clap::Parser>::try_parse_from(&args) {
                        use clap::error::ErrorKind;
                        if matches!(
                            e.kind(),
                            ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
                        ) {
                            refused.push(format!("{verb} {option}"));
                        }
                    }
                }
            }
        }
        assert!(refused.is_empty(), "refused: {refused:?}");
    }
}
