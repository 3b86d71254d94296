//! Files on paths that another user may control, opened without acting with the daemon's rights
//! through a link that user placed.
//!
//! A daemon running as root writes its apps' logs and pid files wherever their configs say,
//! often in a directory the app's own (less trusted) user can write. A plain `open` there follows
//! whatever that user put on the path: a symbolic link to `/etc/cron.d/x` makes root create and
//! write a file there. So every such path is walked one name at a time from a directory
//! descriptor (`openat`, never a whole path), and a symbolic link is followed only where nobody
//! but a trusted user could have placed it:
//!
//! - a directory is *trusted* when its owner is root or the caller's user and neither its group
//!   nor others may write it; a link in it is followed (resolved by this walk again, so a target
//!   that leads through an untrusted directory is checked there too);
//! - in a *sticky* directory owned by a trusted user (`/tmp`), others may create entries but not
//!   replace ours: a link owned by a trusted user is followed, another's is refused;
//! - in any other directory a link is refused with an error that names it, the directory and who
//!   owns it; a file in it with a second name (a hard link to a file elsewhere) is refused too;
//! - `/proc`'s links (`/dev/stdout` → `/proc/self/fd/1`) are the kernel's own: followed by it.
//!
//! Files are created with exclusive creation where a new file is meant (temporary files, with
//! unpredictable names), and renamed or removed through the descriptor of the directory that
//! was checked, so swapping a directory for a link after the check changes nothing.

mod cache;
mod trust;

pub use cache::DirCache;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use trust::{is_trusted_uid, on_procfs, trust_of, Trust};

/// Links followed in one walk at most, as the kernel's own limit (ELOOP past it).
const MAX_LINKS: u32 = 40;

/// A directory reached by a guarded walk, with what its entries may be trusted for.
pub struct GuardedDir {
    fd: OwnedFd,
    trust: Trust,
    /// Its owner, group and mode (for messages, and the group of the files made in it), and
    /// its type (a descriptor opened without following may be a link's own).
    owner: u32,
    group: u32,
    mode: u32,
    file_type: FileType,
    /// Which directory it is (a cached one is used again only while its path still names it).
    identity: (u64, u64),
    /// The path it was reached by (for messages).
    path: PathBuf,
}

/// How a file is opened in a [`GuardedDir`].
#[derive(Clone, Copy, Debug)]
pub struct FileOpen {
    /// Read, write, or both.
    pub read: bool,
    pub write: bool,
    /// Create it (with `mode`) when it does not exist.
    pub create: Option<u32>,
    /// Non-blocking (a FIFO nobody reads must not hang the caller).
    pub nonblock: bool,
}

impl FileOpen {
    /// Reading an existing file.
    pub const READ: FileOpen = FileOpen {
        read: true,
        write: false,
        create: None,
        nonblock: false,
    };
}

/// A file opened by a guarded walk, and whether this open made it.
pub struct Opened {
    pub file: File,
    pub created: bool,
}

/// Flags of a descriptor that only names a directory (no read permission needed to walk).
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

fn refused(link: &Path, dir: &GuardedDir, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing to follow the symbolic link {}: {why} ({} is owned by {}, mode {:o}); \
             name the link's target instead",
            link.display(),
            dir.path.display(),
            crate::username(dir.owner),
            dir.mode & 0o7777,
        ),
    )
}

impl GuardedDir {
    // `st_mode`'s type differs between systems (u32 on Linux, u16 on macOS).
    #[allow(clippy::unnecessary_cast)]
    fn from_fd(fd: OwnedFd, path: PathBuf) -> io::Result<GuardedDir> {
        // One `fstat` per name walked: a walk is paid once per log file an app opens, and
        // 10 000 apps open 20 000.
        let stat = rfs::fstat(&fd)?;
        Ok(GuardedDir {
            trust: trust_of(&stat),
            owner: stat.st_uid,
            group: stat.st_gid,
            mode: stat.st_mode as u32,
            file_type: FileType::from_raw_mode(stat.st_mode),
            identity: (stat.st_dev as u64, stat.st_ino as u64),
            fd,
            path,
        })
    }

    /// `path` still names this directory (it may have been replaced since it was walked).
    // `st_dev`'s and `st_ino`'s types differ between systems.
    #[allow(clippy::unnecessary_cast)]
    fn still_named_by(&self, path: &Path) -> bool {
        rfs::stat(path).is_ok_and(|st| (st.st_dev as u64, st.st_ino as u64) == self.identity)
    }

