//! Logs: byte-exact capture, long lines, rotation without a lost or doubled line, never slowing
//! an app, a full disk, and reading (`logs`, `flush`, `reloadLogs`).

use super::{heavy, kelpie};
use kelpie_testkit::{alive, Kelpie};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// The stdout log file of app `name`, as `jlist` reports it.
fn out_log(k: &Kelpie, name: &str) -> PathBuf {
    let app = k.app(name);
    PathBuf::from(
        app["pm2_env"]["pm_out_log_path"]
            .as_str()
            .expect("out log path"),
    )
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Rotated files of `live` (`<stem>__<time>[_NNN].log[.gz]`), oldest first.
pub(super) fn archives(live: &Path) -> Vec<PathBuf> {
    let stem = live
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .trim_end_matches(".log")
        .to_string();
    let prefix = format!("{stem}__");
    let mut found: Vec<PathBuf> = std::fs::read_dir(live.parent().expect("dir"))
        .expect("read logs dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            name.starts_with(&prefix) && (name.ends_with(".log") || name.ends_with(".log.gz"))
        })
        .collect();
    found.sort();
    found
}

/// The content of a rotated file, gunzipped if it is a `.gz`; `None` if it vanished meanwhile
/// (the archiver was compressing it).
fn archive_content(archive: &Path) -> Option<Vec<u8>> {
    if !archive.to_string_lossy().ends_with(".gz") {
        // The archiver may have compressed it since it was listed.
        return std::fs::read(archive).ok().or_else(|| {
            let mut gz = archive.as_os_str().to_owned();
            gz.push(".gz");
            archive_content(Path::new(&gz))
        });
    }
    let bytes = std::fs::read(archive).ok()?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut text)
        .ok()?;
    Some(text)
}

/// Everything written to `live`: its archives (gunzipped), oldest first, then the live file.
fn all_content(live: &Path) -> Option<Vec<u8>> {
    let mut content = Vec::new();
    for archive in archives(live) {
        content.extend_from_slice(&archive_content(&archive)?);
    }
    content.extend_from_slice(&std::fs::read(live).ok()?);
    Some(content)
}

/// The elapsed time fake-app reports on stderr with `--report-elapsed`.
fn elapsed_ms(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ms "))
        .and_then(|ms| ms.trim().parse().ok())
}

#[test]
fn output_is_stored_byte_for_byte_even_when_it_is_not_utf8() {
    let k = kelpie();
    let payload: &[u8] = b"plain\n\xff\xfe\x00 invalid utf-8 and a NUL\n\r\n\x1b[31mred\x1b[0m\n\tcarriage\rreturn\nno newline at the end";
    let file = k.write("payload.bin", "");
    std::fs::write(&file, payload).expect("write payload");
    // Several apps at once, each printing its lines and the start of one more in one write and
    // then nothing (a prompt): that last line is written once the app has been quiet a while,
    // even when the writer had not yet taken the lines before it when the reader looked (it
    // waited for a next write that never came, and 1 to 5 of 10 such apps still had that line
    // unwritten seconds later).
    let names: Vec<String> = (0..8).map(|i| format!("bin{i}")).collect();
    for name in &names {
        k.ok(&[
            "start",
            &k.fake_app(),
            "--name",
            name,
            "--",
            "--quiet",
            "--cat",
            &file,
        ]);
    }
    for name in &names {
        let log = out_log(&k, name);
        k.wait_for(&format!("{name}'s payload in its log"), 5 * SECS, || {
            read(&log) == payload
        });
    }
    // `logs --raw` gives the same bytes back (each line ended by a newline).
    let shown = k
        .command(&["logs", "bin0", "--raw", "--nostream", "--lines", "100"])
        .output()
        .expect("logs");
    let mut expected = payload.to_vec();
    expected.push(b'\n');
    assert_eq!(shown.stdout, expected);
}

#[test]
fn a_one_megabyte_line_is_written_whole_without_the_daemon_growing() {
    let k = kelpie();
    let size = 1024 * 1024;
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "long",
        "--",
        "--quiet",
        "--long-line",
        &size.to_string(),
    ]);
    let log = out_log(&k, "long");
    let tail = b"\nafter the long line\n";
    k.wait_for("the long line", 5 * SECS, || read(&log).ends_with(tail));
    let content = read(&log);
    assert_eq!(content.len(), size + tail.len());
    assert!(content[..size].iter().all(|&b| b == b'x'));
    let daemon = k.daemon_pid().expect("daemon pid");
    let status = std::fs::read_to_string(format!("/proc/{daemon}/status")).expect("status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    assert!(peak_kb < 32 * 1024, "daemon peak RSS {peak_kb} kB");
}

