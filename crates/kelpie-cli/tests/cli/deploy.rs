//! `kelpie deploy` against real sshds on 127.0.0.1 and throw-away users (the lab:
//! `deploy_harness.rs`), as deploy.md §5's scenarios T1–T13: set-up, release dirs switched
//! only after the apps are ready, zero failed requests under load, revert, failing hooks, the
//! lock, two hosts in parallel behind a barrier, a bad config refused before any connection,
//! and PM2's words (`update`, `curr`, `prev`, `list`, `exec`).

use super::deploy_harness::{
    deploys, get, is_release_link, read, readlink, releases, tail, wait_body, Exec, Lab, Load,
    DEPLOY_TIMEOUT,
};
use super::{free_port, heavy};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(1);

/// The production env's body for `version`: `$GREETING` arrives byte for byte.
fn body(version: &str) -> String {
    format!("{version}|it's \"q\" $HOME !\n")
}

/// Wait until `path` exists (or not), at most `timeout`.
fn wait_path(path: &Path, exists: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while path.exists() != exists {
        if Instant::now() >= deadline {
            return false;
        }
        // pacing: the deploy harness's poll (its caller says what a timeout means).
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The words of `text` (split on anything but letters and digits).
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Assert that a load saw no failure, and enough answers to mean something.
fn assert_no_failed_request(seen: &super::deploy_harness::Seen, what: &str) {
    assert!(
        seen.failed() == 0 && seen.ok() > 50,
        "{what}: requests failed (or too few answered): {}",
        seen.describe()
    );
}

/// The lab itself, without `kelpie deploy`: logins with the key, the login shell's PATH, the
/// repo readable by the user; and nothing left of the user after drop.
#[test]
fn the_lab_logs_in_and_leaves_nothing_behind() {
    let Some(lab) = Lab::new("kdtz", 1) else {
        return;
    };
    let user = &lab.users[0];
    let exec = lab.ssh(user, lab.port(0), "id -un; echo $HOME");
    assert!(exec.ok(), "{}", exec.describe());
    assert_eq!(exec.stdout, format!("kdtz1\n{}\n", user.home.display()));
    // The login shell (su -) finds the user's kelpie, as deploy hooks will.
    let exec = user.shell("command -v kelpie");
    assert_eq!(
        exec.stdout.trim(),
        format!("{}/bin/kelpie", user.home.display())
    );
    assert!(
        lab.sshds[0].accepted() >= 2,
        "{}",
        tail(&lab.sshds[0].log, 10)
    );
    let home = user.home.clone();
    drop(lab);
    assert!(!home.exists(), "the user's home is left behind");
    let id = Command::new("id")
        .args(["-u", "kdtz1"])
        .output()
        .expect("id");
    assert!(!id.status.success(), "the user kdtz1 is left behind");
}

/// T1–T7, T12, T13 on one host, in order: each step starts from the state the last one left.
/// Also: every hook (post-setup, pre-deploy-local, pre-deploy, post-deploy) sees the env, the
/// remote ones `SHARED`; post-deploy runs in the new release; a hook's 127 gives the PATH hint;
/// a failing pre-deploy-local connects nowhere; an unknown ref; Ctrl-C releases the lock;
/// `--force` over local changes; `--json`; a `user@host:port` host; `curr` through a pipe.
#[test]
fn one_host_setup_deploy_reload_revert_failures_lock_and_pm2_words() {
    let Some(lab) = Lab::new("kdta", 1) else {
        return;
    };
    let user = &lab.users[0];
    let app = user.path("app");
    let (v1, v2, v3) = (&lab.shas.v1, &lab.shas.v2, &lab.shas.v3);
    let web = lab.web;

    // ---- T1: setup, twice.
    lab.deploy_ok(&["production", "setup"]);
    for dir in ["releases", "repo", "shared/logs", "shared/pids"] {
        assert!(app.join(dir).is_dir(), "setup made no {dir}/");
    }
    for link in ["current", "source"] {
        assert!(
            app.join(link)
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()),
            "{link} is not a symlink"
        );
    }
    let first = readlink(&app.join("current"));
    assert!(is_release_link(&first), "current -> {first:?}");
    assert_eq!(
        app.join("source").canonicalize().ok(),
        app.join("current").canonicalize().ok(),
        "source does not lead to current"
    );
    assert_eq!(
        read(&app.join("current/REVISION")),
        *v2,
        "setup builds origin/main"
    );
    let after_setup = releases(&app);
    assert!(!user.runs("node"), "setup started the apps");
    // post-setup ran on the host with the env and SHARED.
    assert_eq!(
        std::fs::read_to_string(user.path("post_setup")).unwrap_or_default(),
        format!("it's \"q\" $HOME !|{}/shared", app.display()),
        "post-setup's $GREETING|$SHARED"
    );
    assert!(
        deploys(&app).is_empty(),
        "setup records a deploy: {:?}",
        deploys(&app)
    );
    lab.deploy_ok(&["production", "setup"]);
    assert_eq!(
        releases(&app),
        after_setup,
        "a second setup changed releases/"
    );
    assert_eq!(readlink(&app.join("current")), first);

    let _heavy = heavy();

    // ---- T2: deploy v1; the numeric port worked (PM2 would go to :22), the env's quoting survived.
    let exec = lab.deploy_ok(&["production", "ref", "v1"]);
    assert!(
        !exec.stdout.trim().is_empty(),
        "no summary line: {}",
        exec.describe()
    );
    wait_body(web, &body("v1"), 5 * SECS).unwrap_or_else(|e| panic!("{e}\n{}", lab.diagnostics()));
    assert_eq!(
        std::fs::read_to_string(user.path("greeting")).unwrap_or_default(),
        "it's \"q\" $HOME !",
        "post-deploy's $GREETING"
    );
    assert_eq!(
        lab.deploy_ok(&["production", "curr"]).stdout.trim(),
        lab.short("v1")
    );
    let v1_release = readlink(&app.join("current"));
    assert!(
        is_release_link(&v1_release) && v1_release != first,
        "current -> {v1_release}"
    );
    assert_eq!(read(&app.join("current/REVISION")), *v1);
    assert_eq!(deploys(&app), vec![v1.clone()]);
    // pre-deploy-local (here) and pre-deploy (there) saw the env, pre-deploy SHARED too;
    // post-deploy ran in the new release, not via `current`.
    assert_eq!(
        std::fs::read_to_string(lab.dir.path().join("local")).unwrap_or_default(),
        "it's \"q\" $HOME !",
        "pre-deploy-local's $GREETING"
    );
    assert_eq!(
        std::fs::read_to_string(user.path("pre")).unwrap_or_default(),
        format!("it's \"q\" $HOME !|{}/shared", app.display()),
        "pre-deploy's $GREETING|$SHARED"
    );
    assert_eq!(
        read(&user.path("post_cwd")),
        format!("{}/{v1_release}", app.display())
    );

    // ---- T3: update to v2 under load: no failed request.
    let load = Load::start(web);
    load.warm(50);
    // pacing: the load runs a second before the deploy, and half a second after it.
    std::thread::sleep(SECS);
    let exec = lab.deploy_ok(&["production", "ref", "v2"]);
    let answers: Vec<_> = (0..10).map(|_| get(web)).collect();
    // pacing: as above.
    std::thread::sleep(SECS / 2);
    let seen = load.finish();
    eprintln!(
        "T3: deploy of v2 took {:.1?} under load: {}",
        exec.took,
        seen.describe()
    );
    assert_no_failed_request(&seen, "T3 deploy v2");
    assert!(
        seen.bodies
            .iter()
            .any(|b| b.as_deref() == Ok(body("v1").as_str())),
        "the load never saw v1: it did not span the switch"
    );
    assert!(
        answers
            .iter()
            .all(|a| a.as_deref() == Ok(body("v2").as_str())),
        "after the deploy of v2 ended: {answers:?}\n{}",
        exec.describe()
    );
    let list = lab.deploy_ok(&["production", "list"]).stdout;
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines.len() >= 2 && lines[0] == format!("0\t{v2}") && lines[1] == format!("1\t{v1}"),
        "list: {list:?}"
    );
    assert_eq!(read(&app.join("current/REVISION")), *v2);
    let v2_release = readlink(&app.join("current"));

    // ---- T4: revert under load: back to v1's release dir.
    let load = Load::start(web);
    load.warm(50);
    let exec = lab.deploy_ok(&["production", "revert", "1"]);
    let after = get(web);
    let seen = load.finish();
    eprintln!(
        "T4: revert took {:.1?} under load: {}",
        exec.took,
        seen.describe()
    );
    assert_no_failed_request(&seen, "T4 revert");
    assert_eq!(
        after.as_deref(),
        Ok(body("v1").as_str()),
        "after the revert"
    );
    assert_eq!(
        readlink(&app.join("current")),
        v1_release,
        "the revert did not reuse v1's release"
    );
    assert!(
        app.join(&v2_release).is_dir(),
        "the release reverted from was removed"
    );
    assert_eq!(lab.deploy_ok(&["production", "prev"]).stdout.trim(), *v2);
    assert_eq!(deploys(&app).last(), Some(v1));
    assert_eq!(
        lab.deploy_ok(&["production", "curr"]).stdout.trim(),
        lab.short("v1")
    );

    // ---- T5: a failing post-deploy changes nothing that runs, and says where and why.
    let current = readlink(&app.join("current"));
    let pids = user.pids("web");
    assert_eq!(pids.len(), 2, "web's pids: {pids:?}");
    let recorded = deploys(&app);
    let exec = lab.deploy_expect(&["broken", "ref", "v2"], 1);
    for needle in ["127.0.0.1", user.name.as_str(), "post-deploy"] {
        assert!(
            exec.stderr.contains(needle),
            "stderr does not name {needle:?}: {}",
            exec.describe()
        );
    }
    assert!(
        words(&exec.stderr).contains(&"3"),
        "stderr does not give the hook's exit status 3: {}",
        exec.describe()
    );
    assert_eq!(
        readlink(&app.join("current")),
        current,
        "a failed deploy switched current"
    );
    assert_eq!(
        user.pids("web"),
        pids,
        "a failed post-deploy restarted the apps"
    );
    assert_eq!(
        deploys(&app),
        recorded,
        "a failed deploy was recorded in .deploys"
    );
    assert_eq!(get(web).as_deref(), Ok(body("v1").as_str()));
    let failed: Vec<String> = releases(&app)
        .into_iter()
        .filter(|r| app.join("releases").join(r).join("FAILED").exists())
        .collect();
    assert!(
        !failed.is_empty(),
        "no releases/*/FAILED: {:?}",
        releases(&app)
    );
    assert!(
        !app.join(".kelpie-deploy/lock").exists(),
        "the lock is left behind"
    );

    // ---- T6: a release whose apps never get ready: never switched, never served.
    let load = Load::start(web);
    load.warm(50);
    let exec = lab.deploy_expect(&["production", "ref", "v3"], 1);
    // pacing: the load runs on half a second after the failed deploy.
    std::thread::sleep(SECS / 2);
    let seen = load.finish();
    eprintln!(
        "T6: deploy of v3 failed after {:.1?} under load: {}",
        exec.took,
        seen.describe()
    );
    assert_no_failed_request(&seen, "T6 deploy of v3");
    assert!(
        seen.bodies
            .iter()
            .all(|b| b.as_deref() == Ok(body("v1").as_str())),
        "something else than v1 was served: {}\n{}",
        seen.describe(),
        exec.describe()
    );
    assert_eq!(
        readlink(&app.join("current")),
        current,
        "v3 was switched to"
    );
    for release in releases(&app) {
        let dir = app.join("releases").join(&release);
        if read(&dir.join("REVISION")) == *v3 {
            assert!(
                dir.join("FAILED").exists(),
                "v3's release {release} is not marked FAILED"
            );
        }
    }
    assert_eq!(deploys(&app), recorded, "v3 was recorded in .deploys");
    assert!(
        !app.join(".kelpie-deploy/lock").exists(),
        "the lock is left behind"
    );

    // A hook's command not found (127): exit 1, with the hint about the PATH of non-interactive
    // SSH; nothing changed. (v3's failed activation may have reloaded the apps: pids again.)
    let pids = user.pids("web");
    let exec = lab.deploy_expect(&["notfound", "ref", "v2"], 1);
    assert!(
        words(&exec.stderr).contains(&"127") && exec.stderr.contains("PATH"),
        "no exit status 127 and PATH hint: {}",
        exec.describe()
    );
    assert_eq!(readlink(&app.join("current")), current);
    assert_eq!(
        user.pids("web"),
        pids,
        "a failed post-deploy restarted the apps"
    );
    // pre-deploy-local fails: exit 1 before any connection.
    let logins = lab.sshds[0].accepted();
    let exec = lab.deploy_expect(&["localfail", "ref", "v2"], 1);
    assert_eq!(
        lab.sshds[0].accepted(),
        logins,
        "a failed pre-deploy-local still logged in: {}",
        exec.describe()
    );
    assert_eq!(readlink(&app.join("current")), current);

    // An unknown ref: exit 1 naming it; nothing changed, no lock left.
    let exec = lab.deploy_expect(&["production", "ref", "nosuchref"], 1);
    assert!(exec.output().contains("nosuchref"), "{}", exec.describe());
    assert_eq!(readlink(&app.join("current")), current);
    assert_eq!(deploys(&app), recorded);
    assert!(
        !app.join(".kelpie-deploy/lock").exists(),
        "the lock is left behind"
    );

    // ---- T7: the lock. A second deploy while one runs: exit 5 at once, naming the holder.
    let lock = app.join(".kelpie-deploy/lock");
    let slow = lab.spawn_deploy(&["slow", "ref", "v2"]);
    assert!(
        wait_path(&lock, true, 15 * SECS),
        "the slow deploy took no lock"
    );
    let second = lab.deploy(&["production", "ref", "v2"]);
    lab.expect(&second, 5);
    // "At once": it ended while the slow deploy (its `sleep 6`) still held the lock, so it did
    // not wait for it. A bound in seconds would measure this machine's SSH handshakes instead.
    assert!(
        lock.exists(),
        "the locked-out deploy ended only after the lock was let go ({:?})",
        second.took
    );
    let said = second.output();
    for needle in ["locked", "root@", "production", "unlock"] {
        assert!(
            said.contains(needle),
            "the lock message lacks {needle:?}: {}",
            second.describe()
        );
    }
    let slow = slow.wait(DEPLOY_TIMEOUT);
    lab.expect(&slow, 0);
    assert!(!lock.exists(), "the lock is left behind");
    lab.deploy_ok(&["production", "ref", "v2"]);
    assert_eq!(read(&app.join("current/REVISION")), *v2);

    // kill -9 of a deploy leaves its lock: refused until `unlock`.
    let slow = lab.spawn_deploy(&["slow", "ref", "v2"]);
    assert!(
        wait_path(&lock, true, 15 * SECS),
        "the slow deploy took no lock"
    );
    let deadline = Instant::now() + 10 * SECS;
    while !user.runs("sleep") && Instant::now() < deadline {
        // pacing: the deploy harness's poll (killed at its deadline anyway).
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = slow.kill9();
    let refused = lab.deploy(&["production", "ref", "v2"]);
    lab.expect(&refused, 5);
    // What the killed deploy left running on the host (its pre-deploy's sleep) ends first.
    let deadline = Instant::now() + 15 * SECS;
    while user.runs("sleep") && Instant::now() < deadline {
        // pacing: the deploy harness's poll.
        std::thread::sleep(Duration::from_millis(100));
    }
    // pacing: the killed deploy's remote shell goes on after its `sleep`, with no process
    // name of its own to wait for.
    std::thread::sleep(SECS);
    let unlock = lab.deploy(&["production", "unlock"]);
    assert!(
        unlock.ok(),
        "{}\nthe killed deploy: {}",
        unlock.describe(),
        killed.describe()
    );
    assert!(!lock.exists(), "unlock left the lock");
    lab.deploy_ok(&["production", "ref", "v2"]);

    // Ctrl-C (SIGINT to the deploy's process group) releases the lock.
    let slow = lab.spawn_deploy(&["slow", "ref", "v2"]);
    assert!(
        wait_path(&lock, true, 15 * SECS),
        "the slow deploy took no lock"
    );
    let pgid = slow.pgid();
    let _ = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .output();
    let interrupted = slow.wait(30 * SECS);
    assert!(
        !interrupted.ok() && !interrupted.timed_out,
        "{}",
        interrupted.describe()
    );
    assert!(
        wait_path(&lock, false, 10 * SECS),
        "Ctrl-C left the lock: {}",
        interrupted.describe()
    );
    let deadline = Instant::now() + 15 * SECS;
    while user.runs("sleep") && Instant::now() < deadline {
        // pacing: the deploy harness's poll.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read(&app.join("current/REVISION")), *v2);
    lab.deploy_ok(&["production", "ref", "v2"]);

    // ---- T12: PM2's words.
    let exec = lab.deploy_ok(&["production", "update"]);
    assert_eq!(
        read(&app.join("current/REVISION")),
        *v2,
        "update deploys origin/main"
    );
    assert!(!exec.stdout.trim().is_empty(), "no summary line");
    assert_eq!(
        lab.deploy_ok(&["production", "curr"]).stdout.trim(),
        lab.short("v2")
    );
    assert_eq!(
        lab.deploy_ok(&["production", "current"]).stdout.trim(),
        lab.short("v2")
    );
    let prev = lab.deploy_ok(&["production", "previous"]).stdout;
    assert_eq!(prev.trim(), deploys(&app)[deploys(&app).len() - 2]);
    let exec = lab.deploy_ok(&["production", "exec", "cat VERSION"]);
    assert_eq!(exec.stdout.trim(), "v2", "{}", exec.describe());
    let exec = lab.deploy_ok(&["production", "run", "pwd -P; id -un"]);
    let v2_now = readlink(&app.join("current"));
    assert_eq!(
        exec.stdout,
        format!("{}/{v2_now}\n{}\n", app.display(), user.name),
        "exec runs in current, as the user"
    );
    lab.deploy_expect(&["production", "exec", "false"], 1);
    // No sub-command is `update`; --json gives one JSON object with the hosts.
    let exec = lab.deploy_ok(&["production", "--json"]);
    let json = last_json(&exec.stdout)
        .unwrap_or_else(|| panic!("no JSON object on stdout: {}", exec.describe()));
    assert!(json["hosts"].is_array(), "no hosts array: {json}");
    // `--json` says progress and hooks' output go to stderr: stdout is the object alone.
    assert!(
        serde_json::from_str::<serde_json::Value>(&exec.stdout).is_ok(),
        "stdout is not one JSON document: {}",
        exec.describe()
    );
    // The host as one "user@host:port" string.
    assert_eq!(
        lab.deploy_ok(&["hostport", "curr"]).stdout.trim(),
        lab.short("v2")
    );
    // Local changes not committed: refused before anything remote, unless --force.
    let version = lab.src.join("VERSION");
    let committed = std::fs::read_to_string(&version).expect("VERSION");
    std::fs::write(&version, "dirty\n").expect("write VERSION");
    let current = readlink(&app.join("current"));
    let dirty = lab.deploy(&["production", "ref", "v1"]);
    let forced = lab.deploy(&["production", "ref", "v1", "--force"]);
    std::fs::write(&version, committed).expect("restore VERSION");
    assert!(
        !dirty.ok(),
        "a deploy with local changes: {}",
        dirty.describe()
    );
    assert!(
        !app.join(".kelpie-deploy/lock").exists(),
        "the lock is left behind"
    );
    assert!(
        forced.ok(),
        "--force: {}\nwithout: {}",
        forced.describe(),
        dirty.describe()
    );
    assert_ne!(
        readlink(&app.join("current")),
        current,
        "--force did not deploy"
    );
    assert_eq!(read(&app.join("current/REVISION")), *v1);
    // `$(kelpie deploy … curr)` in a script: stdout is a pipe, nothing may keep it open.
    curr_through_a_pipe(&lab, &lab.short("v1"));

    // ---- T13: keep_releases (5): 7 deploys, v1 and v2 in turn, as `ref <r>` and as a bare ref.
    let mut previous = String::new();
    for i in 0..7 {
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        previous = readlink(&app.join("current"));
        let args: Vec<&str> = if i % 3 == 0 {
            vec!["production", version]
        } else {
            vec!["production", "ref", version]
        };
        lab.deploy_ok(&args);
        assert_eq!(
            read(&app.join("current/REVISION")),
            kelpie_testkit::git(&lab.src, &["rev-parse", &format!("{version}^{{commit}}")]),
            "deploy {i} ({args:?})"
        );
        wait_body(web, &body(version), 5 * SECS).unwrap_or_else(|e| panic!("deploy {i}: {e}"));
    }
    let kept = releases(&app);
    assert_eq!(kept.len(), 5, "releases kept: {kept:?}");
    let current = readlink(&app.join("current"));
    for link in [&current, &previous] {
        assert!(app.join(link).is_dir(), "{link} was pruned; kept: {kept:?}");
    }
}

/// The last JSON object of `stdout`: all of it, or from the last line starting with `{`.
fn last_json(stdout: &str) -> Option<serde_json::Value> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(stdout.trim()) {
        return value.is_object().then_some(value);
    }
    let start = stdout.rfind("\n{").map(|i| i + 1)?;
    serde_json::from_str::<serde_json::Value>(stdout[start..].trim())
        .ok()
        .filter(serde_json::Value::is_object)
}

/// `curr` with stdout a pipe ends within seconds (an ssh master left running must not hold it).
fn curr_through_a_pipe(lab: &Lab, want: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelpie"));
    cmd.args(["deploy", "ecosystem.config.js", "production", "curr"])
        .current_dir(&lab.src)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn kelpie deploy curr");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(super::deploy_harness::read_all(stdout));
    });
    let got = rx.recv_timeout(20 * SECS);
    let _ = child.kill();
    let _ = child.wait();
    match got {
        Ok(text) => assert_eq!(text.trim(), want),
        Err(_) => panic!(
            "`kelpie deploy production curr | …` did not end within 20 s: something it \
             started (an ssh ControlMaster?) keeps its stdout open"
        ),
    }
}

