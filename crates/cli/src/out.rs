//! Printing reports on stdout without panicking when the reader went away (`| head`): a
//! closed pipe ends the output quietly instead of aborting the command with a backtrace.
//! While [`Quoted`] is alive (the demo running another command in process), every line is
//! indented under a bar, as the output of that command.

use std::sync::atomic::{AtomicBool, Ordering};

static QUOTING: AtomicBool = AtomicBool::new(false);

/// The prefix of every line printed by `say!` now.
pub(crate) fn prefix() -> &'static str {
    if QUOTING.load(Ordering::Relaxed) {
        "       │ "
    } else {
        ""
    }
}

/// Indents what `say!` prints until dropped.
pub(crate) struct Quoted(());

impl Quoted {
    /// Starts quoting.
    pub(crate) fn start() -> Self {
        QUOTING.store(true, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Quoted {
    fn drop(&mut self) {
        QUOTING.store(false, Ordering::Relaxed);
    }
}

/// `println!` that ignores write errors (a closed stdout).
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "{}{}",
            $crate::out::prefix(),
            format_args!($($arg)*)
        );
    }};
}
