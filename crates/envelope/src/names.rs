//! Validated names: regions and custodian names.

use core::fmt;

use crate::{Error, Result};

fn check_name(value: &str, field: &'static str, min: usize, max: usize) -> Result<()> {
    let ok_len = (min..=max).contains(&value.len());
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_start = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(Error::NonCanonical {
            field,
            reason: "must be lowercase ASCII letters, digits and '-', starting with a letter, of the allowed length",
        })
    }
}

/// A data-residency region, e.g. `ie` or `us`: 2–16 bytes of `[a-z0-9-]`, starting with a letter.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(String);

impl Region {
    /// Longest region name, in bytes.
    pub const MAX_LEN: usize = 16;

    /// Validates a region name.
    ///
    /// # Errors
    /// [`Error::NonCanonical`] if `name` is not a valid region name.
    pub fn new(name: &str) -> Result<Self> {
        check_name(name, "region", 2, Self::MAX_LEN)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of one custodian (independent key holder) within a region: 1–32 bytes of
/// `[a-z0-9-]`, starting with a letter.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustodianName(String);

impl CustodianName {
    /// Longest custodian name, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Validates a custodian name.
    ///
    /// # Errors
    /// [`Error::NonCanonical`] if `name` is not a valid custodian name.
    pub fn new(name: &str) -> Result<Self> {
        check_name(name, "custodian", 1, Self::MAX_LEN)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.0)
            }
        }
    )*};
}
display_as_str!(Region, CustodianName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_checked() {
        assert!(Region::new("ie").is_ok());
        assert!(Region::new("eu-west-1").is_ok());
        for bad in ["", "i", "IE", "1e", "ie_", "ié", "abcdefghijklmnopq"] {
            assert!(Region::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn custodian_names_are_checked() {
        assert!(CustodianName::new("a").is_ok());
        assert!(CustodianName::new("ie-dpc-1").is_ok());
        assert!(CustodianName::new("-x").is_err());
        assert!(CustodianName::new(&"a".repeat(33)).is_err());
    }
}