/// T8–T10 and `exec` on two hosts (two users on two sshds): deploys run in parallel; one
/// host's failure after the barrier leaves the other deployed; a failure before the barrier
/// leaves both as they were.
#[test]
fn two_hosts_deploy_in_parallel_behind_a_barrier() {
    let Some(lab) = Lab::new("kdtb", 2) else {
        return;
    };
    let (b1, b2) = (&lab.users[0], &lab.users[1]);
    let (p1, p2) = (lab.port(0), lab.port(1));
    let (v1, v2) = (&lab.shas.v1, &lab.shas.v2);
    let pair = |u: &super::deploy_harness::TestUser| u.path("pair");

    // Not set up yet: exit 1, saying so.
    let exec = lab.deploy_expect(&["pair", "ref", "v2"], 1);
    assert!(exec.output().contains("setup"), "{}", exec.describe());
    lab.deploy_ok(&["pair", "setup"]);
    for user in [b1, b2] {
        assert!(
            is_release_link(&readlink(&pair(user).join("current"))),
            "{}",
            user.name
        );
    }

    let _heavy = heavy();
    // The daemon running where the deploy runs tells its notification targets.
    let hook = super::notify::Receiver::start(super::notify::Answer::Ok);
    std::fs::write(
        lab.local_home().join("kelpie.toml"),
        format!(
            "[[notify]]\nwebhook = \"{}\"\nevents = [\"deploy\"]\n",
            hook.url("/deploys")
        ),
    )
    .expect("kelpie.toml");
    let local = LocalDaemon(lab.local_home().to_path_buf());
    local.run(&["ping"]);

    // ---- T8: both hosts at once: the pre-deploy windows overlap (the proof: a wall-time bound
    // alone would be at the mercy of a loaded CI machine), and the deploy ends in well under
    // the 6 s two serial 3 s pre-deploys take, plus setup costs (about 4 s seen here).
    let exec = lab.deploy_ok(&["pair", "ref", "v2"]);
    eprintln!("T8: two hosts with 3 s pre-deploys took {:.1?}", exec.took);
    for label in [&b1.name, &b2.name] {
        let said = hook.wait("a deploy message", 10 * SECS, |r| {
            r.body["title"]
                .as_str()
                .is_some_and(|t| t.contains("is live on") && t.contains(label.as_str()))
        });
        assert_eq!(said.body["event"], "deploy");
        assert!(
            said.body["title"]
                .as_str()
                .unwrap_or("")
                .starts_with("deploy to pair"),
            "{:#}",
            said.body
        );
    }
    drop(local);
    assert!(
        exec.took < 10 * SECS,
        "two 3 s pre-deploys took {:?}",
        exec.took
    );
    let time = |user: &super::deploy_harness::TestUser, file: &str| -> f64 {
        read(&user.path(file))
            .parse()
            .unwrap_or_else(|e| panic!("{}'s ~/{file}: {e}", user.name))
    };
    assert!(
        time(b1, "t0") < time(b2, "t1") && time(b2, "t0") < time(b1, "t1"),
        "the pre-deploys did not overlap: {} {}..{}, {} {}..{}",
        b1.name,
        time(b1, "t0"),
        time(b1, "t1"),
        b2.name,
        time(b2, "t0"),
        time(b2, "t1")
    );
    for user in [b1, b2] {
        assert_eq!(
            read(&pair(user).join("current/REVISION")),
            *v2,
            "{}",
            user.name
        );
        let port: u16 = read(&user.path("port")).parse().expect("~/port");
        let got = get(port);
        assert!(
            got.as_deref().is_ok_and(|b| b.starts_with("v2|")),
            "{}'s app answered {got:?}",
            user.name
        );
    }
    assert!(
        summary_line(&exec.stdout, &b1.name, p1).is_some()
            && summary_line(&exec.stdout, &b2.name, p2).is_some(),
        "no summary line per host: {}",
        exec.describe()
    );

    // ---- T9: the post-deploy fails on one host only: the other is deployed.
    let b1_before = readlink(&pair(b1).join("current"));
    let b2_before = readlink(&pair(b2).join("current"));
    let exec = lab.deploy_expect(&["pairfail", "ref", "v1"], 1);
    let b1_now = readlink(&pair(b1).join("current"));
    assert_ne!(
        b1_now,
        b1_before,
        "{} was not deployed: {}",
        b1.name,
        exec.describe()
    );
    assert_eq!(read(&pair(b1).join("current/REVISION")), *v1);
    assert_eq!(
        readlink(&pair(b2).join("current")),
        b2_before,
        "{}'s current moved",
        b2.name
    );
    for user in [b1, b2] {
        assert!(
            !pair(user).join(".kelpie-deploy/lock").exists(),
            "{}'s lock is left",
            user.name
        );
    }
    let ok_line = summary_line(&exec.stdout, &b1.name, p1)
        .unwrap_or_else(|| panic!("no summary line for {}: {}", b1.name, exec.describe()));
    let failed_line = summary_line(&exec.stdout, &b2.name, p2)
        .unwrap_or_else(|| panic!("no summary line for {}: {}", b2.name, exec.describe()));
    let says_failed = |line: &str| line.replace("pairfail", "").to_lowercase().contains("fail");
    assert!(
        says_failed(&failed_line) && !says_failed(&ok_line),
        "the summary should mark {} (only) failed: {}",
        b2.name,
        exec.describe()
    );
    let port: u16 = read(&b1.path("port")).parse().expect("~/port");
    wait_body(port, "v1|\n", 5 * SECS).unwrap_or_else(|e| panic!("{}: {e}", b1.name));

    // ---- T10: the barrier: pre-deploy fails on one host: no host changes, no release is left.
    let before: Vec<(String, Vec<String>)> = [b1, b2]
        .iter()
        .map(|u| (readlink(&pair(u).join("current")), releases(&pair(u))))
        .collect();
    let exec = lab.deploy_expect(&["pairbar", "ref", "v1"], 1);
    for (user, (current, kept)) in [b1, b2].iter().zip(&before) {
        assert_eq!(
            readlink(&pair(user).join("current")),
            *current,
            "{}'s current changed behind the barrier: {}",
            user.name,
            exec.describe()
        );
        assert_eq!(
            releases(&pair(user)),
            *kept,
            "{}'s releases/ changed",
            user.name
        );
    }

    // ---- exec on both: lines prefixed with the host; a failure on one fails the command.
    let exec = lab.deploy_ok(&["pair", "exec", "id -un"]);
    for (user, port) in [(b1, p1), (b2, p2)] {
        let line = format!("[{0}@127.0.0.1:{port}] {0}", user.name);
        assert!(
            exec.stdout.lines().any(|l| l == line),
            "no line {line:?}: {}",
            exec.describe()
        );
    }
    lab.deploy_expect(
        &[
            "pair",
            "exec",
            &format!("test \"$(id -un)\" != {}", b2.name),
        ],
        1,
    );
    let exec = lab.deploy_ok(&["pair", "list"]);
    for (user, port) in [(b1, p1), (b2, p2)] {
        let newest = deploys(&pair(user)).last().cloned().unwrap_or_default();
        let line = format!("[{}@127.0.0.1:{port}] 0\t{newest}", user.name);
        assert!(
            exec.stdout.lines().any(|l| l == line),
            "no line {line:?}: {}",
            exec.describe()
        );
    }
    let exec = lab.deploy_ok(&["pair", "curr"]);
    for (user, port) in [(b1, p1), (b2, p2)] {
        let short = lab.short(&read(&pair(user).join("current/REVISION")));
        let line = format!("[{}@127.0.0.1:{port}] {short}", user.name);
        assert!(
            exec.stdout.lines().any(|l| l == line),
            "no line {line:?}: {}",
            exec.describe()
        );
    }
}