    /// On procfs, whose links are the kernel's: asked only when a link is met (rare), not of
    /// every directory walked.
    fn is_procfs(&self) -> bool {
        on_procfs(&self.fd)
    }

    fn root_or_cwd(path: &Path) -> io::Result<GuardedDir> {
        let (start, shown) = if path.is_absolute() {
            ("/", PathBuf::from("/"))
        } else {
            (".", std::env::current_dir().unwrap_or_default())
        };
        let fd = rfs::openat(rfs::CWD, start, DIR_FLAGS, Mode::empty())?;
        GuardedDir::from_fd(fd, shown)
    }

    /// Walk to the directory `path`, making the missing ones with `create`'s mode.
    pub fn open(path: &Path, create: Option<u32>) -> io::Result<GuardedDir> {
        let mut links = 0;
        let start = GuardedDir::root_or_cwd(path)?;
        start.walk(names_of(path), create, &mut links)
    }

    /// Walk from this directory through `names`; each link found (where one may be followed)
    /// puts its target's names in front of the rest.
    fn walk(
        self,
        mut names: VecDeque<OsString>,
        create: Option<u32>,
        links: &mut u32,
    ) -> io::Result<GuardedDir> {
        let mut current = self;
        while let Some(name) = names.pop_front() {
            match current.step(&name, create)? {
                Step::Dir(next) => current = next,
                Step::Link(target) => {
                    *links += 1;
                    if *links > MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = PathBuf::from(OsString::from_vec(target));
                    if target.is_absolute() {
                        current = GuardedDir::root_or_cwd(&target)?;
                    }
                    for name in names_of(&target).into_iter().rev() {
                        names.push_front(name);
                    }
                }
            }
        }
        Ok(current)
    }

