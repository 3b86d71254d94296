//! Who we are.

/// Real uid of this process.
pub fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Effective uid of this process: whose rights it acts with (root's, for a daemon that may run
/// apps as other users).
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The login name of `uid` from /etc/passwd, or the number when it has none.
pub fn username(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id: u32 = fields.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// A user's ids: `(uid, primary gid)`, for a name or a number from /etc/passwd (a number
/// with no entry is taken as is, with its own number as the group).
pub fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let by_number = user.parse::<u32>().ok();
    let found = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (name, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
        let uid: u32 = uid.parse().ok()?;
        let gid: u32 = gid.parse().ok()?;
        (*name == user || by_number == Some(uid)).then_some((uid, gid))
    });
    found.or_else(|| by_number.map(|uid| (uid, uid)))
}

/// A group's id, for a name or a number from /etc/group (a number is taken as is).
pub fn lookup_group(group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Some(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let gid = fields.nth(1)?.parse().ok()?;
        (name == group).then_some(gid)
    })
}

/// The groups `user` is a member of in /etc/group (its supplementary groups).
pub fn groups_of(user: &str) -> Vec<u32> {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let gid = fields.get(2)?.parse().ok()?;
            let members = fields.get(3)?;
            members.split(',').any(|m| m.trim() == user).then_some(gid)
        })
        .collect()
}

/// Who a child runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its user, if it changes.
    pub uid: Option<u32>,
    /// Its group.
    pub gid: u32,
    /// Its supplementary groups.
    pub groups: Vec<u32>,
}

/// Make the child of `command` run at scheduling priority `nice` (-20..19) and as `identity`,
/// in that order: a negative nice needs the privileges the identity switch gives up. (std's
/// own `uid`/`gid` switch happens before any hook, too early for that.)
pub fn set_nice_and_identity(
    command: &mut std::process::Command,
    nice: Option<i32>,
    identity: Option<Identity>,
) {
    use std::os::unix::process::CommandExt;
    if nice.is_none() && identity.is_none() {
        return;
    }
    // SAFETY: the closure runs between fork and exec and only calls setpriority(2),
    // setgroups(2), setgid(2) and setuid(2), which are async-signal-safe; it allocates nothing
    // (the group list was built before the fork) and takes no lock.
    unsafe {
        command.pre_exec(move || {
            if let Some(nice) = nice {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(identity) = &identity {
                let groups: &[libc::gid_t] = &identity.groups;
                if setgroups(groups) == -1 || libc::setgid(identity.gid) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(uid) = identity.uid {
                    if libc::setuid(uid) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
}

/// setgroups(2), whose length is a `size_t` on Linux and an `int` on macOS.
///
/// # Safety
/// As setgroups(2): it changes the process's groups.
unsafe fn setgroups(groups: &[libc::gid_t]) -> libc::c_int {
    #[cfg(target_os = "linux")]
    let len = groups.len();
    #[cfg(not(target_os = "linux"))]
    let len = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: a live slice of that many groups.
    unsafe { libc::setgroups(len, groups.as_ptr()) }
}

/// Give up root for good in this process, every thread of it: no supplementary groups, then
/// `gid`, then `uid` (in that order: each needs the rights the next gives up). Checked
/// afterwards: root cannot be taken back.
pub fn drop_root(uid: u32, gid: u32) -> std::io::Result<()> {
    // SAFETY: setgroups(2), setgid(2) and setuid(2) through the C library's wrappers, which
    // apply the change to every thread of the process (glibc and musl both do); the group list
    // is empty (a null pointer with a length of 0 is what setgroups takes for it).
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) == -1
            || libc::setgid(gid) == -1
            || libc::setuid(uid) == -1
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: setuid(2) with a number: it only fails (EPERM) when root is really gone.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "root could be taken back after giving it up",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root() {
        assert_eq!(username(0), "root");
        assert_eq!(lookup_user("root"), Some((0, 0)));
        assert_eq!(lookup_user("0"), Some((0, 0)));
        assert_eq!(lookup_user("4242"), Some((4242, 4242)));
        assert_eq!(lookup_user("no-such-user-here"), None);
        assert_eq!(lookup_group("root"), Some(0));
        assert_eq!(lookup_group("no-such-group-here"), None);
    }

    #[test]
    fn a_nice_child_runs_at_that_priority() {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "cut -d' ' -f19 /proc/self/stat"]);
        set_nice_and_identity(&mut command, Some(7), None);
        let output = command.output().expect("run sh");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "7");
    }
}