#[test]
fn a_million_lines_through_many_rotations_arrive_once_and_in_order() {
    let k = kelpie();
    let lines = 1_000_000;
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "burst",
        "--log-max-size",
        "256K",
        "--log-retain",
        "1000",
        "--",
        "--quiet",
        "--print",
        &lines.to_string(),
    ]);
    let log = out_log(&k, "burst");
    let expected: Vec<u8> = (0..lines)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    // The last line in the live file first (a small read), then everything.
    let last = format!("line {}\n", lines - 1);
    let mut content = Vec::new();
    k.wait_for("every line on disk", 60 * SECS, || {
        read(&log).ends_with(last.as_bytes()) && {
            content = all_content(&log).unwrap_or_default();
            content.len() >= expected.len()
        }
    });
    assert!(content == expected, "lines lost, doubled or out of order");
    let rotated = archives(&log);
    assert!(rotated.len() >= 20, "{} rotations", rotated.len());
    // Rotation happens at line boundaries, before a file passes its limit.
    let sizes = rotated.iter().map(|p| {
        let text = archive_content(p).expect("a rotated file");
        assert!(text.ends_with(b"\n"));
        text.len()
    });
    assert!(sizes.into_iter().all(|s| s <= 256 * 1024));
    let describe = k.ok(&["describe", "burst"]);
    assert!(describe.contains("0 lines dropped"), "{describe}");
}

#[test]
fn an_app_that_prints_fast_is_not_slowed_down() {
    let _heavy = heavy();
    let k = kelpie();
    let args = ["--quiet", "--print", "2000000", "--report-elapsed"];
    // The same program, its stdout going straight to a file.
    let direct_out = std::fs::File::create(k.write("direct.log", "")).expect("file");
    let direct = std::process::Command::new(k.fake_app())
        .args(
            args.iter()
                .chain(&["--exit-after", "0", "--exit-code", "0"]),
        )
        .stdout(direct_out)
        .stderr(Stdio::piped())
        .output()
        .expect("run directly");
    let direct_ms = elapsed_ms(&String::from_utf8_lossy(&direct.stderr)).expect("direct time");
    let app = k.fake_app();
    let mut start = vec!["start", &app, "--name", "fast", "--no-autorestart", "--"];
    start.extend(args);
    k.ok(&start);
    let err_log = k.home().join("logs/fast-error.log");
    let mut kelpie_ms = None;
    k.wait_for("the app's report", 30 * SECS, || {
        kelpie_ms = elapsed_ms(&String::from_utf8_lossy(&read(&err_log)));
        kelpie_ms.is_some()
    });
    let kelpie_ms = kelpie_ms.expect("time under kelpie");
    // Very generous: a pipe is not a file, and a two-core machine running the other tests is
    // noisy (the real ratio is measured by bench/). A pipeline that blocked the app on the disk
    // or on the daemon would be far slower than this.
    assert!(
        kelpie_ms <= direct_ms * 10 + 3000,
        "printing took {kelpie_ms} ms under kelpie, {direct_ms} ms directly"
    );
}

#[test]
fn a_log_that_cannot_be_written_costs_lines_not_the_app() {
    let k = kelpie();
    // A FIFO that is open but never read: it takes nothing, as a hung disk would.
    let fifo = k.home().join("stuck.fifo");
    let _never_read = make_fifo(&fifo);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "stuck",
        "-o",
        &fifo.display().to_string(),
        "--",
        "--quiet",
        "--print",
        "200000",
        "--report-elapsed",
    ]);
    let err_log = k.home().join("logs/stuck-error.log");
    k.wait_for("the app finished printing", 20 * SECS, || {
        elapsed_ms(&String::from_utf8_lossy(&read(&err_log))).is_some()
    });
    // A full file that takes nothing is given up on after a few seconds (before, the app's
    // writes wait for it as for a slow disk).
    let mut describe = String::new();
    k.wait_for("the file shown as failing", 30 * SECS, || {
        describe = k.ok(&["describe", "stuck"]);
        describe.contains("FAILING: cannot write")
    });
    let dropped: u64 = describe
        .lines()
        .find(|l| l.contains("lines dropped") && l.contains("stuck.fifo"))
        .and_then(|l| l.rsplit("; ").next())
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no dropped count in {describe}"));
    assert!(dropped > 0, "{describe}");
    assert_eq!(k.status("stuck"), "online");
    assert_eq!(k.app("stuck")["pm2_env"]["restart_time"], 0);
}

/// A FIFO made at `path`, and its read end opened without blocking (O_NONBLOCK, without a
/// libc dependency in tests): the daemon opens the other end as an app's log file.
pub(super) fn make_fifo(path: &Path) -> std::fs::File {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut options = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::custom_flags(options.read(true), 0o4000);
    options.open(path).expect("open the fifo's read end")
}