    /// One name further: the directory it is, or the target of the link it is.
    fn step(&self, name: &OsStr, create: Option<u32>) -> io::Result<Step> {
        let shown = self.path.join(name);
        let flags = DIR_FLAGS | OFlags::NOFOLLOW;
        let opened = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create.is_some() => {
                let mode = Mode::from_raw_mode(create.unwrap_or(0o755) as _);
                match rfs::mkdirat(&self.fd, name, mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rfs::openat(&self.fd, name, flags, Mode::empty())
            }
            other => other,
        };
        match opened {
            Ok(fd) => {
                let dir = GuardedDir::from_fd(fd, shown)?;
                // O_PATH with O_NOFOLLOW may open the link itself rather than refuse it.
                match dir.file_type {
                    FileType::Symlink => self.link_or_kernels(name, dir.path),
                    FileType::Directory => Ok(Step::Dir(dir)),
                    _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                }
            }
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => {
                self.link_or_kernels(name, shown)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `name` is a link: on procfs the kernel's own (`self`, `fd/1`), followed by the kernel;
    /// elsewhere followed by this walk where allowed.
    fn link_or_kernels(&self, name: &OsStr, shown: PathBuf) -> io::Result<Step> {
        if self.is_procfs() {
            let fd = rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?;
            return Ok(Step::Dir(GuardedDir::from_fd(fd, shown)?));
        }
        self.link(name)
    }

    /// The target of the link `name`, if this directory lets it be followed.
    fn link(&self, name: &OsStr) -> io::Result<Step> {
        let stat = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        self.may_follow(name, stat.st_uid)?;
        let target = rfs::readlinkat(&self.fd, name, Vec::new())?;
        Ok(Step::Link(target.into_bytes()))
    }

    fn may_follow(&self, name: &OsStr, link_owner: u32) -> io::Result<()> {
        let shown = self.path.join(name);
        match self.trust {
            Trust::Trusted => Ok(()),
            Trust::Sticky if is_trusted_uid(link_owner) => Ok(()),
            Trust::Sticky => Err(refused(
                &shown,
                self,
                &format!(
                    "it belongs to {} in a directory others may write",
                    crate::username(link_owner)
                ),
            )),
            Trust::Open => Err(refused(
                &shown,
                self,
                "its directory may be changed by another user",
            )),
        }
    }

    /// Open the file `name` here: a link is followed only where [`GuardedDir`] allows, and in a
    /// directory another user may change, a file with a second name (a hard link to a file
    /// elsewhere) is refused. A file this open creates gets exactly `create`'s mode (whatever
    /// the umask) and, outside a trusted directory's group, the directory's group.
    pub fn open_file(&self, name: &OsStr, how: FileOpen) -> io::Result<Opened> {
        let mut links = 0;
        self.open_file_counting(name, how, &mut links)
    }

    fn open_file_counting(
        &self,
        name: &OsStr,
        how: FileOpen,
        links: &mut u32,
    ) -> io::Result<Opened> {
        let mut flags = OFlags::CLOEXEC | OFlags::NOCTTY;
        flags |= match (how.read, how.write) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if how.nonblock {
            flags |= OFlags::NONBLOCK;
        }
        let kernels_link = |flags: OFlags| -> io::Result<Opened> {
            let fd = rfs::openat(&self.fd, name, flags, Mode::empty())?;
            Ok(Opened {
                file: File::from(fd),
                created: false,
            })
        };
        let following = flags;
        flags |= OFlags::NOFOLLOW;
        let mut created = false;
        let opened = match how.create {
            Some(mode) => {
                let mode = Mode::from_raw_mode(mode as _);
                match rfs::openat(&self.fd, name, flags | OFlags::CREATE | OFlags::EXCL, mode) {
                    Ok(fd) => {
                        created = true;
                        Ok(fd)
                    }
                    Err(rustix::io::Errno::EXIST) => {
                        rfs::openat(&self.fd, name, flags, Mode::empty())
                    }
                    Err(e) => Err(e),
                }
            }
            None => rfs::openat(&self.fd, name, flags, Mode::empty()),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) if self.is_procfs() => return kernels_link(following),
            Err(rustix::io::Errno::LOOP) => return self.follow_to_file(name, how, links),
            Err(e) => return Err(e.into()),
        };
        let stat = rfs::fstat(&fd)?;
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type == FileType::Symlink {
            // Some systems open the link itself; never write through it.
            if self.is_procfs() {
                return kernels_link(following);
            }
            return self.follow_to_file(name, how, links);
        }
        if self.trust != Trust::Trusted && file_type == FileType::RegularFile && stat.st_nlink > 1 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to open {}: it has {} names (a hard link) in a directory another user may change",
                    self.path.join(name).display(),
                    stat.st_nlink
                ),
            ));
        }
        if created {
            if let Some(mode) = how.create {
                rfs::fchmod(&fd, Mode::from_raw_mode(mode as _))?;
            }
            if stat.st_gid != self.group {
                // The directory's group reads what is written there (as syslog's `adm`).
                let _ = rfs::fchown(&fd, None, Some(rfs::Gid::from_raw(self.group)));
            }
        }
        Ok(Opened {
            file: File::from(fd),
            created,
        })
    }

    /// `name` is a link: follow it to a file, if this directory allows.
    fn follow_to_file(&self, name: &OsStr, how: FileOpen, links: &mut u32) -> io::Result<Opened> {
        *links += 1;
        if *links > MAX_LINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let stat = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        self.may_follow(name, stat.st_uid)?;
        let target = PathBuf::from(OsString::from_vec(
            rfs::readlinkat(&self.fd, name, Vec::new())?.into_bytes(),
        ));
        let Some(file_name) = target.file_name().map(OsStr::to_os_string) else {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        };
        let mut dir_names = names_of(&target);
        dir_names.pop_back();
        let start = if target.is_absolute() {
            GuardedDir::root_or_cwd(&target)?
        } else {
            self.again()?
        };
        let dir = start.walk(dir_names, None, links)?;
        dir.open_file_counting(&file_name, how, links)
    }

    /// A second descriptor of this directory, to walk on from it.
    fn again(&self) -> io::Result<GuardedDir> {
        let fd = rfs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        GuardedDir::from_fd(fd, self.path.clone())
    }

    /// Make a new file here with an unpredictable name starting with `prefix`, exclusively
    /// (never an existing file, never through a link), with exactly `mode`.
    pub fn create_temp(&self, prefix: &str, mode: u32) -> io::Result<(File, OsString)> {
        for _ in 0..16 {
            let name = OsString::from(format!("{prefix}{:016x}", unpredictable()));
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rfs::openat(&self.fd, &name, flags, Mode::from_raw_mode(mode as _)) {
                Ok(fd) => {
                    rfs::fchmod(&fd, Mode::from_raw_mode(mode as _))?;
                    return Ok((File::from(fd), name));
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EEXIST))
    }

    /// Rename `from` to `to`, both in this directory (the entries themselves: no link is
    /// followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rfs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Remove the file `name` (a link is removed, not followed).
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        Ok(rfs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Make a hard link `to` of this directory's `from` (neither followed).
    pub fn hard_link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rfs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty())?)
    }

    /// Flush the directory's entries to disk (after a rename that must survive a crash).
    pub fn sync(&self) -> io::Result<()> {
        let fd = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(rfs::fsync(fd)?)
    }
}

