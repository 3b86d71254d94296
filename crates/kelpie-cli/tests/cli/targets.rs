//! Targets: ids, names, namespaces, `all`, several at once; unknown targets change nothing.

use super::kelpie;

#[test]
fn several_targets_at_once_by_name_id_and_namespace() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["start", &app, "--name", "api"]);
    k.ok(&["start", &app, "--name", "worker"]);
    k.ok(&["start", &app, "--name", "mail", "--namespace", "jobs"]);
    k.ok(&["start", &app, "--name", "cron", "--namespace", "jobs"]);
    let worker_id = k.app("worker")["pm_id"].to_string();
    k.ok(&["stop", "api", &worker_id]);
    assert_eq!(
        (k.status("api").as_str(), k.status("worker").as_str()),
        ("stopped", "stopped")
    );
    assert_eq!(k.status("mail"), "online");
    k.ok(&["stop", "jobs"]);
    assert_eq!(
        (k.status("mail").as_str(), k.status("cron").as_str()),
        ("stopped", "stopped")
    );
    k.ok(&["restart", "all"]);
    assert!(k.jlist().iter().all(|a| a["pm2_env"]["status"] == "online"));
    k.ok(&["del", "jobs"]);
    let names: Vec<String> = k
        .jlist()
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["api", "worker"]);
}

#[test]
fn an_unknown_target_is_an_error_and_nothing_changes() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "api"]);
    let err = k.fails(&["stop", "api", "nope"]);
    assert!(
        err.contains("`nope`") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(
        k.status("api"),
        "online",
        "api must not be stopped when another target is unknown"
    );
    let err = k.fails(&["delete", "42"]);
    assert!(err.contains("id 42"), "{err}");
    let err = k.fails(&["describe", "ghost"]);
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn starting_a_running_app_again_needs_force_and_a_stopped_one_is_started() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["start", &app, "--name", "api"]);
    let err = k.fails(&["start", &app, "--name", "api"]);
    assert!(
        err.contains("already running") && err.contains("-f"),
        "{err}"
    );
    assert_eq!(k.jlist().len(), 1);
    k.ok(&["start", &app, "--name", "api", "-f"]);
    assert_eq!(k.jlist().len(), 2);
    k.ok(&["stop", "api"]);
    k.ok(&["start", "api"]);
    assert!(k.jlist().iter().all(|a| a["pm2_env"]["status"] == "online"));
}

#[test]
fn instances_get_their_own_ids_index_and_log_files() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "multi",
        "-i",
        "3",
        "--",
        "--print-env",
        "NODE_APP_INSTANCE",
    ]);
    let list = k.jlist();
    assert_eq!(list.len(), 3);
    let ids: Vec<u64> = list
        .iter()
        .map(|a| a["pm_id"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    k.wait_for(
        "per-instance logs",
        std::time::Duration::from_secs(5),
        || {
            (0..3).all(|i| {
                k.log(&format!("multi-out-{i}.log"))
                    .contains(&format!("NODE_APP_INSTANCE={i}"))
            })
        },
    );
}

#[test]
fn a_name_wins_over_a_namespace_of_the_same_name_everywhere() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&["start", &app, "--name", "web"]);
    k.ok(&["start", &app, "--name", "api", "--namespace", "web"]);
    // describe, pid (resolved by the CLI) and stop (resolved by the daemon) agree: `web` is the app.
    let described = k.ok(&["describe", "web"]);
    assert_eq!(
        described.matches("Describing app").count(),
        1,
        "{described}"
    );
    assert_eq!(k.ok(&["pid", "web"]).lines().count(), 1);
    k.ok(&["stop", "web"]);
    assert_eq!(
        (k.status("web").as_str(), k.status("api").as_str()),
        ("stopped", "online")
    );
}