/// Read `reader` on a thread of its own until `total` bytes came or none did for 30 s (lines
/// were lost), taking at most `rate` bytes a second when given (as a slow disk takes them).
pub(super) fn read_fifo(
    mut reader: std::fs::File,
    total: usize,
    rate: Option<f64>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0; 32 * 1024];
        let mut last_data = std::time::Instant::now();
        while got.len() < total && last_data.elapsed() < 30 * SECS {
            if let Some(rate) = rate {
                let ahead = got.len() as f64 / rate - started.elapsed().as_secs_f64();
                if ahead > 0.0 {
                    // pacing: no faster than `rate`, as a slow disk takes the bytes.
                    std::thread::sleep(Duration::from_secs_f64(ahead));
                }
            }
            match reader.read(&mut buf) {
                Ok(n) if n > 0 => {
                    got.extend_from_slice(&buf[..n]);
                    last_data = std::time::Instant::now();
                }
                // No writer yet (the daemon opens the file at its first line), or nothing now.
                // pacing: the poll of a non-blocking read, until the 30 s without data above.
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // pacing: as above.
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("reading the fifo: {e}"),
            }
        }
        got
    })
}

/// A small tmpfs, unmounted when dropped.
pub(super) struct Tmpfs(pub(super) PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_drops_lines_shows_the_error_and_writing_resumes_when_space_returns() {
    let k = kelpie();
    if kelpie_sys::current_uid() != 0 {
        kelpie_testkit::skip("mounting a small tmpfs needs root");
        return;
    }
    let dir = k.home().join("small-disk");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a tmpfs");
    let _tmpfs = Tmpfs(dir.clone());
    // Fill it.
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    while std::io::Write::write_all(&mut file, &[0u8; 4096]).is_ok() {}
    drop(file);
    let log = dir.join("app.log");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "full",
        "-o",
        &log.display().to_string(),
        "--",
        "--tick",
        "10",
    ]);
    let pid = k.pid("full");
    k.wait_for("the error in describe", 10 * SECS, || {
        k.ok(&["describe", "full"])
            .contains("No space left on device")
    });
    assert!(alive(pid), "the app keeps running");
    std::fs::remove_file(&filler).expect("free the space");
    k.wait_for("writing to resume", 10 * SECS, || {
        String::from_utf8_lossy(&read(&log)).contains("tick")
            && !k.ok(&["describe", "full"]).contains("FAILING")
    });
    assert_eq!(k.pid("full"), pid, "never restarted");
    let daemon_log = std::fs::read_to_string(k.home().join("kelpie.log")).expect("daemon log");
    assert!(
        daemon_log.contains("No space left on device"),
        "{daemon_log}"
    );
    assert!(
        daemon_log.contains("lines were dropped meanwhile"),
        "{daemon_log}"
    );
}

/// A `kelpie logs` process whose output lines are collected; killed when dropped.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(k: &Kelpie, args: &[&str]) -> Follower {
        let mut child = k
            .command(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("kelpie logs");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Follower { child, lines }
    }

    fn seen(&self, what: &str) -> bool {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(what))
    }

    /// Wait until it shows a tick of `app` (a `fake-app --tick`), printed after it was
    /// connected: from then on it shows every new line, the daemon's own included (it took
    /// where the daemon log ends before asking the daemon for the apps' lines).
    fn wait_connected(&self, k: &Kelpie, app: &str) {
        // `0|ticker | tick 3`, the name padded to the longest shown.
        let prefix = format!("|{app} ");
        k.wait_for(
            &format!("`kelpie logs` connected (a tick of `{app}` shown)"),
            20 * SECS,
            || {
                let lines = self.lines.lock().expect("lines");
                lines
                    .iter()
                    .any(|l| l.contains(&prefix) && l.contains("| tick"))
            },
        );
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn following_goes_on_across_a_restart_and_rotations() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "ticker",
        "--log-max-size",
        "2K",
        "--",
        "--tick",
        "5",
    ]);
    let first = k.pid("ticker");
    let follower = Follower::start(&k, &["logs", "ticker", "--lines", "0"]);
    follower.wait_connected(&k, "ticker");
    k.ok(&["restart", "ticker"]);
    let second = k.pid("ticker");
    assert_ne!(first, second);
    k.wait_for("the new process's lines", 10 * SECS, || {
        follower.seen(&format!("fake-app {second} started"))
    });
    let log = out_log(&k, "ticker");
    k.wait_for("a rotation while following", 10 * SECS, || {
        archives(&log).len() >= 2
    });
    let before = follower.lines.lock().expect("lines").len();
    k.wait_for("lines after the rotations", 10 * SECS, || {
        follower.lines.lock().expect("lines").len() > before + 10
    });
    let lines = follower.lines.lock().expect("lines").clone();
    assert!(
        lines.iter().all(|l| l.starts_with("0|ticker | ")),
        "{lines:?}"
    );
}

