//! The streaming body codec: plaintext request bodies sealed chunk by chunk as they arrive,
//! stored bodies opened chunk by chunk with plaintext released only after each chunk
//! verified. Memory per body: about two chunks. A failure ends the stream with an error, so
//! the upstream upload or the client's download is aborted, never completed short.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use custodia_envelope::{ChunkRange, Header, Opener, PREFIX_LEN, Profile, Sealer, Unlocked};
use futures_util::StreamExt;
use md5::Digest as _;

use crate::error::{Error, Result};
use crate::store::BodyStream;

/// Where a body stream records why it failed (the stream itself can only carry an
/// `io::Error` to hyper).
#[derive(Debug, Clone, Default)]
pub struct Failure(Arc<Mutex<Option<Error>>>);

impl Failure {
    /// Records `e` unless a cause is already recorded.
    pub(crate) fn set_if_empty(&self, e: Error) {
        self.set(e);
    }

    fn set(&self, e: Error) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(e);
    }

    /// The recorded cause, if the stream failed.
    #[must_use]
    pub fn take(&self) -> Option<Error> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// A check over a whole body that a front adds (e.g. the S3 flexible checksums, whose
/// values may arrive in trailers after the body).
pub trait FinalCheck: Send {
    /// Feeds body bytes.
    fn update(&mut self, data: &[u8]);
    /// Verifies once the body has ended.
    ///
    /// # Errors
    /// [`Error::BadDigest`] (or another error naming the problem).
    fn verify(self: Box<Self>) -> Result<()>;
}

/// Checksums a client sent with a body, verified before the final chunk is sealed (so a
/// mismatching body never becomes a complete stored object).
#[derive(Default)]
pub struct Checks {
    md5: Option<([u8; 16], md5::Md5)>,
    sha256: Option<([u8; 32], ring::digest::Context)>,
    extra: Option<Box<dyn FinalCheck>>,
}

impl Checks {
    /// Expects the body's MD5 (`Content-MD5`).
    #[must_use]
    pub fn md5(mut self, expected: [u8; 16]) -> Self {
        self.md5 = Some((expected, md5::Md5::new()));
        self
    }

    /// Expects the body's SHA-256.
    #[must_use]
    pub fn sha256(mut self, expected: [u8; 32]) -> Self {
        self.sha256 = Some((expected, ring::digest::Context::new(&ring::digest::SHA256)));
        self
    }

    /// Adds a front's own check.
    #[must_use]
    pub fn with(mut self, check: Box<dyn FinalCheck>) -> Self {
        self.extra = Some(check);
        self
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(c) = &mut self.extra {
            c.update(data);
        }
        if let Some((_, h)) = &mut self.md5 {
            h.update(data);
        }
        if let Some((_, h)) = &mut self.sha256 {
            h.update(data);
        }
    }

    fn verify(self) -> Result<()> {
        use subtle::ConstantTimeEq as _;
        if let Some((want, h)) = self.md5 {
            let got = h.finalize();
            if !bool::from(got.as_slice().ct_eq(&want)) {
                return Err(Error::BadDigest("Content-MD5"));
            }
        }
        if let Some((want, h)) = self.sha256
            && !bool::from(h.finish().as_ref().ct_eq(&want))
        {
            return Err(Error::BadDigest("SHA-256"));
        }
        self.extra.map_or(Ok(()), FinalCheck::verify)
    }
}

fn io_error(e: &Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

struct SealState {
    input: BodyStream,
    header: Option<Vec<u8>>,
    sealer: Option<Sealer>,
    checks: Option<Checks>,
    seen: u64,
    expect: Option<u64>,
    max: u64,
    failure: Failure,
}

impl SealState {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = io_error(&e);
        self.failure.set(e);
        self.sealer = None;
        io
    }
}

