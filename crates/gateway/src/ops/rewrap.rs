//! `rewrap`: after a custodian rotates its key, rewrite the stanzas of every object still
//! sealed to an older version of that custodian's key through its `/v1/rewrap` (one call
//! per batch of objects; no share or data key leaves the custodian). Only the header
//! changes, and it keeps its length: the body chunks are rewritten byte for byte, so they
//! are cryptographically the same. Each object is replaced only if unchanged since its
//! header was read (`If-Match`).

use bytes::Bytes;
use custodia::Rewrapped;
use custodia_envelope::{CustodianName, Header, Region};
use futures_util::StreamExt;

use super::runner::{Runner, Work};
use super::verify::{Inspected, inspect, versions};
use super::{Kind, Listed, Options, Outcome, Progress, Scope, Summary};
use crate::error::{Error, Result};
use crate::objects::is_multipart_part;
use crate::store::BodyStream;
use crate::store::s3::S3Store;

/// Which custodian's stanzas to move, and to which key version.
#[derive(Debug, Clone)]
pub struct RewrapTarget {
    /// The custodian's region.
    pub region: Region,
    /// The custodian.
    pub custodian: CustodianName,
    /// Its active key version, which the stanzas move to.
    pub to_version: u32,
}

/// Objects replaced at once within one batch.
const REPLACE_IN_FLIGHT: usize = 8;

/// Rewraps every object of `scope` with a stanza of `target`'s custodian older than
/// `target.to_version`. `opts.batch` objects share one custodian call.
///
/// # Errors
/// [`Error::Config`] (field `to-version`) if the custodian's signed manifest does not name
/// `to_version` as its active version (rotate first); [`Error::CustodianUnavailable`] if
/// its manifest cannot be fetched; otherwise as [`super::migrate::migrate`].
pub async fn rewrap(
    scope: &Scope,
    opts: &Options,
    target: &RewrapTarget,
    progress: &dyn Progress,
) -> Result<Summary> {
    let client = scope.objects.client();
    client
        .directory()
        .refresh()
        .await
        .map_err(|e| Error::CustodianUnavailable(e.to_string()))?;
    let active = client
        .directory()
        .active_key_version(&target.region, &target.custodian);
    if active != Some(target.to_version) {
        return Err(Error::config(
            "to-version",
            format!(
                "custodian {}/{}'s active key version is {} (per its signed manifest), not {}: \
                 rotate its key first, or name the active version",
                target.region.as_str(),
                target.custodian.as_str(),
                active.map_or_else(|| "unknown".to_owned(), |v| v.to_string()),
                target.to_version
            ),
        ));
    }
    let params = format!(
        "{}/{} v{}",
        target.region.as_str(),
        target.custodian.as_str(),
        target.to_version
    );
    let runner = Runner::start(scope, opts, progress, "rewrap", &params)?;
    let work = RewrapWork {
        scope,
        s3: scope.s3()?,
        target,
        dry_run: opts.dry_run,
    };
    runner.drive(&work).await
}

struct RewrapWork<'a> {
    scope: &'a Scope,
    s3: &'a S3Store,
    target: &'a RewrapTarget,
    dry_run: bool,
}

/// An object whose header was read and which has a stale stanza.
struct Stale {
    index: usize,
    key: String,
    header: Box<Header>,
    len: u64,
    etag: Option<String>,
    /// The whole stored object, when it was read whole (small objects).
    body: Option<Bytes>,
}

/// Objects up to this size are read whole, once (header and body together), and written
/// back from memory; larger ones have their header read first and their body streamed.
const READ_WHOLE: u64 = 8 << 20;

impl Work for RewrapWork<'_> {
    async fn batch(&self, items: Vec<Listed>) -> Vec<(Listed, Outcome)> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut stale = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let (seen, body) = match self.read(item).await {
                Ok(x) => x,
                Err(e) => (Err(e), None),
            };
            match seen {
                Ok(Inspected::Gone) => outcomes[index] = Some(Outcome::of(Kind::Gone, 0)),
                Ok(Inspected::Plaintext(_)) => {
                    outcomes[index] = Some(Outcome::because(
                        Kind::Skipped,
                        "plaintext: migrate it first",
                    ));
                }
                Ok(Inspected::Damaged(why)) => {
                    outcomes[index] = Some(Outcome::because(Kind::Damaged, why));
                }
                Ok(Inspected::Sealed(header, len, etag)) => {
                    if !header.stanzas().iter().any(|s| self.is_stale(&s.recipient)) {
                        let mut o = Outcome::of(Kind::Current, 0);
                        o.versions = versions(&header);
                        outcomes[index] = Some(o);
                    } else if is_multipart_part(&header) {
                        outcomes[index] = Some(Outcome::because(
                            Kind::Failed,
                            "multipart-layout object: its parts' headers cannot be rewrapped \
                             in place yet (copy it through the gateway to re-seal it)",
                        ));
                    } else if self.dry_run {
                        let mut o = Outcome::of(Kind::WouldRewrap, 0);
                        o.versions = versions(&header);
                        outcomes[index] = Some(o);
                    } else {
                        stale.push(Stale {
                            index,
                            key: item.key.clone(),
                            header,
                            len,
                            etag,
                            body,
                        });
                    }
                }
                Err(e) => outcomes[index] = Some(Outcome::failed(&e)),
            }
        }
        if !stale.is_empty() {
            self.rewrap_stale(stale, &mut outcomes).await;
        }
        items
            .into_iter()
            .zip(outcomes)
            .map(|(item, o)| {
                (
                    item,
                    o.unwrap_or_else(|| Outcome::because(Kind::Failed, "not processed")),
                )
            })
            .collect()
    }
}