#[test]
fn logs_shows_the_last_lines_by_stream_app_and_format() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "api",
        "--",
        "--print",
        "30",
        "--print-err",
        "3",
    ]);
    k.ok(&[
        "start", &app, "--name", "worker", "--", "--quiet", "--print", "2",
    ]);
    // Each app's output and errors go through their own pipes: wait for all three files.
    k.wait_for("api's and worker's lines", 5 * SECS, || {
        String::from_utf8_lossy(&read(&out_log(&k, "api"))).contains("line 29")
            && k.log("api-error.log").contains("error line 2")
            && k.log("worker-out.log").contains("line 1")
    });
    let both = k.ok(&["logs", "--nostream", "--lines", "5"]);
    assert!(both.contains("0|api    | line 29"), "{both}");
    assert!(both.contains("0|api    | line 25"), "{both}");
    assert!(!both.contains("| line 24\n"), "only the last 5: {both}");
    assert!(both.contains("0|api    | error line 2"), "{both}");
    assert!(both.contains("1|worker | line 1"), "{both}");

    let out_only = k.ok(&["logs", "api", "--out", "--nostream"]);
    assert!(!out_only.contains("error line"), "{out_only}");
    // After PM2's header line (`[TAILING] Tailing last 15 lines for [api] process ...`).
    let err_only = k.ok(&["logs", "api", "--err", "--nostream"]);
    assert_eq!(err_only.lines().skip(1).count(), 3, "{err_only}");

    let by_regex = k.ok(&["logs", "/^wor/", "--nostream"]);
    assert!(
        by_regex.lines().skip(1).all(|l| l.starts_with("1|worker")),
        "{by_regex}"
    );

    let json = k.ok(&["logs", "worker", "--json", "--nostream"]);
    let first: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("a line")).expect("json line");
    assert_eq!(first["app_name"], "worker");
    assert_eq!(first["type"], "out");
    assert_eq!(first["process_id"], 1);
    assert_eq!(first["message"], "line 0");

    let raw = k.ok(&["logs", "worker", "--raw", "--nostream"]);
    assert_eq!(raw, "line 0\nline 1\n");

    let timed = k.ok(&["logs", "worker", "--nostream", "--timestamp", "YYYY"]);
    for line in timed.lines().skip(1) {
        let (year, rest) = line.split_once(' ').expect("a time prefix");
        assert!(
            year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()),
            "{line}"
        );
        assert!(rest.starts_with("1|worker | line "), "{line}");
    }

    assert!(k
        .fails(&["logs", "nope", "--nostream"])
        .contains("no app matches"));
}

#[test]
fn flush_empties_files_and_reload_logs_follows_an_external_rotation() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "f", "--", "--tick", "10"]);
    let log = out_log(&k, "f");
    k.wait_for("ticks", 5 * SECS, || {
        String::from_utf8_lossy(&read(&log)).contains("tick 3")
    });
    k.ok(&["flush", "f"]);
    assert!(
        !String::from_utf8_lossy(&read(&log)).contains("started"),
        "the start line is gone after a flush"
    );
    // An external logrotate moves the file away; until reloadLogs the old file keeps growing.
    let moved = log.with_extension("log.1");
    std::fs::rename(&log, &moved).expect("mv");
    k.ok(&["reloadLogs"]);
    k.wait_for("ticks in a new file", 5 * SECS, || {
        String::from_utf8_lossy(&read(&log)).contains("tick")
    });
    // Five more ticks in the new file: the moved one, closed, got none of them.
    let moved_size = read(&moved).len();
    let ticks_now = String::from_utf8_lossy(&read(&log)).matches("tick").count();
    k.wait_for("more ticks in the new file", 5 * SECS, || {
        String::from_utf8_lossy(&read(&log)).matches("tick").count() >= ticks_now + 5
    });
    assert_eq!(read(&moved).len(), moved_size, "the moved file is closed");
    // SIGUSR2 to the daemon does the same.
    let moved_again = log.with_extension("log.2");
    std::fs::rename(&log, &moved_again).expect("mv");
    let daemon = k.daemon_pid().expect("daemon pid");
    let sent = std::process::Command::new("kill")
        .args(["-USR2", &daemon.to_string()])
        .status()
        .expect("kill -USR2");
    assert!(sent.success());
    k.wait_for("ticks in a new file after SIGUSR2", 5 * SECS, || {
        String::from_utf8_lossy(&read(&log)).contains("tick")
    });
}

