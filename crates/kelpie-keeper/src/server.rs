//! The keeper process (`kelpie daemon --keeper`): a plain loop over `poll()`, no runtime, no
//! threads. While its daemon lives it only stores what it is given. Once the daemon is gone
//! without saying goodbye (`kill -9`, a crash), it reads the apps' output pipes into spool files
//! so no app ever blocks or gets SIGPIPE, and waits at `<home>/keeper.sock` for the next daemon,
//! which takes everything and lets it exit.

use super::kept::{open_log_file, Kept, Out};
use super::wire::{self, FromKeeper, Holding, ToKeeper};
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The descriptor the daemon's end of the pair is placed at.
pub(super) const KEEPER_FD: i32 = 3;
/// How often a keeper with no daemon looks whether it is still of use.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// How long a daemon taking over may take to answer.
const TAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Keeper {
    home: Home,
    entries: BTreeMap<u64, Kept>,
    /// The daemon that started us, while it lives.
    daemon: Option<OwnedFd>,
    daemon_pid: u32,
    listener: Option<OwnedFd>,
    /// When the processes held without a pidfd were last looked at.
    looked_at_processes: Option<std::time::Instant>,
    /// Where the daemon's messages are received.
    buf: Vec<u8>,
}

/// Run the keeper until a daemon says goodbye or takes everything. Returns the exit code.
pub fn run(home: Home) -> i32 {
    let daemon = match kelpie_sys::take_inherited_fds(&[KEEPER_FD]) {
        Ok(mut fds) if fds.len() == 1 => fds.remove(0),
        _ => {
            kelpie_base::daemon_log!("keeper: started without its daemon's socket; exiting");
            return 2;
        }
    };
    let _ = kelpie_sys::close_inherited_fds();
    let mut keeper = Keeper {
        home,
        entries: BTreeMap::new(),
        daemon: Some(daemon),
        daemon_pid: std::os::unix::process::parent_id(),
        listener: None,
        looked_at_processes: None,
        buf: Vec::new(),
    };
    keeper.remove_stale_spools();
    keeper.listen();
    let _ = std::fs::write(
        keeper.home.keeper_pid_file(),
        format!("{}\n", std::process::id()),
    );
    loop {
        match keeper.turn() {
            Ok(None) => {}
            Ok(Some(code)) => {
                keeper.leave();
                return code;
            }
            Err(e) => {
                kelpie_base::daemon_log!("keeper: {e}");
                #[expect(
                    clippy::disallowed_methods,
                    reason = "the keeper is its own process: a pause before it tries again"
                )]
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Keeper {
    /// Spool files of keepers that are gone (killed before a daemon took them) are of no use.
    fn remove_stale_spools(&self) {
        let Ok(entries) = std::fs::read_dir(self.home.keeper_spool_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let keeper = name
                .to_str()
                .and_then(|n| n.strip_suffix(".spool"))
                .and_then(|n| n.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            if keeper.is_some_and(|pid| !kelpie_sys::pid_alive(pid)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Listen at the keeper socket (a stale file from an earlier keeper is replaced).
    fn listen(&mut self) {
        let path = self.home.keeper_socket();
        let _ = std::fs::remove_file(&path);
        match kelpie_sys::message_socket_listen(&path) {
            Ok(listener) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                self.listener = Some(listener);
            }
            Err(e) => kelpie_base::daemon_log!(
                "keeper: cannot listen at {} ({e}); a new daemon will restart the apps instead of adopting them",
                path.display()
            ),
        }
    }

    /// Remove our socket and pid files (not a later keeper's).
    fn leave(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(self.home.keeper_socket());
        }
        let pid_file = self.home.keeper_pid_file();
        if std::fs::read_to_string(&pid_file)
            .is_ok_and(|p| p.trim() == std::process::id().to_string())
        {
            let _ = std::fs::remove_file(pid_file);
        }
    }

    /// Wait for something and deal with it; `Some(code)` to exit.
    fn turn(&mut self) -> std::io::Result<Option<i32>> {
        // What to wait for: the daemon, the listener, and once the daemon is gone the pipes.
        let mut watched: Vec<Watched> = Vec::new();
        let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
        if let Some(daemon) = &self.daemon {
            watched.push(Watched::Daemon);
            fds.push(daemon.as_fd());
        }
        if let Some(listener) = &self.listener {
            watched.push(Watched::Listener);
            fds.push(listener.as_fd());
        }
        if self.daemon.is_none() {
            for (id, kept) in &self.entries {
                if kept.ended {
                    continue;
                }
                if let Some(pipe) = &kept.pipe {
                    watched.push(Watched::Pipe(*id));
                    fds.push(pipe.as_fd());
                } else if let (Holding::Process { pidfd: true, .. }, Some(pidfd)) =
                    (&kept.holding, kept.fds.first())
                {
                    // Readable once the process has exited.
                    watched.push(Watched::Process(*id));
                    fds.push(pidfd.as_fd());
                }
            }
        }
        // With no daemon, look again now and then whether anyone can still find us (the home
        // may have been removed).
        let timeout = self.daemon.is_none().then_some(LOOK_AGAIN);
        let ready = kelpie_sys::wait_readable_many(&fds, timeout)?;
        drop(fds);
        for (what, ready) in watched.into_iter().zip(ready) {
            if !ready {
                continue;
            }
            match what {
                Watched::Daemon => {
                    if let Some(code) = self.hear_daemon()? {
                        return Ok(Some(code));
                    }
                }
                Watched::Listener => {
                    if self.serve_taker() {
                        return Ok(Some(0));
                    }
                }
                Watched::Pipe(id) => self.drain(id),
                Watched::Process(id) => {
                    if let Some(kept) = self.entries.get_mut(&id) {
                        kept.ended = true;
                    }
                }
            }
        }
        if self.daemon.is_none() {
            self.look_at_processes();
        }
        if self.nothing_left() {
            kelpie_base::daemon_log!(
                "keeper: every process it kept has exited and every pipe is read; exiting"
            );
            return Ok(Some(0));
        }
        Ok(None)
    }

    /// Mark the processes held without a pidfd that have exited (their pid is gone, a zombie,
    /// or another process's), at most once per [`LOOK_AGAIN`].
    fn look_at_processes(&mut self) {
        let now = std::time::Instant::now();
        if self
            .looked_at_processes
            .is_some_and(|last| now.duration_since(last) < LOOK_AGAIN)
        {
            return;
        }
        self.looked_at_processes = Some(now);
        for kept in self.entries.values_mut() {
            if let Holding::Process {
                pid,
                pidfd: false,
                started,
                ..
            } = kept.holding
            {
                kept.ended = kept.ended
                    || kelpie_sys::sample_process(pid)
                        .is_none_or(|s| s.zombie || Some(s.start_ticks) != started);
            }
        }
    }

    /// With no daemon, every process ended and every pipe read to its end: nothing is left for
    /// a next daemon to adopt (it restarts the apps from its state), so the keeper goes, unless
    /// it has output for that daemon to write and a socket where the daemon can find it.
    fn nothing_left(&self) -> bool {
        // Asked after every message: while the daemon lives, that is all (not a walk over
        // every entry and a look at the socket's path, per spawn).
        if self.daemon.is_some() {
            return false;
        }
        let all_ended = self.entries.values().all(|kept| match kept.holding {
            Holding::Pipe { .. } | Holding::Process { .. } => kept.ended,
            Holding::Socket { .. } | Holding::Claimed { .. } | Holding::Notify => true,
        });
        let output_kept = self
            .entries
            .values()
            .any(|kept| matches!(&kept.out, Out::Spool(s) if s.written > 0));
        let findable = self.listener.is_some() && self.home.keeper_socket().exists();
        all_ended && !(output_kept && findable)
    }

    /// One message from the daemon (or its end).
    fn hear_daemon(&mut self) -> std::io::Result<Option<i32>> {
        let Some(daemon) = &self.daemon else {
            return Ok(None);
        };
        match wire::recv_with::<ToKeeper>(daemon.as_fd(), &mut self.buf) {
            Ok(Some((ToKeeper::Change { release, hold }, fds))) => {
                for id in release {
                    self.entries.remove(&id);
                }
                let wanted: usize = hold.iter().map(|entry| entry.holding.fd_count()).sum();
                // Descriptors that do not add up mean a message of another program: hold none.
                if fds.len() == wanted {
                    let mut fds = fds.into_iter();
                    for entry in hold {
                        let count = entry.holding.fd_count();
                        let these = fds.by_ref().take(count).collect();
                        self.hold(entry.id, entry.holding, these);
                    }
                }
            }
            Ok(Some((ToKeeper::Bye, _))) => return Ok(Some(0)),
            Ok(Some((other, _))) => {
                kelpie_base::daemon_log!("keeper: unexpected message from the daemon: {other:?}");
            }
            Ok(None) | Err(_) => {
                self.daemon = None;
                let processes = self
                    .entries
                    .values()
                    .filter(|k| matches!(k.holding, Holding::Process { .. }))
                    .count();
                kelpie_base::daemon_log!(
                    "keeper: the daemon (pid {}) is gone; keeping {processes} processes' pipes and sockets open, their raw output written to their log files and any other kept in {}, until the next daemon takes them",
                    self.daemon_pid,
                    self.home.keeper_spool_dir().display()
                );
            }
        }
        Ok(None)
    }

    /// Hold `fds`, what `holding` says they are, under the daemon's `id`.
    fn hold(&mut self, id: u64, mut holding: Holding, fds: Vec<OwnedFd>) {
        let (fds, pipe) = match holding {
            Holding::Pipe { .. } => (Vec::new(), fds.into_iter().next().map(std::fs::File::from)),
            _ => (fds, None),
        };
        let mut ended = false;
        if let Holding::Process {
            pid,
            pidfd: false,
            started,
            ..
        } = &mut holding
        {
            *started = kelpie_sys::sample_process(*pid)
                .filter(|sample| !sample.zombie)
                .map(|sample| sample.start_ticks);
            ended = started.is_none();
        }
        self.entries.insert(
            id,
            Kept {
                holding,
                fds,
                pipe,
                ended,
                out: Out::None,
                dropped: 0,
                mid_line: false,
                skip_line: false,
            },
        );
    }

    /// Take what a pipe holds: into its log file when it has one (raw lines), else into its
    /// spool file.
    fn drain(&mut self, id: u64) {
        let spool_dir = self.home.keeper_spool_dir();
        let Some(kept) = self.entries.get_mut(&id) else {
            return;
        };
        if matches!(kept.out, Out::None) {
            kept.out = match &kept.holding {
                Holding::Pipe {
                    file: Some(path), ..
                } => open_log_file(path).map_or(Out::None, |file| Out::File(file, 0)),
                _ => Out::None,
            };
        }
        if let Out::File(..) = kept.out {
            if kept.splice_to_file() {
                return;
            }
            // It could not be written: the next daemon writes what comes from the spool.
            kept.leave_file();
        }
        kept.spool_some(&spool_dir, id);
    }

    /// A daemon connected: hand everything over if ours is gone. True once it has it all.
    fn serve_taker(&mut self) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        let Ok(taker) = kelpie_sys::accept(listener.as_fd()) else {
            return false;
        };
        // Only our user (or root) may take the apps' descriptors; the socket is 0600 in a 0700
        // home already.
        let own = kelpie_sys::current_uid();
        if !kelpie_sys::peer_uid(taker.as_fd()).is_ok_and(|uid| uid == own || uid == 0) {
            return false;
        }
        let _ = kelpie_sys::set_receive_timeout(taker.as_fd(), TAKE_TIMEOUT);
        // Our daemon's end may have hung up in the same instant: hear that first.
        let hung_up = self.daemon.as_ref().is_some_and(|daemon| {
            kelpie_sys::wait_readable(daemon.as_fd(), Duration::ZERO).unwrap_or(false)
        });
        if hung_up {
            let _ = self.hear_daemon();
        }
        if self.daemon.is_some() {
            let _ = wire::send(
                taker.as_fd(),
                &FromKeeper::Refused {
                    why: format!("its daemon (pid {}) still runs", self.daemon_pid),
                },
                &[],
            );
            return false;
        }
        match wire::recv::<ToKeeper>(taker.as_fd()) {
            Ok(Some((ToKeeper::Take, _))) => {}
            _ => return false,
        }
        // The next keeper may bind the same path as soon as this one is done: ours goes first.
        self.listener = None;
        let _ = std::fs::remove_file(self.home.keeper_socket());
        let handed = self.hand_over(&taker);
        if handed {
            let taken = matches!(
                wire::recv::<ToKeeper>(taker.as_fd()),
                Ok(Some((ToKeeper::Taken, _)))
            );
            if taken {
                kelpie_base::daemon_log!(
                    "keeper: the new daemon took {} entries; exiting",
                    self.entries.len()
                );
                return true;
            }
        }
        kelpie_base::daemon_log!("keeper: the daemon taking over went away; keeping everything");
        self.listen();
        false
    }

    fn hand_over(&mut self, taker: &OwnedFd) -> bool {
        for kept in self.entries.values_mut() {
            if let Out::Spool(spool) = &mut kept.out {
                let _ = spool.file.flush();
            }
            let mut fds: Vec<BorrowedFd<'_>> = kept.fds.iter().map(AsFd::as_fd).collect();
            if let (false, Some(pipe)) = (kept.ended, &kept.pipe) {
                fds.push(pipe.as_fd());
            }
            let entry = FromKeeper::Entry {
                holding: kept.holding.clone(),
                spool: match &kept.out {
                    Out::Spool(spool) => Some(spool.path.clone()),
                    Out::None | Out::File(..) => None,
                },
                dropped: kept.dropped,
                skip_line: kept.skip_line,
            };
            if wire::send(taker.as_fd(), &entry, &fds).is_err() {
                return false;
            }
        }
        wire::send(
            taker.as_fd(),
            &FromKeeper::Done {
                daemon_pid: self.daemon_pid,
            },
            &[],
        )
        .is_ok()
    }
}

enum Watched {
    Daemon,
    Listener,
    Pipe(u64),
    Process(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::HoldEntry;
    use kelpie_proto::LogStream;
    use std::os::fd::AsRawFd;

    fn keeper_beside(daemon: OwnedFd, home: &std::path::Path) -> Keeper {
        Keeper {
            home: Home::at(home.to_path_buf()),
            entries: BTreeMap::new(),
            daemon: Some(daemon),
            daemon_pid: std::process::id(),
            listener: None,
            looked_at_processes: None,
            buf: Vec::new(),
        }
    }

    fn pipe_of(pm_id: u32, stream: LogStream) -> Holding {
        Holding::Pipe {
            pm_id,
            stream,
            file: None,
        }
    }

    /// A process's two pipes, as a spawn has them held: stdout under `first_id`, stderr next.
    fn both_pipes(pm_id: u32, first_id: u64) -> Vec<HoldEntry> {
        [LogStream::Out, LogStream::Err]
            .into_iter()
            .zip(first_id..)
            .map(|(stream, id)| HoldEntry {
                id,
                holding: pipe_of(pm_id, stream),
            })
            .collect()
    }

    /// One message releases what it names first, then holds each entry with its own
    /// descriptors, in their order; descriptors that do not add up hold nothing.
    #[test]
    fn one_change_releases_then_holds_each_entry_with_its_own_descriptors() {
        let home = tempfile::tempdir().expect("home");
        let (ours, theirs) = kelpie_sys::message_socket_pair().expect("pair");
        let mut keeper = keeper_beside(theirs, home.path());
        let (out_read, _out_write) = std::io::pipe().expect("pipe");
        let (err_read, _err_write) = std::io::pipe().expect("pipe");
        let (old_read, _old_write) = std::io::pipe().expect("pipe");

        let first = ToKeeper::Change {
            release: Vec::new(),
            hold: vec![HoldEntry {
                id: 1,
                holding: pipe_of(7, LogStream::Out),
            }],
        };
        wire::send(ours.as_fd(), &first, &[old_read.as_fd()]).expect("send");
        assert_eq!(keeper.hear_daemon().expect("hear"), None);
        assert_eq!(keeper.entries.keys().copied().collect::<Vec<_>>(), [1]);

        let second = ToKeeper::Change {
            release: vec![1],
            hold: both_pipes(7, 2),
        };
        wire::send(ours.as_fd(), &second, &[out_read.as_fd(), err_read.as_fd()]).expect("send");
        assert_eq!(keeper.hear_daemon().expect("hear"), None);
        assert_eq!(keeper.entries.keys().copied().collect::<Vec<_>>(), [2, 3]);
        // Each holds its own pipe: the same file as the daemon's end it was sent for.
        for (id, sent) in [(2, &out_read), (3, &err_read)] {
            let kept = keeper.entries[&id].pipe.as_ref().expect("a pipe");
            assert_eq!(
                kelpie_sys::file_identity(kept.as_fd()).expect("identity"),
                kelpie_sys::file_identity(sent.as_fd()).expect("identity"),
                "entry {id} (fd {})",
                kept.as_raw_fd()
            );
        }
        assert_eq!(keeper.entries[&3].holding, pipe_of(7, LogStream::Err));

        let short = ToKeeper::Change {
            release: vec![2],
            hold: both_pipes(8, 4),
        };
        wire::send(ours.as_fd(), &short, &[out_read.as_fd()]).expect("send");
        assert_eq!(keeper.hear_daemon().expect("hear"), None);
        assert_eq!(keeper.entries.keys().copied().collect::<Vec<_>>(), [3]);
    }
}
