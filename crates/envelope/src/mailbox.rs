//! The canonical mailbox id: the one spelling of a mailbox that residency rules, routes,
//! sealed contexts, approvals, commitments and the audit log compare. Without it,
//! `CEO@example.com`, `ceo@EXAMPLE.COM` and `ceo@example.com` are three mailboxes to a string
//! comparison, and an exact residency rule for one of them misses the others (their mail is
//! then sealed to whatever a domain rule says).
//!
//! The form (docs/FORMAT.md §2.2):
//! * no whitespace, control character or invisible format character anywhere (refused, never
//!   trimmed);
//! * `local@domain`, split at the last `@`;
//! * the local part an RFC 5322 dot-atom in ASCII (letters, digits and
//!   `` !#$%&'*+-/=?^_`{|}~ ``, dots only between them; quoted strings, comments and non-ASCII
//!   local parts are refused with a clear error), 1 to 64 bytes, lowercased. Sub-addresses are
//!   not folded: `ceo+board@example.com` is a mailbox of its own;
//! * the domain in its IDNA A-label form (UTS #46 processing with the STD3 rules, which
//!   normalises to NFC, maps case and encodes Punycode: `Éire.example` becomes
//!   `xn--ire-9la.example`), lowercase, without a trailing dot;
//! * at most 254 bytes in all.

use core::fmt;

/// Longest canonical mailbox id, bytes.
pub const MAX_MAILBOX: usize = 254;

/// Longest input looked at, bytes (a Unicode domain may shrink or grow when encoded; longer
/// inputs are refused before any processing).
const MAX_INPUT: usize = 4 * MAX_MAILBOX;

/// Longest local part, bytes (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL: usize = 64;

/// Why a string is not a mailbox id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxError {
    /// Empty, or longer than [`MAX_MAILBOX`] bytes (before or after canonicalisation).
    Length,
    /// It holds whitespace, a control character or an invisible format character.
    Invisible,
    /// No `@`, or an empty local part or domain.
    Shape,
    /// The local part is not an ASCII dot-atom (non-ASCII local parts, quoted strings and
    /// comments are not supported), or is longer than 64 bytes.
    LocalPart,
    /// The domain is not a valid (internationalised) domain name.
    Domain,
}

impl fmt::Display for MailboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Length => "a mailbox id has 1 to 254 bytes",
            Self::Invisible => {
                "a mailbox id may not hold whitespace, control or invisible format characters"
            }
            Self::Shape => "a mailbox id is local@domain, both parts non-empty",
            Self::LocalPart => {
                "the local part of a mailbox id must be 1 to 64 ASCII letters, digits, dots \
                 (not first, last or doubled) and !#$%&'*+-/=?^_`{|}~ (non-ASCII local parts, \
                 quoted strings and comments are not supported)"
            }
            Self::Domain => "the domain of a mailbox id is not a valid domain name",
        })
    }
}

impl std::error::Error for MailboxError {}

/// Whether `c` is an invisible format character: bidirectional controls, zero-width
/// characters, the soft hyphen, the byte-order mark and the like, which would make two ids
/// look alike or reorder what a reviewer sees.
#[must_use]
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e0fff}'
                // Other format characters (Unicode general category Cf) that draw nothing.
                | '\u{0600}'..='\u{0605}'
                | '\u{06dd}'
                | '\u{070f}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08e2}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
        )
}

/// Whether `local` is an RFC 5322 dot-atom of at most 64 bytes: atext runs joined by single
/// dots.
fn is_dot_atom(local: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    local.len() <= MAX_LOCAL
        && local
            .split('.')
            .all(|run| !run.is_empty() && run.bytes().all(atext))
}

/// The canonical form of the mailbox id `raw`.
///
/// ```
/// use custodia_envelope::canonical_mailbox;
/// assert_eq!(canonical_mailbox("CEO@Example.COM").unwrap(), "ceo@example.com");
/// assert_eq!(canonical_mailbox("aoife@Éire.example").unwrap(), "aoife@xn--ire-9la.example");
/// assert!(canonical_mailbox(" ceo@example.com").is_err());
/// assert!(canonical_mailbox("séan@example.ie").is_err());
/// ```
///
/// # Errors
/// [`MailboxError`] saying which rule `raw` breaks.
pub fn canonical_mailbox(raw: &str) -> Result<String, MailboxError> {
    if raw.is_empty() || raw.len() > MAX_INPUT {
        return Err(MailboxError::Length);
    }
    if raw.chars().any(is_invisible) {
        return Err(MailboxError::Invisible);
    }
    let (local, domain) = raw.rsplit_once('@').ok_or(MailboxError::Shape)?;
    if local.is_empty() || domain.is_empty() {
        return Err(MailboxError::Shape);
    }
    if !is_dot_atom(local) {
        return Err(MailboxError::LocalPart);
    }
    if domain.ends_with('.') {
        return Err(MailboxError::Domain);
    }
    let domain = idna::domain_to_ascii_strict(domain).map_err(|_| MailboxError::Domain)?;
    if domain.is_empty() {
        return Err(MailboxError::Domain);
    }
    let id = format!(
        "{}@{}",
        local.to_ascii_lowercase(),
        domain.to_ascii_lowercase()
    );
    if id.len() > MAX_MAILBOX {
        return Err(MailboxError::Length);
    }
    Ok(id)
}