#[test]
fn flush_keeps_deleted_apps_logs_unless_named_or_asked_and_empties_the_daemons_log() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["start", &app, "--name", "gone", "--", "--tick", "10"]);
    let left = out_log(&k, "gone");
    k.wait_for("ticks", 5 * SECS, || {
        String::from_utf8_lossy(&read(&left)).contains("tick 3")
    });
    k.ok(&["delete", "gone"]);
    k.ok(&["start", &app, "--name", "kept", "--", "--tick", "10"]);
    let kept = out_log(&k, "kept");
    k.wait_for("kept ticks", 5 * SECS, || !read(&kept).is_empty());
    let rotated = left.with_file_name("gone-out__2026-01-01_00-00-00.log.gz");
    std::fs::write(&rotated, b"an archive").expect("archive");
    // Naming an app empties only its files.
    k.ok(&["flush", "kept"]);
    assert!(
        !read(&left).is_empty(),
        "flush of one app leaves the others alone"
    );
    // Everything: the listed apps and the daemon's log, not what a deleted app left.
    let daemon_log = k.home().join("kelpie.log");
    assert!(!read(&daemon_log).is_empty());
    let said = k.ok(&["flush"]);
    assert!(
        said.contains("and the daemon's log")
            && said.contains("kept 1 file(s) of apps no longer listed"),
        "{said}"
    );
    assert!(!read(&left).is_empty(), "a deleted app's log is kept");
    assert!(
        !String::from_utf8_lossy(&read(&daemon_log)).contains("daemon v"),
        "the daemon's log is emptied"
    );
    // Named, a deleted app's files are emptied; an unknown name is an error.
    let said = k.ok(&["flush", "gone"]);
    assert!(
        said.contains("emptied 1 file(s) of apps no longer listed: gone-out.log"),
        "{said}"
    );
    assert!(read(&left).is_empty(), "the deleted app's log is emptied");
    let err = k.fails(&["flush", "never-was"]);
    assert!(err.contains("no app named `never-was`"), "{err}");
    // `--deleted` empties every such file.
    std::fs::write(&left, b"again\n").expect("write");
    let said = k.ok(&["flush", "--deleted"]);
    assert!(said.contains("gone-out.log"), "{said}");
    assert!(read(&left).is_empty());
    assert_eq!(read(&rotated), b"an archive", "rotated archives are kept");
}

#[test]
fn dated_json_combined_and_disabled_logs() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "dated",
        "--log-date-format",
        "YYYY",
        "--",
        "--quiet",
        "--print",
        "2",
    ]);
    k.ok(&[
        "start",
        &app,
        "--name",
        "js",
        "--log-type",
        "json",
        "--log",
        "--",
        "--quiet",
        "--print",
        "1",
        "--print-err",
        "1",
    ]);
    k.ok(&[
        "start",
        &app,
        "--name",
        "silent",
        "--disable-logs",
        "--",
        "--print",
        "1",
    ]);
    let dated = out_log(&k, "dated");
    k.wait_for("dated lines", 5 * SECS, || {
        String::from_utf8_lossy(&read(&dated)).lines().count() == 2
    });
    for (n, line) in String::from_utf8_lossy(&read(&dated)).lines().enumerate() {
        let (year, rest) = line.split_once(": ").expect("a date prefix");
        assert!(
            year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()),
            "{line}"
        );
        assert_eq!(rest, format!("line {n}"));
    }
    let combined = k.home().join("logs/js.log");
    k.wait_for("both streams in the combined file", 5 * SECS, || {
        String::from_utf8_lossy(&read(&combined)).lines().count() == 2
    });
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&read(&combined))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let types: Vec<&str> = objects.iter().filter_map(|o| o["type"].as_str()).collect();
    assert!(
        types.contains(&"out") && types.contains(&"err"),
        "{objects:?}"
    );
    assert!(objects.iter().all(|o| o["app_name"] == "js"));
    assert_eq!(
        k.app("js")["pm2_env"]["pm_log_path"],
        combined.display().to_string()
    );

    assert!(!k.home().join("logs/silent-out.log").exists());
    assert!(k
        .ok(&["describe", "silent"])
        .contains("none (output discarded)"));
}

#[test]
fn kelpie_toml_sets_the_rotation_defaults_and_a_bad_one_is_refused() {
    let k = kelpie();
    std::fs::create_dir_all(k.home()).expect("home");
    std::fs::write(
        k.home().join("kelpie.toml"),
        "[logs]\nmax_size = \"1K\"\ncompress = false\n",
    )
    .expect("kelpie.toml");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "small",
        "--",
        "--print",
        "500",
    ]);
    let log = out_log(&k, "small");
    k.wait_for("uncompressed rotations", 5 * SECS, || {
        let found = archives(&log);
        found.len() >= 3 && found.iter().all(|p| p.to_string_lossy().ends_with(".log"))
    });
    // `reloadLogs` applies a changed file to files already open.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "ticker",
        "--",
        "--tick",
        "5",
    ]);
    std::fs::write(k.home().join("kelpie.toml"), "[logs]\nmax_size = \"0\"\n").expect("write");
    k.ok(&["reloadLogs"]);
    let ticker = out_log(&k, "ticker");
    k.wait_for("a big unrotated file", 10 * SECS, || {
        read(&ticker).len() > 2048
    });
    assert!(archives(&ticker).is_empty(), "no rotation at 1K any more");
    std::fs::write(k.home().join("kelpie.toml"), "[logs]\nmax_sise = 3\n").expect("write");
    let error = k.fails(&["reloadLogs"]);
    assert!(
        error.contains("kelpie.toml") && error.contains("max_size"),
        "{error}"
    );
}