/// The last stdout line of a deploy that names this host (its user or its port): the host's
/// summary, after any progress lines and hooks' output.
fn summary_line(stdout: &str, user: &str, port: u16) -> Option<String> {
    stdout
        .lines()
        .rfind(|l| l.contains(&format!("{user}@")) || l.contains(&format!(":{port}")))
        .map(str::to_string)
}

/// T11: a bad deploy config is refused (exit 4, every problem named by its key) before any
/// connection: the hosts point at a listener that counts what connects. An env not in the file
/// is exit 3, naming both.
#[test]
fn a_bad_config_is_refused_before_any_connection() {
    if Command::new("node").arg("--version").output().is_err() {
        kelpie_testkit::skip("the JavaScript ecosystem files need node (nodejs)");
        return;
    }
    // A port below the ephemeral range that nothing else took in between.
    let listener = (0..20)
        .find_map(|_| TcpListener::bind(("127.0.0.1", free_port())).ok())
        .expect("a port to listen on");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let connections = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (connections, stop) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        connections.fetch_add(1, Ordering::SeqCst);
                    }
                    // pacing: the poll of a non-blocking accept, until told to stop.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    let kh = dir.path().join("kh").display().to_string();
    let good = serde_json::json!({
        "user": "nobody",
        "host": "127.0.0.1",
        "port": port,
        "repo": "/nonexistent/app.git",
        "ref": "origin/main",
        "path": "/home/nobody/app",
        "ssh_options": ["BatchMode=yes", format!("UserKnownHostsFile={kh}"), "StrictHostKeyChecking=accept-new", "ConnectTimeout=5"],
    });
    let write = |name: &str, production: &serde_json::Value| {
        let text = format!(
            "module.exports = {{ apps: [{{ name: 'web', script: 'server.js' }}], deploy: {{ production: {production} }} }};\n"
        );
        std::fs::write(dir.path().join(name), text).expect("write config");
    };
    let run = |args: &[&str]| -> Exec {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelpie"));
        cmd.arg("deploy")
            .args(args)
            .current_dir(dir.path())
            .env("KELPIE_HOME", home.path());
        super::deploy_harness::run(cmd, format!("kelpie deploy {}", args.join(" ")), 60 * SECS)
    };
    let refused = |production: serde_json::Value, keys: &[&str]| {
        write("bad.config.js", &production);
        for args in [
            &["bad.config.js", "production"][..],
            &["bad.config.js", "production", "setup"],
        ] {
            let exec = run(args);
            assert_eq!(exec.code, Some(4), "{production}: {}", exec.describe());
            for key in keys {
                let key = format!("deploy.production.{key}");
                assert!(
                    exec.stderr.contains(&key),
                    "{production}: {key} not named: {}",
                    exec.describe()
                );
            }
        }
    };
    let without = |keys: &[&str]| {
        let mut production = good.clone();
        for key in keys {
            production.as_object_mut().expect("object").remove(*key);
        }
        production
    };
    let with = |key: &str, value: serde_json::Value| {
        let mut production = good.clone();
        production[key] = value;
        production
    };
    for key in ["host", "repo", "path", "ref"] {
        refused(without(&[key]), &[key]);
    }
    // Every problem at once.
    refused(
        without(&["host", "repo", "path", "ref"]),
        &["host", "repo", "path", "ref"],
    );
    refused(with("port", "abc".into()), &["port"]);
    refused(with("port", 70000.into()), &["port"]);
    refused(with("host", serde_json::json!([])), &["host"]);
    refused(with("path", "app".into()), &["path"]);
    let mut two = with("port", "abc".into());
    two["path"] = "app".into();
    refused(two, &["port", "path"]);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a bad config made a connection"
    );

    // An env the file does not have: 3, naming the env and the file (given, or found).
    write("bad.config.js", &good);
    let exec = run(&["bad.config.js", "nosuch"]);
    assert_eq!(exec.code, Some(3), "{}", exec.describe());
    let said = exec.output();
    assert!(
        said.contains("nosuch") && said.contains("bad.config.js"),
        "{}",
        exec.describe()
    );
    write("ecosystem.config.js", &good);
    let exec = run(&["nosuch"]);
    assert_eq!(exec.code, Some(3), "{}", exec.describe());
    let said = exec.output();
    assert!(
        said.contains("nosuch") && said.contains("ecosystem.config.js"),
        "{}",
        exec.describe()
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "an unknown env made a connection"
    );

    // The counter counts: the valid config does connect (and fails: the listener is no sshd).
    // A key Kelpie does not know is a warning naming it, not an error.
    write("bad.config.js", &with("colour", "blue".into()));
    let exec = run(&["bad.config.js", "production", "curr"]);
    assert!(!exec.ok(), "{}", exec.describe());
    assert!(
        exec.stderr.contains("colour"),
        "the unknown key is not named: {}",
        exec.describe()
    );
    assert!(
        connections.load(Ordering::SeqCst) > 0,
        "the valid config never connected to :{port}: {}",
        exec.describe()
    );
    stop.store(true, Ordering::SeqCst);
    let _ = counter.join();
}

