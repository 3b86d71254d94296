//! The clone itself: `clone3(2)` as vfork does it, the child on a stack of its own running
//! [`Spawn::in_child`](super::Spawn) then `execve`, with every signal blocked around the call.
//! The one file of the crate with inline assembly (x86-64); elsewhere a copy-on-write clone.

use super::{block_all_signals, restore_signals, Spawn};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the kernel has refused `CLONE_CLEAR_SIGHAND` (before 5.5).
pub(super) static NO_CLEAR_SIGHAND: AtomicBool = AtomicBool::new(false);

/// Reset every handled signal to its default in the child (Linux 5.5).
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `struct clone_args` of clone3(2), up to `cgroup` (size 88, "CLONE_ARGS_SIZE_VER2").
#[repr(C)]
#[derive(Default)]
pub(super) struct CloneArgs {
    pub(super) flags: u64,
    pub(super) pidfd: u64,
    pub(super) child_tid: u64,
    pub(super) parent_tid: u64,
    pub(super) exit_signal: u64,
    pub(super) stack: u64,
    pub(super) stack_size: u64,
    pub(super) tls: u64,
    pub(super) set_tid: u64,
    pub(super) set_tid_size: u64,
    pub(super) cgroup: u64,
}

/// What the child of [`clone_vfork`] works on. It shares the parent's memory: `error` is how it
/// tells the parent why it could not exec.
pub(super) struct Child<'a> {
    pub(super) spawn: &'a mut Spawn,
    pub(super) migrate: Option<RawFd>,
    pub(super) error: i32,
}

/// The child's entry point, on its own stack.
extern "C" fn child_main(child: *mut libc::c_void) -> ! {
    // SAFETY: `child` is the `Child` the parent passed, alive until this process execs or
    // exits (the parent is suspended until then: CLONE_VFORK).
    let child = unsafe { &mut *child.cast::<Child<'_>>() };
    let reset = NO_CLEAR_SIGHAND.load(Ordering::Relaxed);
    let error = child.spawn.in_child(child.migrate, reset);
    child.error = error.raw_os_error().unwrap_or(libc::EINVAL).max(1);
    // SAFETY: _exit(2) ends this process only; it is async-signal-safe.
    unsafe { libc::_exit(127) }
}

/// Room for the child's stack: it runs `in_child` and `execve`, nothing deep.
const CHILD_STACK: usize = 64 * 1024;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The child's stack, kept by each thread that spawns (the spawner thread, or a pool
    /// thread while the daemon's table is small; a pool thread's goes when it ends idle): made
    /// for every spawn, 64 KiB of the heap made glibc consolidate its free lists each time.
    /// One spawn at a time per thread: CLONE_VFORK holds the thread until the child has exec'd
    /// or exited, and nothing in between spawns from it.
    static CHILD_STACKS: std::cell::RefCell<Option<ChildStack>> =
        const { std::cell::RefCell::new(None) };
}

/// A child's stack: a mapping of its own, never initialised, so only the pages a child writes
/// (the top few KiB) are ever resident. Not from the heap: there a pool thread's stack, taken
/// in the middle of a burst of starts, pinned heap pages among the apps' memory after the
/// thread ended (3 000 apps started and deleted left 0.3 MB more).
#[cfg(target_arch = "x86_64")]
struct ChildStack {
    base: std::ptr::NonNull<std::mem::MaybeUninit<u128>>,
}

#[cfg(target_arch = "x86_64")]
impl ChildStack {
    fn map() -> io::Result<ChildStack> {
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        std::ptr::NonNull::new(base.cast())
            .map(|base| ChildStack { base })
            .ok_or_else(|| io::Error::other("mmap gave a null address"))
    }

    fn slice(&mut self) -> &mut [std::mem::MaybeUninit<u128>] {
        // SAFETY: the mapping is CHILD_STACK bytes, page-aligned, readable and writable, and
        // owned by self; MaybeUninit needs no initialisation.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), CHILD_STACK / 16) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no child runs on it any more (a
        // thread's stack goes with the thread, after its last spawn returned).
        unsafe { libc::munmap(self.base.as_ptr().cast(), CHILD_STACK) };
    }
}