enum Step {
    Dir(GuardedDir),
    Link(Vec<u8>),
}

/// The names of `path` to walk: `/`, `.` and empty names left out, `..` kept.
fn names_of(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// 64 bits another local user cannot guess: std's hasher keys come from the system's random
/// source once per thread (and change at each use).
fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// The directory of `path` and its file name, reached by a guarded walk (directories made with
/// `create_dirs`' mode when missing).
pub fn guarded_parent(path: &Path, create_dirs: Option<u32>) -> io::Result<(GuardedDir, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => GuardedDir::open(parent, create_dirs)?,
        _ => GuardedDir::open(Path::new("."), None)?,
    };
    Ok((dir, name.to_os_string()))
}

/// Open `path` by a guarded walk (see [`GuardedDir::open_file`]).
pub fn open_guarded(path: &Path, how: FileOpen, create_dirs: Option<u32>) -> io::Result<Opened> {
    let (dir, name) = guarded_parent(path, create_dirs)?;
    dir.open_file(&name, how)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn write_through(path: &Path) -> io::Result<Opened> {
        open_guarded(
            path,
            FileOpen {
                read: false,
                write: true,
                create: Some(0o640),
                nonblock: true,
            },
            Some(0o755),
        )
    }

    #[test]
    fn links_in_a_trusted_directory_are_followed_and_files_made_with_their_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        symlink(&real, dir.path().join("alias")).expect("symlink");
        symlink("real/new/file.log", dir.path().join("relative.log")).expect("symlink");
        let opened = write_through(&dir.path().join("alias/new/file.log")).expect("open");
        assert!(opened.created);
        let made = real.join("new/file.log");
        assert_eq!(
            std::fs::metadata(&made).expect("made").permissions().mode() & 0o777,
            0o640
        );
        let again = write_through(&dir.path().join("relative.log")).expect("open");
        assert!(!again.created, "the link led to the file made before");
    }

    #[test]
    fn a_link_in_a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let secret = dir.path().join("secret");
        std::fs::create_dir(&secret).expect("mkdir");
        symlink(&secret, open.join("logs")).expect("symlink");
        symlink(secret.join("x.log"), open.join("x.log")).expect("symlink");
        for path in [open.join("logs/x.log"), open.join("x.log")] {
            let e = write_through(&path).err().expect("refused");
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
            assert!(e.to_string().contains("refusing to follow"), "{e}");
        }
        assert!(
            !secret.join("x.log").exists(),
            "nothing made through the link"
        );
        // A file there that is a second name of another is refused too.
        std::fs::write(secret.join("target"), "keep").expect("write");
        std::fs::hard_link(secret.join("target"), open.join("hard.log")).expect("link");
        let e = write_through(&open.join("hard.log"))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("hard link"), "{e}");
        // A plain new file there is fine.
        assert!(
            write_through(&open.join("plain.log"))
                .expect("open")
                .created
        );
    }

    #[test]
    fn temporary_names_are_made_exclusively_and_differ() {
        let dir = tempfile::tempdir().expect("tempdir");
        let guarded = GuardedDir::open(dir.path(), None).expect("dir");
        let (_, one) = guarded.create_temp(".x.tmp", 0o600).expect("temp");
        let (_, two) = guarded.create_temp(".x.tmp", 0o600).expect("temp");
        assert_ne!(one, two);
    }

    #[test]
    fn the_kernels_links_in_proc_are_followed() {
        // `/dev/stdout` is `/proc/self/fd/1`: a log sent there reaches the daemon's own output.
        let opened = open_guarded(Path::new("/proc/self/fd/1"), FileOpen::READ, None);
        assert!(opened.is_ok(), "{:?}", opened.err());
    }
}
