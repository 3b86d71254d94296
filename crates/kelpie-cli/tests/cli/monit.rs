//! `monit` and `list --watch`, used the way a person uses them: in a real terminal (tmux, 80×24),
//! typing keys and reading the screen, against a real daemon with real apps.
//!
//! Each test has its own tmux server (`tmux -L <unique name>`), killed by that name at the end.
//! Without tmux the tests say so and pass, or fail under `KELPIE_NO_SKIP` (`.ci/run` installs it
//! and sets that).

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);
/// The prompt of the shell the terminal runs, to tell when a command gave the terminal back.
const PROMPT: &str = "shell$";

/// One terminal: a tmux server of its own with one 80×24 pane running `sh`.
pub(super) struct Tmux {
    socket: String,
    /// The server's socket file, removed at the end (`kill-server` leaves it).
    socket_path: Option<PathBuf>,
    /// Its configuration file (no status line, so the pane is the whole 24 rows).
    _conf: tempfile::NamedTempFile,
}

impl Tmux {
    /// A terminal whose shell uses `k`'s home; `None` (with the reason printed) without tmux.
    pub(super) fn start(k: &Kelpie) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            kelpie_testkit::skip("tmux is not installed (apt-get install tmux)");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "kelpie-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let conf = tempfile::NamedTempFile::new().expect("tmux conf");
        std::fs::write(conf.path(), "set -g status off\nset -g history-limit 0\n")
            .expect("write tmux conf");
        let mut tmux = Tmux {
            socket,
            socket_path: None,
            _conf: conf,
        };
        let shell = format!(
            "env KELPIE_HOME='{}' PS1='{PROMPT} ' sh",
            k.home().display()
        );
        let conf = tmux._conf.path().display().to_string();
        let out = tmux
            .command(&[
                "-f",
                &conf,
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
                &shell,
            ])
            .current_dir(k.dir.path())
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux.socket_path = Some(PathBuf::from(tmux.query("#{socket_path}")));
        assert_eq!(
            tmux.query("#{pane_width}x#{pane_height}"),
            "80x24",
            "the terminal is 80×24"
        );
        tmux.wait_for_screen("the shell's prompt", 5 * SECS, |s| s.contains(PROMPT));
        Some(tmux)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE");
        command
    }

    /// Type keys (tmux key names: `Enter`, `Down`, `C-c`, or literal text).
    pub(super) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        let out = self.command(&args).output().expect("tmux send-keys");
        assert!(out.status.success(), "send-keys {keys:?} failed");
    }

    /// Type a command line and Enter.
    pub(super) fn type_line(&self, line: &str) {
        self.keys(&["-l", line]);
        self.keys(&["Enter"]);
    }

    /// What the pane shows, one string per row.
    fn screen(&self) -> Vec<String> {
        let out = self
            .command(&["capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn query(&self, format: &str) -> String {
        let out = self
            .command(&["display-message", "-p", format])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Wait until the screen satisfies `cond`; the last screen is in the panic message.
    pub(super) fn wait_for_screen(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&str) -> bool,
    ) -> String {
        kelpie_testkit::wait_until(what, timeout, || {
            let screen = self.screen().join("\n");
            match cond(&screen) {
                true => Ok(screen),
                false => Err(format!("the screen:\n{screen}")),
            }
        })
    }

    /// Clear the screen and wait until only the prompt is left: a line typed before `clear`
    /// has run would be echoed and then wiped, leaving its prompt and the next on one row.
    fn clear(&self) {
        self.type_line("clear");
        self.wait_for_screen("the cleared screen", 5 * SECS, |s| {
            let rows: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
            rows.len() == 1 && rows[0].trim_end() == PROMPT
        });
    }

    /// The shell has the terminal back: the prompt on the last non-empty row, and the line
    /// discipline as the shell expects it (canonical mode and echo, not raw).
    fn assert_shell_is_back(&self, what: &str) {
        self.wait_for_screen(what, 5 * SECS, |s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_end() == PROMPT)
        });
        assert_eq!(self.query("#{pane_current_command}"), "sh");
        self.type_line("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ' '; echo");
        self.wait_for_screen("stty's answer", 5 * SECS, |s| s.contains("icanon echo"));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Our own server only, by its socket name: the pane's processes get SIGHUP.
        let _ = self.command(&["kill-server"]).output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(super) fn kelpie_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kelpie"))
}

/// The rows of the dashboard's app list (between its top and bottom borders).
pub(super) fn list_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip_while(|l| !l.starts_with("┌ Apps"))
        .skip(2)
        .take_while(|l| !l.starts_with('└'))
        .collect()
}

