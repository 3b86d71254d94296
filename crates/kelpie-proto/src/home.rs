//! Where a Kelpie home keeps its files. Shared by the CLI and the daemon so they always agree.

use std::path::{Path, PathBuf};

/// Environment variable that chooses the home (like `PM2_HOME`).
pub const HOME_ENV: &str = "KELPIE_HOME";

/// Environment variable that gives the home PM2's file names when it is `pm2` (Kelpie's when it
/// is anything else), whatever name the program runs under. Set with [`HOME_ENV`] for the daemon
/// and what it starts (its keeper, the apps), so that every one of them finds the same files.
pub const FILE_NAMES_ENV: &str = "KELPIE_FILE_NAMES";

/// Environment variables that put the daemon's pid file elsewhere than in the home: Kelpie's
/// name, then PM2's (`PM2_PID_FILE_PATH`), so that a monitor configured for PM2 finds it.
pub(crate) const PID_FILE_ENVS: [&str; 2] = ["KELPIE_PID_FILE", "PM2_PID_FILE_PATH"];

/// The signal that tells a daemon to re-execute itself (`kelpie update`). A signal rather than
/// a request: a daemon of any version understands it, even one whose protocol the CLI no
/// longer speaks.
pub const UPDATE_SIGNAL: &str = "SIGUSR1";

/// Which names a home's files have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileNames {
    /// `~/.kelpie` with `kelpie.pid`, `kelpie.log`, `dump.json`.
    Kelpie,
    /// PM2's home and names, for Kelpie run as `pm2` (a drop-in): `$PM2_HOME` or `~/.pm2`, with
    /// `pm2.pid`, `pm2.log`, `dump.pm2`, so that scripts, monitors and backups written for PM2
    /// find them.
    Pm2,
}

impl FileNames {
    /// The home's directory under a user's home directory.
    pub fn directory(self) -> &'static str {
        match self {
            FileNames::Kelpie => ".kelpie",
            FileNames::Pm2 => ".pm2",
        }
    }
    fn pid(self) -> &'static str {
        match self {
            FileNames::Kelpie => "kelpie.pid",
            FileNames::Pm2 => "pm2.pid",
        }
    }
    fn daemon_log(self) -> &'static str {
        match self {
            FileNames::Kelpie => "kelpie.log",
            FileNames::Pm2 => "pm2.log",
        }
    }
    fn dump(self) -> &'static str {
        match self {
            FileNames::Kelpie => "dump.json",
            FileNames::Pm2 => "dump.pm2",
        }
    }
}

/// The files of one Kelpie home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
    pid_file: Option<PathBuf>,
    names: FileNames,
}

