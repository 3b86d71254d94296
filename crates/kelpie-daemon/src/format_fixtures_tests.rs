//! The files Kelpie reads back, pinned: `state.json` and `dump.json` as a real daemon wrote them
//! at each format's current version (`tests/fixtures/`, made by starting an ecosystem file of
//! three apps, stopping one and saving), loaded the way the daemon loads them, and written back
//! the same by today's code.
//!
//! A change to a format fails here. Then: bump its version (`STATE_VERSION`, `DUMP_VERSION`),
//! add a fixture of the new version written by a real daemon, and keep the old fixture's test:
//! it must still load (or be refused with a message that says what to do).

use crate::dump::{self, DUMP_VERSION};
use crate::persist;
use crate::state::STATE_VERSION;
use kelpie_proto::Home;
use serde_json::Value;

const STATE_V1: &str = include_str!("../tests/fixtures/state-v1.json");
const DUMP_V1: &str = include_str!("../tests/fixtures/dump-v1.json");

/// A home holding `name` with `text`.
fn home_with(name: &str, text: &str) -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(name), text).expect("write");
    let home = Home::at(dir.path().to_path_buf());
    (dir, home)
}

fn json(text: &[u8]) -> Value {
    serde_json::from_slice(text).expect("JSON")
}

#[test]
fn state_v1_loads_and_is_written_back_the_same() {
    assert_eq!(
        STATE_VERSION, 1,
        "state.json's version changed: add tests/fixtures/state-v{STATE_VERSION}.json (a real daemon's) and keep state-v1.json loading here"
    );
    let (_dir, home) = home_with("state.json", STATE_V1);
    let state = persist::load_state(&home).expect("state-v1.json loads");
    assert_eq!((state.version, state.next_id), (1, 4));
    let apps: Vec<(u32, u32, &str, bool, &str)> = state
        .apps
        .iter()
        .map(|a| {
            (
                a.pm_id,
                a.instance,
                a.spec.name.as_str(),
                a.run,
                a.state.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            (0, 0, "api", true, "online"),
            (1, 0, "worker", true, "online"),
            (2, 0, "idle", false, "stopped"),
            (3, 1, "api", true, "online"),
        ]
    );
    // The environment written once is every instance's again.
    assert!(state
        .apps
        .iter()
        .all(|a| a.spec.inherited_env.get("PATH").map(String::as_str) == Some("/usr/bin:/bin")));
    assert_eq!(
        state.apps[0].spec.env.get("PORT").map(String::as_str),
        Some("3000")
    );
    assert_eq!(state.apps[0].spec.max_memory_restart, Some(300 << 20));
    assert_eq!(
        state.apps[1].spec.cron_restart.as_deref(),
        Some("0 3 * * *")
    );

    let written = state.to_json().expect("written");
    assert_eq!(
        json(&written),
        json(STATE_V1.as_bytes()),
        "today's code writes state.json differently from state-v1.json: a format change needs a new version and fixture"
    );
}

#[test]
fn dump_v1_loads_and_is_written_back_the_same() {
    assert_eq!(
        DUMP_VERSION, 1,
        "dump.json's version changed: add tests/fixtures/dump-v{DUMP_VERSION}.json (a real daemon's) and keep dump-v1.json loading here"
    );
    let (_dir, home) = home_with("dump.json", DUMP_V1);
    let (dump, note) = dump::load(&home).expect("dump-v1.json loads");
    assert!(note.is_none(), "{note:?}");
    let apps: Vec<(&str, bool, bool, &[u32], u32)> = dump
        .apps
        .iter()
        .map(|a| {
            (
                a.spec.name.as_str(),
                a.run,
                a.paused,
                a.ids.as_slice(),
                a.spec.instances,
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("api", true, false, &[0, 3][..], 2),
            ("worker", true, false, &[1][..], 1),
            ("idle", false, true, &[2][..], 1),
        ]
    );
    let written = serde_json::to_vec_pretty(&dump).expect("written");
    assert_eq!(
        json(&written),
        json(DUMP_V1.as_bytes()),
        "today's code writes dump.json differently from dump-v1.json: a format change needs a new version and fixture"
    );
}
