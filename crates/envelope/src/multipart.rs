//! The layout of a multipart object (docs/FORMAT.md §10a): which upload, how many parts of
//! which sizes and, from layout version 2, the object id of every part's envelope. Each part
//! is its own envelope whose context names the upload and the part number; the layout is what
//! ties them into one object. Binding every part's object id means that a part re-sent with
//! other bytes — two valid envelopes for one upload, part number and name — cannot be put
//! back in place of the one the upload completed with. From version 3 the layout also carries
//! one tag per part, under that part's layout key ([`crate::ObjectKeys::layout_key`]), over
//! the whole layout. Sealing needs only public keys and object ids are the sealer's choice, so
//! without the tags whoever holds the store could seal a part of its own under a genuine
//! part's id, or a layout of fewer parts naming the genuine ones; with them, every part a
//! reader opens proves that whoever sealed it wrote this very layout. Pure: the gateway stores
//! and fetches the records; this module encodes, parses (with limits, before allocating) and
//! checks them.

use ring::hmac;

use crate::header::{Header, ObjectId};
use crate::pairs::Metadata;
use crate::secret::DerivedKey;
use crate::{Error, Profile, Result};

/// Context key naming the upload a record belongs to (reserved, FORMAT.md §2.2).
pub const CTX_UPLOAD: &str = "upload";
/// Context key naming a record's place in its upload: `1`..=`10000`, `metadata`, `layout`.
pub const CTX_PART: &str = "part";
/// Context key, on every part sealed for a version 2 or 3 layout, with the version as its
/// value: such a part is refused under a layout of another version, so a store that hands out
/// an old upload id again cannot have new parts read under an old, weaker layout record.
pub const CTX_LAYOUT: &str = "layout";
/// The layout version written: 3 binds every part's object id and carries a tag per part
/// under that part's layout key. (2 binds the ids without tags; 1 binds nothing. Both are
/// legacy.)
pub const LAYOUT_VERSION: u64 = 3;
/// Prefix of the layout tag's input.
const LABEL_LAYOUT_TAG: &[u8] = b"custodia layout v3";
/// Bytes of one part's tag in a version 3 layout body.
const TAG_LEN: usize = 32;
/// Most parts of one object (S3's limit).
pub const MAX_PARTS: u64 = 10_000;
/// Bytes of the length prefix of the metadata record in a version 2 layout body.
const LEN_PREFIX: usize = 4;
/// Bytes of one part's object id in a version 2 layout body.
const ID_LEN: usize = 32;

/// A multipart object's layout, as its layout record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    upload: String,
    parts: u64,
    part_size: u64,
    last_size: u64,
    /// 1, 2 or 3.
    version: u64,
    /// `None` for a version 1 (legacy) layout, which binds no part.
    part_ids: Option<Vec<ObjectId>>,
    /// The tags of a parsed version 3 layout, one per part.
    tags: Option<Vec<[u8; TAG_LEN]>>,
}

fn bad(reason: &'static str) -> Error {
    Error::NonCanonical {
        field: "multipart layout",
        reason,
    }
}

/// A canonical decimal (no sign, no leading zero) of `metadata[key]`.
fn decimal(metadata: &Metadata, key: &str) -> Result<u64> {
    let v = metadata.get(key).ok_or(bad("a size or count is missing"))?;
    let n: u64 = v
        .parse()
        .map_err(|_| bad("a size or count is not a number"))?;
    if n.to_string() != v {
        return Err(bad("a size or count is not in canonical decimal"));
    }
    Ok(n)
}

impl Layout {
    /// The layout of upload `upload` whose parts, in order, have object ids `part_ids`; all
    /// parts but the last hold `part_size` plaintext bytes, the last `last_size`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no parts or more than [`MAX_PARTS`], or an empty upload
    /// id.
    pub fn new(
        upload: &str,
        part_size: u64,
        last_size: u64,
        part_ids: Vec<ObjectId>,
    ) -> Result<Self> {
        let parts = part_ids.len() as u64;
        if parts == 0 || parts > MAX_PARTS {
            return Err(Error::InvalidArgument("a layout has 1 to 10000 parts"));
        }
        if upload.is_empty() {
            return Err(Error::InvalidArgument("a layout names its upload"));
        }
        Ok(Self {
            upload: upload.to_owned(),
            parts,
            part_size,
            last_size,
            version: LAYOUT_VERSION,
            part_ids: Some(part_ids),
            tags: None,
        })
    }

