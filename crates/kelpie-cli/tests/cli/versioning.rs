//! PM2's "vizion": the git metadata of an app's directory in `jlist` (`pm2_env.vizion`,
//! `pm2_env.versioning`), `prettylist` and `describe`, with real repositories made by git.

use super::kelpie;
use kelpie_testkit::{git, Kelpie};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A script that runs until stopped (bash is its interpreter, from the extension).
const SLEEPER: &str = "exec sleep 600\n";

/// Whether git can be run here (it is on CI; elsewhere the tests skip, failing under CI).
fn have_git() -> bool {
    let found = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        kelpie_testkit::skip("git is not installed");
    }
    found
}

/// The test's scratch directory, by its real path (git names repositories by theirs).
fn scratch(k: &Kelpie) -> PathBuf {
    let marker = k.write(".scratch", "");
    Path::new(&marker)
        .parent()
        .expect("scratch dir")
        .canonicalize()
        .expect("real path")
}

/// A repository in `<scratch>/repo` on branch `deploy`, with `app.sh` committed and `origin`
/// set; returns its path.
fn repository(k: &Kelpie) -> PathBuf {
    let repo = scratch(k).join("repo");
    std::fs::create_dir(&repo).expect("mkdir repo");
    git(&repo, &["init", "-q"]);
    git(&repo, &["checkout", "-q", "-b", "deploy"]);
    std::fs::write(repo.join("app.sh"), SLEEPER).expect("write app");
    git(&repo, &["add", "app.sh"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(
        &repo,
        &["remote", "add", "origin", "https://example.com/x.git"],
    );
    repo
}

/// Start `app.sh` of `repo` as `name`, in `repo`, with `extra` flags; returns stderr.
fn start_in(k: &Kelpie, repo: &Path, name: &str, extra: &[&str]) -> String {
    let script = repo.join("app.sh").display().to_string();
    let cwd = repo.display().to_string();
    let mut args = vec!["start", &script, "--name", name, "--cwd", &cwd];
    args.extend_from_slice(extra);
    let out = k.run(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn jlist_and_describe_show_the_commit_the_app_runs() {
    if !have_git() {
        return;
    }
    let k = kelpie();
    let repo = repository(&k);
    start_in(&k, &repo, "app", &[]);
    let env = &k.app("app")["pm2_env"];
    assert_eq!(env["vizion"], true);
    let versioning = &env["versioning"];
    assert_eq!(versioning["type"], "git", "{env}");
    assert_eq!(versioning["branch"], "deploy");
    assert_eq!(versioning["revision"], git(&repo, &["rev-parse", "HEAD"]));
    assert_eq!(versioning["url"], "https://example.com/x.git");
    assert_eq!(versioning["remote"], "origin");
    assert_eq!(versioning["repo_path"], repo.display().to_string());
    let update_time = versioning["update_time"].as_str().expect("update_time");
    assert!(
        update_time.ends_with('Z') && update_time.contains('T'),
        "RFC 3339: {update_time}"
    );
    assert!(
        versioning.get("comment").is_none(),
        "not read: {versioning}"
    );

    let text = k.ok(&["describe", "app"]);
    assert!(text.contains("Revision control:"), "{text}");
    for (field, value) in [
        ("revision control", "git".to_string()),
        ("remote url", "https://example.com/x.git".to_string()),
        ("repository root", repo.display().to_string()),
        ("revision", git(&repo, &["rev-parse", "HEAD"])),
        ("branch", "deploy".to_string()),
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(field) && l.trim_end().ends_with(&value)),
            "no `{field}  {value}` in:\n{text}"
        );
    }
    // PM2's own check (internals/start-consistency).
    assert!(k.ok(&["prettylist"]).contains("vizion: true"));

    // Read when listed: a new commit shows once the app is restarted on it (and before).
    std::fs::write(repo.join("app.sh"), format!("# v2\n{SLEEPER}")).expect("write");
    git(&repo, &["commit", "-q", "-am", "second"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    k.ok(&["restart", "app"]);
    assert_eq!(k.status("app"), "online");
    assert_eq!(k.app("app")["pm2_env"]["versioning"]["revision"], second);
    assert!(k.ok(&["describe", "app"]).contains(&second));
}

#[test]
fn no_vizion_and_vizion_false_leave_the_metadata_out() {
    if !have_git() {
        return;
    }
    let k = kelpie();
    let repo = repository(&k);
    let stderr = start_in(&k, &repo, "flag-off", &["--no-vizion"]);
    assert!(!stderr.contains("no effect"), "{stderr}");

    let file = repo.join("ecosystem.json");
    std::fs::write(
        &file,
        r#"{"apps": [{"name": "file-off", "script": "./app.sh", "vizion": false},
                     {"name": "file-on", "script": "./app.sh"}]}"#,
    )
    .expect("write ecosystem");
    let out = k
        .command(&["start", "ecosystem.json"])
        .current_dir(&repo)
        .output()
        .expect("run kelpie");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("vizion"), "no warning: {stderr}");

    for name in ["flag-off", "file-off"] {
        let env = &k.app(name)["pm2_env"];
        assert_eq!(env["vizion"], false, "{name}");
        assert!(env.get("versioning").is_none(), "{name}: {env}");
        let text = k.ok(&["describe", name]);
        assert!(text.contains("Revision control: not read"), "{text}");
    }
    let on = &k.app("file-on")["pm2_env"];
    assert_eq!(on["vizion"], true);
    assert_eq!(on["versioning"]["branch"], "deploy", "{on}");
}

#[test]
fn an_app_outside_any_repository_has_vizion_on_and_no_versioning() {
    let k = kelpie();
    let dir = scratch(&k);
    let in_a_repository = std::process::Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if in_a_repository {
        kelpie_testkit::skip("the temp dir is inside a git repository");
        return;
    }
    k.write("app.sh", SLEEPER);
    k.ok(&["start", "app.sh"]);
    let env: Value = k.app("app")["pm2_env"].clone();
    assert_eq!(env["vizion"], true);
    assert!(env.get("versioning").is_none(), "{env}");
    assert!(!k.ok(&["describe", "app"]).contains("Revision control"));
}

#[test]
fn the_daemons_list_request_carries_it_too() {
    if !have_git() {
        return;
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return kelpie_testkit::skip("node is not installed (the Node API asks for the list)");
    }
    let k = kelpie();
    let repo = repository(&k);
    start_in(&k, &repo, "app", &[]);
    start_in(&k, &repo, "quiet", &["--no-vizion"]);
    // The Node API's `list` is the socket's `Jlist` request, built by the daemon.
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../npm/kelpie");
    let script = format!(
        "const kelpie = require({:?}); kelpie.list().then((list) => {{ \
         console.log(JSON.stringify(list)); kelpie.disconnect(); }});",
        api.display().to_string()
    );
    let out = std::process::Command::new("node")
        .args(["-e", &script])
        .env("KELPIE_HOME", k.home())
        .env("KELPIE_BINARY", env!("CARGO_BIN_EXE_kelpie"))
        .output()
        .expect("run node");
    assert!(out.status.success(), "{out:?}");
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the list as JSON");
    let env = |name: &str| {
        list.iter()
            .find(|p| p["name"] == name)
            .map(|p| p["pm2_env"].clone())
            .expect(name)
    };
    let app = env("app");
    assert_eq!(app["vizion"], true);
    assert_eq!(
        app["versioning"]["revision"],
        git(&repo, &["rev-parse", "HEAD"])
    );
    assert_eq!(app["versioning"]["repo_path"], repo.display().to_string());
    let quiet = env("quiet");
    assert_eq!(quiet["vizion"], false);
    assert!(quiet.get("versioning").is_none(), "{quiet}");
}
