//! Keeping the daemon's own memory small (glibc's allocator keeps freed memory by default).

/// Use a single malloc arena for the whole process. glibc gives each thread that allocates its
/// own arena, and each keeps the memory it freed; the daemon's few threads do little work, so
/// one arena costs nothing in speed and saves resident memory. Call once, at start.
pub fn use_single_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt(3) only changes allocator tunables; it is called at start, before the
    // daemon creates its threads, and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
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
