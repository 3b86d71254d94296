//! Shell completions and the man page. The scripts `kelpie completions bash|zsh|fish` prints run
//! in the real shells against a real daemon with two apps (`api`, `worker`): bash's completion
//! function called as bash calls it (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT), zsh's
//! through a real interactive zsh on a pseudo-terminal (zsh/zpty) pressing Tab, fish's through
//! `complete -C`. The man page is checked by a real formatter (mandoc). `complete-apps` without
//! a daemon prints nothing and starts none.
//!
//! zsh, fish and mandoc come from Debian (`.ci/run` installs them); missing, their tests skip
//! (a failure under CI). Every shell is run with a timeout and its process group killed at it.

use super::kelpie;
use super::tools::program;
use kelpie_testkit::Kelpie;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one shell may take (a loaded CI machine; each takes well under a second here).
const SHELL_TIMEOUT: Duration = Duration::from_secs(60);

/// A home whose daemon runs two apps, `api` and `worker`.
fn two_apps() -> Kelpie {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["start", &app, "--name", "api"]);
    k.ok(&["start", &app, "--name", "worker"]);
    k
}

/// PATH with the directory of the kelpie under test first: the scripts call `kelpie`.
fn path_with_kelpie() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_kelpie"))
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest))).expect("PATH")
}

