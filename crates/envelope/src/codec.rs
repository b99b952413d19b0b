//! A bounded big-endian reader and a writer for the header's wire encoding.
//!
//! The reader never panics and never allocates: every read checks the remaining length first
//! and returns [`Error::Truncated`] naming the field.

use crate::{Error, Result};

/// Reads fields from a byte slice, front to back.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        match rest.get(..n) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Error::Truncated {
                field,
                needed: n - rest.len(),
            }),
        }
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, field)?;
        let mut out = [0; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A `u8`-length-prefixed byte string of at most `max` bytes.
    pub(crate) fn bytes_u8(&mut self, field: &'static str, max: usize) -> Result<&'a [u8]> {
        let len = usize::from(self.u8(field)?);
        check_len(field, len, max)?;
        self.take(len, field)
    }

    /// A `u16`-length-prefixed byte string of at most `max` bytes.
    pub(crate) fn bytes_u16(&mut self, field: &'static str, max: usize) -> Result<&'a [u8]> {
        let len = usize::from(self.u16(field)?);
        check_len(field, len, max)?;
        self.take(len, field)
    }

    /// The unread rest.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::OutOfRange {
            field,
            value: len as u64,
            limit: "length prefix above the field's maximum",
        });
    }
    Ok(())
}

/// Appends `u8`-length-prefixed bytes. The caller has checked `bytes.len() <= 255`.
pub(crate) fn put_u8_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(u8::try_from(bytes.len()).is_ok());
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

/// Appends `u16`-length-prefixed bytes. The caller has checked `bytes.len() <= 65535`.
pub(crate) fn put_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(u16::try_from(bytes.len()).is_ok());
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_with_field_and_shortfall() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(
            r.bytes_u16("x", 10),
            Err(Error::Truncated {
                field: "x",
                needed: 3
            })
        );
    }

    #[test]
    fn reader_refuses_lengths_over_the_limit_before_reading() {
        let mut r = Reader::new(&[200]);
        assert!(matches!(
            r.bytes_u8("x", 100),
            Err(Error::OutOfRange { field: "x", .. })
        ));
    }

    #[test]
    fn prefixed_round_trip() {
        let mut out = Vec::new();
        put_u8_prefixed(&mut out, b"ab");
        put_u16_prefixed(&mut out, b"cde");
        let mut r = Reader::new(&out);
        assert_eq!(r.bytes_u8("a", 10).unwrap(), b"ab");
        assert_eq!(r.bytes_u16("b", 10).unwrap(), b"cde");
        assert_eq!(r.remaining(), 0);
    }
}