#[test]
fn the_daemons_own_log_rotates_like_the_apps_logs() {
    let k = kelpie();
    std::fs::create_dir_all(k.home()).expect("home");
    std::fs::write(
        k.home().join("kelpie.toml"),
        "[logs]\nmax_size = \"1K\"\nretain = 2\n",
    )
    .expect("kelpie.toml");
    k.ok(&["ping"]);
    let daemon_log = k.home().join("kelpie.log");
    // A daemon that has been talking for a while: its log passes 1K, three times.
    for round in 1..=3 {
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&daemon_log)
            .expect("daemon log");
        std::io::Write::write_all(&mut log, format!("round {round}\n").repeat(200).as_bytes())
            .expect("append");
        k.wait_for("the daemon log rotated", 10 * SECS, || {
            read(&daemon_log).len() < 1024
                && String::from_utf8_lossy(&read(&daemon_log)).contains("rotated this log")
        });
    }
    k.wait_for("two compressed parts kept (retain = 2)", 5 * SECS, || {
        let parts = archives(&daemon_log);
        parts.len() == 2
            && parts
                .iter()
                .all(|p| p.to_string_lossy().ends_with(".log.gz"))
    });
    // The daemon writes to the new file.
    k.ok(&["start", &k.fake_app(), "--name", "w", "--watch"]);
    k.wait_for("a line in the new file", 5 * SECS, || {
        String::from_utf8_lossy(&read(&daemon_log)).contains("app `w`: watching")
    });
}

#[test]
fn what_an_app_prints_while_stopping_is_written_before_the_daemon_exits() {
    let k = kelpie();
    let script = k.write(
        "goodbye.sh",
        "trap 'for i in $(seq 1 20000); do echo \"bye $i\"; done; exit 0' INT TERM\necho ready\nwhile true; do sleep 0.05; done\n",
    );
    k.ok(&["start", &script, "--name", "bye"]);
    let log = out_log(&k, "bye");
    k.wait_for("the app to be ready", 5 * SECS, || {
        String::from_utf8_lossy(&read(&log)).contains("ready")
    });
    k.ok(&["kill"]);
    let text = String::from_utf8_lossy(&read(&log)).into_owned();
    assert!(
        text.ends_with("bye 20000\n"),
        "last lines: {:?}",
        text.lines().rev().take(2).collect::<Vec<_>>()
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("bye ")).count(),
        20000
    );
}

#[test]
fn retention_keeps_the_newest_rotations_even_within_one_second() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "keep",
        "--log-max-size",
        "1K",
        "--log-retain",
        "3",
        "--no-log-compress",
        "--",
        "--quiet",
        "--print",
        "20000",
    ]);
    let log = out_log(&k, "keep");
    k.wait_for("the last line", 20 * SECS, || {
        String::from_utf8_lossy(&read(&log)).ends_with("line 19999\n")
    });
    k.wait_for("pruning to settle", 10 * SECS, || archives(&log).len() == 3);
    // The kept archives and the live file are the end of the output, contiguous and in order.
    let content = String::from_utf8(all_content(&log).expect("content")).expect("utf-8");
    let numbers: Vec<u32> = content
        .lines()
        .map(|l| {
            l.trim_start_matches("line ")
                .parse()
                .expect("a numbered line")
        })
        .collect();
    assert_eq!(numbers.last(), Some(&19999));
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or disorder"
    );
}

#[test]
fn a_shared_log_file_is_shown_once_in_the_tail() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "twins",
        "-i",
        "2",
        "--merge-logs",
        "--",
        "--quiet",
        "--print",
        "3",
    ]);
    let log = out_log(&k, "twins");
    k.wait_for("both instances' lines", 5 * SECS, || {
        String::from_utf8_lossy(&read(&log)).lines().count() == 6
    });
    let shown = k.ok(&["logs", "twins", "--out", "--nostream"]);
    assert_eq!(shown.matches("| line 0\n").count(), 2, "{shown}");
    // PM2's header line, and the six lines.
    assert_eq!(shown.lines().count(), 7, "{shown}");
}

