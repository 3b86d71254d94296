//! Taking the terminal over (raw mode, and the alternate screen for full-screen views) and always
//! giving it back: on drop, on a panic (a hook restores it before the message is printed), and
//! on SIGTERM/SIGHUP/SIGINT, which the caller polls through [`RawTerminal::signalled`].
//!
//! A watchdog thread ends the process when the terminal is hung up (an SSH connection lost, a
//! tmux pane killed) or when a signal was not acted on within a second: crossterm's event
//! reader spins forever on a terminal that returns end-of-file or EIO, so the reading thread
//! cannot be relied on to notice.

use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnableLineWrap, EnterAlternateScreen, LeaveAlternateScreen,
};
use std::io::{stdout, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// The terminal in raw mode until this is dropped.
pub(crate) struct RawTerminal {
    alternate: bool,
    signalled: Arc<AtomicBool>,
    /// Cleared on drop, which ends the watchdog.
    active: Arc<AtomicBool>,
}

/// How long the caller has to act on a signal before the watchdog ends the process.
const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// What the panic hook has to undo: nothing, raw mode, or raw mode and the alternate screen.
static TAKEN: AtomicU8 = AtomicU8::new(NOTHING);
const NOTHING: u8 = 0;
const RAW: u8 = 1;
const RAW_ALTERNATE: u8 = 2;
static HOOK: Once = Once::new();

impl RawTerminal {
    /// Raw mode, the cursor hidden, and with `alternate` the alternate screen (the shell's
    /// screen comes back untouched when it ends).
    pub(crate) fn enter(alternate: bool) -> std::io::Result<RawTerminal> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                match TAKEN.swap(NOTHING, Ordering::SeqCst) {
                    RAW => restore(false),
                    RAW_ALTERNATE => restore(true),
                    _ => {}
                }
                previous(info);
            }));
        });
        let signalled = Arc::new(AtomicBool::new(false));
        for signal in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGINT,
        ] {
            signal_hook::flag::register(signal, Arc::clone(&signalled))?;
        }
        enable_raw_mode()?;
        TAKEN.store(
            if alternate { RAW_ALTERNATE } else { RAW },
            Ordering::SeqCst,
        );
        let active = Arc::new(AtomicBool::new(true));
        spawn_watchdog(Arc::clone(&signalled), Arc::clone(&active));
        let terminal = RawTerminal {
            alternate,
            signalled,
            active,
        };
        if alternate {
            execute!(stdout(), EnterAlternateScreen, Hide)?;
        } else {
            execute!(stdout(), Hide)?;
        }
        Ok(terminal)
    }

    /// A signal asked this process to end: leave as if the user had pressed `q`.
    pub(crate) fn signalled(&self) -> bool {
        self.signalled.load(Ordering::Relaxed)
    }
}

/// End the process when the terminal is gone (reading stdin's terminal settings fails once it
/// is hung up), or when a signal asked for an end that has not come within [`SIGNAL_GRACE`].
fn spawn_watchdog(signalled: Arc<AtomicBool>, active: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("kelpie-tty-watch".into())
        .spawn(move || {
            let mut signalled_at: Option<Instant> = None;
            while active.load(Ordering::SeqCst) {
                let hung_up = !std::io::stdin().is_terminal();
                if signalled.load(Ordering::Relaxed) {
                    signalled_at.get_or_insert_with(Instant::now);
                }
                let ignored = signalled_at.is_some_and(|at| at.elapsed() >= SIGNAL_GRACE);
                if hung_up || ignored {
                    if TAKEN.swap(NOTHING, Ordering::SeqCst) == RAW_ALTERNATE {
                        restore(true);
                    } else {
                        restore(false);
                    }
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    // Without the thread, a hang-up is only noticed when crossterm reports it.
    drop(spawned);
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.active.store(false, Ordering::SeqCst);
        if TAKEN.swap(NOTHING, Ordering::SeqCst) != NOTHING {
            restore(self.alternate);
        }
    }
}

/// Give the terminal back; every step is tried even when one fails.
fn restore(alternate: bool) {
    let _ = disable_raw_mode();
    let mut out = stdout();
    if alternate {
        let _ = execute!(out, LeaveAlternateScreen);
    }
    // `list --watch` turns line wrapping off; it is on in every terminal's default state.
    let _ = execute!(out, Show, EnableLineWrap);
    let _ = out.flush();
}
