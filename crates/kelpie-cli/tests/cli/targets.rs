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

/// Each app's ids, in id order, from `jlist`.
fn ids_by_app(k: &kelpie_testkit::Kelpie) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut ids = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for app in k.jlist() {
        let name = app["name"].as_str().unwrap_or_default().to_string();
        ids.entry(name)
            .or_default()
            .push(app["pm_id"].as_u64().expect("a pm_id"));
    }
    ids
}

/// `[(name, ids)]` as the map [`ids_by_app`] gives.
fn expect_ids(apps: &[(&str, &[u64])]) -> std::collections::BTreeMap<String, Vec<u64>> {
    apps.iter()
        .map(|(name, ids)| (name.to_string(), ids.to_vec()))
        .collect()
}

/// An ecosystem file of the fake app under `apps` (name, instances, extra fields).
fn file_of(k: &kelpie_testkit::Kelpie, apps: &[(&str, u32, serde_json::Value)]) -> String {
    let apps: Vec<serde_json::Value> = apps
        .iter()
        .map(|(name, instances, extra)| {
            let mut app = serde_json::json!({"name": name, "script": k.fake_app(),
                "instances": instances});
            if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
                app.extend(extra.clone());
            }
            app
        })
        .collect();
    k.write(
        "ecosystem.json",
        &serde_json::json!({ "apps": apps }).to_string(),
    )
}

// The expected ids below are the ones PM2 7.0.4 gave for the same shapes (`pm2 start`, then
// `pm2 jlist`). PM2 starts two apps at a time and each app's instances one after the other,
// so a multi-instance app's later instances come after the next app's first one.

#[test]
fn a_files_multi_instance_app_gets_its_later_ids_after_the_next_apps_first_as_in_pm2() {
    let k = kelpie();
    // Seed 001's shape: app1 of 4 instances, app2 of 1.
    let file = file_of(
        &k,
        &[
            ("app1", 4, serde_json::json!({})),
            ("app2", 1, serde_json::json!({})),
        ],
    );
    k.ok(&["start", &file]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[0, 2, 3, 4]), ("app2", &[1])])
    );
    // Log files are named by id, as PM2 names them; id 1 is app2 for `stop 1` as for PM2.
    let app1_2 = k
        .jlist()
        .into_iter()
        .find(|a| a["pm_id"] == 2)
        .expect("id 2");
    let out = app1_2["pm2_env"]["pm_out_log_path"].as_str().unwrap_or("");
    assert!(out.ends_with("app1-out-2.log"), "{out}");
    assert_eq!(app1_2["pm2_env"]["NODE_APP_INSTANCE"], 1);
    k.ok(&["stop", "1"]);
    assert_eq!(k.status("app2"), "stopped");
    // Saved and brought back: the same ids (PM2's resurrect gives them back as they were).
    k.ok(&["save"]);
    k.ok(&["kill"]);
    k.ok(&["resurrect"]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[0, 2, 3, 4]), ("app2", &[1])])
    );
    assert_eq!(k.status("app2"), "stopped");
    // Started again after a delete: the deleted app takes the next id (PM2: 5); after
    // `delete all`, numbering starts again from 0 in the same order.
    k.ok(&["delete", "app2"]);
    k.ok(&["start", &file]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[0, 2, 3, 4]), ("app2", &[5])])
    );
    k.ok(&["delete", "all"]);
    k.ok(&["start", &file, "--env", "production"]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[0, 2, 3, 4]), ("app2", &[1])])
    );
}