#[test]
fn logs_show_each_line_as_it_stands_in_the_file_date_and_all() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "tk",
        "--log-date-format",
        "YYYY-MM-DD HH:mm:ss",
        "--",
        "--print",
        "2",
        "--tick",
        "100000",
    ]);
    let file = out_log(&k, "tk");
    k.wait_for("the lines written", 5 * SECS, || {
        String::from_utf8_lossy(&read(&file)).contains("line 1")
    });
    let written = String::from_utf8_lossy(&read(&file)).into_owned();
    let in_file = written
        .lines()
        .find(|l| l.ends_with(": line 1"))
        .expect("a dated line")
        .to_string();
    // From memory (the recent lines), as the file has it: `0|tk | 2026-11-24 03:14:55: line 1`.
    let shown = k.ok(&["logs", "tk", "--nostream", "--lines", "5"]);
    assert!(
        shown.lines().any(|l| l.ends_with(&format!("| {in_file}"))),
        "{in_file:?} not in:\n{shown}"
    );

    // Read back from the file by a daemon that never saw the line written (the last one was
    // killed; the app lived on), `--json` carries the time the line was written, not read:
    // read in a later second, so that a time read, even cut to whole seconds as the file's
    // date is, would be after `written_by`.
    let written_by_ms = now_ms();
    let written_by = kelpie_core::format_utc(written_by_ms, true);
    wait_for_a_later_second(&k, written_by_ms);
    super::survival::kill_daemon(&k);
    let json = k.ok(&["logs", "tk", "--json", "--nostream", "--lines", "5"]);
    let line: serde_json::Value = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == in_file.as_str())
        .unwrap_or_else(|| panic!("{in_file:?} not in:\n{json}"));
    let stamp = line["timestamp"].as_str().expect("a timestamp");
    // Same format (ISO 8601, UTC, ms): the text order is the time order.
    assert!(
        stamp <= written_by.as_str(),
        "{stamp} is after {written_by}: the time read"
    );
    assert!(
        stamp.ends_with(".000Z"),
        "{stamp}: the file's date has whole seconds"
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wait until the wall clock reads a later second than `ms` (ms since the epoch).
pub(super) fn wait_for_a_later_second(k: &Kelpie, ms: u64) {
    k.wait_for(
        &format!("the wall clock past the second of {ms} ms"),
        5 * SECS,
        || now_ms() / 1000 > ms / 1000,
    );
}

#[test]
fn logs_without_a_name_shows_the_daemons_lines_too_and_follows_them() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "short",
        "--",
        "--exit-after",
        "100",
        "--exit-code",
        "3",
        "--print",
        "1",
    ]);
    k.wait_for("a crash and its restart", 10 * SECS, || {
        k.app("short")["pm2_env"]["restart_time"].as_u64() >= Some(1)
    });
    // As PM2 shows its pm2.log: which app exited, how, and what came next.
    let all = k.ok(&["logs", "--nostream", "--lines", "50"]);
    let exit = all
        .lines()
        .find(|l| l.starts_with("kelpie | ") && l.contains("app `short` (id 0, pid "))
        .unwrap_or_else(|| panic!("no exit line of the daemon's:\n{all}"));
    assert!(exit.contains("exited with code 3"), "{exit}");
    // And each start, as PM2's `App [short:0] starting in -fork mode-`.
    assert!(
        all.contains("kelpie: app `short` (id 0): started in fork mode (pid "),
        "{all}"
    );
    assert!(all.contains("0|short | line 0"), "{all}");
    // A name, --raw and --json are the apps' lines alone.
    for args in [
        &["logs", "short", "--nostream"][..],
        &["logs", "--raw", "--nostream"],
        &["logs", "--json", "--nostream"],
    ] {
        let out = k.ok(args);
        assert!(!out.contains("kelpie | "), "{args:?}: {out}");
    }

    // Following: a later exit shows as it is written, once the follower is connected (a
    // ticking app's lines show it).
    k.ok(&["stop", "short"]);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "pulse",
        "--",
        "--tick",
        "50",
    ]);
    let follower = Follower::start(&k, &["logs", "--lines", "0"]);
    follower.wait_connected(&k, "pulse");
    k.ok(&["start", "short"]);
    k.wait_for("the next exit, followed", 10 * SECS, || {
        follower.seen("exited with code 3")
    });
    drop(follower);
}

/// The dropped-lines count `describe` shows for the log file whose path contains `file`.
pub(super) fn dropped_lines(describe: &str, file: &str) -> u64 {
    describe
        .lines()
        .find(|l| l.contains("lines dropped") && l.contains(file))
        .and_then(|l| l.rsplit("; ").next())
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no dropped count for {file} in {describe}"))
}

