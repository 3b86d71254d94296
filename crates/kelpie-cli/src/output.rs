//! Writing the CLI's output to stdout.
//!
//! `println!` panics when stdout is a pipe whose reader went away (`kelpie jlist | head -c
//! 10`): Rust ignores SIGPIPE, so the write fails with EPIPE. Like other Unix tools, the CLI
//! then ends quietly instead: there is nobody left to read what it would say.

use std::io::Write;

/// Write `text` to stdout. A closed pipe ends the process quietly (exit 0, as when `main`
/// meets the same error from a `?`); any other write error is said on stderr, once.
pub(crate) fn write(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(text) {
        quit_on(&error);
    }
}

/// End the process for a failed write to stdout.
fn quit_on(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("kelpie: error: cannot write the output: {error}");
    std::process::exit(1);
}