#[test]
fn monit_shows_the_apps_and_restarts_filters_and_quits_from_the_keyboard() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "api", "--", "--tick", "300"]);
    k.ok(&["start", &fake, "--name", "worker", "--", "--tick", "300"]);
    let api_pid = k.pid("api");
    let worker_pid = k.pid("worker");
    let Some(term) = Tmux::start(&k) else { return };

    term.type_line(&format!("{} monit", kelpie_bin().display()));
    // The list, the selected (first) app's details and its output, live.
    let screen = term.wait_for_screen(
        "the dashboard with both apps and api's logs",
        10 * SECS,
        |s| {
            let rows = list_rows(s);
            s.contains("kelpie monit")
                && rows
                    .iter()
                    .any(|r| r.contains(" api ") && r.contains("online"))
                && rows
                    .iter()
                    .any(|r| r.contains(" worker ") && r.contains("online"))
                && s.contains("api · id 0")
                && s.contains(&format!("pid      {api_pid}"))
                && s.contains(&format!("fake-app {api_pid} started"))
                && s.contains("|tick ")
        },
    );
    assert_eq!(screen.lines().count(), 24, "{screen}");
    assert!(screen.contains("api logs (live)"), "{screen}");
    assert!(
        !screen.contains(&format!("fake-app {worker_pid} started")),
        "only the selected app's logs:\n{screen}"
    );

    // `r` restarts the selected app: a new pid, shown, with the new process's output.
    term.keys(&["r"]);
    k.wait_for("api's new pid", 10 * SECS, || {
        let pid = k.pid("api");
        pid != 0 && pid != api_pid
    });
    let new_pid = k.pid("api");
    term.wait_for_screen(
        "the restart's outcome and the new process",
        10 * SECS,
        |s| {
            s.contains("restarted api (id 0)")
                && s.contains(&format!("pid      {new_pid}"))
                && s.contains(&format!("fake-app {new_pid} started"))
        },
    );
    assert_eq!(
        k.pid("worker"),
        worker_pid,
        "only the selected app restarted"
    );

    // Down selects the next app.
    term.keys(&["Down"]);
    term.wait_for_screen("worker selected", 5 * SECS, |s| {
        s.contains("worker · id 1") && s.contains(&format!("fake-app {worker_pid} started"))
    });

    // `?` opens the help, any key closes it.
    term.keys(&["?"]);
    // At 80×24, every line of it is whole.
    term.wait_for_screen("the whole help", 5 * SECS, |s| {
        s.contains("kelpie monit: keys")
            && s.contains("the outcome shows below.")
            && s.contains("since this screen opened.")
    });
    term.keys(&["x"]);
    term.wait_for_screen("the help closed", 5 * SECS, |s| {
        !s.contains("kelpie monit: keys")
    });

    // `/` then a name narrows the list; letters typed there are not actions.
    term.keys(&["Up", "/"]);
    term.keys(&["-l", "wor"]);
    term.keys(&["Enter"]);
    let screen = term.wait_for_screen("the filtered list", 5 * SECS, |s| {
        let rows = list_rows(s);
        s.contains("filter: wor")
            && rows.len() == 1
            && rows[0].contains(" worker ")
            && s.contains("worker · id 1")
    });
    assert!(
        !list_rows(&screen).iter().any(|r| r.contains(" api ")),
        "{screen}"
    );
    assert_eq!(
        k.pid("worker"),
        worker_pid,
        "typing `wor` did not act (r, s…)"
    );

    // `q` ends it and the shell has its terminal back, as it was.
    term.keys(&["q"]);
    term.assert_shell_is_back("the shell after q");
    let screen = term.screen().join("\n");
    assert!(
        !screen.contains("┌ Apps"),
        "the dashboard is gone:\n{screen}"
    );
    assert_eq!(k.pid("worker"), worker_pid);
}

#[test]
fn monit_leaves_on_ctrl_c_and_esc() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "one"]);
    let Some(term) = Tmux::start(&k) else { return };
    for key in ["C-c", "Escape"] {
        term.type_line(&format!("{} dashboard", kelpie_bin().display()));
        term.wait_for_screen("the dashboard", 10 * SECS, |s| {
            s.contains("kelpie monit") && s.contains("one · id 0")
        });
        term.keys(&[key]);
        term.assert_shell_is_back(&format!("the shell after {key}"));
        term.clear();
    }
}

/// SIGKILLs a process still alive at the end of a test (a monit that failed to end would spin).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if kelpie_testkit::alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

#[test]
fn monit_ends_on_sigterm_and_when_its_terminal_is_hung_up() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "one",
        "--",
        "--tick",
        "200",
    ]);
    let Some(term) = Tmux::start(&k) else { return };
    let shell: u32 = term.query("#{pane_pid}").parse().expect("pane pid");
    let start_monit = || {
        term.type_line(&format!("{} monit", kelpie_bin().display()));
        term.wait_for_screen("the dashboard", 10 * SECS, |s| s.contains("one · id 0"));
        let monit = kelpie_sys::children_of(shell);
        assert_eq!(monit.len(), 1, "monit is the shell's one child: {monit:?}");
        monit[0]
    };

    // SIGTERM: it leaves as with `q`, the terminal restored.
    let monit = start_monit();
    let _guard = KillOnDrop(monit);
    let _ = Command::new("kill").arg(monit.to_string()).status();
    term.assert_shell_is_back("the shell after SIGTERM");
    k.wait_for("monit to end", 5 * SECS, || !kelpie_testkit::alive(monit));

    // The terminal goes away (an SSH connection lost): it ends instead of spinning on it.
    term.clear();
    let monit = start_monit();
    let _guard = KillOnDrop(monit);
    let _ = term.command(&["kill-server"]).output();
    k.wait_for("monit to end after the hang-up", 5 * SECS, || {
        !kelpie_testkit::alive(monit)
    });
}

