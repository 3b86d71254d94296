//! The operating-system calls Kelpie needs that std does not offer safely: signals to processes
//! and process groups, credentials, sessions, /proc sampling, and the local UTC offset.
//!
//! This is the only crate allowed `unsafe`; every block says why it is sound. Plain system calls
//! go through rustix's typed wrappers (real-time signals through rustix-libc-wrappers' checked
//! constructor); signal masks, sigwait and the daemon's re-exec go through nix; libc remains
//! where neither has a safe call (the spawn's pre-exec hooks, clone3 and execve, glibc's malloc
//! tuning).
//!
//! # The platform seam
//!
//! Every other crate asks the operating system through here (none depends on libc, rustix or
//! nix, and none names a kernel file: `kelpie-supervisor/tests/shape.rs`), by what it wants
//! done, not by the Linux call that does it, so that a second system plugs in behind the same
//! names (docs/architecture.md, "Crates"):
//!
//! - **processes**: spawn one into its own group ([`Spawn`]), know when it exits
//!   ([`watch_exit`], [`try_wait_child`]), signal it or its group ([`send_signal`],
//!   [`kill_group`]), adopt orphans ([`adopt_orphans`]), end everything as PID 1
//!   ([`kill_all_but_self`]); what it is ([`process_info`](process_environment) and
//!   [`sample_process`]: memory, CPU, children, start time).
//! - **pipes and files**: peek at a pipe's head without consuming it ([`peek_pipe`]), move bytes
//!   from a pipe into a file ([`move_from_pipe`]), size a pipe ([`set_pipe_capacity`]), replace
//!   a file atomically ([`atomic_write`]), open a path no other user controls ([`open_guarded`]).
//! - **sockets**: the apps' notify socket ([`bind_notify_socket`], [`recv_notify`],
//!   [`learn_sender_pids`], [`notify_socket_name`]), descriptors passed between processes
//!   ([`message_socket_pair`], [`send_with_fds`]), listening sockets ([`listen_tcp`]).
//! - **resource groups**: Linux's cgroups ([`cgroup`]); a system without them has none, and the
//!   supervisor then limits and attributes by polling (`kelpie-supervisor`'s `cgroups.rs`).
//!
//! Each is Linux's today (pidfd, splice and tee, `PR_SET_CHILD_SUBREAPER`, abstract sockets
//! and `SO_PASSCRED`, sequenced-packet sockets, epoll, `/proc`); the macOS port (issue 75) adds
//! its own behind these names. File watching is the one Linux interface used elsewhere:
//! `kelpie-watch` is built on inotify, and is the seam for another system's file events.
#![allow(unsafe_code)]

mod affinity;
mod atomic;
pub mod cgroup;
mod creds;
mod exec;
mod fdpass;
mod guarded;
mod handoff;
mod host;
mod limits;
mod localtime;
#[cfg(target_os = "macos")]
mod macos;
mod memory;
mod notify_socket;
mod pipes;
pub mod platform;
mod poll;
mod portable;
mod proc_counters;
mod process_info;
mod procfs;
mod read_watch;
mod ready_set;
mod reap;
mod signals;
mod sigwait;
mod sockets;
mod spawn;
#[cfg(target_os = "linux")]
mod spawner;
mod stdin_fifo;
mod strict_modes;

pub use affinity::{give_apps_their_cpus, keep_threads_on_one_cpu, on_every_cpu};
pub use atomic::{
    atomic_write, atomic_write_keeping, atomic_write_mode, replace_unsynced, temp_names_glob,
};
pub use creds::{
    current_uid, drop_root, effective_uid, groups_of, lookup_group, lookup_user,
    set_nice_and_identity, username, Identity,
};
pub use exec::{exec_with_fds, resolve_program};
pub use fdpass::{
    accept, dup_if_still, file_identity, message_socket_connect, message_socket_listen,
    message_socket_pair, peer_uid, recv_with_fds, send_stream_with_fds, send_with_fds,
    set_receive_timeout, set_send_timeout, FileIdentity, MAX_FDS_PER_MESSAGE,
};
pub use guarded::{guarded_parent, open_guarded, DirCache, FileOpen, GuardedDir, Opened};
pub use handoff::{
    child_has_ended, close_inherited_fds, close_on_exec, exec_in_place, keep_across_exec,
    redirect_output, take_inherited_fds, try_wait_child, watch_exit, ECHILD,
};
pub use host::{
    CpuTimes, DiskCounters, FilesystemSpace, HostCounters, HostGauges, HostReader, NetCounters,
};
pub use limits::{fd_limit, raise_fd_limit};
pub use localtime::utc_offset_secs;
pub use memory::{
    forget_code_pages, release_free_memory, resident_pages, run_again_without_thread_caches,
    tune_allocator,
};
pub use notify_socket::{
    bind_notify_socket, learn_sender_pids, notify_socket_address, notify_socket_name, recv_notify,
};
pub use pipes::{
    free_space, give_back_looked_bytes, move_from_pipe, nonblocking_pipe, output_pipe, peek_pipe,
    pipe_bytes, pipe_hung_up, reserve_space, set_pipe_capacity, LookedBytes, PipeReader,
    O_NONBLOCK,
};
pub use poll::{wait_readable, wait_readable_any, wait_readable_many};
pub use proc_counters::{read_counters, ProcessCounters};
pub use process_info::{
    all_pids, group_listens_on, host_name, kernel_release, memory_total_and_available_kib,
    own_program, process_arguments, process_directory, process_environment, stderr_is_removed,
    stderr_metadata, ticks_since_boot,
};
pub use procfs::{
    catches_signal, children_of, clock_ticks_per_second, page_size, read_small_file,
    sample_process, scan_processes, ProcessEntry, ProcessSample, StatFile,
};
pub use read_watch::ReadWatch;
pub use ready_set::ReadySet;
pub use reap::{adopt_orphans, kill_all_but_self, reap_child};
pub use signals::{
    detach_into_new_session, group_alive, group_has_live_members, kill_group, pid_alive,
    send_signal, signal_name, signal_number, SIGKILL,
};
pub use sigwait::{block_signals, unblock_signals, BlockedSignals};
pub use sockets::{
    enable_tcp_migrate_req, listen_tcp, listen_tcp_reuse_port, set_backlog, take_listen_fds,
    LISTEN_BACKLOG, LISTEN_FDS_START,
};
pub use spawn::{open_cgroup_dir, Spawn, Spawned};
pub use stdin_fifo::{open_stdin_fifo, write_stdin_fifo, StdinWrite};
pub use strict_modes::{check_owned_path, Untrusted};
