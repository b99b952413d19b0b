//! Listings and bucket operations of the S3 front: upstream listings passed through with
//! exact plaintext sizes and opaque ETags, an empty `delimiter=` treated as absent, and only
//! the buckets routes serve.

use custodia_envelope::Profile;
use s3s::dto::{
    Bucket, CommonPrefix, ETag, ListBucketsOutput, ListObjectsInput, ListObjectsOutput,
    ListObjectsV2Input, ListObjectsV2Output, Object,
};

use crate::error::{Error, Result};
use std::collections::HashMap;

use crate::objects::{LAYOUT_PREFIX, Objects, opaque_etag, parse_layout_key};
use crate::store::Store;
use crate::store::s3::{ListPage, ListParams, S3Store};

use crate::routes::RESERVED_PREFIX;

fn s3_store(objects: &Objects) -> Result<&S3Store> {
    match objects.store() {
        Store::S3(s) => Ok(s),
        Store::Webdav(_) => Err(Error::NotImplemented(
            "listing and bucket operations need an S3 upstream".into(),
        )),
    }
}

fn routed(objects: &Objects, bucket: &str) -> Result<()> {
    if objects.routes().serves_bucket(bucket) {
        Ok(())
    } else {
        Err(Error::NoRoute {
            bucket: bucket.to_owned(),
            key: String::new(),
        })
    }
}

/// The plaintext size of a stored object of `stored` bytes whose store ETag is `etag`:
/// a multipart object (ETag suffix `-N`) holds N envelopes, each with its own header.
#[must_use]
pub(crate) fn plaintext_size(
    profile: Profile,
    stored: i64,
    etag: Option<&ETag>,
    layout_parts: Option<u64>,
) -> i64 {
    let parts: u64 = etag_parts(etag).or(layout_parts).unwrap_or(1).max(1);
    let Ok(stored_u) = u64::try_from(stored) else {
        return stored;
    };
    let extra_headers = (parts - 1).saturating_mul(profile.header_size() as u64);
    let merged = stored_u.checked_sub(extra_headers);
    merged
        .and_then(|s| profile.plaintext_len(s).ok())
        // An empty last part is a header and one empty final chunk: the parts before it end
        // on a full final chunk, which a single stream would not follow with another.
        .or_else(|| {
            (parts > 1)
                .then(|| merged?.checked_sub(custodia_envelope::TAG_LEN as u64))
                .flatten()
                .and_then(|s| profile.plaintext_len(s).ok())
        })
        .and_then(|p| i64::try_from(p).ok())
        // Not a Custodia object (a legacy plaintext route): its stored size is its size.
        .unwrap_or(stored)
}

/// The part count in a multipart ETag's `-N` suffix.
fn etag_parts(etag: Option<&ETag>) -> Option<u64> {
    etag.and_then(|e| e.value().rsplit_once('-'))
        .and_then(|(_, n)| n.parse().ok())
}

/// Part counts of the page's multipart objects from their layout records' names, for
/// stores whose ETags lack the `-N` suffix (s3s-fs): one extra listing per page at most.
async fn layout_parts(
    objects: &Objects,
    bucket: &str,
    page: &ListPage,
) -> Result<HashMap<String, u64>> {
    let keys: Vec<&str> = page
        .objects
        .iter()
        .filter(|o| etag_parts(o.e_tag.as_ref()).is_none())
        .filter_map(|o| o.key.as_deref())
        .filter(|k| !k.starts_with(RESERVED_PREFIX))
        .collect();
    let mut out = HashMap::new();
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(out);
    };
    let end = format!("{LAYOUT_PREFIX}{last}/");
    let mut params = ListParams {
        prefix: Some(LAYOUT_PREFIX.to_owned()),
        start_after: Some(format!("{LAYOUT_PREFIX}{first}")),
        max_keys: Some(1000),
        ..Default::default()
    };
    let store = s3_store(objects)?;
    for _ in 0..50 {
        let side = store.list(bucket, &params, true).await?;
        let mut past_end = false;
        for name in side.objects.iter().filter_map(|o| o.key.as_deref()) {
            if name > end.as_str() && !name.starts_with(&end) {
                past_end = true;
                break;
            }
            if let Some((k, n)) = parse_layout_key(name)
                && keys.contains(&k)
            {
                out.insert(k.to_owned(), n);
            }
        }
        if past_end || !side.truncated || side.next_token.is_none() {
            break;
        }
        params.token = side.next_token;
        params.start_after = None;
    }
    Ok(out)
}