/// The stored form of a plaintext body: `header`, then the sealed chunks. The body must be
/// exactly `expect` bytes when given (and at most `max`), and match `checks`; otherwise the
/// stream fails before its final chunk, with the cause in `failure`.
pub fn seal_body(
    header: Vec<u8>,
    sealer: Sealer,
    input: BodyStream,
    expect: Option<u64>,
    max: u64,
    checks: Checks,
    failure: Failure,
) -> BodyStream {
    let state = SealState {
        input,
        header: Some(header),
        sealer: Some(sealer),
        checks: Some(checks),
        seen: 0,
        expect,
        max,
        failure,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if let Some(h) = st.header.take() {
            return Some((Ok(Bytes::from(h)), st));
        }
        st.sealer.as_ref()?;
        let mut out = Vec::new();
        loop {
            match st.input.next().await {
                Some(Ok(data)) => {
                    st.seen += data.len() as u64;
                    if st.expect.is_some_and(|n| st.seen > n) {
                        let e = st.fail(Error::IncompleteBody);
                        return Some((Err(e), st));
                    }
                    if st.seen > st.max {
                        let e = st.fail(Error::TooLarge(format!(
                            "the object exceeds limits.max_object_bytes ({})",
                            st.max
                        )));
                        return Some((Err(e), st));
                    }
                    if let Some(c) = &mut st.checks {
                        c.update(&data);
                    }
                    let r = st.sealer.as_mut().map(|s| s.update(&data, &mut out));
                    if let Some(Err(e)) = r {
                        let e = st.fail(Error::Tampered(e));
                        return Some((Err(e), st));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), st));
                    }
                }
                Some(Err(e)) => {
                    st.failure.set(Error::IncompleteBody);
                    st.sealer = None;
                    return Some((Err(e), st));
                }
                None => {
                    if st.expect.is_some_and(|n| st.seen != n) {
                        let e = st.fail(Error::IncompleteBody);
                        return Some((Err(e), st));
                    }
                    if let Err(e) = st.checks.take().map_or(Ok(()), Checks::verify) {
                        let e = st.fail(e);
                        return Some((Err(e), st));
                    }
                    let sealer = st.sealer.take()?;
                    return match sealer.finish(&mut out) {
                        Ok(()) => Some((Ok(Bytes::from(out)), st)),
                        Err(e) => {
                            let e = st.fail(Error::Tampered(e));
                            Some((Err(e), st))
                        }
                    };
                }
            }
        }
    })
    .boxed()
}

/// The start of a stored body: a Custodia header, or (for legacy plaintext) the bytes read.
pub enum Start {
    /// A sealed object: its header and the body bytes already read past it.
    Sealed {
        /// The parsed header.
        header: Box<Header>,
        /// Bytes after the header already taken from the stream.
        rest: Bytes,
    },
    /// Not a Custodia object: the bytes read so far (serve only on legacy routes).
    Plain(Bytes),
}

/// Reads the header off the front of a stored body.
///
/// # Errors
/// [`Error::Tampered`] for a damaged header, [`Error::Upstream`] if the stream fails.
pub async fn read_header(input: &mut BodyStream) -> Result<Start> {
    let mut buf = BytesMut::new();
    let mut need = PREFIX_LEN;
    let mut profile = None;
    loop {
        while buf.len() < need {
            match input.next().await {
                Some(Ok(b)) => buf.extend_from_slice(&b),
                Some(Err(e)) => return Err(Error::Upstream(format!("reading the object: {e}"))),
                None if profile.is_none() => return Ok(Start::Plain(buf.freeze())),
                None => {
                    return Err(Error::Tampered(custodia_envelope::Error::Truncated {
                        field: "header",
                        needed: need - buf.len(),
                    }));
                }
            }
        }
        match profile {
            None => match Profile::from_prefix(&buf[..PREFIX_LEN]) {
                Ok(p) => {
                    need = p.header_size();
                    profile = Some(p);
                }
                Err(custodia_envelope::Error::NotSealed) => return Ok(Start::Plain(buf.freeze())),
                Err(e) => return Err(Error::Tampered(e)),
            },
            Some(p) => {
                let rest = buf.split_off(p.header_size()).freeze();
                let header = Header::parse(&buf).map_err(Error::Tampered)?;
                return Ok(Start::Sealed {
                    header: Box::new(header),
                    rest,
                });
            }
        }
    }
}

struct OpenState {
    input: BodyStream,
    pending: Option<Bytes>,
    opener: Option<Opener>,
    failure: Failure,
}

