//! Residency policy: which region a mailbox lives in. A mailbox no rule covers is refused
//! (fail closed): nothing is ever sealed to a guessed region. Rules and lookups compare the
//! canonical mailbox id ([`canonical_mailbox`]): `CEO@Example.com` is `ceo@example.com`.

use std::collections::BTreeMap;

use custodia_envelope::{Region, canonical_domain, canonical_mailbox};

use crate::error::{Error, Result};

/// Residency rules: exact mailboxes and mailbox domains, each mapped to a region.
///
/// An exact mailbox rule wins over a domain rule; among domain rules the longest matching
/// domain wins. A domain rule `example.ie` covers `a@example.ie` and `a@mail.example.ie`.
/// Rules and the mailboxes looked up are compared in canonical form (case, IDNA A-labels);
/// a rule that is not a valid mailbox id or domain never matches (check rules with
/// [`canonical_mailbox`] / [`canonical_domain`] where they are configured).
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
/// assert_eq!(policy.region_for("CEO@Example.COM")?, ie);
/// assert!(matches!(
///     policy.region_for(" ceo@example.com"),
///     Err(Error::InvalidMailbox { .. })
/// ));
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
    /// The mailbox `mailbox` (in canonical form: any spelling of it) lives in `region`.
    #[must_use]
    pub fn mailbox(mut self, mailbox: &str, region: &Region) -> Self {
        if let Ok(id) = canonical_mailbox(mailbox) {
            self.policy.mailboxes.insert(id, region.clone());
        }
        self
    }

    /// Every mailbox at `domain` or one of its subdomains lives in `region`. A leading `@`
    /// or `.` is ignored (`@example.ie` is `example.ie`).
    #[must_use]
    pub fn domain(mut self, domain: &str, region: &Region) -> Self {
        if let Ok(d) = canonical_domain(domain.trim_start_matches(['@', '.'])) {
            self.policy.domains.insert(d, region.clone());
        }
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
    /// [`Error::InvalidMailbox`] if `mailbox` is not a valid mailbox id;
    /// [`Error::NoResidencyRule`] if no rule covers it.
    pub fn region_for(&self, mailbox: &str) -> Result<Region> {
        let id = canonical_mailbox(mailbox).map_err(|reason| Error::InvalidMailbox {
            mailbox: mailbox.to_owned(),
            reason,
        })?;
        if let Some(r) = self.mailboxes.get(&id) {
            return Ok(r.clone());
        }
        let no_rule = || Error::NoResidencyRule {
            mailbox: mailbox.to_owned(),
        };
        let (_, domain) = id.rsplit_once('@').ok_or_else(no_rule)?;
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

    #[test]
    fn exact_rules_hold_for_every_spelling() {
        let ie = Region::new("ie").unwrap();
        let us = Region::new("us").unwrap();
        let p = Policy::builder()
            .domain("example.com", &us)
            .mailbox("ceo@example.com", &ie)
            .domain("\u{c9}ire.example", &ie)
            .build();
        for m in [
            "ceo@example.com",
            "CEO@example.com",
            "ceo@EXAMPLE.COM",
            "Ceo@Example.Com",
        ] {
            assert_eq!(p.region_for(m).unwrap(), ie, "{m}");
        }
        for m in [
            " ceo@example.com",
            "ceo@example.com ",
            "ceo\u{200b}@example.com",
        ] {
            assert!(
                matches!(p.region_for(m), Err(Error::InvalidMailbox { .. })),
                "{m:?}"
            );
        }
        assert_eq!(p.region_for("a@\u{e9}ire.example").unwrap(), ie);
        assert_eq!(p.region_for("a@xn--ire-9la.example").unwrap(), ie);
        assert_eq!(p.region_for("joe@example.com").unwrap(), us);
    }
}
