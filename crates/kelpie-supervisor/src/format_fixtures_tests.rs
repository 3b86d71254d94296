//! The files Kelpie reads back, pinned: `state.json` and `dump.json` as a real daemon wrote them
//! at each format's current version (`tests/fixtures/`, made by starting an ecosystem file of
//! three apps, stopping one and saving), loaded the way the daemon loads them, and written back
//! the same by today's code.
//!
//! A change to a format fails here. Then: bump its version (`STATE_VERSION`, `DUMP_VERSION`),
//! add a fixture of the new version written by a real daemon, and keep the old fixture's test:
//! it must still load (or be refused with a message that says what to do).
//!
//! The keeper's messages (`keeper/wire.rs`) are read across versions too: a keeper started by
//! one Kelpie hands over to the next daemon, which may be a newer one. They carry no version;
//! `keeper-v1.jsonl` holds each kind as real daemons and keepers sent them (taken with strace:
//! an ecosystem file with a cluster app, a port and a shared log file, a restart, the daemon
//! killed with -9 and a new one taking over, then `kelpie kill`), and today's code must read
//! every one of them and write it back the same.

use crate::dump::{self, DUMP_VERSION};
use crate::persist;
use crate::state::STATE_VERSION;
use kelpie_proto::Home;
use serde_json::Value;

const STATE_V1: &str = include_str!("../tests/fixtures/state-v1.json");
const DUMP_V1: &str = include_str!("../tests/fixtures/dump-v1.json");
const KEEPER_V1: &str = include_str!("../tests/fixtures/keeper-v1.jsonl");

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

/// `text` read as a `T` and written back: the same JSON, or why not.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(text: &str) -> Result<(), String> {
    let message: T = serde_json::from_str(text).map_err(|e| format!("unreadable: {e}"))?;
    let written = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
    if json(&written) == json(text.as_bytes()) {
        Ok(())
    } else {
        Err(format!(
            "written back as {}",
            String::from_utf8_lossy(&written)
        ))
    }
}

#[test]
fn the_keepers_messages_of_v1_are_read_and_written_back_the_same() {
    use crate::keeper::wire::{FromKeeper, ToKeeper};
    let mut kinds = std::collections::BTreeSet::new();
    for line in KEEPER_V1.lines() {
        let (direction, message) = line.split_once('\t').expect("direction, tab, message");
        let result = match direction {
            "to_keeper" => round_trip::<ToKeeper>(message),
            "from_keeper" => round_trip::<FromKeeper>(message),
            other => panic!("unknown direction {other}"),
        };
        assert!(
            result.is_ok(),
            "{direction} {message}: {result:?}: a keeper of the last Kelpie could not hand over to this one"
        );
        let kind = json(message.as_bytes());
        let kind = match &kind {
            Value::String(unit) => unit.clone(),
            Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
            _ => String::new(),
        };
        kinds.insert(format!("{direction}:{kind}"));
    }
    // Every message a hand-over uses is there: what the daemon sends, what the keeper answers.
    let expected = [
        "from_keeper:done",
        "from_keeper:entry",
        "to_keeper:bye",
        "to_keeper:change",
        "to_keeper:take",
        "to_keeper:taken",
    ];
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), expected);
    // And every kind of held entry, as both sides write it.
    for holding in ["socket", "notify", "pipe", "process", "claimed"] {
        for direction in ["to_keeper", "from_keeper"] {
            assert!(
                KEEPER_V1
                    .lines()
                    .any(|l| l.starts_with(direction) && l.contains(&format!("\"{holding}\""))),
                "{direction} holding {holding}"
            );
        }
    }
}