/// Sends SIGSTOP to a process, and SIGCONT when dropped (also when the test fails).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        let sent = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("kill -STOP");
        assert!(sent.success(), "SIGSTOP to {pid}");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn a_daemon_stopped_for_seconds_loses_no_line_of_an_app_printing_fast() {
    let _heavy = heavy();
    let k = kelpie();
    // 2.5 MB/s for 8 s in lines of 100 bytes; behind its schedule (its writes waited), it
    // writes what it owes at once, as a program with a clock does.
    let lines = 200_000;
    let script = k.write(
        "paced.py",
        &format!(
            "import sys, time\nout = sys.stdout.buffer\nstart = time.monotonic()\ni = 0\n\
             while i < {lines}:\n    due = min({lines}, int((time.monotonic() - start) * 25000) + 250)\n    \
             out.write(b''.join(b'line %07d %s\\n' % (n, b'x' * 86) for n in range(i, due)))\n    \
             out.flush()\n    i = due\n    time.sleep(0.005)\n"
        ),
    );
    k.ok(&[
        "start",
        &script,
        "--name",
        "paced",
        "--interpreter",
        "python3",
        "--no-autorestart",
    ]);
    let log = out_log(&k, "paced");
    k.wait_for("the first lines on disk", 30 * SECS, || {
        !read(&log).is_empty()
    });
    // The daemon frozen mid-flood: the app fills its pipe and waits; on waking, the daemon
    // reads the backlog faster than it is written, which must slow its reading, not drop
    // lines.
    let stopped = Stopped::new(k.daemon_pid().expect("daemon pid"));
    // pacing: how long the daemon stays stopped is the fault tested.
    std::thread::sleep(4 * SECS);
    drop(stopped);
    let expected: Vec<u8> = (0..lines)
        .flat_map(|n| format!("line {n:07} {}\n", "x".repeat(86)).into_bytes())
        .collect();
    let last = format!("line {:07} ", lines - 1);
    k.wait_for("every line on disk", 120 * SECS, || {
        String::from_utf8_lossy(&read(&log)).contains(&last)
    });
    k.wait_for("the app to end", 30 * SECS, || {
        k.status("paced") == "stopped"
    });
    // The log rotates at 10 MB: its archives, then the live file.
    let content = all_content(&log).unwrap_or_default();
    assert!(
        content == expected,
        "lines lost, doubled or out of order: {} bytes of {}",
        content.len(),
        expected.len()
    );
    let describe = k.ok(&["describe", "paced"]);
    assert_eq!(dropped_lines(&describe, "paced-out.log"), 0, "{describe}");
}

#[test]
fn a_log_read_slowly_holds_the_app_back_instead_of_losing_its_lines() {
    let _heavy = heavy();
    let k = kelpie();
    // The log is a FIFO this test reads at a few MB/s: a real file that is writable but slower
    // than the app, like a slow disk.
    let fifo = k.home().join("slow.fifo");
    let reader = make_fifo(&fifo);
    let lines = 2_500_000;
    let expected: Vec<u8> = (0..lines)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let total = expected.len();
    // At most 4 MB a second, as a slow disk takes them.
    let read_back = read_fifo(reader, total, Some(4_000_000.0));
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "slow",
        "--no-autorestart",
        "-o",
        &fifo.display().to_string(),
        "--",
        "--quiet",
        "--print",
        &lines.to_string(),
        "--report-elapsed",
    ]);
    let got = read_back.join().expect("the fifo's reader");
    assert!(
        got == expected,
        "lines lost, doubled or out of order: {} bytes of {}",
        got.len(),
        total
    );
    let describe = k.ok(&["describe", "slow"]);
    assert_eq!(dropped_lines(&describe, "slow.fifo"), 0, "{describe}");
    // Held back: what the daemon buffers (its pipe, the file's pending bytes and the batch
    // being written, about 10 MiB) is far less than the app prints, so it could only finish
    // once the reader had taken the rest at its pace (well over 3 s at 4 MB/s). Printing to a
    // file takes it a fraction of that.
    let err_log = k.home().join("logs/slow-error.log");
    let mut elapsed = None;
    k.wait_for("the app's report", 30 * SECS, || {
        elapsed = elapsed_ms(&String::from_utf8_lossy(&read(&err_log)));
        elapsed.is_some()
    });
    let elapsed = elapsed.expect("elapsed");
    assert!(elapsed >= 2_000, "the app printed in {elapsed} ms");
}

/// Whether `pid` is blocked writing to a full pipe.
pub(super) fn blocked_on_pipe(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("pipe"))
}

#[test]
fn an_update_while_a_log_file_is_behind_hands_the_pipe_over_and_loses_nothing() {
    let k = kelpie();
    let fifo = k.home().join("behind.fifo");
    let reader = make_fifo(&fifo);
    // More than the pipe, the file's buffer and the FIFO hold: the app ends up waiting.
    let lines = 1_000_000;
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "behind",
        "--no-autorestart",
        "-o",
        &fifo.display().to_string(),
        "--",
        "--quiet",
        "--print",
        &lines.to_string(),
    ]);
    let pid = k.pid("behind");
    k.wait_for("the app held back by its log", 30 * SECS, || {
        blocked_on_pipe(pid)
    });
    let expected: Vec<u8> = (0..lines)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let total = expected.len();
    // The file is read again while the daemon replaces itself.
    let read_back = read_fifo(reader, total, None);
    let out = k.ok(&["update"]);
    assert!(out.contains("1 processes kept running"), "{out}");
    let got = read_back.join().expect("the fifo's reader");
    assert!(
        got == expected,
        "lines lost, doubled or out of order across the update: {}\n{}",
        super::lossless::first_difference(&got, &expected),
        String::from_utf8_lossy(&read(&k.home().join("kelpie.log")))
    );
    assert_eq!(k.pid("behind"), pid, "the same process");
    let describe = k.ok(&["describe", "behind"]);
    assert_eq!(dropped_lines(&describe, "behind.fifo"), 0, "{describe}");
}
