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

/// `text` made safe to print on a terminal: control characters (escape sequences, carriage
/// returns), bidirectional overrides and other invisible format characters are shown as
/// `\u{…}` escapes, and a backslash as `\\`, so a string someone else chose (an object key, a
/// name from a certificate) cannot repaint or hide other output.
pub(crate) fn escape(text: &str) -> String {
    escape_with(text, true)
}

/// As [`escape`], leaving backslashes as they are: for messages that may already hold text
/// escaped by [`escape`] (error messages), which must not be escaped twice.
pub(crate) fn escape_controls(text: &str) -> String {
    escape_with(text, false)
}

fn escape_with(text: &str, backslashes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        );
        if c == '\\' && backslashes {
            out.push_str("\\\\");
        } else if c.is_control() || invisible || (c != ' ' && custodia_envelope::is_invisible(c)) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_what_could_repaint_a_terminal() {
        assert_eq!(
            escape("a@example.ie/INBOX/1.eml"),
            "a@example.ie/INBOX/1.eml"
        );
        assert_eq!(escape("x\r\u{1b}[2Ky"), "x\\u{d}\\u{1b}[2Ky");
        assert_eq!(escape("a\u{202e}b\u{200b}"), "a\\u{202e}b\\u{200b}");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("éire"), "éire");
    }
}
