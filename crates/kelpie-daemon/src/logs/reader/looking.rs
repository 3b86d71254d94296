//! Looking at a pipe whose bytes the writer consumes (see `cursor`): the reader copies what is
//! new, frames it and queues it for the files, then waits for the writer to take it out of the
//! pipe before it waits for the pipe again (a pipe that still holds bytes is always readable).
//! The start of a line stays in the pipe until its end comes, or until the app has been quiet
//! for [`PARTIAL_IDLE`]: looked at again now and then meanwhile.

use super::super::cursor::{Look, PipeCursor};
use super::super::sink::{Sink, PROGRESS_CHECK, STALL_CHECKS};
use super::{asked_back, Chunk, Framer, HandBack, Pace, PARTIAL_IDLE, READ_BUF};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::time::Instant;

/// First wait before looking again at a pipe whose only unwritten bytes are the start of a
/// line; doubled each time nothing new came, until [`PARTIAL_IDLE`].
const PARTIAL_LOOK: Duration = Duration::from_millis(2);

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
    /// Nothing of the pipe is left unconsumed: for the pipe to become readable.
    Readable,
    /// The writer has lines of it to take out of the pipe: for the writer.
    Writer,
    /// Only the start of a line is in the pipe: for its end.
    LineEnd,
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
    loop {
        if hand_back.borrow().is_some() {
            let to = asked_back(hand_back).await;
            // What is not consumed yet stays in the pipe, for the next daemon to see.
            chunk.hand_back(to, cursor.lend().or_else(|| cursor.dup()));
            return Looked::HandedBack;
        }
        let held = framer.partial_len() as u64;
        let next = match cursor.unconsumed() {
            Some(0) => Next::Readable,
            Some(unconsumed) if unconsumed > held => Next::Writer,
            Some(_) => Next::LineEnd,
            // The writer is taking bytes out of the pipe this instant.
            None => Next::Writer,
        };
        match next {
            Next::Readable => {
                line_end = None;
                if !readable(&cursor, hand_back).await {
                    continue;
                }
                pace.gather().await;
            }
            Next::Writer => {
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
                tokio::select! {
                    biased;
                    _ = hand_back.changed() => continue,
                    () = tokio::time::sleep(wait) => {}
                }
                line_end = Some((since, wait * 2));
            }
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

/// Wait until the pipe is readable (or closed). False when asked back meanwhile.
async fn readable(cursor: &PipeCursor, hand_back: &mut HandBack) -> bool {
    let Some(fd) = cursor.lend() else {
        return true;
    };
    let pipe = match pipe::Receiver::from_owned_fd_unchecked(fd) {
        Ok(pipe) => pipe,
        // Cannot be watched (the runtime is ending): looking tells what is there.
        Err(_) => return true,
    };
    let ready = tokio::select! {
        biased;
        _ = hand_back.wait_for(Option::is_some) => false,
        _ = pipe.readable() => true,
    };
    if let Ok(fd) = pipe.into_nonblocking_fd() {
        cursor.give_back(fd);
    }
    ready
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
