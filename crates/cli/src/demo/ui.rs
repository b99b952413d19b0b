//! How the demo talks: numbered sections, one line per step with a mark for what happened
//! (✓ as expected, ✗ not), refusals and excerpts indented under their step, colour only on a
//! terminal (and never with `NO_COLOR` set), and `xxd`-style hex dumps.

use std::cell::Cell;
use std::io::IsTerminal as _;

const BOLD: &str = "1";
const DIM: &str = "2";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const CYAN: &str = "36";

/// The narrator: prints on stdout and counts the checks that passed.
pub(crate) struct Ui {
    colour: bool,
    checks: Cell<usize>,
}

impl Ui {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub(crate) fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            colour: std::io::stdout().is_terminal() && !no_color,
            checks: Cell::new(0),
        }
    }

    /// `text` in the SGR style `code` (when colouring).
    pub(crate) fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// The demo's title.
    pub(crate) fn title(&self, text: &str) {
        say!("{}", self.paint(BOLD, text));
    }

    /// A numbered section heading, after a blank line.
    pub(crate) fn section(&self, n: usize, text: &str) {
        say!();
        say!(
            "{}",
            self.paint(&format!("{BOLD};{CYAN}"), &format!("{n}. {text}"))
        );
    }

    /// An explanatory line under the current section.
    pub(crate) fn say(&self, text: &str) {
        say!("   {text}");
    }

    /// A step that behaved as expected (counted).
    pub(crate) fn ok(&self, text: &str) {
        self.checks.set(self.checks.get() + 1);
        say!(" {} {text}", self.paint(GREEN, "✓"));
    }

    /// A refusal (or other quoted answer) under its step.
    pub(crate) fn quote(&self, text: &str) {
        say!("       {}", self.paint(YELLOW, text));
    }

    /// Dimmed detail lines (excerpts, hex dumps) under a step.
    pub(crate) fn detail(&self, text: &str) {
        say!("       {}", self.paint(DIM, text));
    }

    /// Runs `f` (another `custodia` command, in process) with its output indented under
    /// `$ command`.
    pub(crate) fn quoted<T>(&self, command: &str, f: impl FnOnce() -> T) -> T {
        say!("       {}", self.paint(DIM, &format!("$ {command}")));
        let _quoted = crate::out::Quoted::start();
        f()
    }

    /// A step that did not behave as expected.
    pub(crate) fn fail(&self, expected: &str, got: &str) {
        say!(
            " {} {}",
            self.paint(RED, "✗"),
            self.paint(RED, &format!("expected: {expected}"))
        );
        for line in got.lines() {
            say!("       {}", self.paint(RED, &format!("got: {line}")));
        }
    }

    /// The closing line.
    pub(crate) fn verdict(&self, ok: bool, text: &str) {
        say!();
        let style = if ok {
            format!("{BOLD};{GREEN}")
        } else {
            format!("{BOLD};{RED}")
        };
        say!("{}", self.paint(&style, text));
    }

    /// How many checks passed so far.
    pub(crate) fn checks(&self) -> usize {
        self.checks.get()
    }
}

/// `bytes` as `xxd` prints them: offset, eight groups of two bytes, the printable ASCII.
pub(crate) fn hexdump(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let mut hex = String::with_capacity(40);
            for (j, b) in row.iter().enumerate() {
                if j > 0 && j % 2 == 0 {
                    hex.push(' ');
                }
                hex.push_str(&format!("{b:02x}"));
            }
            let ascii: String = row
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}: {hex:<39}  {ascii}", i * 16)
        })
        .collect()
}

/// `n` with thousands separators: `12,345`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_looks_like_xxd() {
        let lines = hexdump(b"CUSTODIA\x00\x01\x02 hello, world!\xff");
        assert_eq!(
            lines,
            vec![
                "00000000: 4355 5354 4f44 4941 0001 0220 6865 6c6c  CUSTODIA... hell",
                "00000010: 6f2c 2077 6f72 6c64 21ff                 o, world!.",
            ]
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