/// clone3 with `args` as vfork does it: the child shares this address space on a stack of its
/// own, and this thread waits until it has exec'd or exited. No page is copied or made
/// copy-on-write (a fork of the daemon would, and then pay a page fault and a TLB shootdown
/// for each page it writes next). Signals are blocked around the call; the child gets default
/// handlers (CLONE_CLEAR_SIGHAND) and unblocks them before it execs. Returns the child's pid.
#[cfg(target_arch = "x86_64")]
pub(super) fn clone_vfork(args: &mut CloneArgs, child: &mut Child<'_>) -> io::Result<u32> {
    CHILD_STACKS.with(|stack| {
        let mut stack = stack.borrow_mut();
        if stack.is_none() {
            *stack = Some(ChildStack::map()?);
        }
        match stack.as_mut() {
            Some(stack) => clone_vfork_on(args, child, stack.slice()),
            None => Err(io::Error::other("no stack for the child")),
        }
    })
}

/// [`clone_vfork`] with the child on `stack`.
#[cfg(target_arch = "x86_64")]
fn clone_vfork_on(
    args: &mut CloneArgs,
    child: &mut Child<'_>,
    stack: &mut [std::mem::MaybeUninit<u128>],
) -> io::Result<u32> {
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    if !NO_CLEAR_SIGHAND.load(Ordering::Relaxed) {
        args.flags |= CLONE_CLEAR_SIGHAND;
    }
    args.stack = stack.as_mut_ptr() as u64;
    args.stack_size = (stack.len() * 16) as u64;
    let blocked = block_all_signals();
    let ret: i64;
    // SAFETY: clone3(2) with a fully initialised clone_args of the size passed. In the parent
    // it returns like any system call (only rax, rcx and r11 change). The child starts on
    // `stack` (16-byte aligned: u128 elements; its top is 16-aligned, as `call` needs) with
    // the parent's other registers: it clears the frame pointer and calls `child_main(child)`,
    // which never returns. `stack` and `child` outlive the child's use of them: CLONE_VFORK
    // keeps this thread here until the child has exec'd or exited.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child_main as extern "C" fn(*mut libc::c_void) -> !,
            in("r13") child as *mut Child<'_> as *mut libc::c_void,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    restore_signals(&blocked);
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    u32::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Elsewhere: clone3 as fork does it (copy-on-write, CLONE_VFORK so this thread still waits
/// for the exec), then the same child code; the child's error comes back through a pipe.
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn clone_vfork(args: &mut CloneArgs, child: &mut Child<'_>) -> io::Result<u32> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    args.flags |= libc::CLONE_VFORK as u64;
    let blocked = block_all_signals();
    // SAFETY: clone3(2) with a fully initialised clone_args of the size passed, no CLONE_VM
    // and no stack: the child gets a copy of this address space and returns here with 0, like
    // fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        let code = child
            .spawn
            .in_child(child.migrate, NO_CLEAR_SIGHAND.load(Ordering::Relaxed))
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
            .max(1);
        // rustix's write is the bare system call: async-signal-safe.
        let _ = rustix::io::write(&write, &code.to_ne_bytes());
        // SAFETY: _exit(2) ends this process only; it is async-signal-safe.
        unsafe { libc::_exit(127) }
    }
    let error = (ret < 0).then(io::Error::last_os_error);
    restore_signals(&blocked);
    drop(write);
    if let Some(error) = error {
        return Err(error);
    }
    // The child has exec'd (the pipe closed: nothing to read) or exited after writing 4 bytes.
    let mut code = [0u8; 4];
    if rustix::io::read(&read, &mut code).ok() == Some(4) {
        child.error = i32::from_ne_bytes(code);
    }
    u32::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}