#[test]
fn each_apps_first_instance_takes_the_next_id_in_the_files_order_as_in_pm2() {
    let k = kelpie();
    // Issue 72's file: app1 of 4 instances, app2, app3 of 2. PM2 7.0.4 (measured three times):
    // app1 0, 3, 5, 6; app2 1; app3 2, 4.
    let file = file_of(
        &k,
        &[
            ("app1", 4, serde_json::json!({})),
            ("app2", 1, serde_json::json!({})),
            ("app3", 2, serde_json::json!({})),
        ],
    );
    k.ok(&["start", &file]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[0, 3, 5, 6]), ("app2", &[1]), ("app3", &[2, 4])])
    );
    // `stop 2` reaches app3, as under PM2.
    k.ok(&["stop", "2"]);
    assert_eq!(
        k.jlist()
            .iter()
            .filter(|p| p["pm2_env"]["status"] == "stopped")
            .map(|p| (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["pm_id"].as_u64()
            ))
            .collect::<Vec<_>>(),
        [("app3".to_string(), Some(2))]
    );
}

#[test]
fn four_apps_two_of_them_multi_instance_are_numbered_two_at_a_time_as_in_pm2() {
    let k = kelpie();
    // Seed 002's shape: api-gateway and user-service of 2 instances, two single services
    // (clustered in the seed; the fake app is no Node app, and the ids do not depend on it).
    let file = file_of(
        &k,
        &[
            ("api-gateway", 2, serde_json::json!({})),
            ("user-service", 2, serde_json::json!({})),
            ("device-service", 1, serde_json::json!({})),
            ("app-service", 1, serde_json::json!({})),
        ],
    );
    k.ok(&["start", &file]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[
            ("api-gateway", &[0, 2]),
            ("user-service", &[1, 3]),
            ("device-service", &[4]),
            ("app-service", &[5]),
        ])
    );
    k.ok(&["delete", "all"]);
    // `--only` numbers the apps it starts the same way.
    k.ok(&["start", &file, "--only", "user-service,app-service"]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("user-service", &[0, 2]), ("app-service", &[1])])
    );
    // The rest of the file later: the running apps are left, the others numbered after.
    k.ok(&["start", &file]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[
            ("user-service", &[0, 2]),
            ("app-service", &[1]),
            ("api-gateway", &[3, 5]),
            ("device-service", &[4]),
        ])
    );
}

#[test]
fn scaling_a_files_app_and_saving_keep_pm2s_ids() {
    let k = kelpie();
    let file = file_of(
        &k,
        &[
            (
                "app1",
                4,
                serde_json::json!({"env_production": {"MODE": "production"}}),
            ),
            ("app2", 1, serde_json::json!({})),
        ],
    );
    k.ok(&["start", &file, "--only", "app2"]);
    k.ok(&["start", &file]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[1, 2, 3, 4]), ("app2", &[0])])
    );
    k.ok(&["delete", "all"]);
    k.ok(&["start", &file]);
    // PM2's scale up takes the next ids; its scale down removes the oldest instances.
    k.ok(&["scale", "app1", "6"]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[0, 2, 3, 4, 5, 6]), ("app2", &[1])])
    );
    k.ok(&["scale", "app1", "2"]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[5, 6]), ("app2", &[1])])
    );
    k.ok(&["scale", "app1", "3"]);
    // A profile's restart keeps the scaled count and the ids (issue 52, item 9).
    k.ok(&["restart", "app1", "--env", "production"]);
    let after = expect_ids(&[("app1", &[5, 6, 7]), ("app2", &[1])]);
    assert_eq!(ids_by_app(&k), after);
    assert_eq!(k.app("app1")["pm2_env"]["env"]["MODE"], "production");
    // A new daemon (`update` hands the processes over) keeps every id.
    k.ok(&["update"]);
    assert_eq!(ids_by_app(&k), after);
    // Saved and brought back by a new daemon: PM2's resurrect numbers the instances from 0
    // in the order of their saved ids (app2 0, app1 1 2 3), closing the gaps.
    k.ok(&["save"]);
    k.ok(&["kill"]);
    k.ok(&["resurrect"]);
    assert_eq!(
        ids_by_app(&k),
        expect_ids(&[("app1", &[1, 2, 3]), ("app2", &[0])])
    );
    // A new app after them takes the next id.
    k.ok(&["start", &k.fake_app(), "--name", "later"]);
    assert_eq!(k.app("later")["pm_id"], 4);
}
