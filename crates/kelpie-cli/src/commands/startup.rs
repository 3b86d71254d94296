//! `startup` / `unstartup`: the boot service that starts the daemon (which brings back the apps
//! as they were, or the saved list when none is left), for systemd, OpenRC and launchd.
//!
//! As root the file is written and enabled; otherwise it is printed with the command to run as
//! root, as PM2 does.

use crate::cli::StartupArgs;
use anyhow::{anyhow, bail, Context, Result};
use kelpie_proto::Home;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// An init system Kelpie can write a boot service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InitSystem {
    /// systemd: a unit in /etc/systemd/system.
    Systemd,
    /// OpenRC: a script in /etc/init.d.
    OpenRc,
    /// launchd (macOS): a property list, a LaunchDaemon in /Library/LaunchDaemons as root (at
    /// boot, as the user named), else the user's own LaunchAgent in ~/Library/LaunchAgents (at
    /// login, no root needed: where PM2 writes it).
    Launchd,
}

impl InitSystem {
    /// PM2's names and aliases of platforms.
    fn parse(name: &str) -> Result<InitSystem> {
        match name {
            "systemd" | "ubuntu" | "debian" | "centos" | "fedora" | "arch" | "oracle" | "rhel" => {
                Ok(InitSystem::Systemd)
            }
            "openrc" | "alpine" | "gentoo" => Ok(InitSystem::OpenRc),
            "launchd" | "macos" | "darwin" => Ok(InitSystem::Launchd),
            other => bail!(
                "unknown init system `{other}`: use systemd, openrc or launchd (upstart, SysV, rc.d and SMF are not supported)"
            ),
        }
    }

    /// The one this machine runs, from the tools it has (PM2's detection order).
    fn detect() -> Result<InitSystem> {
        if Path::new("/run/systemd/system").exists() || on_path("systemctl") {
            Ok(InitSystem::Systemd)
        } else if on_path("rc-update") {
            Ok(InitSystem::OpenRc)
        } else if on_path("launchctl") {
            Ok(InitSystem::Launchd)
        } else {
            bail!("cannot tell the init system of this machine: name it (`kelpie startup systemd`)")
        }
    }
}

/// Everything a boot service file is made of.
struct Service {
    init: InitSystem,
    /// A launchd LaunchAgent (the user's own, at login) rather than a LaunchDaemon.
    agent: bool,
    name: String,
    user: String,
    home: Home,
    kelpie: PathBuf,
    path_var: String,
}

impl Service {
    fn from_args(args: &StartupArgs, home: &Home) -> Result<Service> {
        let init = match &args.platform {
            Some(name) => InitSystem::parse(name)?,
            None => InitSystem::detect()?,
        };
        let user = match &args.user {
            Some(user) => user.clone(),
            None => kelpie_sys::username(kelpie_sys::current_uid()),
        };
        // Another user's apps live in that user's home, not in ours (PM2 got this wrong).
        let root = match (&args.home, &args.user) {
            // PM2's `--hp` is the user's home directory (`--hp /home/www`, as PM2 prints it): the
            // home is in it. A home named as such (`~/.kelpie`, `~/.pm2`) is taken as it is.
            (Some(dir), _) => {
                let dir = PathBuf::from(dir);
                match dir.file_name() == Some(home.names().directory().as_ref()) {
                    true => dir,
                    false => dir.join(home.names().directory()),
                }
            }
            (None, Some(user)) => user_home(user)
                .map(|dir| dir.join(home.names().directory()))
                .ok_or_else(|| {
                    anyhow!(
                        "user `{user}` has no home directory in /etc/passwd: give one with --hp"
                    )
                })?,
            (None, None) => home.root().to_path_buf(),
        };
        let home = Home::with_names(root, home.names());
        let kelpie = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("cannot tell where the kelpie binary is")?;
        let agent = init == InitSystem::Launchd && kelpie_sys::current_uid() != 0;
        let name = args.service_name.clone().unwrap_or_else(|| match init {
            InitSystem::Systemd => format!("kelpie-{user}"),
            InitSystem::OpenRc => "kelpie".to_string(),
            InitSystem::Launchd => format!("dev.kelpie.{user}"),
        });
        Ok(Service {
            init,
            agent,
            name,
            user,
            home,
            kelpie,
            path_var: std::env::var("PATH")
                .unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        })
    }