#[test]
fn list_watch_redraws_the_table_in_place_until_q() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "first"]);
    let Some(term) = Tmux::start(&k) else { return };

    term.type_line(&format!(
        "{} ls -w --interval 300ms",
        kelpie_bin().display()
    ));
    term.wait_for_screen("the table", 10 * SECS, |s| {
        s.starts_with("kelpie list, every 300ms") && s.contains("first") && s.contains("online")
    });
    k.ok(&["start", &fake, "--name", "second"]);
    let screen = term.wait_for_screen("the new app in the table", 10 * SECS, |s| {
        s.lines()
            .any(|l| l.contains(" second ") && l.contains("online"))
    });
    // In place: one header, one table, at the top; nothing scrolled.
    assert!(screen.starts_with("kelpie list, every 300ms"), "{screen}");
    assert_eq!(screen.matches("kelpie list, every").count(), 1, "{screen}");
    assert_eq!(screen.matches('┌').count(), 1, "{screen}");

    term.keys(&["q"]);
    term.assert_shell_is_back("the shell after q");
    // The last table stays on the screen.
    let screen = term.screen().join("\n");
    assert!(screen.contains(" second "), "{screen}");
}

#[test]
fn list_fits_an_80_column_terminal_with_a_scheduled_app_by_leaving_columns_out() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&[
        "start",
        &fake,
        "--name",
        "nightly-report-exporter",
        "--namespace",
        "reporting",
        "--cron-restart",
        "0 3 * * *",
        "--",
        "--notify",
        "STATUS=exporting yesterday's orders to the warehouse",
    ]);
    k.ok(&["start", &fake, "--name", "api", "--watch"]);
    // Piped: every column, as scripts read it.
    let piped = k.ok(&["list"]);
    assert!(piped.lines().any(|l| l.chars().count() > 80), "{piped}");
    let Some(term) = Tmux::start(&k) else { return };
    term.type_line(&format!("{} list", kelpie_bin().display()));
    let screen = term.wait_for_screen("the table", 10 * SECS, |s| s.contains('└'));
    for line in screen.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal: {line}"
        );
    }
    // What tells the apps apart and their state stays; nothing wraps onto a second row.
    for kept in ["nightly-report-exporter", "api", "status", "schedule"] {
        assert!(screen.contains(kept), "{kept}: {screen}");
    }
    assert_eq!(
        screen.lines().filter(|l| l.starts_with('│')).count(),
        3,
        "a header and two rows: {screen}"
    );
}

/// A Node app speaking `@pm2/io`'s protocol itself over its IPC channel (no npm package): two
/// metrics, one a number and one text, as the SDK sends them (every 200 ms).
const SDK_APP: &str = r#"
const metrics = {
  'Realtime users': { value: 42, unit: 'users', historic: true },
  'Heap Size': { value: '10.48', unit: 'MiB', historic: true },
};
setInterval(() => process.send({ type: 'axm:monitor', data: metrics }), 200);
setInterval(() => {}, 1000);
"#;

#[test]
fn monit_shows_the_selected_app_s_code_metrics_with_their_units() {
    if super::tools::program("node").is_none() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "plain"]);
    let script = k.write("sdk-app.js", SDK_APP);
    k.ok(&["start", &script, "--name", "sdk"]);
    let Some(term) = Tmux::start(&k) else { return };

    term.type_line(&format!("{} monit", kelpie_bin().display()));
    term.wait_for_screen("the dashboard, plain selected", 10 * SECS, |s| {
        s.contains("plain · id 0")
    });
    // An app without metrics has no such panel.
    assert!(
        !term.screen().join("\n").contains("Code metrics"),
        "{}",
        term.screen().join("\n")
    );
    term.keys(&["Down"]);
    // By name, as `describe` lists them, each with its value and unit.
    let screen = term.wait_for_screen("sdk's code metrics", 30 * SECS, |s| {
        s.contains("sdk · id 1")
            && s.contains("Code metrics (@pm2/io)")
            && s.lines()
                .any(|l| l.contains("Heap Size       10.48 MiB   Realtime users  42 users"))
    });
    assert_eq!(screen.lines().count(), 24, "{screen}");
    assert!(
        screen.contains("sdk logs (live)"),
        "the logs keep a panel:\n{screen}"
    );
    term.keys(&["q"]);
    term.assert_shell_is_back("the shell after q");
}
