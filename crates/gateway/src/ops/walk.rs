//! Walking a bucket in key order, a page at a time (constant memory however large the
//! bucket), skipping the gateway's own records under [`RESERVED_PREFIX`].

use futures_util::Stream;
use futures_util::stream::{self, StreamExt};

use crate::error::{Error, Result};
use crate::routes::RESERVED_PREFIX;
use crate::store::s3::{ListParams, S3Store};

/// One object found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its stored size (0 when not known, e.g. for a retried key).
    pub size: u64,
}

/// Objects per listing page asked of the store.
const PAGE: i32 = 1000;

fn no_such_bucket(bucket: &str, e: Error) -> Error {
    match e {
        Error::Upstream(ref s) if s == "NoSuchBucket" => Error::StoreRefused {
            status: 404,
            code: "NoSuchBucket".into(),
            message: format!("the store has no bucket {bucket:?}"),
        },
        other => other,
    }
}

/// Checks that `bucket` exists and can be listed (a clear error before any work starts).
///
/// # Errors
/// [`Error::StoreRefused`] with `NoSuchBucket`; store errors.
pub(crate) async fn probe(store: &S3Store, bucket: &str) -> Result<()> {
    let p = ListParams {
        max_keys: Some(1),
        ..ListParams::default()
    };
    store
        .list(bucket, &p, true)
        .await
        .map(drop)
        .map_err(|e| no_such_bucket(bucket, e))
}

struct State<'a> {
    store: &'a S3Store,
    bucket: &'a str,
    prefix: Option<String>,
    after: Option<String>,
    token: Option<String>,
    done: bool,
}

/// Batches of up to `batch` objects under `prefix`, in key order, strictly after `after`.
pub(crate) fn batches<'a>(
    store: &'a S3Store,
    bucket: &'a str,
    prefix: Option<String>,
    after: Option<String>,
    batch: usize,
) -> impl Stream<Item = Result<Vec<Listed>>> + 'a {
    let state = State {
        store,
        bucket,
        prefix,
        after,
        token: None,
        done: false,
    };
    let batch = batch.max(1);
    stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        let params = ListParams {
            prefix: st.prefix.clone(),
            max_keys: Some(PAGE),
            token: st.token.clone(),
            start_after: if st.token.is_none() {
                st.after.clone()
            } else {
                None
            },
            ..ListParams::default()
        };
        let page = match st.store.list(st.bucket, &params, true).await {
            Ok(p) => p,
            Err(e) => {
                st.done = true;
                let e = no_such_bucket(st.bucket, e);
                return Some((vec![Err(e)], st));
            }
        };
        st.token = page.next_token.clone();
        st.done = !page.truncated || st.token.is_none();
        let listed: Vec<Listed> = page
            .objects
            .into_iter()
            .filter_map(|o| {
                let key = o.key?;
                let size = o.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                (!key.starts_with(RESERVED_PREFIX)).then_some(Listed { key, size })
            })
            .collect();
        let out: Vec<Result<Vec<Listed>>> = listed.chunks(batch).map(|c| Ok(c.to_vec())).collect();
        Some((out, st))
    })
    .flat_map(stream::iter)
}
