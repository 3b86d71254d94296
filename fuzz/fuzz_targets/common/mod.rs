//! A project directory shared by the runs of one fuzz target: `app.js`, and a `bin/` of fake
//! interpreters that is the whole PATH, so loading never depends on the machine nor runs
//! anything. Each input is written to a file there and loaded like `kelpie start <file>`.

#![allow(dead_code)]

use kelpie_config::{ConfigError, LoadContext, Loaded};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct Project {
    // Kept for its Drop: the directory lives as long as the process.
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub ctx: LoadContext,
}

pub fn project() -> &'static Project {
    static PROJECT: OnceLock<Project> = OnceLock::new();
    PROJECT.get_or_init(|| {
        // In memory where there is a tmpfs: a file is written for every input.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let bin = root.join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        for exe in ["node", "bash", "python3"] {
            let path = bin.join(exe);
            std::fs::write(&path, "#!/bin/sh\nexit 1\n").expect("write interpreter");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::write(root.join("app.js"), "").expect("write app.js");
        let env = BTreeMap::from([
            ("PATH".to_string(), bin.display().to_string()),
            ("HOME".to_string(), "/home/fuzz".to_string()),
        ]);
        let ctx = LoadContext {
            cwd: root.clone(),
            env,
            profile: None,
            only: Vec::new(),
        };
        Project {
            _dir: dir,
            root,
            ctx,
        }
    })
}

impl Project {
    /// Write `data` to `name` in the project and return its path.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, data).expect("write input");
        path
    }

    /// Load `data` as the ecosystem file `name` (its extension chooses the format).
    pub fn load(&self, name: &str, data: &[u8]) -> Result<Loaded, ConfigError> {
        self.write(name, data);
        kelpie_config::load_file(Path::new(name), &self.ctx)
    }
}

/// Load `data` as an ecosystem file and check what comes out.
pub fn ecosystem(name: &str, data: &[u8]) {
    let project = project();
    match project.load(name, data) {
        Ok(loaded) => {
            for app in &loaded.apps {
                assert!(!app.name.is_empty(), "an app without a name: {app:?}");
                assert!(app.instances >= 1, "an app without instances: {app:?}");
            }
            // What `stop <file>` reads must agree with what `start <file>` reads.
            if let Ok(names) = kelpie_config::app_names(Path::new(name), &project.ctx) {
                assert!(names.len() >= loaded.apps.len());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