/// Run `shell args…` for `k`'s home (KELPIE_HOME, this kelpie on PATH, HOME and the XDG
/// directories in the scratch dir so that no shell writes into the real home), in its own
/// process group, killed at the timeout. Requires success and an empty stderr; returns stdout.
fn run_shell(k: &Kelpie, shell: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let scratch = k.dir.path();
    let out_file = scratch.join("shell.out");
    let err_file = scratch.join("shell.err");
    let mut cmd = Command::new(shell);
    cmd.args(args)
        .env("KELPIE_HOME", k.home())
        .env("PATH", path_with_kelpie())
        .env("HOME", scratch)
        .env("XDG_CONFIG_HOME", scratch.join(".config"))
        .env("XDG_DATA_HOME", scratch.join(".local/share"))
        .env("XDG_CACHE_HOME", scratch.join(".cache"))
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).expect("stdout file"))
        .stderr(std::fs::File::create(&err_file).expect("stderr file"))
        .process_group(0);
    let mut child = cmd.spawn().expect("run the shell");
    let deadline = Instant::now() + SHELL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The whole group: zsh's pseudo-terminal shell, kelpie complete-apps...
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        // pacing: the poll of a wait that kills the shell at its deadline.
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = std::fs::read_to_string(&out_file).unwrap_or_default();
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    let what = format!("{} {args:?}", shell.display());
    let status = status.unwrap_or_else(|| {
        panic!("{what} did not finish in {SHELL_TIMEOUT:?}\nstdout:\n{out}\nstderr:\n{err}")
    });
    assert!(
        status.success() && err.is_empty(),
        "{what}: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// A shell from PATH, or a skip naming its Debian package.
fn shell(name: &str) -> Option<PathBuf> {
    let found = program(name);
    if found.is_none() {
        kelpie_testkit::skip(format!(
            "`{name}` is not installed (Debian package {name}): its completion script is not checked"
        ));
    }
    found
}

fn words(list: &str) -> BTreeSet<String> {
    list.split_whitespace().map(String::from).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// bash: `complete -p kelpie` names Kelpie's function, which, called as bash calls it, offers
/// exactly the running apps matching the word where a command takes apps (after options and
/// their values too), clap's subcommands (not the hidden ones) and options elsewhere, and no app
/// where an argument is not one (`signal <SIGNAL>`).
#[test]
fn bash_completes_the_running_apps_and_the_cli() {
    let k = two_apps();
    let bash = program("bash").expect("bash");
    let script = k.write(
        "complete.bash",
        r#"set -u
source <(kelpie completions bash)
complete -p kelpie
function=$(complete -p kelpie | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
# complete WORD...: complete the last word, as bash does on Tab; prints `line=>replies`.
complete_words() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$function" kelpie "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    echo "$COMP_LINE=>${COMPREPLY[*]}"
}
complete_words kelpie stop a
complete_words kelpie stop ""
complete_words kelpie delete w
complete_words kelpie restart --update-env ""
complete_words kelpie logs --lines 20 w
complete_words kelpie signal SIGUSR2 a
complete_words kelpie signal a
complete_words kelpie res
complete_words kelpie d
complete_words kelpie co
complete_words kelpie stop --o
complete_words kelpie completions z
"#,
    );
    let out = run_shell(&k, &bash, &["--norc", "--noprofile", &script], &[]);
    let mut lines = out.lines();
    let registered = lines.next().expect("complete -p's line");
    assert!(
        registered.starts_with("complete ")
            && registered.contains(" -F _kelpie_with_apps ")
            && registered.ends_with(" kelpie"),
        "complete -p kelpie: {registered}"
    );
    let replies: Vec<(&str, BTreeSet<String>)> = lines
        .map(|line| {
            let (typed, replies) = line.split_once("=>").expect("line=>replies");
            (typed, words(replies))
        })
        .collect();
    let expected = [
        ("kelpie stop a", set(&["api"])),
        ("kelpie stop ", set(&["api", "worker"])),
        ("kelpie delete w", set(&["worker"])),
        ("kelpie restart --update-env ", set(&["api", "worker"])),
        ("kelpie logs --lines 20 w", set(&["worker"])),
        ("kelpie signal SIGUSR2 a", set(&["api"])),
        ("kelpie signal a", set(&[])),
        ("kelpie res", set(&["restart", "reset", "resurrect"])),
        // Not the hidden `daemon`, `complete-apps`.
        ("kelpie d", set(&["delete", "deploy", "describe"])),
        ("kelpie co", set(&["completions", "conf"])),
        ("kelpie stop --o", set(&["--only"])),
        ("kelpie completions z", set(&["zsh"])),
    ];
    assert_eq!(replies.len(), expected.len(), "{out}");
    for ((typed, got), (line, want)) in replies.iter().zip(&expected) {
        assert_eq!(typed, line);
        assert_eq!(got, want, "completing `{line}`\n{out}");
    }
}

/// zsh: the script loads with compinit (`_kelpie` registered for kelpie), and Tab in a real
/// interactive zsh offers the running apps after `kelpie stop`, and clap's commands and options
/// elsewhere. Each line is completed in its own zsh on a pseudo-terminal (zsh/zpty), with
/// `compadd` wrapped to write down what it is given.
#[test]
fn zsh_completes_the_running_apps_and_the_cli() {
    let Some(zsh) = shell("zsh") else {
        return;
    };
    let k = two_apps();
    let loaded = run_shell(
        &k,
        &zsh,
        &[
            "-f",
            "-c",
            "autoload -U compinit && compinit -u -D && source <(kelpie completions zsh) \
             && print -r -- $_comps[kelpie] && whence -w _kelpie_clap",
        ],
        &[],
    );
    assert_eq!(loaded, "_kelpie\n_kelpie_clap: function\n");

    let driver = k.write(
        "tab.zsh",
        r#"# zsh -f tab.zsh LINE: type LINE and Tab in an interactive zsh; what compadd got goes to
# $CAPTURE, one per line.
zmodload zsh/zpty
zpty shell zsh -f -i
zpty -w shell 'PROMPT= ; autoload -U compinit; compinit -u -D; source <(kelpie completions zsh)'
zpty -w shell 'compadd () { local -a hits; builtin compadd -O hits "$@"; (( ${#hits} )) && print -rl -- $hits >> $CAPTURE; builtin compadd "$@" }'
zpty -w -n shell "$1"$'\t'
for i in {1..400}; do [[ -s $CAPTURE ]] && break; sleep 0.05; done
sleep 0.2
zpty -d shell
"#,
    );
    let capture = k.dir.path().join("capture");
    let capture_path = capture.display().to_string();
    for (line, want) in [
        ("kelpie stop ", set(&["api", "worker"])),
        ("kelpie stop a", set(&["api"])),
        ("kelpie logs --lines 20 w", set(&["worker"])),
        ("kelpie res", set(&["restart", "reset", "resurrect"])),
        ("kelpie stop --on", set(&["--only"])),
    ] {
        let _ = std::fs::remove_file(&capture);
        run_shell(
            &k,
            &zsh,
            &["-f", &driver, line],
            &[("CAPTURE", &capture_path)],
        );
        let got = words(&std::fs::read_to_string(&capture).unwrap_or_default());
        assert_eq!(got, want, "zsh completing `{line}`");
    }
}

/// fish: the script loads (`kelpie completions fish | source`), and `complete -C` lists the
/// running apps after `kelpie stop` (and only the matching ones), clap's commands and options
/// elsewhere, and files, not apps, where an argument is a script (`kelpie start`).
#[test]
fn fish_completes_the_running_apps_and_the_cli() {
    let Some(fish) = shell("fish") else {
        return;
    };
    let k = two_apps();
    k.write("server.js", "");
    let out = run_shell(
        &k,
        &fish,
        &[
            "--no-config",
            "-c",
            "kelpie completions fish | source; or exit 1
             for line in 'kelpie stop ' 'kelpie stop w' 'kelpie res' 'kelpie d' 'kelpie stop --on' 'kelpie start ser'
                 echo \"== $line\"
                 complete -C $line
             end",
        ],
        &[],
    );
    let mut got: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in out.lines() {
        match line.strip_prefix("== ") {
            Some(typed) => got.push((typed.to_string(), BTreeSet::new())),
            None => {
                let (_, replies) = got.last_mut().expect("a line first");
                // `name<TAB>description`
                replies.insert(line.split('\t').next().unwrap_or_default().to_string());
            }
        }
    }
    let expected = [
        ("kelpie stop ", set(&["api", "worker"])),
        ("kelpie stop w", set(&["worker"])),
        ("kelpie res", set(&["restart", "reset", "resurrect"])),
        ("kelpie d", set(&["delete", "deploy", "describe"])),
        ("kelpie stop --on", set(&["--only"])),
        ("kelpie start ser", set(&["server.js"])),
    ];
    assert_eq!(got.len(), expected.len(), "{out}");
    for ((typed, replies), (line, want)) in got.iter().zip(&expected) {
        assert_eq!(typed, line);
        assert_eq!(replies, want, "fish completing `{line}`\n{out}");
    }
}

/// `kelpie complete-apps` lists the apps of its home's daemon (KELPIE_HOME), each once; without
/// a daemon it prints nothing, exits 0 and starts none; an unknown shell is clap's error.
#[test]
fn complete_apps_never_starts_a_daemon() {
    let k = kelpie();
    for args in [
        &["complete-apps"][..],
        &["complete-apps", "--", "kelpie", "stop"],
        &["completions", "bash"],
        &["man"],
    ] {
        let out = k.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        if args[0] == "complete-apps" {
            assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
        }
    }
    assert!(
        !k.home().join("kelpie.sock").exists() && k.daemon_pid().is_none(),
        "no daemon was started"
    );
    let err = k.fails(&["completions", "tcsh"]);
    assert!(
        err.contains("invalid value 'tcsh'") && err.contains("bash, zsh, fish"),
        "{err}"
    );

    let k = two_apps();
    k.ok(&["scale", "api", "2"]);
    assert_eq!(k.ok(&["complete-apps"]), "api\nworker\n");
    assert_eq!(
        k.ok(&["complete-apps", "--", "kelpie", "stop"]),
        "api\nworker\n"
    );
    assert_eq!(k.ok(&["complete-apps", "--", "kelpie", "list"]), "");
    // Another home: its own (absent) daemon, not this one's.
    let other = kelpie();
    assert_eq!(other.ok(&["complete-apps"]), "");
}

/// `kelpie man`: kelpie(1) in roff, naming every command `kelpie --help` lists, clean for
/// mandoc's checker (no warning) and rendered by it.
#[test]
fn the_man_page_names_every_command_and_renders() {
    let k = kelpie();
    let page = k.ok(&["man"]);
    assert!(page.contains("\n.TH KELPIE 1 "), "{page}");
    let help = k.ok(&["--help"]);
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .expect("--help lists the commands")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() > 30, "{commands:?}");
    for command in &commands {
        let entry = format!("\\fBkelpie {}\\fR", command.replace('-', "\\-"));
        assert!(page.contains(&entry), "the page has no `{entry}`");
    }
    for hidden in ["complete-apps", "daemon"] {
        assert!(
            !page.contains(&format!("kelpie {}", hidden.replace('-', "\\-"))),
            "hidden {hidden}"
        );
    }

    let Some(mandoc) = program("mandoc") else {
        kelpie_testkit::skip("`mandoc` is not installed (Debian package mandoc): the man page is not linted nor rendered");
        return;
    };
    let file = k.write("kelpie.1", &page);
    let lint = Command::new(&mandoc)
        .args(["-Tlint", "-W", "warning", &file])
        .output()
        .expect("mandoc");
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "mandoc -Tlint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let rendered = Command::new(&mandoc)
        .args(["-Tutf8", "-man", &file])
        .output()
        .expect("mandoc");
    assert!(rendered.status.success());
    let text = without_overstrike(&String::from_utf8_lossy(&rendered.stdout));
    for part in [
        "KELPIE(1)",
        "NAME",
        "COMMANDS",
        "kelpie stop",
        "ENVIRONMENT",
        "KELPIE_HOME",
    ] {
        assert!(text.contains(part), "{part}:\n{text}");
    }
}

/// mandoc's text without its overstrikes (`k\bk` for bold, `_\bk` for underline).
fn without_overstrike(overstruck: &str) -> String {
    let chars: Vec<char> = overstruck.chars().collect();
    let mut plain = String::new();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '\u{8}' {
            plain.push(chars[i + 2]);
            i += 3;
        } else {
            plain.push(chars[i]);
            i += 1;
        }
    }
    plain
}
