//! Taking the terminal over (raw mode, and the alternate screen for full-screen views) and always
//! giving it back: on drop, on a panic (a hook restores it before the message is printed), and
//! on SIGTERM/SIGHUP/SIGINT, which the caller polls through [`RawTerminal::signalled`].

use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnableLineWrap, EnterAlternateScreen, LeaveAlternateScreen,
};
use std::io::{stdout, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Once};

/// The terminal in raw mode until this is dropped.
pub struct RawTerminal {
    alternate: bool,
    signalled: Arc<AtomicBool>,
}

/// What the panic hook has to undo: nothing, raw mode, or raw mode and the alternate screen.
static TAKEN: AtomicU8 = AtomicU8::new(NOTHING);
const NOTHING: u8 = 0;
const RAW: u8 = 1;
const RAW_ALTERNATE: u8 = 2;
static HOOK: Once = Once::new();

impl RawTerminal {
    /// Raw mode, the cursor hidden, and with `alternate` the alternate screen (the shell's
    /// screen comes back untouched when it ends).
    pub fn enter(alternate: bool) -> std::io::Result<RawTerminal> {
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
        let terminal = RawTerminal {
            alternate,
            signalled,
        };
        if alternate {
            execute!(stdout(), EnterAlternateScreen, Hide)?;
        } else {
            execute!(stdout(), Hide)?;
        }
        Ok(terminal)
    }

    /// A signal asked this process to end: leave as if the user had pressed `q`.
    pub fn signalled(&self) -> bool {
        self.signalled.load(Ordering::Relaxed)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
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
