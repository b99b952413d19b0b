//! Printing reports on stdout without panicking when the reader went away (`| head`): a
//! closed pipe ends the output quietly instead of aborting the command with a backtrace.

/// `println!` that ignores write errors (a closed stdout).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
