//! Residency policy: which region a mailbox lives in. A mailbox no rule covers is refused
//! (fail closed): nothing is ever sealed to a guessed region.

use std::collections::BTreeMap;

use custodia_envelope::Region;

use crate::error::{Error, Result};

/// Residency rules: exact mailboxes and mailbox domains, each mapped to a region.
///
/// An exact mailbox rule wins over a domain rule; among domain rules the longest matching
/// domain wins. A domain rule `example.ie` covers `a@example.ie` and `a@mail.example.ie`
/// (domains compare case-insensitively).
///
/// ```
/// use custodia::{Error, Policy};
/// use custodia_envelope::Region;
///
/// let ie = Region::new("ie")?;
/// let us = Region::new("us")?;
/// let policy = Policy::builder()
///     .domain("example.ie", &ie)
///     .domain("example.com", &us)
///     .mailbox("ceo@example.com", &ie)
///     .build();
/// assert_eq!(policy.region_for("aoife@example.ie")?, ie);
/// assert_eq!(policy.region_for("bob@mail.example.ie")?, ie);
/// assert_eq!(policy.region_for("ceo@example.com")?, ie);
/// assert_eq!(policy.region_for("joe@example.com")?, us);
/// assert!(matches!(
///     policy.region_for("x@elsewhere.org"),
///     Err(Error::NoResidencyRule { .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Policy {
    mailboxes: BTreeMap<String, Region>,
    domains: BTreeMap<String, Region>,
}

/// Builds a [`Policy`].
#[derive(Debug, Clone, Default)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    /// The mailbox `mailbox` (exact, case-sensitive) lives in `region`.
    #[must_use]
    pub fn mailbox(mut self, mailbox: &str, region: &Region) -> Self {
        self.policy
            .mailboxes
            .insert(mailbox.to_owned(), region.clone());
        self
    }

    /// Every mailbox at `domain` or one of its subdomains lives in `region`. A leading `@`
    /// or `.` is ignored (`@example.ie` is `example.ie`).
    #[must_use]
    pub fn domain(mut self, domain: &str, region: &Region) -> Self {
        let d = domain.trim_start_matches(['@', '.']).to_ascii_lowercase();
        self.policy.domains.insert(d, region.clone());
        self
    }

    /// The policy.
    #[must_use]
    pub fn build(self) -> Policy {
        self.policy
    }
}

impl Policy {
    /// An empty builder.
    #[must_use]
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// The region `mailbox` lives in.
    ///
    /// # Errors
    /// [`Error::NoResidencyRule`] if no rule covers it.
    pub fn region_for(&self, mailbox: &str) -> Result<Region> {
        if let Some(r) = self.mailboxes.get(mailbox) {
            return Ok(r.clone());
        }
        let no_rule = || Error::NoResidencyRule {
            mailbox: mailbox.to_owned(),
        };
        let (_, domain) = mailbox.rsplit_once('@').ok_or_else(no_rule)?;
        let domain = domain.to_ascii_lowercase();
        if domain.is_empty() {
            return Err(no_rule());
        }
        self.domains
            .iter()
            .filter(|(d, _)| {
                domain == **d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .max_by_key(|(d, _)| d.len())
            .map(|(_, r)| r.clone())
            .ok_or_else(no_rule)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn suffix_needs_a_label_boundary_and_longest_wins() {
        let ie = Region::new("ie").unwrap();
        let us = Region::new("us").unwrap();
        let p = Policy::builder()
            .domain("@example.ie", &ie)
            .domain("us.example.ie", &us)
            .build();
        assert_eq!(p.region_for("a@EXAMPLE.ie").unwrap(), ie);
        assert_eq!(p.region_for("a@x.us.example.ie").unwrap(), us);
        assert!(p.region_for("a@badexample.ie").is_err());
        assert!(p.region_for("example.ie").is_err());
        assert!(p.region_for("a@").is_err());
    }
}