impl RewrapWork<'_> {
    /// The object's header (and, for small objects, its whole stored bytes).
    async fn read(&self, item: &Listed) -> Result<(Result<Inspected>, Option<Bytes>)> {
        if item.size == 0 || item.size > READ_WHOLE {
            return Ok((inspect(self.scope, &item.key).await, None));
        }
        let fetched = match self.s3.get(&self.scope.bucket, &item.key, None).await {
            Err(Error::NotFound) => return Ok((Ok(Inspected::Gone), None)),
            other => other?,
        };
        if fetched.total_len > READ_WHOLE {
            return Ok((inspect(self.scope, &item.key).await, None));
        }
        let mut buf = Vec::with_capacity(usize::try_from(fetched.total_len).unwrap_or(0));
        let mut body = fetched.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::UpstreamUnavailable(e.to_string()))?;
            if (buf.len() + chunk.len()) as u64 > READ_WHOLE {
                return Err(Error::Upstream("the object grew while it was read".into()));
            }
            buf.extend_from_slice(&chunk);
        }
        let len = buf.len() as u64;
        let seen = if !custodia_envelope::looks_sealed(&buf) {
            Inspected::Plaintext(len)
        } else {
            match Header::parse(&buf) {
                Ok(h) => Inspected::Sealed(Box::new(h), len, fetched.etag),
                Err(e) => Inspected::Damaged(e.to_string()),
            }
        };
        Ok((Ok(seen), Some(Bytes::from(buf))))
    }

    fn is_stale(&self, r: &custodia_envelope::RecipientId) -> bool {
        r.region == self.target.region
            && r.custodian == self.target.custodian
            && r.key_version.0 < self.target.to_version
    }

    async fn rewrap_stale(&self, stale: Vec<Stale>, outcomes: &mut [Option<Outcome>]) {
        let headers: Vec<Header> = stale.iter().map(|s| (*s.header).clone()).collect();
        let only = |r: &custodia_envelope::RecipientId| self.is_stale(r);
        let results = match self
            .scope
            .objects
            .client()
            .rewrap_many(&headers, &only)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let o = Outcome::failed(&Error::from(e));
                for s in &stale {
                    outcomes[s.index] = Some(o.clone());
                }
                return;
            }
        };
        let jobs: Vec<_> = stale
            .into_iter()
            .zip(results)
            .map(|(s, r)| async move {
                let o = match r {
                    Ok(Rewrapped::Current) => {
                        let mut o = Outcome::of(Kind::Current, 0);
                        o.versions = versions(&s.header);
                        o
                    }
                    Ok(Rewrapped::New(h)) => match self.replace(&s, &h).await {
                        Ok(()) => {
                            let mut o = Outcome::of(Kind::Rewrapped, s.len);
                            o.versions = versions(&h);
                            o
                        }
                        Err(Error::PreconditionFailed) => Outcome::because(
                            Kind::Failed,
                            "changed while it was rewrapped: run again to retry it",
                        ),
                        Err(e) => Outcome::failed(&e),
                    },
                    Err(e) => Outcome::failed(&Error::from(e)),
                };
                (s.index, o)
            })
            .collect();
        let done: Vec<(usize, Outcome)> = futures_util::stream::iter(jobs)
            .buffer_unordered(REPLACE_IN_FLIGHT)
            .collect()
            .await;
        for (i, o) in done {
            outcomes[i] = Some(o);
        }
    }

    /// Writes the object again with `new` in place of its header, if it is unchanged.
    async fn replace(&self, s: &Stale, new: &Header) -> Result<()> {
        let bucket = self.scope.bucket.as_str();
        let key_err = || Error::Upstream("the store sent no ETag: cannot replace safely".into());
        let etag = s.etag.clone().ok_or_else(key_err)?;
        let new_bytes = new.to_bytes();
        let old_len = s.header.profile().header_size();
        if new_bytes.len() != old_len {
            return Err(Error::Upstream(format!(
                "the rewrapped header is {} bytes, the stored one {old_len}",
                new_bytes.len()
            )));
        }
        let body = match &s.body {
            Some(whole) if whole.len() as u64 == s.len && whole.len() >= old_len => {
                let rest = whole.slice(old_len..);
                futures_util::stream::once(std::future::ready(Ok(rest))).boxed()
            }
            _ => {
                let fetched = self.s3.get(bucket, &s.key, None).await?;
                if fetched.etag.as_deref() != Some(etag.as_str()) || fetched.total_len != s.len {
                    return Err(Error::PreconditionFailed);
                }
                skip(fetched.body, old_len as u64)
            }
        };
        let body: BodyStream =
            futures_util::stream::once(std::future::ready(Ok(Bytes::from(new_bytes))))
                .chain(body)
                .boxed();
        self.s3
            .put_if_match(bucket, &s.key, s.len, body, &etag)
            .await
            .map(drop)
    }
}

/// `body` without its first `n` bytes.
fn skip(body: BodyStream, n: u64) -> BodyStream {
    let mut left = n;
    body.filter_map(move |item| {
        let out = match item {
            Err(e) => Some(Err(e)),
            Ok(b) if left == 0 => Some(Ok(b)),
            Ok(b) => {
                let blen = b.len() as u64;
                if blen <= left {
                    left -= blen;
                    None
                } else {
                    #[allow(clippy::cast_possible_truncation, reason = "less than one buffer")]
                    let cut = left as usize;
                    left = 0;
                    Some(Ok(b.slice(cut..)))
                }
            }
        };
        std::future::ready(out)
    })
    .boxed()
}