impl Home {
    /// `$KELPIE_HOME`, else `$HOME/.kelpie`, else `./.kelpie`; the pid file where
    /// [`PID_FILE_ENVS`] say, else in the home. Run as `pm2` (a link named so), or with
    /// [`FILE_NAMES_ENV`] set to `pm2`, the home has PM2's names and is `$KELPIE_HOME`, else
    /// `$PM2_HOME`, else `$HOME/.pm2`.
    pub fn from_env() -> Home {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        // The variable, set with the home for everything Kelpie starts, wins over the name the
        // program was run under: a `pm2` run inside an app finds its daemon's files.
        let names = match set(FILE_NAMES_ENV) {
            Some(value) if value == "pm2" => FileNames::Pm2,
            Some(_) => FileNames::Kelpie,
            None if run_as_pm2() => FileNames::Pm2,
            None => FileNames::Kelpie,
        };
        let pm2_variable = (names == FileNames::Pm2).then_some("PM2_HOME");
        let root = set(HOME_ENV)
            .or_else(|| pm2_variable.and_then(set))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let base = set("HOME").map(PathBuf::from);
                base.unwrap_or_else(|| PathBuf::from("."))
                    .join(names.directory())
            });
        let mut home = Home::with_names(root, names);
        home.pid_file = PID_FILE_ENVS
            .iter()
            .find_map(|name| set(name))
            .map(|path| absolute(PathBuf::from(path)));
        home
    }

    /// A home rooted at `root` (made absolute against the current directory).
    pub fn at(root: PathBuf) -> Home {
        Home {
            root: absolute(root),
            pid_file: None,
            names: FileNames::Kelpie,
        }
    }

    /// A home rooted at `root` whose files have these names.
    pub fn with_names(root: PathBuf, names: FileNames) -> Home {
        Home {
            names,
            ..Home::at(root)
        }
    }

    /// Which names its files have.
    pub fn names(&self) -> FileNames {
        self.names
    }

    /// The variables that make a process Kelpie starts (its daemon, keeper, apps) find this
    /// same home with the same names: both always, so that neither an inherited variable nor
    /// the name a command is run under can pair the home with other names.
    pub fn environment(&self) -> [(&'static str, std::ffi::OsString); 2] {
        let names = match self.names {
            FileNames::Kelpie => "kelpie",
            FileNames::Pm2 => "pm2",
        };
        [
            (HOME_ENV, self.root.clone().into_os_string()),
            (FILE_NAMES_ENV, names.into()),
        ]
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The daemon's control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("kelpie.sock")
    }
    /// The daemon's pid.
    pub fn pid_file(&self) -> PathBuf {
        match &self.pid_file {
            Some(path) => path.clone(),
            None => self.root.join(self.names.pid()),
        }
    }
    /// The daemon's own log.
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join(self.names.daemon_log())
    }
    /// The live state (every app, written after each change).
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// The state before its last change, kept by each write of the state: what a new daemon
    /// recovers from when `state.json` cannot be read.
    pub fn state_backup(&self) -> PathBuf {
        self.root.join("state.json.bak")
    }
    /// What the daemon has to tell whoever runs the next command (a recovery at start): read
    /// and removed by the CLI after its handshake, shown on stderr.
    pub fn notices_file(&self) -> PathBuf {
        self.root.join("notices")
    }
    /// The list written by `save` and read by `resurrect`.
    pub fn dump_file(&self) -> PathBuf {
        self.root.join(self.names.dump())
    }
    /// The previous dump, kept by each `save`.
    pub fn dump_backup(&self) -> PathBuf {
        self.root.join(format!("{}.bak", self.names.dump()))
    }
    /// Daemon-wide settings (`[logs]` rotation defaults), read at start and by `reloadLogs`.
    pub fn settings_file(&self) -> PathBuf {
        self.root.join("kelpie.toml")
    }
    /// The exception inbox (`kelpie errors`): its groups, kept across daemon restarts.
    pub fn exceptions_file(&self) -> PathBuf {
        self.root.join("exceptions.json")
    }
    /// The configuration store of `kelpie set` / `get` (PM2's `module_conf.json`).
    pub fn conf_file(&self) -> PathBuf {
        self.root.join("module_conf.json")
    }
    /// App log files.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The FIFOs that are fork-mode apps' stdin, one per id (`kelpie send` writes to them).
    pub fn stdin_dir(&self) -> PathBuf {
        self.root.join("stdin")
    }

    /// The stdin FIFO of the process of id `pm_id`.
    pub fn stdin_fifo(&self, pm_id: u32) -> PathBuf {
        self.stdin_dir().join(pm_id.to_string())
    }

    /// `kelpie update` writes here which program the daemon should become, before sending it
    /// [`UPDATE_SIGNAL`].
    pub fn update_request(&self) -> PathBuf {
        self.root.join("update-to")
    }

    /// How `kelpie update` went, written by the daemon: `ok` or `error` on the first line, then
    /// what to tell the user.
    pub fn update_result(&self) -> PathBuf {
        self.root.join("update-result")
    }

    /// The web server's own token (mode 0600), made on first use when `[web]` sets none: the
    /// calls that change something need it even on loopback.
    pub fn web_token_file(&self) -> PathBuf {
        self.root.join("web.token")
    }

    /// What the daemon hands to the program it re-executes: its descriptors, by number.
    pub fn handoff_file(&self) -> PathBuf {
        self.root.join("handoff.json")
    }

    /// Where the daemon's keeper (which holds the apps' pipes and sockets) waits for the next
    /// daemon once the one that started it is gone.
    pub fn keeper_socket(&self) -> PathBuf {
        self.root.join("keeper.sock")
    }

    /// The keeper's pid.
    pub fn keeper_pid_file(&self) -> PathBuf {
        self.root.join("keeper.pid")
    }

    /// Where the keeper keeps what the apps print while no daemon reads it.
    pub fn keeper_spool_dir(&self) -> PathBuf {
        self.root.join("keeper")
    }
}

/// This program was run under the name `pm2` or `pm2-runtime` (a link to `kelpie` named so:
/// the drop-in).
fn run_as_pm2() -> bool {
    std::env::args_os().next().is_some_and(|program| {
        let name = Path::new(&program).file_name();
        name == Some("pm2".as_ref()) || name == Some("pm2-runtime".as_ref())
    })
}

/// `path` against the current directory, if relative.
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}
