//! A process's figures from libproc (`proc_pidinfo`), in the units Linux's /proc gives them, so
//! that everything above the seam reads one [`ProcessSample`]: clock ticks (100 a second) for
//! CPU time and start time, the start time counted from boot.

use crate::procfs::ProcessSample;
use std::mem::MaybeUninit;

/// Clock ticks per second, as `sysconf(_SC_CLK_TCK)` gives them (and Linux's /proc counts).
const TICKS_PER_SECOND: u64 = 100;

/// `proc_pidinfo(pid, flavor)` into a `T`: `None` when the process is gone (or not ours to
/// ask about).
fn pid_info<T>(pid: u32, flavor: libc::c_int) -> Option<T> {
    let pid = libc::c_int::try_from(pid).ok()?;
    let size = libc::c_int::try_from(std::mem::size_of::<T>()).ok()?;
    let mut info = MaybeUninit::<T>::zeroed();
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`, a buffer of that size; a
    // zeroed `T` (plain integers) is valid whatever it writes.
    let written = unsafe { libc::proc_pidinfo(pid, flavor, 0, info.as_mut_ptr().cast(), size) };
    // SAFETY: zeroed, then filled (whole, when `written` is the size).
    (written == size).then(|| unsafe { info.assume_init() })
}

/// `mach_timebase_info_data_t` (libc's is deprecated in favour of the mach2 crate; this one
/// call does not warrant a dependency).
#[repr(C)]
struct TimebaseInfo {
    numer: u32,
    denom: u32,
}

extern "C" {
    /// In libSystem, like every libproc call here.
    fn mach_timebase_info(info: *mut TimebaseInfo) -> libc::c_int;
}

/// Mach absolute time units to nanoseconds (1 on Intel, 125/3 on Apple silicon): the unit of
/// `pti_total_user` and `pti_total_system`.
fn nanos_per_unit() -> (u64, u64) {
    let mut info = TimebaseInfo { numer: 0, denom: 0 };
    // SAFETY: mach_timebase_info fills the struct it is given.
    let done = unsafe { mach_timebase_info(&mut info) } == 0;
    if done && info.denom != 0 {
        (u64::from(info.numer), u64::from(info.denom))
    } else {
        (1, 1)
    }
}

/// When the system booted, in microseconds since the epoch (`kern.boottime`).
fn boot_micros() -> Option<u64> {
    let mut name = [libc::CTL_KERN, libc::KERN_BOOTTIME];
    let mut boot = MaybeUninit::<libc::timeval>::zeroed();
    let mut size = std::mem::size_of::<libc::timeval>();
    // SAFETY: sysctl writes at most `size` bytes into `boot`, a timeval.
    let failed = unsafe {
        libc::sysctl(
            name.as_mut_ptr(),
            2,
            boot.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    } != 0;
    if failed {
        return None;
    }
    // SAFETY: zeroed, then filled by sysctl.
    let boot = unsafe { boot.assume_init() };
    let seconds = u64::try_from(boot.tv_sec).ok()?;
    let micros = u64::try_from(boot.tv_usec).ok()?;
    Some(seconds * 1_000_000 + micros)
}

/// [`crate::sample_process`] on macOS.
pub(crate) fn sample(pid: u32) -> Option<ProcessSample> {
    let bsd: libc::proc_bsdinfo = pid_info(pid, libc::PROC_PIDTBSDINFO)?;
    let zombie = bsd.pbi_status == libc::SZOMB;
    // A zombie has no task left to ask about: its figures are zero.
    let task: Option<libc::proc_taskinfo> = pid_info(pid, libc::PROC_PIDTASKINFO);
    let (numer, denom) = nanos_per_unit();
    let cpu_nanos = task.map_or(0, |task| {
        (task.pti_total_user + task.pti_total_system).saturating_mul(numer) / denom
    });
    let started = bsd.pbi_start_tvsec * 1_000_000 + bsd.pbi_start_tvusec;
    let since_boot = started.saturating_sub(boot_micros().unwrap_or(0));
    Some(ProcessSample {
        rss_bytes: task.map_or(0, |task| task.pti_resident_size),
        cpu_ticks: cpu_nanos / (1_000_000_000 / TICKS_PER_SECOND),
        start_ticks: since_boot / (1_000_000 / TICKS_PER_SECOND),
        pgrp: bsd.pbi_pgid,
        ppid: bsd.pbi_ppid,
        zombie,
        minor_faults: task.map_or(0, |task| u64::try_from(task.pti_faults).unwrap_or(0)),
        major_faults: task.map_or(0, |task| u64::try_from(task.pti_pageins).unwrap_or(0)),
    })
}

/// Pids from a libproc list call that fills a buffer of pids and says how many bytes it used.
fn pid_list(list: impl Fn(*mut libc::c_void, libc::c_int) -> libc::c_int) -> Vec<u32> {
    // Asked with no buffer, the call says how much room the list needs now; a little more is
    // given, for processes started in between.
    let needed = list(std::ptr::null_mut(), 0);
    let Ok(needed) = usize::try_from(needed) else {
        return Vec::new();
    };
    let mut pids: Vec<libc::pid_t> = vec![0; needed / std::mem::size_of::<libc::pid_t>() + 64];
    let room = libc::c_int::try_from(pids.len() * std::mem::size_of::<libc::pid_t>())
        .unwrap_or(libc::c_int::MAX);
    let used = list(pids.as_mut_ptr().cast(), room);
    let Ok(used) = usize::try_from(used) else {
        return Vec::new();
    };
    pids.truncate(used / std::mem::size_of::<libc::pid_t>());
    pids.into_iter()
        .filter_map(|pid| u32::try_from(pid).ok().filter(|pid| *pid > 0))
        .collect()
}

/// [`crate::all_pids`] on macOS.
pub(crate) fn all_pids() -> Vec<u32> {
    // SAFETY: proc_listallpids writes at most `size` bytes into `buffer` (or only counts with a
    // null buffer).
    pid_list(|buffer, size| unsafe { libc::proc_listallpids(buffer, size) })
}

/// [`crate::children_of`] on macOS.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Vec::new();
    };
    // SAFETY: as above, for proc_listchildpids.
    pid_list(|buffer, size| unsafe { libc::proc_listchildpids(pid, buffer, size) })
}

/// [`crate::ticks_since_boot`] on macOS.
pub(crate) fn ticks_since_boot() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        });
    now.saturating_sub(boot_micros().unwrap_or(now)) / (1_000_000 / TICKS_PER_SECOND)
}