    /// Where the file goes: the init system's directory, or `--dir`.
    fn file(&self, args: &StartupArgs) -> PathBuf {
        let dir = args
            .dir
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.default_dir());
        self.file_in(&dir)
    }

    /// The file's name in `dir`.
    fn file_in(&self, dir: &Path) -> PathBuf {
        match self.init {
            InitSystem::Systemd => dir.join(format!("{}.service", self.name)),
            InitSystem::OpenRc => dir.join(&self.name),
            InitSystem::Launchd => dir.join(format!("{}.plist", self.name)),
        }
    }

    fn default_dir(&self) -> PathBuf {
        if self.agent {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("~"), PathBuf::from);
            return home.join("Library/LaunchAgents");
        }
        PathBuf::from(match self.init {
            InitSystem::Systemd => "/etc/systemd/system",
            InitSystem::OpenRc => "/etc/init.d",
            InitSystem::Launchd => "/Library/LaunchDaemons",
        })
    }

    /// Whether writing it needs root: every system's directory does, a user's LaunchAgents
    /// does not.
    fn needs_root(&self, args: &StartupArgs) -> bool {
        kelpie_sys::current_uid() != 0 && args.dir.is_none() && !self.agent
    }

    fn render(&self) -> String {
        let kelpie = self.kelpie.display();
        let home = self.home.root().display();
        let log = self.home.daemon_log();
        let log = log.display();
        let environment = self.home.environment();
        let each_variable = |line: &dyn Fn(&str, &str) -> String| -> String {
            environment
                .iter()
                .map(|(name, value)| line(name, &value.to_string_lossy()))
                .collect()
        };
        match self.init {
            // Type=simple with the daemon in the foreground: no pid file to get wrong. Its log
            // goes where `kelpie` users look for it (kelpie.log), not only to the journal.
            // KillMode=process: signals go to the daemon only. On a stop, the daemon stops each
            // app with its own signal and keeps the list; when the daemon crashes, systemd
            // leaves the apps (and the daemon's keeper) alone, and the daemon it restarts adopts
            // them. Delegate: the daemon may make a cgroup per app process.
            InitSystem::Systemd => format!(
                "[Unit]\n\
                 Description=Kelpie process manager for {user} ({home})\n\
                 After=network-online.target\n\
                 Wants=network-online.target\n\
                 \n\
                 [Service]\n\
                 Type=simple\n\
                 User={user}\n\
                 {variables}\
                 Environment=PATH={path}\n\
                 ExecStart={kelpie} daemon --resurrect-if-empty\n\
                 ExecReload={kelpie} reload all\n\
                 StandardOutput=append:{log}\n\
                 StandardError=append:{log}\n\
                 KillMode=process\n\
                 TimeoutStopSec=120\n\
                 Restart=on-failure\n\
                 Delegate=yes\n\
                 LimitNOFILE=infinity\n\
                 \n\
                 [Install]\n\
                 WantedBy=multi-user.target\n",
                user = self.user,
                path = self.path_var,
                variables = each_variable(&|name, value| format!("Environment={name}={value}\n")),
            ),
            InitSystem::OpenRc => format!(
                "#!/sbin/openrc-run\n\
                 # Kelpie process manager for {user} ({home})\n\
                 description=\"Kelpie process manager\"\n\
                 command=\"{kelpie}\"\n\
                 command_args=\"daemon --resurrect-if-empty\"\n\
                 command_user=\"{user}\"\n\
                 command_background=true\n\
                 pidfile=\"/run/{name}.pid\"\n\
                 {variables}\
                 export PATH=\"{path}\"\n\
                 retry=\"TERM/120/KILL/5\"\n\
                 output_log=\"{log}\"\n\
                 error_log=\"{log}\"\n\
                 \n\
                 depend() {{\n\
                 \tneed net\n\
                 }}\n",
                user = self.user,
                name = self.name,
                path = self.path_var,
                variables = each_variable(&|name, value| format!("export {name}=\"{value}\"\n")),
            ),
            InitSystem::Launchd => self.render_plist(),
        }
    }

    /// The launchd job (launchd.plist(5)): the daemon in the foreground, started at load
    /// (boot for a LaunchDaemon, login for a LaunchAgent) and again if it ends in failure, its
    /// output appended to kelpie.log. `AbandonProcessGroup`: when the daemon ends, launchd
    /// leaves the rest of its process group alone (its keeper, which holds the apps' pipes for
    /// the next daemon), as systemd's `KillMode=process` does; the apps have groups of their
    /// own. `UserName` only for a LaunchDaemon (an agent runs as the user who loads it).
    fn render_plist(&self) -> String {
        let string = |value: &str| format!("<string>{}</string>", xml_escape(value));
        let kelpie = self.kelpie.display().to_string();
        let log = self.home.daemon_log().display().to_string();
        let variables: String = self
            .home
            .environment()
            .iter()
            .map(|(name, value)| format!("<key>{name}</key>{}", string(&value.to_string_lossy())))
            .collect();
        let user = if self.agent {
            String::new()
        } else {
            format!("  <key>UserName</key>{}\n", string(&self.user))
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\">\n\
             <dict>\n\
             \x20 <key>Label</key>{label}\n\
             {user}\
             \x20 <key>ProgramArguments</key>\n\
             \x20 <array>{kelpie}<string>daemon</string><string>--resurrect-if-empty</string></array>\n\
             \x20 <key>EnvironmentVariables</key>\n\
             \x20 <dict>{variables}<key>PATH</key>{path}</dict>\n\
             \x20 <key>RunAtLoad</key><true/>\n\
             \x20 <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n\
             \x20 <key>AbandonProcessGroup</key><true/>\n\
             \x20 <key>StandardOutPath</key>{log}\n\
             \x20 <key>StandardErrorPath</key>{log}\n\
             </dict>\n\
             </plist>\n",
            label = string(&self.name),
            kelpie = string(&kelpie),
            path = string(&self.path_var),
            log = string(&log),
        )
    }

    /// The commands that enable (or disable) it once written.
    fn activation(&self, file: &Path, enable: bool) -> Vec<Vec<String>> {
        let name = self.name.clone();
        let file = file.display().to_string();
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match (self.init, enable) {
            (InitSystem::Systemd, true) => vec![
                words(&["systemctl", "daemon-reload"]),
                words(&["systemctl", "enable", &name]),
            ],
            (InitSystem::Systemd, false) => vec![
                words(&["systemctl", "disable", &name]),
                words(&["systemctl", "daemon-reload"]),
            ],
            (InitSystem::OpenRc, true) => vec![words(&["rc-update", "add", &name, "default"])],
            (InitSystem::OpenRc, false) => vec![words(&["rc-update", "del", &name, "default"])],
            // As PM2 runs them (launchctl's older verbs, which every macOS still takes).
            (InitSystem::Launchd, true) => vec![words(&["launchctl", "load", "-w", &file])],
            (InitSystem::Launchd, false) => vec![words(&["launchctl", "unload", "-w", &file])],
        }
    }
}

