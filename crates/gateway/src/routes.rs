//! Routes: which bucket and key pattern hold whose mailbox. A key no route matches, or whose
//! match names no mailbox, is refused on write and on read (fail closed). Every key is first
//! checked against the key grammar ([`check_key`]): no segment a store or a proxy could read
//! as a path step (`.`, `..`, empty, in any percent-encoding), no control characters, so that
//! no key escapes its route's bucket and prefix or reaches the gateway's own records.

use regex::Regex;

use crate::config::RouteEntry;
use crate::error::{Error, Result};

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    bucket: String,
    key: Regex,
    legacy_plaintext: bool,
    legacy_layouts: bool,
}

/// What a route says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The mailbox the object belongs to, in canonical form (its residency decides the
    /// region; it is what objects are sealed to).
    pub mailbox: String,
    /// Whether objects without a Custodia header may be served as plaintext.
    pub legacy_plaintext: bool,
    /// Whether multipart objects with a version 1 layout (parts not bound) may be read.
    pub legacy_layouts: bool,
}

/// Keys under this prefix hold the gateway's own records: refused to clients, hidden from
/// listings.
pub const RESERVED_PREFIX: &str = ".custodia/";

/// Longest key pattern accepted (the compiled automaton is bounded too).
const MAX_PATTERN: usize = 1024;

/// Longest key accepted, bytes (S3's own limit).
pub const MAX_KEY: usize = 1024;

/// How many rounds of percent-decoding a key is checked through: a store or proxy that
/// decodes once or twice more than the gateway expects must not find a path step either.
const DECODE_ROUNDS: usize = 3;

/// Whether a key segment is empty or could be read as `.` or `..` by some store: a segment of
/// dots and spaces only (Windows strips trailing dots and spaces), once a `;` path parameter
/// (which some servers drop) is cut off.
fn is_path_step(segment: &str) -> bool {
    let core = segment.split(';').next().unwrap_or_default();
    segment.is_empty() || core.is_empty() || core.bytes().all(|b| b == b'.' || b == b' ')
}

/// Checks `key` against the key grammar: 1 to [`MAX_KEY`] bytes, and, as it is and after each
/// of up to three rounds of percent-decoding, no control character and no segment (between
/// `/`s) that is empty, `.` or `..`. `a@x.ie/../b@y.ie/m` would otherwise delete another
/// mailbox's mail on a store that resolves the dots, and `a@x.ie/../.custodia/x` write into
/// the gateway's own records.
///
/// # Errors
/// [`Error::BadRequest`] naming the rule broken.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::BadRequest(format!("a key has 1 to {MAX_KEY} bytes")));
    }
    let mut form = std::borrow::Cow::Borrowed(key);
    for _ in 0..=DECODE_ROUNDS {
        if form.chars().any(char::is_control) {
            return Err(Error::BadRequest(
                "control characters are not allowed in keys (in any encoding)".into(),
            ));
        }
        if form.contains('\\') {
            return Err(Error::BadRequest(
                "backslashes are not allowed in keys (some stores read them as '/')".into(),
            ));
        }
        if form.split('/').any(is_path_step) {
            return Err(Error::BadRequest(
                "keys may not have empty, '.' or '..' segments, or segments of only dots and \
                 spaces (in any encoding)"
                    .into(),
            ));
        }
        let decoded = percent_encoding::percent_decode_str(&form)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == *form {
            break;
        }
        form = std::borrow::Cow::Owned(decoded);
    }
    Ok(())
}

impl Route {
    /// Compiles a route.
    ///
    /// # Errors
    /// A reason naming the problem (bad bucket, pattern without a `mailbox` group...).
    pub fn new(entry: &RouteEntry) -> std::result::Result<Self, String> {
        if entry.bucket.is_empty() || entry.bucket.contains('/') {
            return Err(format!(
                "bucket {:?}: a non-empty name without '/' expected",
                entry.bucket
            ));
        }
        if entry.key.len() > MAX_PATTERN {
            return Err(format!("key: pattern longer than {MAX_PATTERN} bytes"));
        }
        let key = regex::RegexBuilder::new(&entry.key)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("key: {e}"))?;
        if !key.capture_names().any(|n| n == Some("mailbox")) {
            return Err("key: the pattern needs a capture group named `mailbox`".into());
        }
        Ok(Self {
            bucket: entry.bucket.clone(),
            key,
            legacy_plaintext: entry.legacy_plaintext,
            legacy_layouts: entry.legacy_layouts,
        })
    }
}

