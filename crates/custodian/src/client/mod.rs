//! A typed async client for one custodian: a pool of mTLS connections ([`pool`]), batched
//! unwraps opened from their HPKE reply, a deadline on every call, and retries with backoff
//! on transport errors only (never on a denial).

mod pool;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use custodia_envelope::{
    Context, ObjectId, RecipientSecretKey, Share, Stanza, SystemRandomness, open_replies,
};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use pool::Pool;
pub use pool::{CONNECT_TIMEOUT, DOWN_FOR, IDLE_FOR, MAX_CONNECTIONS};

/// The largest answer read from a custodian (the largest real ones, a full unwrap batch or a
/// page of audit entries, are a few MiB); a longer one fails the call as a transport error.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

use crate::api::{
    Denial, DestroyRequest, ErrorBody, Health, RewrapRequest, RewrapResponse, RewrapResult,
    StanzaItem, UnwrapRequest, UnwrapResponse, UnwrapResult, reply_aad, reply_info,
};
use crate::api::{DetailsResponse, EntriesResponse, ProofResponse};
use crate::approval::{Revocation, SignedApproval};
use crate::audit::checkpoint::{origin, verify_checkpoint};
use crate::audit::entry::PublicEntry;
use crate::audit::report::Report;
use crate::audit::tree::verify_inclusion;
use crate::audit_store::AuditReceipt;
use crate::decision_log::Outcome;
use crate::manifest::SignedManifest;
use crate::{Error, Result};

/// One stanza to unwrap or rewrap, with the object fields the custodian authenticates.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The object id.
    pub object_id: &'a ObjectId,
    /// The object's context.
    pub context: &'a Context,
    /// The stanza addressed to this custodian.
    pub stanza: &'a Stanza,
}

impl Item<'_> {
    fn wire(&self) -> StanzaItem {
        StanzaItem {
            object_id: hex::encode(self.object_id.0),
            context: hex::encode(self.context.to_bytes()),
            stanza: hex::encode(self.stanza.to_bytes()),
        }
    }
}

/// The outcome of one unwrap batch: per-item shares or denials, and the custodian's audit
/// receipt for the batch (verified when the client has the custodian's pinned key).
#[derive(Debug)]
pub struct Unwrapped {
    /// One result per item, in order.
    pub results: Vec<core::result::Result<Share, Denial>>,
    /// The batch's audit entries, checkpoint and inclusion proofs. Keep it: it proves what
    /// the custodian logged.
    pub receipt: AuditReceipt,
}

/// Default deadline of one call, all attempts included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for one custodian endpoint. Concurrent calls run on separate connections (up to
/// [`MAX_CONNECTIONS`]); every call ends by its deadline ([`Self::with_timeout`]).
pub struct CustodianClient {
    pool: Pool,
    timeout: Duration,
    retries: u32,
    audit_key: Option<[u8; 32]>,
}

impl core::fmt::Debug for CustodianClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CustodianClient({})", self.pool.addr())
    }
}

impl CustodianClient {
    /// A client for the custodian at `addr` (`host:port`), whose certificate must be valid
    /// for `server_name`, authenticating with the client certificate in `tls`.
    ///
    /// # Errors
    /// [`Error::Tls`] for an invalid server name.
    pub fn new(
        addr: impl Into<String>,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self> {
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::Tls(format!("invalid server name {server_name:?}")))?;
        Ok(Self {
            pool: Pool::new(addr.into(), server_name, TlsConnector::from(tls)),
            timeout: CALL_TIMEOUT,
            retries: 3,
            audit_key: None,
        })
    }

