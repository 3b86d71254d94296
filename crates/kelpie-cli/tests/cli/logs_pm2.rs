//! `kelpie logs` as PM2 7 prints `pm2 logs`: its header lines, the daemon's lines for every
//! start and exit of an app, and `--json` lines with the time each line was written (or none)
//! and the instance that wrote it, also in a log file several instances share.

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// The `--json` lines of `kelpie logs args...`, parsed.
fn json_lines(k: &Kelpie, args: &[&str]) -> Vec<serde_json::Value> {
    k.ok(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The daemon log's lines about app `name`.
fn daemon_lines_of(k: &Kelpie, name: &str) -> Vec<String> {
    let log = std::fs::read_to_string(k.home().join("kelpie.log")).expect("kelpie.log");
    log.lines()
        .filter(|l| l.contains(&format!("app `{name}`")))
        .map(str::to_string)
        .collect()
}

#[test]
fn logs_prints_pm2_s_headers() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "api",
        "--",
        "--quiet",
        "--print",
        "3",
    ]);
    k.wait_for("api's lines", 10 * SECS, || {
        k.ok(&["logs", "api", "--raw", "--nostream"])
            .contains("line 2")
    });
    let all = k.ok(&["logs", "--nostream"]);
    let mut lines = all.lines();
    assert_eq!(
        lines.next(),
        Some("[TAILING] Tailing last 15 lines for [all] processes (change the value with --lines option)"),
        "{all}"
    );
    // The daemon's file, named as PM2 names its pm2.log, its lines, a blank line.
    let daemon_log = k.home().join("kelpie.log");
    assert_eq!(
        lines.next(),
        Some(format!("{} last 15 lines:", daemon_log.display()).as_str()),
        "{all}"
    );
    assert!(all.contains("\n\n0|api | line 0\n"), "{all}");

    let named = k.ok(&["logs", "api", "--nostream", "--lines", "2"]);
    assert_eq!(
        named,
        "[TAILING] Tailing last 2 lines for [api] process (change the value with --lines option)\n\
         0|api | line 1\n0|api | line 2\n"
    );
    // Nothing asked for, nothing printed; `--raw` and `--json` print the lines alone.
    assert_eq!(k.ok(&["logs", "--nostream", "--lines", "0"]), "");
    assert_eq!(
        k.ok(&["logs", "api", "--raw", "--nostream"]),
        "line 0\nline 1\nline 2\n"
    );
    let json = k.ok(&["logs", "--json", "--nostream"]);
    assert!(json.lines().all(|l| l.starts_with('{')), "{json}");
}

#[test]
fn the_daemon_s_lines_show_each_start_and_exit_and_a_crash_loop_writes_fewer_than_pm2() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "steady"]);
    let pid = k.pid("steady");
    k.ok(&["stop", "steady"]);
    let all = k.ok(&["logs", "--nostream", "--lines", "50"]);
    let started = format!("kelpie: app `steady` (id 0): started in fork mode (pid {pid})");
    assert!(
        all.lines()
            .any(|l| l.starts_with("kelpie | ") && l.ends_with(&started)),
        "{started:?} not in:\n{all}"
    );
    let exited = format!("app `steady` (id 0, pid {pid}) exited");
    assert!(
        all.lines()
            .any(|l| l.starts_with("kelpie | ") && l.contains(&exited)),
        "{exited:?} not in:\n{all}"
    );

    // PM2 writes three lines per restart of a crashing app (exited, starting, online): Kelpie
    // writes one per start and one per exit.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "crash",
        "--restart-delay",
        "50",
        "--",
        "--exit-after",
        "50",
        "--exit-code",
        "3",
    ]);
    k.wait_for("five restarts", 30 * SECS, || {
        k.app("crash")["pm2_env"]["restart_time"].as_u64() >= Some(5)
    });
    k.ok(&["stop", "crash"]);
    let restarts = k.app("crash")["pm2_env"]["restart_time"]
        .as_u64()
        .expect("restart_time");
    let processes = restarts + 1;
    let lines = daemon_lines_of(&k, "crash");
    let starts = lines.iter().filter(|l| l.contains("): started in")).count() as u64;
    let exits = lines.iter().filter(|l| l.contains(") exited ")).count() as u64;
    assert_eq!(starts, processes, "{lines:#?}");
    assert_eq!(exits, processes, "{lines:#?}");
    assert!(lines.len() as u64 <= 2 * processes, "{lines:#?}");
}

#[test]
fn json_lines_carry_their_own_time_or_none() {
    let k = kelpie();
    let before = kelpie_core::format_utc(now_ms(), true);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "tk",
        "--",
        "--quiet",
        "--print",
        "3",
    ]);
    k.wait_for("the lines written", 10 * SECS, || {
        k.ok(&["logs", "tk", "--raw", "--nostream"])
            .contains("line 2")
    });
    let printed_by_ms = now_ms();
    let printed_by = kelpie_core::format_utc(printed_by_ms, true);
    // Read in a later second, the lines still carry the time they were written (memory knows
    // it): a time read, even cut to whole seconds, would be after `printed_by`.
    super::logs::wait_for_a_later_second(&k, printed_by_ms);
    let lines = json_lines(&k, &["logs", "tk", "--json", "--nostream"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        let stamp = line["timestamp"].as_str().expect("a time");
        assert!(
            before.as_str() <= stamp && stamp <= printed_by.as_str(),
            "{stamp} is not between {before} and {printed_by}: {line}"
        );
        // PM2's keys, in PM2's order.
        let text = line.to_string();
        assert!(
            text.find("\"message\"") < text.find("\"timestamp\""),
            "{text}"
        );
    }
    // A new daemon has not seen them written, and the file holds no time for them.
    super::survival::kill_daemon(&k);
    let lines = json_lines(&k, &["logs", "tk", "--json", "--nostream"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert!(line["timestamp"].is_null(), "{line}");
        assert_eq!(line["process_id"], 0, "{line}");
    }
}

#[test]
fn json_lines_of_a_shared_file_name_the_instance_that_wrote_them() {
    let k = kelpie();
    let script = k.write(
        "twins.sh",
        "echo \"hello from $NODE_APP_INSTANCE\"\necho \"bye from $NODE_APP_INSTANCE\" >&2\nexec sleep 600\n",
    );
    k.ok(&[
        "start",
        &script,
        "--name",
        "twins",
        "-i",
        "2",
        "--merge-logs",
    ]);
    // Both streams of both instances (`--raw` prints the error lines on stderr).
    k.wait_for("both instances' lines", 10 * SECS, || {
        let json = k.ok(&["logs", "twins", "--json", "--nostream"]);
        json.matches("\"hello from ").count() == 2 && json.matches("\"bye from ").count() == 2
    });
    let lines = json_lines(&k, &["logs", "twins", "--json", "--nostream"]);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for line in &lines {
        let message = line["message"].as_str().expect("a message");
        let instance: u64 = message
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("an instance number");
        // The only app: instance N is id N.
        assert_eq!(line["process_id"], instance, "{line}");
        let stream = if message.starts_with("hello") {
            "out"
        } else {
            "err"
        };
        assert_eq!(line["type"], stream, "{line}");
    }
    // The plain layout names them the same way.
    let plain = k.ok(&["logs", "twins", "--nostream"]);
    assert!(plain.contains("1|twins | hello from 1"), "{plain}");
    assert!(plain.contains("0|twins | hello from 0"), "{plain}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