/// All routes, first match wins.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Compiles the configured routes.
    ///
    /// # Errors
    /// [`Error::Config`] naming the route at fault.
    pub fn new(entries: &[RouteEntry]) -> Result<Self> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| Route::new(e).map_err(|r| Error::config(format!("route[{i}]"), r)))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// Whether any route serves `bucket`.
    #[must_use]
    pub fn serves_bucket(&self, bucket: &str) -> bool {
        self.0.iter().any(|r| r.bucket == bucket)
    }

    /// The buckets routes name, in order, without repeats.
    #[must_use]
    pub fn buckets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.0 {
            if !out.contains(&r.bucket.as_str()) {
                out.push(&r.bucket);
            }
        }
        out
    }

    /// The patterns of the routes of `bucket` that allow legacy plaintext reads.
    #[must_use]
    pub fn legacy_routes(&self, bucket: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|r| r.bucket == bucket && r.legacy_plaintext)
            .map(|r| r.key.as_str().to_owned())
            .collect()
    }

    /// The mailbox of `bucket`/`key`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a key outside the key grammar ([`check_key`]);
    /// [`Error::NoRoute`] if no route matches or the match names an empty mailbox;
    /// [`Error::InvalidMailbox`] if it names a mailbox that is not a valid mailbox id
    /// (whitespace, control or invisible characters, a non-ASCII local part, a bad domain).
    /// A valid id in another spelling (`CEO@Example.COM`) resolves to its canonical form.
    pub fn resolve(&self, bucket: &str, key: &str) -> Result<Resolved> {
        check_key(key)?;
        let raw = self.resolve_raw(bucket, key)?;
        let mailbox = custodia_envelope::canonical_mailbox(&raw.mailbox)
            .map_err(|reason| Error::InvalidMailbox { reason })?;
        Ok(Resolved { mailbox, ..raw })
    }

    fn resolve_raw(&self, bucket: &str, key: &str) -> Result<Resolved> {
        // The gateway's own records (multipart layouts) are never client objects.
        if key.starts_with(RESERVED_PREFIX) {
            return Err(Error::NoRoute {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        self.0
            .iter()
            .filter(|r| r.bucket == bucket)
            .find_map(|r| {
                let caps = r.key.captures(key)?;
                let mailbox = caps.name("mailbox")?.as_str();
                (!mailbox.is_empty()).then(|| Resolved {
                    mailbox: mailbox.to_owned(),
                    legacy_plaintext: r.legacy_plaintext,
                    legacy_layouts: r.legacy_layouts,
                })
            })
            .ok_or_else(|| Error::NoRoute {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn entry(bucket: &str, key: &str) -> RouteEntry {
        RouteEntry {
            bucket: bucket.into(),
            key: key.into(),
            legacy_plaintext: false,
            legacy_layouts: false,
        }
    }

    #[test]
    fn first_matching_route_names_the_mailbox() {
        let routes = Routes::new(&[
            entry("mail", r"^(?P<mailbox>[^/]+@[^/]+)/"),
            entry("mail", r"^shared/(?P<mailbox>[^/]+)/"),
        ])
        .unwrap();
        let r = routes
            .resolve("mail", "alice@example.ie/INBOX/1.eml")
            .unwrap();
        assert_eq!(r.mailbox, "alice@example.ie");
        assert_eq!(
            routes
                .resolve("mail", "shared/team@x.ie/a")
                .unwrap()
                .mailbox,
            "team@x.ie"
        );
    }

    #[test]
    fn unmatched_keys_and_buckets_are_refused() {
        let routes = Routes::new(&[entry("mail", r"^(?P<mailbox>[^/]+@[^/]+)/")]).unwrap();
        assert!(matches!(
            routes.resolve("mail", "no-mailbox-here"),
            Err(Error::NoRoute { .. })
        ));
        assert!(matches!(
            routes.resolve("other", "a@b/c"),
            Err(Error::NoRoute { .. })
        ));
    }

    #[test]
    fn bad_routes_are_config_errors() {
        assert!(Route::new(&entry("mail", "^(?P<user>.*)$")).is_err());
        assert!(Route::new(&entry("mail", "^(unclosed")).is_err());
        assert!(Route::new(&entry("", "^(?P<mailbox>.*)$")).is_err());
        assert!(Route::new(&entry("a/b", "^(?P<mailbox>.*)$")).is_err());
        let err = Routes::new(&[entry("m", "(?P<x>a)")]).unwrap_err();
        assert!(err.to_string().contains("route[0]"), "{err}");
    }

    #[test]
    fn dot_and_empty_segments_are_refused_in_every_encoding() {
        let routes = Routes::new(&[entry("mail", r"^(?P<mailbox>[^/]+@[^/]+)/")]).unwrap();
        for key in [
            "jane@example.com/../aoife@example.ie/x.eml",
            "a@example.ie/../.custodia/x",
            "a@example.ie/../../../../x",
            "a@example.ie/./x",
            "a@example.ie//x",
            "a@example.ie/x/",
            "a@example.ie/%2e%2e/b@example.ie/x",
            "a@example.ie/%2E./x",
            "a@example.ie/.%2e/x",
            "a@example.ie/%252e%252e/x",
            "a@example.ie/%25252e%25252E/x",
            "a@example.ie/%2e/x",
            "a@example.ie/%2f/x",
            "a@example.ie/x%00",
            "a@example.ie/...",
            "a@example.ie/.. /x",
            "a@example.ie/..;x/b",
            "a@example.ie/;x",
            "a@example.ie/..\\b@example.ie\\m",
            "a@example.ie/%5c..%5cx",
            "a@example.ie/x\u{0}y",
            "a@example.ie/x\ny",
            "a@example.ie/x\u{7f}",
            "/a@example.ie/x",
            "..",
            "",
        ] {
            assert!(
                matches!(routes.resolve("mail", key), Err(Error::BadRequest(_))),
                "{key:?}"
            );
        }
        assert!(
            routes
                .resolve("mail", &format!("a@b.ie/{}", "x".repeat(1020)))
                .is_err()
        );
        for key in [
            "a@example.ie/x.eml",
            "a@example.ie/.x",
            "a@example.ie/x..y",
            "a@example.ie/%2e%2ex",
            "a@example.ie/b%2fc",
            "a@example.ie/INBOX/cur/1700000000.M1P2.host:2,S",
        ] {
            assert!(routes.resolve("mail", key).is_ok(), "{key:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a client names, a key that resolves stays under its route: a store that
        /// resolves dot segments (after any number of percent-decodings) finds the same path,
        /// it names the mailbox the route captured as its first segment, and it is not one of
        /// the gateway's own records.
        #[test]
        fn no_key_resolves_outside_its_route(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a@example.ie", "b@example.com", ".", "..", "", "%2e", "%2E", "%25",
                    "2e", ".custodia", "x", "%2f", "\\", "~", "%00", "%252e",
                ]),
                1..6,
            )
        ) {
            let routes = Routes::new(&[entry("mail", r"^(?P<mailbox>[^/]+@[^/]+)/")]).unwrap();
            let key = parts.join("/");
            if let Ok(r) = routes.resolve("mail", &key) {
                let mut decoded = key.clone();
                for _ in 0..4 {
                    for seg in decoded.split('/') {
                        proptest::prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                    }
                    proptest::prop_assert!(!decoded.chars().any(char::is_control));
                    decoded = percent_encoding::percent_decode_str(&decoded)
                        .decode_utf8_lossy()
                        .into_owned();
                }
                proptest::prop_assert!(!key.starts_with(RESERVED_PREFIX));
                proptest::prop_assert_eq!(key.split('/').next(), Some(r.mailbox.as_str()));
            }
        }
    }

    #[test]
    fn an_empty_mailbox_capture_is_refused() {
        let routes = Routes::new(&[entry("mail", r"^(?P<mailbox>[^/]*)/")]).unwrap();
        assert!(routes.resolve("mail", "/x").is_err());
    }
}
