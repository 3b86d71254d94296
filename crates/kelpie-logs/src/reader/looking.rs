//! Looking at a pipe whose bytes the writer consumes (see `cursor`): the reader copies what is
//! new, frames it and queues it for the files, and the writer takes it out of the pipe once it
//! is in them.
//!
//! Between looks the pipe stays registered with the log thread's event loop, which signals each
//! write to it (edge-triggered): the reader waits for the app's next write while the writer is
//! still consuming the last one, instead of waiting for the writer to say it is done (a wake-up
//! of the log thread per burst of output, two per restart of an app that prints to stdout and
//! stderr) and registering the pipe again (two `epoll_ctl`). It waits for the writer only when
//! what the writer has not consumed yet could soon fill the pipe (the app would then wait on
//! it, and a writer stuck on a hung disk must be noticed: [`Stall`]), at the pipe's end, and
//! while it holds the start of a line (the app may write nothing more: see `Next::LineEnd`).
//! It is taken out of the event loop while the reader waits for the writer or lets a chatty
//! app's output gather, so that the app's writes do not wake the thread meanwhile.
//!
//! The start of a line stays in the pipe until its end comes, or until the app has been quiet
//! for [`PARTIAL_IDLE`]: looked at again now and then meanwhile.

use super::super::cursor::{Look, PipeCursor};
use super::super::sink::{Sink, PROGRESS_CHECK, STALL_CHECKS};
use super::{asked_back, Chunk, Framer, HandBack, Pace, PARTIAL_IDLE, READ_BUF};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// First wait before looking again at a pipe whose only unwritten bytes are the start of a
/// line; doubled each time nothing new came, until [`PARTIAL_IDLE`].
const PARTIAL_LOOK: Duration = Duration::from_millis(2);

/// Bytes of the pipe the writer may still have to consume while the reader waits for the
/// app's next write rather than for the writer: half the kernel's default pipe capacity. With
/// more, the app may soon wait on a full pipe, and the reader watches the writer's progress.
const AHEAD_OF_THE_WRITER: u64 = 32 * 1024;

/// How looking at a pipe ended.
pub(super) enum Looked {
    /// Every writer closed it and every byte is consumed.
    Ended,
    /// It was given back for `kelpie update`.
    HandedBack,
    /// The writer made no progress for seconds: the reader reads the pipe itself from now on.
    TakenOver(OwnedFd),
}

/// What the reader waits for next.
enum Next {
    /// The app's next write (the writer may still be consuming the last ones).
    Readable,
    /// The writer, to take the lines of the pipe out of it.
    Writer,
    /// Only the start of a line is in the pipe: for its end.
    LineEnd,
    /// Nothing: every writer closed the pipe, and what is left in it is to be looked at.
    Look,
}

/// The pipe's place in the log thread's event loop, while the reader waits for the app.
#[derive(Default)]
struct Registration {
    /// Every writer has closed the pipe (the event loop said so; it stays said).
    closed: bool,
}

impl Registration {
    /// Wait for the app's next write to the pipe (or its end, or the writer's word that the
    /// pipe holds bytes not seen yet). Registers the pipe if it is not: it is signalled at
    /// once if it holds bytes then. When it cannot be registered (the writer is consuming it
    /// this instant, or the runtime is ending), returns after [`PARTIAL_LOOK`]: looking tells
    /// what is there.
    async fn next_write(&mut self, cursor: &PipeCursor) {
        let Some(registered) = cursor.watch() else {
            tokio::time::sleep(PARTIAL_LOOK).await;
            return;
        };
        tokio::select! {
            ready = registered.next_readable() => {
                // Taken: the next signal is for the next write. One that came since the event
                // loop said so stays, and the look that follows sees every byte written
                // before this.
                if let Ok(ready) = ready {
                    self.closed = ready.is_read_closed();
                }
            }
            () = cursor.unseen() => {}
        }
    }
}

