//! The operating-system calls Kelpie needs that std does not offer safely: signals to processes
//! and process groups, credentials, sessions, /proc sampling, and the local UTC offset.
//!
//! This is the only crate allowed `unsafe`; every block says why it is sound. Plain system calls
//! go through rustix's typed wrappers (real-time signals through rustix-libc-wrappers' checked
//! constructor); signal masks, sigwait and the daemon's re-exec go through nix; libc remains
//! where neither has a safe call (the spawn's pre-exec hooks, clone3 and execve, glibc's malloc
//! tuning).
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
mod memory;
mod notify_socket;
mod pipes;
mod poll;
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
mod spawner;
mod stdin_fifo;
mod strict_modes;

pub use affinity::{give_apps_their_cpus, keep_threads_on_one_cpu, on_every_cpu};
pub use atomic::{
    atomic_write, atomic_write_keeping, atomic_write_mode, replace_unsynced, temp_names_glob,
};
pub use creds::{
    current_uid, drop_root, groups_of, lookup_group, lookup_user, set_nice_and_identity, username,
    Identity,
};
pub use exec::{exec_with_fds, resolve_program};
pub use fdpass::{
    accept, dup_if_still, file_identity, peer_uid, recv_with_fds, send_stream_with_fds,
    send_with_fds, seqpacket_connect, seqpacket_listen, seqpacket_pair, set_receive_timeout,
    set_send_timeout, FileIdentity, MAX_FDS_PER_MESSAGE,
};
pub use guarded::{guarded_parent, open_guarded, DirCache, FileOpen, GuardedDir, Opened};
pub use handoff::{
    child_has_ended, close_inherited_fds, close_on_exec, exec_in_place, keep_across_exec,
    pidfd_open, redirect_output, take_inherited_fds, try_wait_child, ECHILD,
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
pub use notify_socket::{abstract_name, bind_notify_socket, pass_credentials, recv_notify};
pub use pipes::{
    free_space, nonblocking_pipe, output_pipe, pipe_bytes, pipe_hung_up, reserve_space,
    set_pipe_capacity, splice, tee, PipeReader, O_NONBLOCK,
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
pub use reap::{become_child_subreaper, kill_namespace, reap_child};
pub use signals::{
    detach_into_new_session, group_alive, group_has_live_members, kill_group, pid_alive,
    send_signal, signal_name, signal_number, SIGKILL,
};
pub use sigwait::{block_signals, unblock_signals, BlockedSignals};
pub use sockets::{
    listen_tcp, listen_tcp_reuse_port, set_backlog, take_listen_fds, LISTEN_BACKLOG,
    LISTEN_FDS_START,
};
pub use spawn::{open_cgroup_dir, Spawn, Spawned};
pub use stdin_fifo::{open_stdin_fifo, write_stdin_fifo, StdinWrite};
pub use strict_modes::{check_owned_path, Untrusted};