    /// The layout record's sealed metadata: `upload`, `parts`, `part-size`, `last-size` (canonical
    /// decimals) and `layout-version` (`3`).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] if the upload id is longer than a metadata value may be.
    pub fn metadata(&self) -> Result<Metadata> {
        let mut m = Metadata::new();
        m.insert("upload", &self.upload)?;
        m.insert("parts", &self.parts.to_string())?;
        m.insert("part-size", &self.part_size.to_string())?;
        m.insert("last-size", &self.last_size.to_string())?;
        m.insert("layout-version", &LAYOUT_VERSION.to_string())?;
        Ok(m)
    }

    /// The layout record's body (the plaintext it seals): version 3 is
    /// `u32be(len(metadata_record)) || metadata_record || id(part 1) || … || id(part N) ||
    /// tag(part 1) || … || tag(part N)`, `tag(part k)` under part `k`'s layout key (in
    /// `layout_keys`, in part order) over [`Layout::tag_input`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a layout parsed from a record (only new ones are
    /// written), a key count other than the part count, or a metadata record over 4 GiB.
    pub fn body(&self, metadata_record: &[u8], layout_keys: &[DerivedKey]) -> Result<Vec<u8>> {
        let ids = self
            .part_ids
            .as_ref()
            .filter(|_| self.version == LAYOUT_VERSION)
            .ok_or(Error::InvalidArgument("legacy layouts are not written"))?;
        if layout_keys.len() != ids.len() {
            return Err(Error::InvalidArgument("one layout key per part"));
        }
        let len = u32::try_from(metadata_record.len())
            .map_err(|_| Error::InvalidArgument("metadata record too large"))?;
        let mut out =
            Vec::with_capacity(LEN_PREFIX + metadata_record.len() + ids.len() * (ID_LEN + TAG_LEN));
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(metadata_record);
        for id in ids {
            out.extend_from_slice(&id.0);
        }
        let input = self.tag_input(metadata_record);
        for key in layout_keys {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key.expose()), &input);
            out.extend_from_slice(tag.as_ref());
        }
        Ok(out)
    }

    /// What a version 3 tag covers: `"custodia layout v3" || u16be(len(upload)) || upload ||
    /// u64be(parts) || u64be(part_size) || u64be(last_size) || u32be(len(metadata_record)) ||
    /// metadata_record || id(part 1) || … || id(part N)`.
    fn tag_input(&self, metadata_record: &[u8]) -> Vec<u8> {
        let ids = self.part_ids.as_deref().unwrap_or_default();
        let mut m = Vec::with_capacity(
            LABEL_LAYOUT_TAG.len()
                + 2
                + self.upload.len()
                + 28
                + metadata_record.len()
                + ids.len() * ID_LEN,
        );
        m.extend_from_slice(LABEL_LAYOUT_TAG);
        // Metadata values (the upload id among them) are at most 2048 bytes.
        #[allow(clippy::cast_possible_truncation, reason = "at most 2048 bytes")]
        m.extend_from_slice(&(self.upload.len() as u16).to_be_bytes());
        m.extend_from_slice(self.upload.as_bytes());
        for n in [self.parts, self.part_size, self.last_size] {
            m.extend_from_slice(&n.to_be_bytes());
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "parsed from a u32 prefix or checked when written"
        )]
        m.extend_from_slice(&(metadata_record.len() as u32).to_be_bytes());
        m.extend_from_slice(metadata_record);
        for id in ids {
            m.extend_from_slice(&id.0);
        }
        m
    }

    /// Checks a parsed version 3 layout's tag of part `index` (0-based) under that part's
    /// `layout_key` (from the part, unlocked), in constant time; `metadata_record` is the
    /// record [`Layout::parse`] returned with it. A reader checks each part's tag before it
    /// releases any of that part's plaintext, and part 1's before it uses anything of the
    /// layout. Legacy layouts carry no tags and pass (readers refuse them unless told
    /// otherwise: [`Layout::is_legacy`]).
    ///
    /// # Errors
    /// [`Error::LayoutAuthentication`].
    pub fn check_tag(
        &self,
        index: u64,
        metadata_record: &[u8],
        layout_key: &DerivedKey,
    ) -> Result<()> {
        let Some(tags) = &self.tags else {
            return if self.version == LAYOUT_VERSION {
                Err(Error::LayoutAuthentication)
            } else {
                Ok(())
            };
        };
        let tag = usize::try_from(index)
            .ok()
            .and_then(|i| tags.get(i))
            .ok_or(Error::LayoutAuthentication)?;
        hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, layout_key.expose()),
            &self.tag_input(metadata_record),
            tag,
        )
        .map_err(|_| Error::LayoutAuthentication)
    }

    /// Parses a layout record from its opened metadata and body; returns the layout and the
    /// upload's metadata record (an envelope) it carries. A record without `layout-version`
    /// is a version 1 layout: its body is the metadata record alone and it binds no part
    /// ([`Layout::is_legacy`]).
    ///
    /// # Errors
    /// [`Error::NonCanonical`] for missing or non-canonical fields, a version other than 1
    /// or 2, or a body of the wrong length; [`Error::OutOfRange`] for a part count outside
    /// 1..=[`MAX_PARTS`].
    pub fn parse<'a>(metadata: &Metadata, body: &'a [u8]) -> Result<(Self, &'a [u8])> {
        let upload = metadata
            .get("upload")
            .filter(|u| !u.is_empty())
            .ok_or(bad("no upload id"))?
            .to_owned();
        let parts = decimal(metadata, "parts")?;
        if parts == 0 || parts > MAX_PARTS {
            return Err(Error::OutOfRange {
                field: "layout parts",
                value: parts,
                limit: "1 to 10000",
            });
        }
        let part_size = decimal(metadata, "part-size")?;
        let last_size = decimal(metadata, "last-size")?;
        // Version 1 is the absence of the field; written, it must say 2 or 3.
        let version = match metadata.get("layout-version") {
            None => 1,
            Some(_) => match decimal(metadata, "layout-version")? {
                v @ (2 | 3) => v,
                _ => return Err(bad("unknown layout version")),
            },
        };
        let (part_ids, record, tags) = match version {
            1 => (None, body, None),
            _ => {
                let (len, rest) = body
                    .split_first_chunk::<LEN_PREFIX>()
                    .ok_or(bad("body shorter than its length prefix"))?;
                let len = usize::try_from(u32::from_be_bytes(*len))
                    .map_err(|_| bad("metadata record length"))?;
                let record = rest.get(..len).ok_or(bad("body shorter than its record"))?;
                let rest = &rest[len..];
                // parts <= 10000: the products cannot overflow.
                #[allow(clippy::cast_possible_truncation, reason = "parts <= 10000")]
                let (ids_len, tags_len) = (
                    parts as usize * ID_LEN,
                    if version == 3 {
                        parts as usize * TAG_LEN
                    } else {
                        0
                    },
                );
                if rest.len() != ids_len + tags_len {
                    return Err(bad(if version == 3 {
                        "body does not hold one object id and one tag per part"
                    } else {
                        "body does not hold one object id per part"
                    }));
                }
                let (ids, tag_bytes) = rest.split_at(ids_len);
                let tags = (version == 3).then(|| {
                    tag_bytes
                        .chunks_exact(TAG_LEN)
                        .map(|c| {
                            let mut t = [0u8; TAG_LEN];
                            t.copy_from_slice(c);
                            t
                        })
                        .collect()
                });
                let ids = ids
                    .chunks_exact(ID_LEN)
                    .map(|c| {
                        let mut id = [0u8; ID_LEN];
                        id.copy_from_slice(c);
                        ObjectId(id)
                    })
                    .collect();
                (Some(ids), record, tags)
            }
        };
        Ok((
            Self {
                upload,
                parts,
                part_size,
                last_size,
                version,
                part_ids,
                tags,
            },
            record,
        ))
    }

    /// Whether this is a version 1 or 2 layout: version 1 binds no part (a part re-sent
    /// during the upload could be put back in place of the one it completed with), version 2
    /// binds them without a tag (whoever holds the store could seal a shorter layout naming
    /// the genuine parts). Readers open them only where that is accepted (the gateway's
    /// `legacy_layouts` route setting).
    #[must_use]
    pub fn is_legacy(&self) -> bool {
        self.version < LAYOUT_VERSION
    }

    /// The layout version: 1, 2 or 3.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The upload id.
    #[must_use]
    pub fn upload(&self) -> &str {
        &self.upload
    }

    /// How many parts.
    #[must_use]
    pub fn parts(&self) -> u64 {
        self.parts
    }

    /// Plaintext bytes of every part but the last.
    #[must_use]
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// Plaintext bytes of the last part.
    #[must_use]
    pub fn last_size(&self) -> u64 {
        self.last_size
    }

    /// Plaintext bytes of the whole object (saturating: a parsed layout's sizes come from a
    /// record that may lie; [`Layout::stored_total`] is checked against the store).
    #[must_use]
    pub fn plaintext_len(&self) -> u64 {
        (self.parts - 1)
            .saturating_mul(self.part_size)
            .saturating_add(self.last_size)
    }

    /// Plaintext bytes of part `index` (0-based).
    #[must_use]
    pub fn part_plaintext_len(&self, index: u64) -> u64 {
        if index + 1 == self.parts {
            self.last_size
        } else {
            self.part_size
        }
    }

    /// Stored bytes of part `index` (0-based) under `profile`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] if the size overflows.
    pub fn stored_len(&self, profile: Profile, index: u64) -> Result<u64> {
        profile
            .sealed_len(self.part_plaintext_len(index))
            .ok_or(Error::OutOfRange {
                field: "layout part size",
                value: self.part_plaintext_len(index),
                limit: "a sealed length that fits in 64 bits",
            })
    }

    /// Stored bytes of the whole object under `profile`: what the store must hold.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] if the size overflows.
    pub fn stored_total(&self, profile: Profile) -> Result<u64> {
        let full = self.stored_len(profile, 0)?;
        let last = self.stored_len(profile, self.parts - 1)?;
        full.checked_mul(self.parts - 1)
            .and_then(|n| n.checked_add(last))
            .ok_or(Error::OutOfRange {
                field: "layout object size",
                value: self.parts,
                limit: "a sealed length that fits in 64 bits",
            })
    }

    /// Checks that `header` is part `index` (0-based) of this layout: its context names this
    /// upload and part number `index + 1`, and (version 2) its object id is the one the
    /// layout binds for that part.
    ///
    /// # Errors
    /// [`Error::LayoutMismatch`] otherwise.
    pub fn check_part(&self, index: u64, header: &Header) -> Result<()> {
        let context = header.context();
        if index >= self.parts
            || context.get(CTX_UPLOAD) != Some(self.upload.as_str())
            || context.get(CTX_PART) != Some((index + 1).to_string().as_str())
        {
            return Err(Error::LayoutMismatch(
                "a part of another upload or position",
            ));
        }
        // A part marked for a layout version only under a layout of that version, and an
        // unmarked part (sealed before version 2) only under a version 1 layout.
        let marked = context.get(CTX_LAYOUT);
        let want = match self.version {
            1 => None,
            2 => Some("2"),
            _ => Some("3"),
        };
        if marked != want {
            return Err(Error::LayoutMismatch(
                "a part sealed for another layout version",
            ));
        }
        if let Some(ids) = &self.part_ids {
            let want = usize::try_from(index)
                .ok()
                .and_then(|i| ids.get(i))
                .ok_or(Error::LayoutMismatch("no such part"))?;
            if header.object_id() != want {
                return Err(Error::LayoutMismatch(
                    "a part other than the one the upload completed with (re-sent or swapped)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn ids(n: u8) -> Vec<ObjectId> {
        (1..=n).map(|i| ObjectId([i; 32])).collect()
    }

    fn key(b: u8) -> DerivedKey {
        DerivedKey::from_bytes([b; 32])
    }

    fn keys(n: u8) -> Vec<DerivedKey> {
        (1..=n).map(key).collect()
    }

    #[test]
    fn version_3_round_trips_and_each_part_s_tag_needs_that_part_s_key() {
        let l = Layout::new("up-1", 5 << 20, 7, ids(3)).unwrap();
        let m = l.metadata().unwrap();
        assert_eq!(m.get("layout-version"), Some("3"));
        let body = l.body(b"record", &keys(3)).unwrap();
        assert_eq!(&body[..4], &6u32.to_be_bytes());
        assert_eq!(body.len(), 4 + 6 + 3 * 32 + 3 * 32);
        let (back, record) = Layout::parse(&m, &body).unwrap();
        assert_eq!(record, b"record");
        assert!(!back.is_legacy());
        assert_eq!(back.version(), 3);
        assert_eq!(back.plaintext_len(), 2 * (5 << 20) + 7);
        for (i, k) in keys(3).iter().enumerate() {
            back.check_tag(i as u64, record, k).unwrap();
        }
        // A part sealed by someone else (its own data key, so its own layout key) under a
        // genuine part's id fails its tag; so does a part checked against another's tag.
        assert_eq!(
            back.check_tag(1, record, &key(9)),
            Err(Error::LayoutAuthentication)
        );
        assert_eq!(
            back.check_tag(1, record, &key(1)),
            Err(Error::LayoutAuthentication)
        );
        assert_eq!(
            back.check_tag(3, record, &key(1)),
            Err(Error::LayoutAuthentication)
        );
        assert_eq!(
            back.check_tag(0, b"other!", &key(1)),
            Err(Error::LayoutAuthentication)
        );
        // A shorter layout written with part 1's key alone (whoever re-sealed part 1 knows
        // that one) still fails at part 2, whose key it did not have.
        let shorter = Layout::new("up-1", 5 << 20, 5 << 20, ids(2)).unwrap();
        let forged = shorter.body(b"record", &[key(1), key(9)]).unwrap();
        let (f, r) = Layout::parse(&shorter.metadata().unwrap(), &forged).unwrap();
        f.check_tag(0, r, &key(1)).unwrap();
        assert_eq!(f.check_tag(1, r, &key(2)), Err(Error::LayoutAuthentication));
        // The tags cover the sizes: the same ids with another last size fail.
        let mut m2 = Metadata::new();
        for (k, v) in m.iter() {
            m2.insert(k, if k == "last-size" { "8" } else { v })
                .unwrap();
        }
        let (other, r) = Layout::parse(&m2, &body).unwrap();
        assert_eq!(
            other.check_tag(0, r, &key(1)),
            Err(Error::LayoutAuthentication)
        );
        assert!(l.body(b"record", &keys(2)).is_err(), "one key per part");
    }

    #[test]
    fn version_2_parses_as_legacy_with_its_ids() {
        let l = Layout::new("up-1", 8, 7, ids(2)).unwrap();
        let mut m = Metadata::new();
        for (k, v) in l.metadata().unwrap().iter() {
            m.insert(k, if k == "layout-version" { "2" } else { v })
                .unwrap();
        }
        let mut body = 6u32.to_be_bytes().to_vec();
        body.extend_from_slice(b"record");
        for id in ids(2) {
            body.extend_from_slice(&id.0);
        }
        let (back, record) = Layout::parse(&m, &body).unwrap();
        assert!(back.is_legacy());
        assert_eq!(back.version(), 2);
        assert_eq!(record, b"record");
        back.check_tag(1, record, &key(3)).unwrap();
    }

    #[test]
    fn version_1_parses_as_legacy() {
        let mut m = Metadata::new();
        for (k, v) in [
            ("upload", "u"),
            ("parts", "2"),
            ("part-size", "8"),
            ("last-size", "1"),
        ] {
            m.insert(k, v).unwrap();
        }
        let (l, record) = Layout::parse(&m, b"the record").unwrap();
        assert!(l.is_legacy());
        assert_eq!(record, b"the record");
        assert!(
            l.body(b"x", &keys(2)).is_err(),
            "legacy layouts are never written"
        );
    }

    #[test]
    fn bad_layouts_are_refused() {
        let l = Layout::new("u", 8, 1, ids(2)).unwrap();
        let good = l.metadata().unwrap();
        let body = l.body(b"rec", &keys(2)).unwrap();
        let edit = |k: &str, v: &str| {
            let mut m = Metadata::new();
            for (key, val) in good.iter() {
                m.insert(key, if key == k { v } else { val }).unwrap();
            }
            m
        };
        for (k, v) in [
            ("parts", "0"),
            ("parts", "10001"),
            ("parts", "02"),
            ("parts", "+2"),
            ("part-size", "x"),
            ("layout-version", "4"),
            ("layout-version", "1"),
            ("layout-version", "02"),
            ("upload", ""),
        ] {
            assert!(Layout::parse(&edit(k, v), &body).is_err(), "{k}={v}");
        }
        // One id too few or too many, a record length past the end, an empty body.
        assert!(Layout::parse(&good, &body[..body.len() - 32]).is_err());
        let mut long = body.clone();
        long.extend_from_slice(&[0; 32]);
        assert!(Layout::parse(&good, &long).is_err());
        let mut lying = body.clone();
        lying[..4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(Layout::parse(&good, &lying).is_err());
        assert!(Layout::parse(&good, &[]).is_err());
        assert!(Layout::new("u", 1, 1, vec![]).is_err());
        assert!(Layout::new("", 1, 1, ids(1)).is_err());
    }
}