    /// The deadline of each call, every attempt, connection and wait included (default
    /// [`CALL_TIMEOUT`], the server's own request timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.set_timeout(timeout);
        self
    }

    /// Sets the deadline of each call (see [`Self::with_timeout`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.clamp(Duration::from_millis(100), Duration::from_secs(86_400));
    }

    /// Sets the bound on opening one connection (see [`Self::with_connect_timeout`]).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.pool.set_connect_timeout(timeout);
    }

    /// The bound on opening one connection: TCP connect, TLS and HTTP handshakes (default
    /// [`CONNECT_TIMEOUT`]). A custodian that cannot be connected to within it is treated as
    /// down for [`DOWN_FOR`]: calls then fail at once.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.set_connect_timeout(timeout);
        self
    }

    /// Most connections open to the custodian at once (default [`MAX_CONNECTIONS`]); more
    /// concurrent calls wait for one, within their deadline.
    #[must_use]
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.pool.set_max_connections(n);
        self
    }

    /// The custodian's pinned manifest key: every unwrap's audit receipt is then verified
    /// (signed checkpoint, one entry per item with its inclusion proof, outcomes matching the
    /// results) before any share is returned.
    #[must_use]
    pub fn with_audit_key(mut self, manifest_key: [u8; 32]) -> Self {
        self.audit_key = Some(manifest_key);
        self
    }

    /// Attempts on transport errors (default 3).
    #[must_use]
    pub fn with_retries(mut self, attempts: u32) -> Self {
        self.retries = attempts.max(1);
        self
    }

    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: &Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        self.attempt_tracked(method, path, body, Instant::now() + self.timeout)
            .await
            .map_err(|(e, _)| e)
    }

    /// One try, ending by `deadline`; on error also says whether the request may have
    /// reached the server.
    async fn attempt_tracked(
        &self,
        method: &Method,
        path: &str,
        body: &Bytes,
        deadline: Instant,
    ) -> core::result::Result<(StatusCode, Bytes), (Error, bool)> {
        let mut lease = self.pool.lease(deadline).await.map_err(|e| (e, false))?;
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, self.pool.addr())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| (Error::Protocol(e.to_string()), false))?;
        let sender = &mut lease.sender;
        let result = async {
            sender
                .ready()
                .await
                .map_err(|e| (Error::Transport(e.to_string()), false))?;
            let resp = sender.send_request(req).await.map_err(|e| {
                // A canceled request never left this side (the connection closed first).
                let sent = !e.is_canceled();
                (Error::Transport(e.to_string()), sent)
            })?;
            let status = resp.status();
            // Bounded before it is held: a custodian (or anything posing as one on the
            // network) cannot make this side buffer an endless answer.
            let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| (Error::Transport(e.to_string()), true))?
                .to_bytes();
            Ok((status, bytes))
        };
        match tokio::time::timeout_at(deadline.into(), result).await {
            Ok(Ok(r)) => {
                lease.reuse();
                Ok(r)
            }
            // The connection is dropped with the lease: it is in an unknown state.
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.pool.mark_down();
                Err((
                    Error::Transport(format!("{}: timed out", self.pool.addr())),
                    true,
                ))
            }
        }
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> Result<Resp> {
        let bytes = match body {
            Some(b) => {
                Bytes::from(serde_json::to_vec(b).map_err(|e| Error::Protocol(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let deadline = Instant::now() + self.timeout;
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        let (status, resp) = loop {
            match self.attempt_tracked(&method, path, &bytes, deadline).await {
                Ok(r) => break r,
                // Retry transport errors, but a POST only if it cannot have reached the
                // server: unwraps charge approval uses and admin calls change keys. No retry
                // starts after the deadline.
                Err((e, sent))
                    if e.is_retryable()
                        && attempt < self.retries
                        && (method == Method::GET || !sent)
                        && Instant::now() + delay < deadline =>
                {
                    tracing::debug!(error = %e, attempt, "custodian transport error; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        };
        if status.is_success() {
            return serde_json::from_slice(&resp)
                .map_err(|e| Error::Protocol(format!("{path}: unexpected response: {e}")));
        }
        let body: ErrorBody = serde_json::from_slice(&resp).unwrap_or(ErrorBody {
            error: "unknown".into(),
            detail: String::from_utf8_lossy(&resp).into_owned(),
        });
        if status == StatusCode::FORBIDDEN
            && let Ok(d) =
                serde_json::from_value::<Denial>(serde_json::Value::String(body.error.clone()))
        {
            return Err(Error::Denied(d));
        }
        Err(Error::Http {
            status: status.as_u16(),
            code: body.error,
            detail: body.detail,
        })
    }

    /// Sends raw bytes (for tests of malformed input): returns the status and body.
    ///
    /// # Errors
    /// Transport errors.
    pub async fn raw(&self, method: Method, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>)> {
        let (status, bytes) = self.attempt(&method, path, &Bytes::from(body)).await?;
        Ok((status.as_u16(), bytes.to_vec()))
    }

    /// `GET /healthz`.
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn health(&self) -> Result<Health> {
        self.call::<(), _>(Method::GET, "/healthz", None).await
    }

    /// `GET /v1/manifest`, unverified: check it with a [`crate::manifest::ManifestPin`].
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn manifest(&self) -> Result<SignedManifest> {
        self.call::<(), _>(Method::GET, "/v1/manifest", None).await
    }

    /// `GET /metrics` (Prometheus text).
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn metrics(&self) -> Result<String> {
        let (status, body) = self
            .attempt(&Method::GET, "/metrics", &Bytes::new())
            .await?;
        if !status.is_success() {
            return Err(Error::Http {
                status: status.as_u16(),
                code: "metrics".into(),
                detail: String::new(),
            });
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST /v1/unwrap`: one batch; every stanza must be addressed to this custodian. The
    /// released shares are opened from the batch's HPKE reply with a fresh ephemeral key.
    ///
    /// # Errors
    /// [`Error::Protocol`] for an empty or mixed batch or a reply that does not open;
    /// transport and HTTP errors. Per-item denials are in the returned vector.
    pub async fn unwrap(
        &self,
        items: &[Item<'_>],
        approval: Option<&SignedApproval>,
    ) -> Result<Unwrapped> {
        let first = items
            .first()
            .ok_or_else(|| Error::Protocol("empty batch".into()))?;
        let recipient = &first.stanza.recipient;
        if items
            .iter()
            .any(|i| !i.stanza.recipient.same_custodian(recipient))
        {
            return Err(Error::Protocol("a batch goes to one custodian".into()));
        }
        let ephemeral = RecipientSecretKey::generate(&mut SystemRandomness::new())?;
        let req = UnwrapRequest {
            caller_key: hex::encode(ephemeral.public_key()?),
            approval: approval.cloned(),
            items: items.iter().map(Item::wire).collect(),
        };
        let resp: UnwrapResponse = self.call(Method::POST, "/v1/unwrap", Some(&req)).await?;
        if resp.results.len() != items.len() {
            return Err(Error::Protocol(
                "unwrap reply has the wrong number of results".into(),
            ));
        }
        let mut sealed = Vec::new();
        for (i, (r, item)) in resp.results.iter().zip(items).enumerate() {
            if let UnwrapResult::Share(h) = r {
                let ct: [u8; 48] = hex::decode(h)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Error::Protocol("bad sealed share".into()))?;
                sealed.push((reply_aad(i, &item.object_id.0), ct));
            }
        }
        let enc: [u8; 32] = hex::decode(&resp.enc)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Protocol("bad enc".into()))?;
        let info = reply_info(recipient.region.as_str(), recipient.custodian.as_str());
        if let Some(key) = &self.audit_key {
            check_receipt(
                &resp,
                key,
                recipient.region.as_str(),
                recipient.custodian.as_str(),
            )?;
        }
        let mut shares = open_replies(&ephemeral, &enc, &info, &sealed)
            .map_err(|_| Error::Protocol("unwrap reply did not open".into()))?
            .into_iter();
        let results = resp
            .results
            .into_iter()
            .map(|r| match r {
                UnwrapResult::Share(_) => shares.next().ok_or(Denial::Malformed),
                UnwrapResult::Denied(d) => Err(d),
            })
            .collect();
        Ok(Unwrapped {
            results,
            receipt: resp.audit,
        })
    }

    /// `GET /v1/audit/checkpoint`: the latest signed checkpoint (a C2SP signed note).
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn checkpoint(&self) -> Result<String> {
        let (status, body) = self
            .attempt(&Method::GET, "/v1/audit/checkpoint", &Bytes::new())
            .await?;
        if !status.is_success() {
            return Err(Error::Http {
                status: status.as_u16(),
                code: "checkpoint".into(),
                detail: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| Error::Protocol("checkpoint is not UTF-8".into()))
    }

    /// `GET /v1/audit/entries?start=&end=`: public entries as their exact record bytes.
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<String>> {
        let r: EntriesResponse = self
            .call::<(), _>(
                Method::GET,
                &format!("/v1/audit/entries?start={start}&end={end}"),
                None,
            )
            .await?;
        Ok(r.entries)
    }

    /// `GET /v1/audit/proof/consistency?old=&new=` (hex hashes).
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<String>> {
        let r: ProofResponse = self
            .call::<(), _>(
                Method::GET,
                &format!("/v1/audit/proof/consistency?old={old}&new={new}"),
                None,
            )
            .await?;
        Ok(r.proof)
    }

    /// `GET /v1/audit/proof/inclusion?index=&size=` (hex hashes).
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<String>> {
        let r: ProofResponse = self
            .call::<(), _>(
                Method::GET,
                &format!("/v1/audit/proof/inclusion?index={index}&size={size}"),
                None,
            )
            .await?;
        Ok(r.proof)
    }

    /// `GET /v1/audit/details?start=&end=` (auditor role).
    ///
    /// # Errors
    /// [`Error::Denied`] without the auditor role; transport and HTTP errors.
    pub async fn details(&self, start: u64, end: u64) -> Result<DetailsResponse> {
        self.call::<(), _>(
            Method::GET,
            &format!("/v1/audit/details?start={start}&end={end}"),
            None,
        )
        .await
    }

    /// `GET /v1/transparency?period=` (e.g. `2026-11`, `2026-Q4`).
    ///
    /// # Errors
    /// Transport and HTTP errors.
    pub async fn transparency(&self, period: &str) -> Result<Report> {
        self.call::<(), _>(
            Method::GET,
            &format!("/v1/transparency?period={period}"),
            None,
        )
        .await
    }

    /// `POST /v1/rewrap`: the stanzas re-wrapped to the custodian's active key version.
    ///
    /// # Errors
    /// Transport, HTTP and protocol errors; per-item denials in the vector.
    pub async fn rewrap(
        &self,
        items: &[Item<'_>],
    ) -> Result<Vec<core::result::Result<Stanza, Denial>>> {
        let req = RewrapRequest {
            items: items.iter().map(Item::wire).collect(),
        };
        let resp: RewrapResponse = self.call(Method::POST, "/v1/rewrap", Some(&req)).await?;
        if resp.results.len() != items.len() {
            return Err(Error::Protocol(
                "rewrap reply has the wrong number of results".into(),
            ));
        }
        resp.results
            .into_iter()
            .map(|r| match r {
                RewrapResult::Stanza(h) => hex::decode(h)
                    .ok()
                    .and_then(|b| Stanza::from_bytes(&b).ok())
                    .map(Ok)
                    .ok_or_else(|| Error::Protocol("bad stanza in rewrap reply".into())),
                RewrapResult::Denied(d) => Ok(Err(d)),
            })
            .collect()
    }

    /// `POST /v1/keys/rotate` (admin).
    ///
    /// # Errors
    /// [`Error::Denied`] and transport/HTTP errors.
    pub async fn rotate(&self) -> Result<SignedManifest> {
        self.call::<(), _>(Method::POST, "/v1/keys/rotate", None)
            .await
    }

    /// `POST /v1/keys/{version}/retire` (admin).
    ///
    /// # Errors
    /// As [`Self::rotate`].
    pub async fn retire(&self, version: u32) -> Result<SignedManifest> {
        self.call::<(), _>(Method::POST, &format!("/v1/keys/{version}/retire"), None)
            .await
    }

    /// `POST /v1/keys/{version}/destroy` (admin, with an M-of-N approval).
    ///
    /// # Errors
    /// As [`Self::rotate`].
    pub async fn destroy(&self, version: u32, approval: &SignedApproval) -> Result<SignedManifest> {
        let req = DestroyRequest {
            approval: approval.clone(),
        };
        self.call(
            Method::POST,
            &format!("/v1/keys/{version}/destroy"),
            Some(&req),
        )
        .await
    }

    /// `POST /v1/approvals/{id}/revoke`.
    ///
    /// # Errors
    /// [`Error::Denied`] for a bad revocation; transport/HTTP errors.
    pub async fn revoke(&self, revocation: &Revocation) -> Result<()> {
        let _: serde_json::Value = self
            .call(
                Method::POST,
                &format!("/v1/approvals/{}/revoke", revocation.approval_id),
                Some(revocation),
            )
            .await?;
        Ok(())
    }
}

fn decode_proof(proof: &[String]) -> Result<Vec<[u8; 32]>> {
    proof
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Protocol("bad proof hash".into()))
        })
        .collect()
}

/// Checks an unwrap response's audit receipt: the checkpoint is signed by the pinned key for
/// this custodian's origin, there is one entry per item at consecutive indexes, each is
/// included in the checkpoint's tree, and each entry's outcome matches the item's result.
fn check_receipt(
    resp: &UnwrapResponse,
    key: &[u8; 32],
    region: &str,
    custodian: &str,
) -> Result<()> {
    let bad = |what: &str| Error::Protocol(format!("audit receipt: {what}"));
    let r = &resp.audit;
    let cp = verify_checkpoint(&r.checkpoint, &origin(region, custodian), key)?;
    if r.entries.len() != resp.results.len() || r.proofs.len() != r.entries.len() {
        return Err(bad("one entry and one proof per item expected"));
    }
    for (i, ((entry, proof), result)) in r
        .entries
        .iter()
        .zip(&r.proofs)
        .zip(&resp.results)
        .enumerate()
    {
        let index = r.first + i as u64;
        verify_inclusion(
            &decode_proof(proof)?,
            index,
            cp.size,
            &cp.root,
            entry.as_bytes(),
        )?;
        let e = PublicEntry::from_record(entry.as_bytes())?;
        let released = matches!(result, UnwrapResult::Share(_));
        if e.seq != index || e.operation != "unwrap" || (e.outcome == Outcome::Allow) != released {
            return Err(bad("an entry does not match its item"));
        }
    }
    Ok(())
}
