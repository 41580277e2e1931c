//! Standard output and standard error for every command, reached through the `print!`,
//! `println!`, `eprint!` and `eprintln!` macros that `main.rs` defines over std's.
//!
//! std's macros panic when the stream is closed ("failed printing to stdout: Broken pipe", as
//! in `credsync status --json | head -1`). Here a closed stdout is not an error: output stops
//! quietly and the command goes on with its work (a `sync` still writes the credentials file)
//! and exits with its own code. Any other write error (a full disk behind `> file`) is said
//! once on stderr and turns the exit code into a failure ([`exit_code`]). Errors writing to
//! stderr are ignored: there is nowhere left to report them.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

/// What became of stdout: open, closed by the reader, or failed otherwise.
const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);

/// Writes to stdout unless it has stopped taking output.
pub(crate) fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        write_failed(&e);
    }
}

/// Writes to stderr, ignoring errors.
pub(crate) fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Flushes stdout (at exit: a `print!` without a newline may still be buffered).
pub(crate) fn flush() {
    if STDOUT.load(Ordering::Relaxed) == OPEN
        && let Err(e) = io::stdout().lock().flush()
    {
        write_failed(&e);
    }
}

fn write_failed(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT.store(CLOSED, Ordering::Relaxed);
    } else {
        STDOUT.store(FAILED, Ordering::Relaxed);
        stderr(format_args!(
            "credsync: cannot write to standard output: {e}\n"
        ));
    }
}

/// The command's exit code, unless writing its output failed for another reason than a
/// closed pipe (then 1: what was asked for did not all arrive).
pub(crate) fn exit_code(code: ExitCode) -> ExitCode {
    flush();
    if STDOUT.load(Ordering::Relaxed) == FAILED {
        ExitCode::from(super::EXIT_DEGRADED)
    } else {
        code
    }
}