fn convert(
    objects: &Objects,
    page: ListPage,
    parts: &HashMap<String, u64>,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let profile = objects.client().profile();
    let contents = page
        .objects
        .into_iter()
        .filter(|o| {
            !o.key
                .as_deref()
                .is_some_and(|k| k.starts_with(RESERVED_PREFIX))
        })
        .map(|mut o| {
            let hint = o.key.as_ref().and_then(|k| parts.get(k)).copied();
            o.size = o
                .size
                .map(|s| plaintext_size(profile, s, o.e_tag.as_ref(), hint));
            o.e_tag = o
                .e_tag
                .map(|e| ETag::Strong(opaque_etag(e.value()).trim_matches('"').to_owned()));
            o.owner = None;
            o
        })
        .collect();
    let prefixes = page
        .prefixes
        .into_iter()
        .filter(|p| !p.starts_with(RESERVED_PREFIX))
        .map(|p| CommonPrefix { prefix: Some(p) })
        .collect();
    (contents, prefixes)
}

fn no_empty(d: Option<String>) -> Option<String> {
    d.filter(|d| !d.is_empty())
}

pub(crate) async fn list_v2(
    objects: &Objects,
    i: ListObjectsV2Input,
) -> Result<ListObjectsV2Output> {
    routed(objects, &i.bucket)?;
    let delimiter = no_empty(i.delimiter);
    let params = ListParams {
        prefix: i.prefix.clone(),
        delimiter: delimiter.clone(),
        max_keys: i.max_keys,
        token: i.continuation_token.clone(),
        start_after: i.start_after.clone(),
        marker: None,
    };
    let page = s3_store(objects)?.list(&i.bucket, &params, true).await?;
    let truncated = page.truncated;
    let next = page.next_token.clone();
    let parts = layout_parts(objects, &i.bucket, &page).await?;
    let (contents, prefixes) = convert(objects, page, &parts);
    let key_count = i32::try_from(contents.len() + prefixes.len()).unwrap_or(i32::MAX);
    Ok(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: i.prefix,
        delimiter,
        max_keys: Some(i.max_keys.unwrap_or(1000)),
        key_count: Some(key_count),
        continuation_token: i.continuation_token,
        start_after: i.start_after,
        is_truncated: Some(truncated),
        next_continuation_token: next,
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: None,
        ..Default::default()
    })
}

pub(crate) async fn list_v1(objects: &Objects, i: ListObjectsInput) -> Result<ListObjectsOutput> {
    routed(objects, &i.bucket)?;
    let delimiter = no_empty(i.delimiter);
    let params = ListParams {
        prefix: i.prefix.clone(),
        delimiter: delimiter.clone(),
        max_keys: i.max_keys,
        token: None,
        start_after: None,
        marker: i.marker.clone(),
    };
    let page = s3_store(objects)?.list(&i.bucket, &params, false).await?;
    let truncated = page.truncated;
    let last_key = page.objects.last().and_then(|o| o.key.clone());
    let next_marker = page
        .next_marker
        .clone()
        .or(if truncated { last_key } else { None });
    let parts = layout_parts(objects, &i.bucket, &page).await?;
    let (contents, prefixes) = convert(objects, page, &parts);
    Ok(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: i.prefix,
        delimiter,
        marker: i.marker,
        max_keys: Some(i.max_keys.unwrap_or(1000)),
        is_truncated: Some(truncated),
        next_marker: truncated.then_some(next_marker).flatten(),
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        ..Default::default()
    })
}

