//! The dump written by `save` and read by `resurrect`.

mod error;

pub(crate) use error::{DumpError, Invalid, Unusable};

use crate::atomic::atomic_write;
use kelpie_core::AppSpec;
use kelpie_proto::Home;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// Current format of the dump.
pub(crate) const DUMP_VERSION: u32 = 1;

/// Content of `dump.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DumpFile {
    /// Format version.
    pub version: u32,
    /// One entry per app (its instances are recreated from `spec.instances`).
    pub apps: Vec<DumpedApp>,
}

/// One app in the dump.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DumpedApp {
    /// Its spec; `instances` is the number of instances it had when saved.
    pub spec: Arc<AppSpec>,
    /// Whether it was running (a stopped app is brought back stopped).
    pub run: bool,
    /// A user stopped it: brought back with its schedule (`cron_restart`) paused, as it was.
    /// A periodic job between two runs is not paused: its schedule runs it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Its instances' ids when saved: `resurrect` numbers the instances in their order, as
    /// PM2 does (ids 0 to n come back as they were). Empty in a dump written before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<u32>,
}

fn parse(bytes: &[u8]) -> Result<DumpFile, Invalid> {
    serde_json::from_slice(bytes).map_err(|e| {
        // PM2's `dump.pm2` is a list of its processes; Kelpie's is an object.
        match serde_json::from_slice::<Vec<serde_json::Value>>(bytes) {
            Ok(_) => Invalid::Pm2List,
            Err(_) => Invalid::Json(e),
        }
    })
}

