//! What bulk maintenance jobs (migration, rotation) need from the SDK beyond sealing and
//! opening: a seal that can check its own stored copy without any custodian releasing a
//! share, and rewrapping the stanzas of many objects in one custodian call per custodian.

use std::collections::BTreeMap;

use custodia_custodian::client::Item;
use custodia_envelope::{
    Binding, CustodianName, Header, Metadata, ObjectKeys, Opener, Profile, RecipientId, Region,
    Sealer, SystemRandomness, new_header,
};

use crate::client::Client;
use crate::error::{Error, Result};

/// The writer's means to check an object it just sealed: the object keys (zeroized on drop,
/// never printed) and the header it wrote. Opening with it asks no custodian, so checking a
/// copy releases nothing and leaves nothing in any audit log.
pub struct SealCheck {
    keys: ObjectKeys,
    profile: Profile,
    header: Vec<u8>,
}

impl core::fmt::Debug for SealCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealCheck")
            .field("header_len", &self.header.len())
            .finish_non_exhaustive()
    }
}

impl SealCheck {
    /// The header bytes the object was sealed with (its stored copy must start with them).
    #[must_use]
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// A streaming opener for the stored body (the bytes after the header).
    ///
    /// # Errors
    /// [`Error::Envelope`] only if ring refuses the key.
    pub fn opener(&self) -> Result<Opener> {
        Ok(Opener::with_keys(&self.keys, self.profile)?)
    }
}

/// What [`Client::rewrap_many`] did to one header.
#[derive(Debug)]
pub enum Rewrapped {
    /// Every stanza was already at its custodian's active key version.
    Current,
    /// The new header (same length as the old one; the body is unchanged).
    New(Header),
}

impl Client {
    /// [`Client::begin_seal`], also returning a [`SealCheck`] with which the caller can
    /// verify the copy it stored (a migration reads back what it wrote before it replaces
    /// the original). No network.
    ///
    /// # Errors
    /// As [`Client::seal`].
    pub fn begin_seal_checked(
        &self,
        mailbox: &str,
        binding: &Binding,
        metadata: &Metadata,
    ) -> Result<(Vec<u8>, Sealer, SealCheck)> {
        self.with_seal_options(mailbox, binding, metadata, |opts| {
            let (header, keys) = new_header(opts, &mut SystemRandomness::new())?;
            let sealer = Sealer::with_keys(&keys, opts.profile)?;
            let bytes = header.to_bytes();
            let check = SealCheck {
                keys,
                profile: opts.profile,
                header: bytes.clone(),
            };
            Ok((bytes, sealer, check))
        })
    }

    /// Rewraps the stanzas of many objects to their custodians' active key versions (per the
    /// directory's cached manifests: [`crate::Directory::refresh`] after a rotation), with
    /// one `/v1/rewrap` call per custodian
    /// (only the stanzas `only` accepts) for the whole batch (split at the protocol's
    /// 1024 items). No share or data key leaves a custodian. One result per header, in
    /// order: a stanza the custodian refused (or a reply naming another custodian) fails
    /// only its own object.
    ///
    /// # Errors
    /// The whole batch fails ([`Error::Unavailable`]) if a custodian cannot be reached.
    pub async fn rewrap_many(
        &self,
        headers: &[Header],
        only: &(dyn Fn(&RecipientId) -> bool + Sync),
    ) -> Result<Vec<Result<Rewrapped>>> {
        let directory = self.directory();
        let mut out: Vec<Result<Rewrapped>> =
            headers.iter().map(|_| Ok(Rewrapped::Current)).collect();
        let mut work: Vec<Header> = headers.to_vec();
        let mut groups: BTreeMap<(Region, CustodianName), Vec<(usize, usize)>> = BTreeMap::new();
        for (i, h) in headers.iter().enumerate() {
            for (j, s) in h.stanzas().iter().enumerate() {
                let entry = match directory.entry(&s.recipient) {
                    Ok(e) => e,
                    Err(e) => {
                        out[i] = Err(e);
                        break;
                    }
                };
                match directory.active_version(entry) {
                    Some(active) if s.recipient.key_version.0 < active && only(&s.recipient) => {
                        groups
                            .entry((entry.region.clone(), entry.name.clone()))
                            .or_default()
                            .push((i, j));
                    }
                    _ => {}
                }
            }
        }
        for list in groups.values() {
            let Some(&(i0, j0)) = list.first() else {
                continue;
            };
            let entry = directory.entry(&headers[i0].stanzas()[j0].recipient)?;
            for chunk in list.chunks(custodia_custodian::api::MAX_BATCH) {
                let items: Vec<Item<'_>> = chunk
                    .iter()
                    .map(|&(i, j)| Item {
                        object_id: headers[i].object_id(),
                        context: headers[i].context(),
                        stanza: &headers[i].stanzas()[j],
                    })
                    .collect();
                let results = entry
                    .client
                    .rewrap(&items)
                    .await
                    .map_err(|e| Error::from_custodian(&entry.region, &entry.name, e))?;
                for (&(i, j), result) in chunk.iter().zip(results) {
                    if out[i].is_err() {
                        continue;
                    }
                    let old = &headers[i].stanzas()[j];
                    out[i] = match result {
                        Ok(new) if new.recipient.same_custodian(&old.recipient) => work[i]
                            .replace_stanza(new)
                            .map(|()| Rewrapped::Current)
                            .map_err(Error::from),
                        Ok(_) => Err(Error::Unavailable {
                            region: entry.region.clone(),
                            custodian: entry.name.clone(),
                            source: custodia_custodian::Error::Protocol(
                                "rewrap reply names another custodian".into(),
                            ),
                        }),
                        Err(denial) => Err(Error::Denied {
                            region: entry.region.clone(),
                            custodian: entry.name.clone(),
                            denial,
                        }),
                    };
                }
            }
        }
        let touched: std::collections::BTreeSet<usize> =
            groups.values().flatten().map(|&(i, _)| i).collect();
        Ok(out
            .into_iter()
            .zip(work)
            .enumerate()
            .map(|(i, (r, h))| match r {
                Ok(_) if touched.contains(&i) => Ok(Rewrapped::New(h)),
                other => other,
            })
            .collect())
    }
}
