//! A request body that fails when no bytes arrive for a while: a client that stops sending
//! mid-upload gives its request slot back in bounded time instead of holding it for as long
//! as the connection stays open. (A client that keeps trickling bytes resets the timer; the
//! object size limit and the write slots' count bound what it can hold.) Both
//! fronts wrap every upload body in it (`limits.idle_timeout_secs`).

use std::time::Duration;

use futures_util::StreamExt;

use crate::store::BodyStream;

/// `body`, failing when no bytes arrive for `limit`.
pub(crate) fn idle_timeout(body: BodyStream, limit: Duration) -> BodyStream {
    futures_util::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(limit, body.next()).await {
            Ok(Some(item)) => Some((item, Some(body))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no request body bytes for {} s", limit.as_secs()),
                )),
                None,
            )),
        }
    })
    .boxed()
}