/// A host deployed by PM2 (`source/` a git work tree, `current -> source`, `.deploys`) is
/// adopted by `setup`: its tree becomes a release, `.deploys` is kept, and deploys go on.
#[test]
fn setup_adopts_a_host_pm2_deployed() {
    let Some(lab) = Lab::new("kdtc", 1) else {
        return;
    };
    let user = &lab.users[0];
    let app = user.path("app");
    let (v1, v2) = (&lab.shas.v1, &lab.shas.v2);
    // What `pm2 deploy production setup` then `pm2 deploy production ref v1` leave (deploy.md 1.3, 1.4).
    let pm2 = format!(
        "set -e; mkdir -p ~/app/shared/logs ~/app/shared/pids; \
         git clone -q --branch main {repo} ~/app/source; \
         cd ~/app/source && git reset -q --hard {v1}; \
         ln -sfn ~/app/source ~/app/current; \
         git rev-parse HEAD >> ~/app/.deploys",
        repo = lab.dir.path().join("app.git").display()
    );
    let exec = user.shell(&pm2);
    assert!(exec.ok(), "{}", exec.describe());

    lab.deploy_ok(&["production", "setup"]);
    let current = readlink(&app.join("current"));
    assert!(
        current.starts_with("releases/") && current.ends_with("-pm2"),
        "current -> {current:?}"
    );
    assert_eq!(read(&app.join("current/VERSION")), "v1", "the adopted tree");
    assert!(
        app.join("source")
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
            && app.join("source").canonicalize().ok() == app.join("current").canonicalize().ok(),
        "source is not relinked to current"
    );
    assert_eq!(deploys(&app), vec![v1.clone()], ".deploys is not kept");
    assert_eq!(
        lab.deploy_ok(&["production", "curr"]).stdout.trim(),
        lab.short("v1")
    );
    // A second setup keeps it as it is.
    lab.deploy_ok(&["production", "setup"]);
    assert_eq!(readlink(&app.join("current")), current);

    lab.deploy_ok(&["production", "ref", "v2"]);
    wait_body(lab.web, &body("v2"), 5 * SECS)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.diagnostics()));
    assert_eq!(deploys(&app), vec![v1.clone(), v2.clone()]);
    assert!(
        app.join(&current).is_dir(),
        "the adopted release (the previous one) was pruned"
    );
}