/// `kelpie startup [platform]`.
pub(super) fn startup(home: &Home, args: &StartupArgs) -> Result<ExitCode> {
    let service = Service::from_args(args, home)?;
    let text = service.render();
    if args.print {
        out!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let file = service.file(args);
    if service.needs_root(args) {
        outln!("[kelpie] writing a boot service needs root. Run:\n");
        // The binary's own name, not `pm2`: the names go as a variable.
        let names = match service.home.names() {
            kelpie_proto::FileNames::Pm2 => format!(" {}=pm2", kelpie_proto::FILE_NAMES_ENV),
            kelpie_proto::FileNames::Kelpie => String::new(),
        };
        outln!(
            "sudo env PATH=\"{}\"{names} {} startup {} -u {} --hp {}\n",
            service.path_var,
            service.kelpie.display(),
            platform_word(service.init),
            service.user,
            service.home.root().display()
        );
        outln!("[kelpie] it would write {}:\n\n{text}", file.display());
        return Ok(ExitCode::SUCCESS);
    }
    // An OpenRC service is a script: executable.
    let mode = if service.init == InitSystem::OpenRc {
        0o755
    } else {
        0o644
    };
    // A fresh Mac has no ~/Library/LaunchAgents (PM2 #5193).
    if service.agent {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    kelpie_sys::atomic_write_mode(&file, text.as_bytes(), mode)
        .with_context(|| format!("cannot write {}", file.display()))?;
    outln!("[kelpie] wrote {}", file.display());
    if args.dir.is_some() {
        // A directory of the user's choice: not the init system's, nothing to enable.
        return Ok(ExitCode::SUCCESS);
    }
    run_all(&service.activation(&file, true)).map_err(|e| {
        anyhow!("{e}; the file is written: run it yourself once it can work, or undo everything with `kelpie unstartup`")
    })?;
    outln!(
        "[kelpie] {} starts the daemon at {} for {} ({}); it brings the apps back as they were, or the list saved with `kelpie save` when none is left",
        service.name,
        if service.agent { "login" } else { "boot" },
        service.user,
        service.home.root().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kelpie unstartup [platform]`.
pub(super) fn unstartup(home: &Home, args: &StartupArgs) -> Result<ExitCode> {
    let service = Service::from_args(args, home)?;
    let file = service.file(args);
    if service.needs_root(args) {
        outln!(
            "[kelpie] removing a boot service needs root. Run:\n\nsudo {} unstartup {} -u {}",
            service.kelpie.display(),
            platform_word(service.init),
            service.user
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !file.exists() {
        bail!("no boot service at {}", file.display());
    }
    // Disabled first (systemd reads the file's [Install] for that), removed whatever happens: a
    // service manager that cannot be reached (no systemd running) does not keep the file.
    let disabled = match args.dir {
        Some(_) => Ok(()),
        None => run_all(&service.activation(&file, false)),
    };
    std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
    outln!("[kelpie] removed {}", file.display());
    if let Err(e) = disabled {
        bail!(
            "{e}; run it yourself once the service manager runs, to drop what pointed at the file"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn platform_word(init: InitSystem) -> &'static str {
    match init {
        InitSystem::Systemd => "systemd",
        InitSystem::OpenRc => "openrc",
        InitSystem::Launchd => "launchd",
    }
}

/// `text` as XML character data: a path or a variable with `&` or `<` must not end the plist.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Run each command; the first failure stops and says which.
fn run_all(commands: &[Vec<String>]) -> Result<()> {
    for words in commands {
        let (program, args) = words
            .split_first()
            .ok_or_else(|| anyhow!("empty command"))?;
        let status = Command::new(program)
            .args(args)
            .status()
            .with_context(|| format!("cannot run `{}`", words.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed ({status})", words.join(" "));
        }
    }
    Ok(())
}

/// A user's home directory from /etc/passwd.
fn user_home(user: &str) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&user) {
            return None;
        }
        fields.get(5).map(PathBuf::from)
    })
}

fn on_path(program: &str) -> bool {
    std::env::var("PATH").is_ok_and(|path| {
        path.split(':')
            .any(|dir| !dir.is_empty() && Path::new(dir).join(program).is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(init: InitSystem) -> Service {
        Service {
            init,
            agent: false,
            name: "kelpie-www".into(),
            user: "www".into(),
            home: Home::at("/home/www/.kelpie".into()),
            kelpie: "/usr/local/bin/kelpie".into(),
            path_var: "/usr/bin:/bin".into(),
        }
    }

    #[test]
    fn the_systemd_unit_runs_the_daemon_in_the_foreground_for_the_user() {
        let unit = service(InitSystem::Systemd).render();
        for line in [
            "User=www",
            "Environment=KELPIE_HOME=/home/www/.kelpie",
            "ExecStart=/usr/local/bin/kelpie daemon --resurrect-if-empty",
            "KillMode=process",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
        }
    }

    #[test]
    fn platforms_have_pm2s_aliases_and_unknown_ones_are_refused() {
        assert_eq!(InitSystem::parse("ubuntu").ok(), Some(InitSystem::Systemd));
        assert_eq!(InitSystem::parse("macos").ok(), Some(InitSystem::Launchd));
        assert_eq!(InitSystem::parse("openrc").ok(), Some(InitSystem::OpenRc));
        let error = InitSystem::parse("upstart").err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("not supported")));
    }

    #[test]
    fn openrc_and_launchd_files_name_the_binary_and_the_home() {
        let openrc = service(InitSystem::OpenRc).render();
        assert!(openrc.starts_with("#!/sbin/openrc-run"));
        assert!(openrc.contains("command_args=\"daemon --resurrect-if-empty\""));
        let plist = service(InitSystem::Launchd).render();
        assert!(plist.contains("<string>/usr/local/bin/kelpie</string><string>daemon</string>"));
        assert!(plist.contains("<key>KELPIE_HOME</key><string>/home/www/.kelpie</string>"));
        assert!(plist.contains("<key>UserName</key><string>www</string>"));
        let agent = Service {
            agent: true,
            ..service(InitSystem::Launchd)
        };
        assert!(
            !agent.render().contains("UserName"),
            "an agent runs as its user"
        );
    }

    #[test]
    fn plist_values_are_escaped() {
        let odd = Service {
            kelpie: "/opt/a&b/<kelpie>".into(),
            ..service(InitSystem::Launchd)
        };
        let plist = odd.render();
        assert!(
            plist.contains("<string>/opt/a&amp;b/&lt;kelpie&gt;</string>"),
            "{plist}"
        );
    }
}