pub(crate) async fn list_buckets(objects: &Objects) -> Result<ListBucketsOutput> {
    let all = s3_store(objects)?.list_buckets().await?;
    let buckets: Vec<Bucket> = all
        .into_iter()
        .filter(|b| {
            b.name
                .as_deref()
                .is_some_and(|n| objects.routes().serves_bucket(n))
        })
        .collect();
    Ok(ListBucketsOutput {
        buckets: Some(buckets),
        ..Default::default()
    })
}

pub(crate) async fn bucket_op(
    objects: &Objects,
    method: &http::Method,
    bucket: &str,
) -> Result<()> {
    routed(objects, bucket)?;
    let store = s3_store(objects)?;
    let result = match store.bucket(method, bucket).await {
        Err(e)
            if *method == http::Method::DELETE
                && e.to_string().contains("BucketNotEmpty")
                && empty_to_clients(objects, bucket).await? =>
        {
            // Clients see it empty: what is left is the gateway's own records. Those that
            // provably belong to nothing go, and the store is asked once more.
            let swept = objects.sweep_records(bucket, None, false).await?;
            if swept.layout_records + swept.upload_records == 0 {
                Err(e)
            } else {
                store.bucket(method, bucket).await
            }
        }
        other => other,
    };
    match result {
        Err(Error::Upstream(m)) if m == "NoSuchBucket" => Err(Error::NotFound),
        other => other,
    }
}

/// Whether a listing of `bucket` shows clients nothing: every object in it is under the
/// gateway's `.custodia/` prefix.
async fn empty_to_clients(objects: &Objects, bucket: &str) -> Result<bool> {
    let store = s3_store(objects)?;
    let mut params = ListParams {
        max_keys: Some(1000),
        ..Default::default()
    };
    loop {
        let page = store.list(bucket, &params, true).await?;
        let visible = page
            .objects
            .iter()
            .filter_map(|o| o.key.as_deref())
            .any(|k| !k.starts_with(RESERVED_PREFIX));
        if visible {
            return Ok(false);
        }
        if !page.truncated || page.next_token.is_none() {
            return Ok(true);
        }
        params.token = page.next_token;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn listing_sizes_are_plaintext_sizes() {
        let p = Profile::DEFAULT;
        for len in [0u64, 1, 65_535, 65_536, 65_537, 8 << 20] {
            let stored = i64::try_from(p.sealed_len(len).unwrap()).unwrap();
            let e = ETag::Strong("abc".into());
            assert_eq!(
                plaintext_size(p, stored, Some(&e), None),
                i64::try_from(len).unwrap()
            );
        }
        // Three parts of 8 MiB, 8 MiB and 1 byte: three headers.
        let part = p.sealed_len(8 << 20).unwrap();
        let stored = i64::try_from(2 * part + p.sealed_len(1).unwrap()).unwrap();
        let e = ETag::Strong("abc-3".into());
        assert_eq!(plaintext_size(p, stored, Some(&e), None), (16 << 20) + 1);
        // Not sealed: reported as stored.
        assert_eq!(plaintext_size(p, 3, None, None), 3);
        // No suffix, but a layout record names three parts.
        let plain = ETag::Strong("abc".into());
        assert_eq!(
            plaintext_size(p, stored, Some(&plain), Some(3)),
            (16 << 20) + 1
        );
        // An empty last part (the review's case: 5 MiB then 0 bytes, listed as 5,246,224):
        // for every part count and part size, the listing says what HEAD says.
        for (parts, size) in [(2u64, 5u64 << 20), (3, 5 << 20), (2, 65_536), (10, 8 << 20)] {
            let stored = (parts - 1) * p.sealed_len(size).unwrap() + p.sealed_len(0).unwrap();
            let e = ETag::Strong(format!("abc-{parts}"));
            assert_eq!(
                plaintext_size(p, i64::try_from(stored).unwrap(), Some(&e), None),
                i64::try_from((parts - 1) * size).unwrap(),
                "{parts} parts of {size}"
            );
        }
    }
}