/// `kelpie fleet`: one command on every host of a deploy section over its SSH, the answers
/// together; a host that is down is named while the other is listed, and the status says not
/// every host answered.
#[test]
fn fleet_lists_two_hosts_in_one_table_and_names_the_one_that_is_down() {
    let Some(lab) = Lab::new("kdtf", 2) else {
        return;
    };
    let (u1, u2) = (&lab.users[0], &lab.users[1]);
    for (user, app) in [(u1, "alpha"), (u2, "beta")] {
        let exec = user.shell(&format!(
            "kelpie start sleep --name {app} -- 3600 && kelpie start sleep --name shared -- 3600"
        ));
        assert!(exec.ok(), "{}", exec.describe());
    }
    let label = |i: usize| format!("{}@127.0.0.1:{}", lab.users[i].name, lab.port(i));

    // One table with a host column.
    let exec = lab.fleet(&["pair", "list"]);
    lab.expect(&exec, 0);
    let rows: Vec<&str> = exec.stdout.lines().collect();
    assert!(
        rows[0].starts_with("host") && rows[0].contains("status"),
        "{}",
        exec.describe()
    );
    for (host, app) in [
        (label(0), "alpha"),
        (label(0), "shared"),
        (label(1), "beta"),
        (label(1), "shared"),
    ] {
        assert!(
            rows.iter().any(|row| row.starts_with(&host)
                && words(row).contains(&app)
                && row.contains("online")),
            "no row for {app} on {host}: {}",
            exec.describe()
        );
    }

    // The jlists merged, each process with its host.
    let exec = lab.fleet(&["pair", "jlist"]);
    lab.expect(&exec, 0);
    let merged: Vec<serde_json::Value> = serde_json::from_str(exec.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", exec.describe()));
    assert_eq!(merged.len(), 4, "{}", exec.describe());
    assert!(merged
        .iter()
        .any(|p| p["name"] == "beta" && p["host"] == label(1).as_str()));
    assert!(merged.iter().all(|p| p["pm2_env"]["status"] == "online"));

    // A control command on every host, then each host's logs and description.
    let exec = lab.fleet(&["pair", "restart", "shared"]);
    lab.expect(&exec, 0);
    assert!(
        exec.stdout.contains(&format!("=== {}", label(0)))
            && exec.stdout.contains(&format!("=== {}", label(1))),
        "{}",
        exec.describe()
    );
    let exec = lab.fleet(&["pair", "jlist"]);
    let merged: Vec<serde_json::Value> = serde_json::from_str(exec.stdout.trim()).expect("jlist");
    let restarted: Vec<&serde_json::Value> =
        merged.iter().filter(|p| p["name"] == "shared").collect();
    assert!(
        restarted.len() == 2 && restarted.iter().all(|p| p["pm2_env"]["restart_time"] == 1),
        "{}",
        exec.describe()
    );
    let exec = lab.fleet(&["pair", "describe", "beta"]);
    // beta runs on the second host only: the first says it has no such app.
    assert_eq!(exec.code, Some(1), "{}", exec.describe());
    assert!(exec.stdout.contains("beta"), "{}", exec.describe());
    // Each host's exits, every line under its host's name (the restarts above ended one
    // process on each).
    let exec = lab.fleet(&["pair", "events", "shared"]);
    lab.expect(&exec, 0);
    for i in 0..2 {
        let prefix = format!("[{}]", label(i));
        assert!(
            exec.stdout
                .lines()
                .any(|line| line.starts_with(&prefix) && line.contains("shared")),
            "{}",
            exec.describe()
        );
    }
    // No exception inbox yet: said so, and what to use.
    let exec = lab.fleet(&["pair", "errors"]);
    assert_eq!(exec.code, Some(2), "{}", exec.describe());
    assert!(exec.stderr.contains("`events`"), "{}", exec.describe());

    // The second host down: the first still listed, the second named, status 1.
    lab.sshds[1].stop();
    let exec = lab.fleet(&["pair", "list", "--timeout", "15s"]);
    assert_eq!(exec.code, Some(1), "{}", exec.describe());
    assert!(
        exec.stdout
            .lines()
            .any(|row| row.starts_with(&label(0)) && words(row).contains(&"alpha")),
        "{}",
        exec.describe()
    );
    assert!(!exec.stdout.contains(&label(1)), "{}", exec.describe());
    assert!(
        exec.stderr.contains(&label(1)) && exec.stderr.contains("1 of 2 hosts did not answer"),
        "{}",
        exec.describe()
    );
}

/// The local side's daemon (started for the deploy's notifications), killed when dropped.
struct LocalDaemon(std::path::PathBuf);

impl LocalDaemon {
    fn run(&self, args: &[&str]) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kelpie"))
            .args(args)
            .env("KELPIE_HOME", &self.0)
            .output()
            .expect("kelpie");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LocalDaemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_kelpie"))
            .arg("kill")
            .env("KELPIE_HOME", &self.0)
            .output();
    }
}