/// The canonical form of a mail domain (as a residency rule names it): the domain part of
/// [`canonical_mailbox`].
///
/// # Errors
/// [`MailboxError::Invisible`] or [`MailboxError::Domain`].
pub fn canonical_domain(raw: &str) -> Result<String, MailboxError> {
    if raw.is_empty() || raw.len() > MAX_INPUT {
        return Err(MailboxError::Domain);
    }
    if raw.chars().any(is_invisible) {
        return Err(MailboxError::Invisible);
    }
    if raw.ends_with('.') {
        return Err(MailboxError::Domain);
    }
    idna::domain_to_ascii_strict(raw)
        .map(|d| d.to_ascii_lowercase())
        .map_err(|_| MailboxError::Domain)
        .and_then(|d| {
            if d.is_empty() {
                Err(MailboxError::Domain)
            } else {
                Ok(d)
            }
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn one_spelling_per_mailbox() {
        for raw in [
            "ceo@example.com",
            "CEO@example.com",
            "ceo@EXAMPLE.COM",
            "Ceo@Example.Com",
            "ceo@ＥＸＡＭＰＬＥ.com",
        ] {
            assert_eq!(canonical_mailbox(raw).unwrap(), "ceo@example.com", "{raw}");
        }
        // NFC: a decomposed É is the same domain as a composed one.
        assert_eq!(
            canonical_mailbox("a@E\u{301}ire.example").unwrap(),
            canonical_mailbox("a@\u{c9}ire.example").unwrap()
        );
        assert_eq!(
            canonical_mailbox("a@\u{c9}ire.example").unwrap(),
            "a@xn--ire-9la.example"
        );
        // Dot-atoms with the other atext characters; sub-addresses stay ids of their own.
        assert_eq!(
            canonical_mailbox("First.Last+Board@example.com").unwrap(),
            "first.last+board@example.com"
        );
        assert_eq!(
            canonical_mailbox("o'neil_x-y@example.ie").unwrap(),
            "o'neil_x-y@example.ie"
        );
        // An A-label given as such stays.
        assert_eq!(
            canonical_mailbox("a@XN--IRE-9LA.example").unwrap(),
            "a@xn--ire-9la.example"
        );
    }

    #[test]
    fn what_is_refused() {
        use MailboxError::*;
        for (raw, why) in [
            ("", Length),
            (" ceo@example.com", Invisible),
            ("ceo@example.com ", Invisible),
            ("ceo\t@example.com", Invisible),
            ("ceo@exa\u{200b}mple.com", Invisible),
            ("ceo@example.com\u{202e}", Invisible),
            ("\r\u{1b}[2Kceo@example.com", Invisible),
            ("ceo\u{ad}@example.com", Invisible),
            ("ceo", Shape),
            ("@example.com", Shape),
            ("ceo@", Shape),
            ("séan@example.ie", LocalPart),
            ("a@b@example.ie", LocalPart),
            ("\"ceo\"@example.com", LocalPart),
            ("ceo(x)@example.com", LocalPart),
            (".ceo@example.com", LocalPart),
            ("ceo.@example.com", LocalPart),
            ("c..eo@example.com", LocalPart),
            ("ceo,x@example.com", LocalPart),
            ("ceo\\x@example.com", LocalPart),
            ("ceo@exa_mple.com", Domain),
            ("ceo@example.com.", Domain),
            ("ceo@-example.com", Domain),
            ("ceo@exa..mple.com", Domain),
        ] {
            assert_eq!(canonical_mailbox(raw), Err(why), "{raw:?}");
        }
        assert_eq!(
            canonical_mailbox(&format!("{}@example.com", "a".repeat(65))),
            Err(LocalPart)
        );
        // 64 + 1 + 190 = 255 bytes: the domain is a valid name, the id too long.
        let long = format!(
            "{}@{}.ie",
            "a".repeat(64),
            vec!["x".repeat(46); 4].join(".")
        );
        assert_eq!(canonical_mailbox(&long), Err(Length));
        let long_domain = format!("a@{}.ie", vec!["x".repeat(62); 4].join("."));
        assert_eq!(canonical_mailbox(&long_domain), Err(Domain));
        assert_eq!(canonical_mailbox(&"a".repeat(5000)), Err(Length));
    }

    #[test]
    fn domains_canonicalise_like_mailboxes() {
        assert_eq!(canonical_domain("Example.IE").unwrap(), "example.ie");
        assert_eq!(
            canonical_domain("\u{c9}ire.example").unwrap(),
            "xn--ire-9la.example"
        );
        assert!(canonical_domain("example.ie.").is_err());
        assert!(canonical_domain(" example.ie").is_err());
        assert!(canonical_domain("").is_err());
    }
}