/// Look at `fd` until it ends, is asked back or is taken over.
pub(super) async fn look_at(
    fd: OwnedFd,
    framer: &mut Framer,
    chunk: &mut Chunk<'_>,
    hand_back: &mut HandBack,
) -> Looked {
    let cursor = Arc::new(PipeCursor::new(fd));
    chunk.cursor = Some(cursor.clone());
    let Some(owner) = chunk.route.sinks(chunk.stream).first().cloned() else {
        return Looked::Ended;
    };
    let mut stall = Stall::new(&owner);
    // Since when the start of a line waits in the pipe with nothing new, and the next wait.
    let mut line_end: Option<(Instant, Duration)> = None;
    let mut pace = Pace::default();
    let mut registration = Registration::default();
    loop {
        if hand_back.borrow().is_some() {
            cursor.unwatch();
            let to = asked_back(hand_back).await;
            // What is not consumed yet stays in the pipe, for the next daemon to see.
            chunk.hand_back(to, cursor.lend().or_else(|| cursor.dup()));
            return Looked::HandedBack;
        }
        let held = framer.partial_len() as u64;
        let next = match cursor.unconsumed() {
            Some(unconsumed) if unconsumed > held => {
                // With the start of a line held, the app may say nothing more (a prompt): its
                // wait (`LineEnd`) can only begin once the writer has taken the lines before
                // it, and only the writer says when (taking bytes out of a pipe signals no
                // reader).
                if registration.closed || unconsumed >= AHEAD_OF_THE_WRITER || held > 0 {
                    Next::Writer
                } else {
                    Next::Readable
                }
            }
            Some(0) if registration.closed => Next::Look,
            Some(0) => Next::Readable,
            Some(_) => Next::LineEnd,
            // The writer is taking bytes out of the pipe this instant.
            None => Next::Writer,
        };
        match next {
            Next::Readable => {
                line_end = None;
                // What the last look could not take is looked at without waiting: no write
                // may come to signal it (the app may be waiting on the full pipe).
                if !cursor.holds_unseen() {
                    tokio::select! {
                        biased;
                        _ = hand_back.wait_for(Option::is_some) => continue,
                        () = registration.next_write(&cursor) => {}
                    }
                }
                if pace.waits() {
                    // A chatty app: its output gathers out of the event loop.
                    cursor.unwatch();
                }
                pace.gather().await;
            }
            Next::Writer => {
                cursor.unwatch();
                if !stall.wait_for_writer(&cursor, held, hand_back).await {
                    continue;
                }
                if let Some(fd) = cursor.take_over() {
                    stall.give_up();
                    chunk.cursor = None;
                    return Looked::TakenOver(fd);
                }
                continue;
            }
            Next::LineEnd => {
                let (since, wait) = *line_end.get_or_insert((Instant::now(), PARTIAL_LOOK));
                if since.elapsed() >= PARTIAL_IDLE || cursor.hung_up() {
                    // A prompt, or the last words of an app that is gone: written as they are.
                    chunk.process(framer, None);
                    line_end = None;
                    continue;
                }
                let wait = wait.min(PARTIAL_IDLE.saturating_sub(since.elapsed()));
                if !cursor.holds_unseen() {
                    let open = !registration.closed;
                    tokio::select! {
                        biased;
                        _ = hand_back.changed() => continue,
                        () = registration.next_write(&cursor), if open => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                line_end = Some((since, wait * 2));
            }
            Next::Look => {}
        }
        if chunk.behind() {
            chunk.wait_for_room(hand_back).await;
        }
        let look = READ_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            cursor.look(&mut buf, |bytes| chunk.process(framer, Some(bytes)))
        });
        match look {
            Look::New(_) => line_end = None,
            Look::Ended => return Looked::Ended,
            Look::Nothing | Look::Busy | Look::Full => {}
        }
    }
}

/// Whether the writer still moves the first file of the stream.
struct Stall {
    owner: Arc<Sink>,
    /// Its progress count when last looked at, and the checks in a row without progress.
    seen: u64,
    quiet: u32,
}

impl Stall {
    fn new(owner: &Arc<Sink>) -> Stall {
        Stall {
            owner: owner.clone(),
            seen: owner.progress(),
            quiet: 0,
        }
    }

    /// Wait until the writer has taken the lines queued from this pipe out of it (everything
    /// seen but the `held` start of a line), or the pipe is asked back. True when the writer
    /// has made no progress on the file for [`STALL_CHECKS`] checks (a hung disk): the reader
    /// then takes the pipe over, so the app is not blocked forever.
    async fn wait_for_writer(
        &mut self,
        cursor: &PipeCursor,
        held: u64,
        hand_back: &mut HandBack,
    ) -> bool {
        let drained = self.owner.drained();
        tokio::pin!(drained);
        drained.as_mut().enable();
        // Busy (`None`): the writer is consuming the pipe; it says when it is done.
        let taken = cursor
            .unconsumed()
            .is_some_and(|unconsumed| unconsumed <= held);
        if taken || hand_back.borrow().is_some() {
            self.quiet = 0;
            return false;
        }
        let checked = tokio::select! {
            _ = hand_back.changed() => false,
            woke = tokio::time::timeout(PROGRESS_CHECK, drained) => woke.is_err(),
        };
        let now = self.owner.progress();
        if now != self.seen || !checked {
            if now != self.seen {
                (self.seen, self.quiet) = (now, 0);
            }
            return false;
        }
        self.quiet += 1;
        self.quiet >= STALL_CHECKS
    }

    /// The reader took the pipe over: the file is shown as failing, its lines dropped and
    /// counted until it moves again.
    fn give_up(&self) {
        self.owner.give_up_waiting(self.seen);
    }
}
