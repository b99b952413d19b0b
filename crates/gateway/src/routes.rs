//! Routes: which bucket and key pattern hold whose mailbox. A key no route matches, or whose
//! match names no mailbox, is refused on write and on read (fail closed).

use regex::Regex;

use crate::config::RouteEntry;
use crate::error::{Error, Result};

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    bucket: String,
    key: Regex,
    legacy_plaintext: bool,
}

/// What a route says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The mailbox the object belongs to (its residency decides the region).
    pub mailbox: String,
    /// Whether objects without a Custodia header may be served as plaintext.
    pub legacy_plaintext: bool,
}

/// Keys under this prefix hold the gateway's own records: refused to clients, hidden from
/// listings.
pub const RESERVED_PREFIX: &str = ".custodia/";

/// Longest key pattern accepted (the compiled automaton is bounded too).
const MAX_PATTERN: usize = 1024;

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
    /// [`Error::NoRoute`] if no route matches or the match names an empty mailbox.
    pub fn resolve(&self, bucket: &str, key: &str) -> Result<Resolved> {
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
    fn an_empty_mailbox_capture_is_refused() {
        let routes = Routes::new(&[entry("mail", r"^(?P<mailbox>[^/]*)/")]).unwrap();
        assert!(routes.resolve("mail", "/x").is_err());
    }
}
