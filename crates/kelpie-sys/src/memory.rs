//! Keeping the daemon's own memory small (glibc's allocator keeps freed memory by default).

/// Set glibc's allocator for the daemon, once, at start:
///
/// - A single malloc arena for the whole process. glibc gives each thread that allocates its
///   own arena, and each keeps the memory it freed; the daemon's few threads do little work, so
///   one arena costs nothing in speed and saves resident memory.
/// - No "fast bins" (`M_MXFAST` 0): small blocks are merged with their free neighbours when
///   freed instead of being set aside, unmerged, until the next allocation of 1 KiB or more
///   merges all of them at once (`malloc_consolidate`). The daemon makes such allocations all
///   the time (each wake of an instance's task boxes its handler, each task spawned is one),
///   so each paid for merging everything freed since the last: a fifth of the daemon's
///   allocator time in a crash loop of Node apps. Without, a Node app's restart costs about
///   3 % less CPU (concurrent A/B, issue 48); sh apps' did not move, nor did RssAnon.
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt(3) only changes allocator tunables; it is called at start, before the
    // daemon creates its threads, and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// The glibc tunable that sizes its per-thread caches of freed blocks (the "tcache").
#[cfg(target_env = "gnu")]
const THREAD_CACHE_SIZE: &str = "glibc.malloc.tcache_count";
/// That tunable, turning them off.
#[cfg(target_env = "gnu")]
const NO_THREAD_CACHES: &str = "glibc.malloc.tcache_count=0";

/// Run this program again, in this process (same pid, arguments and descriptors), with glibc's
/// per-thread caches of freed blocks turned off ([`NO_THREAD_CACHES`] added to
/// `GLIBC_TUNABLES`), unless the environment already sets their size. Returns only when it
/// does not run again: the tunable was there, this is not glibc, or the exec failed (the error).
///
/// Why: each thread keeps up to 7 freed blocks of each size up to 1 KiB for itself, out of the
/// allocator's reach. After a burst (3 000 apps started and deleted), the daemon's dozen
/// threads held ~1 850 such blocks (740 KB) scattered through the heap, each keeping its page
/// resident: 4.4 MB that `malloc_trim` cannot give back, of a RssAnon of 6.9 MB. Without the
/// caches it gives back all but 2.2 MB, and its CPU per restart did not change (measured in
/// bench/RESULTS.md, issue 48). glibc reads its tunables once, at start, from the
/// environment: hence the exec, once, before anything else runs.
#[cfg(target_env = "gnu")]
pub fn run_again_without_thread_caches() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.to_string_lossy().contains(THREAD_CACHE_SIZE) {
        return Ok(());
    }
    let mut with = tunables;
    if !with.is_empty() {
        with.push(":");
    }
    with.push(NO_THREAD_CACHES);
    // By its path, not /proc/self/exe: the process's name (`ps`, `pgrep`) is the file's.
    let program = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(program);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    Err(command.args(args).env("GLIBC_TUNABLES", with).exec())
}

/// See the glibc version: other C libraries have no such caches.
#[cfg(not(target_env = "gnu"))]
pub fn run_again_without_thread_caches() -> std::io::Result<()> {
    Ok(())
}

/// Give memory that was freed (after a large transient buffer such as a big list or state
/// write) back to the system.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim(3) only walks the allocator's own free lists; it is thread-safe and
    // takes a plain integer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmap the pages of code (this program's and its libraries') that are mapped now, so that
/// only the code that runs from here on is counted in its resident memory.
///
/// The kernel maps code 64 KiB or more at a time, and leaves mapped whatever ran once:
/// start-up code (reading the state, the settings), or the code of a burst of work such as
/// starting 200 apps, stays in the daemon's RSS although it does not run again. The pages stay
/// in the page cache (they are the files', shared with every `kelpie` command and every
/// program using libc); what runs again is mapped again by an ordinary minor fault. Returns how
/// many bytes of mappings were advised.
pub fn forget_code_pages() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut advised = 0;
    for (start, end) in clean_file_mappings(&smaps) {
        // SAFETY: MADV_DONTNEED on a private mapping of the program file that holds no
        // written (anonymous) page only drops page-table entries: the next access maps the
        // same file contents again. The range is exactly one mapping the kernel listed for
        // this process.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) }
            == 0
        {
            advised += end - start;
        }
    }
    advised
}

/// This process's resident memory in pages (`/proc/self/statm`): a cheap read, unlike
/// `smaps`, to tell whether anything was mapped or allocated since the last look.
pub fn resident_pages() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// The read-only private mappings of files in `smaps` that hold no written page and have
/// pages resident: code and constants, not the relocated data that the loader wrote before
/// making it read-only. A mapping with nothing resident is left alone: advising it would
/// cost a system call (and a page-table walk) for nothing.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            // A mapping's header: `start-end perms offset dev inode path`.
            let perms = fields.next();
            let path = fields.nth(3);
            current = match (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                (Ok(start), Ok(end))
                    if path.is_some_and(|p| p.starts_with('/'))
                        && matches!(perms, Some("r-xp" | "r--p")) =>
                {
                    Some((start, end))
                }
                _ => None,
            };
        } else if first == "Rss:" && fields.next() == Some("0") {
            current = None;
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                if fields.next() == Some("0") {
                    found.push(range);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_resident_mappings_of_files_are_forgotten() {
        let smaps = "\
1000-2000 r--p 00000000 fe:00 7 /usr/bin/kelpie
Rss:                 912 kB
Anonymous:             0 kB
2000-5000 r-xp 00001000 fe:00 7 /usr/bin/kelpie
Anonymous:             0 kB
5000-6000 r--p 00004000 fe:00 7 /usr/bin/kelpie
Anonymous:           336 kB
6000-7000 rw-p 00005000 fe:00 7 /usr/bin/kelpie
Anonymous:             8 kB
7000-8000 r-xp 00000000 fe:00 9 /usr/lib/libc.so.6
Rss:                   4 kB
Anonymous:             0 kB
7800-7900 r-xp 00000000 fe:00 9 /usr/lib/libm.so.6
Rss:                   0 kB
Anonymous:             0 kB
8000-9000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
9000-a000 rw-p 00000000 00:00 0 [heap]
Anonymous:             8 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            vec![(0x1000, 0x2000), (0x2000, 0x5000), (0x7000, 0x8000)]
        );
    }

    #[test]
    fn resident_pages_are_read() {
        assert!(resident_pages().is_some_and(|pages| pages > 0));
    }

    #[test]
    fn forgetting_code_pages_leaves_the_program_running() {
        assert!(forget_code_pages() > 0, "this test's own code is mapped");
        // Code, constants and relocated data all still work.
        let text = format!("{:?}", std::collections::BTreeMap::from([(1, "a")]));
        assert_eq!(text, "{1: \"a\"}");
    }
}