/// Write the dump, keeping the previous one (if it was valid) as `dump.json.bak`. Refuses to
/// replace a dump that has apps with an empty one unless `force`.
pub(crate) fn save(home: &Home, dump: &DumpFile, force: bool) -> Result<String, DumpError> {
    let path = home.dump_file();
    let mut kept_aside = String::new();
    if let Ok(previous) = fs::read(&path) {
        match parse(&previous) {
            Ok(old) => {
                if dump.apps.is_empty() && !old.apps.is_empty() && !force {
                    return Err(DumpError::WouldEmpty {
                        path: path.display().to_string(),
                        apps: old.apps.len(),
                    });
                }
                let backup = home.dump_backup();
                atomic_write(&backup, &previous).map_err(|source| DumpError::Write {
                    path: backup.display().to_string(),
                    cause: source,
                })?;
            }
            // A corrupt dump is not copied over a backup that may be good, nor lost: it is
            // moved aside before the new one is written.
            Err(invalid) => {
                let aside = crate::atomic::aside_path(&path);
                if let Err(source) = fs::rename(&path, &aside) {
                    return Err(DumpError::CannotSetAside {
                        path: path.display().to_string(),
                        invalid,
                        cause: source,
                    });
                }
                crate::daemon_log!(
                    "previous dump {} is not valid ({invalid}); moved to {}",
                    path.display(),
                    aside.display()
                );
                kept_aside = format!(
                    " (the previous one could not be read: kept as {})",
                    aside.display()
                );
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(dump).map_err(DumpError::Encode)?;
    atomic_write(&path, &bytes).map_err(|source| DumpError::Write {
        path: path.display().to_string(),
        cause: source,
    })?;
    Ok(format!(
        "saved {} apps to {}{kept_aside}",
        dump.apps.len(),
        path.display()
    ))
}

/// Read and parse one dump file.
fn read(path: &Path) -> Result<DumpFile, Unusable> {
    let shown = || path.display().to_string();
    let bytes = fs::read(path).map_err(|source| Unusable::Read {
        path: shown(),
        cause: source,
    })?;
    parse(&bytes).map_err(|source| Unusable::Invalid {
        path: shown(),
        cause: source,
    })
}

/// Read the dump, falling back to the backup when the dump is missing or corrupt. Returns the
/// dump and a note for the user when the backup was used.
pub(crate) fn load(home: &Home) -> Result<(DumpFile, Option<String>), DumpError> {
    let path = home.dump_file();
    let backup = home.dump_backup();
    let dump_unusable = match read(&path) {
        Ok(dump) => return Ok((dump, None)),
        Err(unusable) => unusable,
    };
    match read(&backup) {
        Ok(dump) => Ok((
            dump,
            Some(format!(
                "{dump_unusable}; used the backup {}",
                backup.display()
            )),
        )),
        Err(_) if !path.exists() && !backup.exists() => Err(DumpError::Missing {
            path: path.display().to_string(),
        }),
        Err(backup_unusable) => Err(DumpError::Unusable {
            dump: dump_unusable,
            backup_path: backup.display().to_string(),
            backup: backup_unusable,
        }),
    }
}

/// [`load`], for `resurrect`: a dump that cannot be read, when its backup could, is moved aside
/// (`dump.json.corrupt-<ms>`), where PM2 deletes it, so that the next `resurrect` or `save`
/// does not meet it again. Nothing is lost.
pub(crate) fn load_setting_aside(home: &Home) -> Result<(DumpFile, Option<String>), DumpError> {
    let (dump, note) = load(home)?;
    let path = home.dump_file();
    // Read as it is, missing, or written again since (a `save` meanwhile): nothing to set aside.
    let note = match note {
        Some(note) if fs::read(&path).is_ok_and(|bytes| parse(&bytes).is_err()) => note,
        note => return Ok((dump, note)),
    };
    let aside = crate::atomic::aside_path(&path);
    let note = match fs::rename(&path, &aside) {
        Ok(()) => format!("{note}; the unreadable dump is kept as {}", aside.display()),
        Err(e) => format!("{note}; the unreadable dump could not be moved aside: {e}"),
    };
    Ok((dump, Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump_of(names: &[&str]) -> DumpFile {
        DumpFile {
            version: DUMP_VERSION,
            apps: names
                .iter()
                .map(|n| DumpedApp {
                    spec: Arc::new(AppSpec {
                        name: (*n).into(),
                        ..AppSpec::default()
                    }),
                    run: true,
                    paused: false,
                    ids: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn resurrect_sets_an_unreadable_dump_aside_when_the_backup_is_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::at(dir.path().to_path_buf());
        save(&home, &dump_of(&["a"]), false).expect("save");
        save(&home, &dump_of(&["a", "b"]), false).expect("save");
        fs::write(home.dump_file(), b"[{").expect("break it");
        let (dump, note) = load_setting_aside(&home).expect("the backup");
        assert_eq!(dump.apps.len(), 1);
        let note = note.expect("a note");
        assert!(
            note.contains("used the backup") && note.contains("kept as"),
            "{note}"
        );
        assert!(!home.dump_file().exists());
        let kept: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("dump.json.corrupt-")
            })
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(fs::read(kept[0].path()).expect("read"), b"[{");
        // A readable dump stays where it is.
        save(&home, &dump_of(&["c"]), false).expect("save");
        assert_eq!(load_setting_aside(&home).expect("load").1, None);
        assert!(home.dump_file().exists());
    }

    #[test]
    fn a_dump_pm2_wrote_is_named_as_such() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::with_names(dir.path().to_path_buf(), kelpie_proto::FileNames::Pm2);
        fs::write(
            home.dump_file(),
            br#"[{"name":"api","pm_exec_path":"/srv/api.js"}]"#,
        )
        .expect("write");
        let err = load(&home).expect_err("not Kelpie's");
        assert!(
            matches!(
                &err,
                DumpError::Unusable {
                    dump: Unusable::Invalid {
                        cause: Invalid::Pm2List,
                        ..
                    },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(
                "dump.pm2 is not a valid dump: it is a list of processes as PM2 writes it"
            ),
            "{err}"
        );
    }

    #[test]
    fn save_keeps_a_backup_and_refuses_an_empty_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_path_buf());
        save(&home, &dump_of(&["a"]), false).expect("first save");
        save(&home, &dump_of(&["a", "b"]), false).expect("second save");
        let backup = parse(&fs::read(home.dump_backup()).expect("backup")).expect("valid backup");
        assert_eq!(backup.apps.len(), 1);
        let err = save(&home, &dump_of(&[]), false).expect_err("empty overwrite refused");
        assert!(
            matches!(err, DumpError::WouldEmpty { apps: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            load(&home).expect("load").0.apps.len(),
            2,
            "nothing changed"
        );
        save(&home, &dump_of(&[]), true).expect("forced");
        assert_eq!(load(&home).expect("load").0.apps.len(), 0);
    }

    #[test]
    fn a_corrupt_dump_falls_back_to_the_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_path_buf());
        save(&home, &dump_of(&["a"]), false).expect("save");
        save(&home, &dump_of(&["a", "b"]), false).expect("save");
        fs::write(home.dump_file(), b"{\"version\": 1, \"apps\": [").expect("truncate");
        let (dump, note) = load(&home).expect("backup used");
        assert_eq!(dump.apps.len(), 1);
        assert!(note.expect("note").contains("backup"));
        // Saving now must not copy the corrupt dump over the good backup.
        save(&home, &dump_of(&["c"]), false).expect("save");
        assert_eq!(
            parse(&fs::read(home.dump_backup()).expect("bak"))
                .expect("valid")
                .apps
                .len(),
            1
        );
    }

    #[test]
    fn no_dump_at_all_says_to_save_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load(&Home::at(dir.path().to_path_buf())).expect_err("no dump");
        assert!(matches!(err, DumpError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("kelpie save"), "{err}");
    }
}