/// Verified plaintext of a stored body whose header was read: `rest` (bytes already read
/// past the header) then `input`. Each chunk is released only after it verified; damage or
/// truncation ends the stream with an error (cause in `failure`).
pub fn open_body(opener: Opener, rest: Bytes, input: BodyStream, failure: Failure) -> BodyStream {
    let state = OpenState {
        input,
        pending: (!rest.is_empty()).then_some(rest),
        opener: Some(opener),
        failure,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        st.opener.as_ref()?;
        let mut out = Vec::new();
        loop {
            let next = match st.pending.take() {
                Some(b) => Some(Ok(b)),
                None => st.input.next().await,
            };
            match next {
                Some(Ok(data)) => {
                    let r = st.opener.as_mut().map(|o| o.update(&data, &mut out));
                    if let Some(Err(e)) = r {
                        let e = Error::Tampered(e);
                        let io = io_error(&e);
                        st.failure.set(e);
                        st.opener = None;
                        return Some((Err(io), st));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), st));
                    }
                }
                Some(Err(e)) => {
                    st.failure.set(Error::UpstreamUnavailable(format!(
                        "reading the object: {e}"
                    )));
                    st.opener = None;
                    return Some((Err(e), st));
                }
                None => {
                    let opener = st.opener.take()?;
                    return match opener.finish(&mut out) {
                        Ok(()) if out.is_empty() => None,
                        Ok(()) => Some((Ok(Bytes::from(out)), st)),
                        Err(e) => {
                            let e = Error::Tampered(e);
                            let io = io_error(&e);
                            st.failure.set(e);
                            Some((Err(io), st))
                        }
                    };
                }
            }
        }
    })
    .boxed()
}

struct RangeState {
    input: BodyStream,
    opener: Option<custodia_envelope::ChunkOpener>,
    buf: BytesMut,
    chunk_len: usize,
    index: u64,
    range: ChunkRange,
    failure: Failure,
}

/// Verified plaintext of `range` from its stored chunks (`input` yields exactly
/// `range.stored_start .. range.stored_end`).
///
/// # Errors
/// [`Error::Tampered`] if the opener cannot be set up.
pub fn open_range_body(
    unlocked: &Unlocked,
    range: ChunkRange,
    input: BodyStream,
    failure: Failure,
) -> Result<BodyStream> {
    let opener = unlocked
        .chunk_opener(range.first_chunk)
        .map_err(Error::Tampered)?;
    let chunk_len = unlocked.header().profile().chunk_size() + custodia_envelope::TAG_LEN;
    let state = RangeState {
        input,
        opener: Some(opener),
        buf: BytesMut::with_capacity(chunk_len),
        chunk_len,
        index: 0,
        range,
        failure,
    };
    Ok(futures_util::stream::unfold(state, |mut st| async move {
        st.opener.as_ref()?;
        loop {
            let is_last = st.index + 1 == st.range.chunk_count;
            let full = st.buf.len() >= st.chunk_len;
            let next = if full {
                None
            } else {
                Some(st.input.next().await)
            };
            let ended = match next {
                None => false,
                Some(Some(Ok(b))) => {
                    st.buf.extend_from_slice(&b);
                    if st.buf.len() < st.chunk_len {
                        continue;
                    }
                    false
                }
                Some(Some(Err(e))) => {
                    st.failure.set(Error::UpstreamUnavailable(format!(
                        "reading the object: {e}"
                    )));
                    st.opener = None;
                    return Some((Err(e), st));
                }
                Some(None) => true,
            };
            if ended && st.buf.is_empty() {
                // The store sent fewer chunks than the range needs.
                let e = Error::Tampered(custodia_envelope::Error::Truncation);
                let io = io_error(&e);
                st.failure.set(e);
                st.opener = None;
                return Some((Err(io), st));
            }
            let take = st.chunk_len.min(st.buf.len());
            if !ended && take < st.chunk_len {
                continue;
            }
            let mut chunk = st.buf.split_to(take);
            let last = st.range.includes_final && is_last;
            let opened = st
                .opener
                .as_mut()
                .map(|o| o.open_chunk(&mut chunk, last).map(|p| p.len()));
            let plain_len = match opened {
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    let e = Error::Tampered(e);
                    let io = io_error(&e);
                    st.failure.set(e);
                    st.opener = None;
                    return Some((Err(io), st));
                }
                None => return None,
            };
            // Which plaintext of this chunk belongs to the range.
            let chunk_start = st.index * (st.chunk_len - custodia_envelope::TAG_LEN) as u64;
            let lo = st.range.skip.max(chunk_start) - chunk_start;
            let hi =
                (st.range.skip + st.range.len).min(chunk_start + plain_len as u64) - chunk_start;
            st.index += 1;
            if is_last {
                st.opener = None;
            }
            #[allow(clippy::cast_possible_truncation, reason = "within one chunk")]
            let piece = chunk.freeze().slice(lo as usize..hi.max(lo) as usize);
            return Some((Ok(piece), st));
        }
    })
    .boxed())
}
