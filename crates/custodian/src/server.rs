//! The HTTPS + mandatory mTLS front of the custodian: connection handling and routes
//! (`docs/API.md`). The caller's identity is fixed once per connection from its certificate.
#![allow(
    clippy::result_large_err,
    reason = "route helpers return the finished error response as their Err"
)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

use crate::admission::{Activity, Admission, Refused};
use crate::api::{
    Denial, DestroyRequest, DetailsResponse, EntriesResponse, ErrorBody, Health, ProofResponse,
    RewrapRequest, UnwrapRequest,
};
use crate::approval::Revocation;
use crate::audit::report::Period;
use crate::config::Role;
use crate::policy_tls::{ConnectionCaller, PolicyTls};
use crate::service::{Caller, Custodian, unix_now};
use crate::work::{Read, WorkLimits};
use crate::{Error, Result};

type Body = Full<Bytes>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: code.to_owned(),
            detail: detail.into(),
        },
    )
}

fn from_error(e: &Error) -> Response<Body> {
    match e {
        Error::Protocol(d) => error(StatusCode::BAD_REQUEST, "bad_request", d.clone()),
        Error::Denied(d) => error(StatusCode::FORBIDDEN, d.as_str(), d.to_string()),
        Error::Approval(d) => error(StatusCode::FORBIDDEN, d.as_str(), d.to_string()),
        Error::LogUnavailable(_) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                "the audit log cannot be written; nothing was released",
            );
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("5"),
            );
            r
        }
        Error::PolicyChanged => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy_changed",
                "the custodian's policy changed while the request was decided; nothing was \
                 released: retry",
            );
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            r
        }
        Error::Config { .. } | Error::Keystore(_) => {
            error(StatusCode::CONFLICT, "precondition", e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "internal error");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> core::result::Result<T, Response<Body>> {
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {limit} bytes"),
            ));
        }
        Err(_) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "could not read the body",
            ));
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON: {e}"),
        )
    })
}

/// Runs the decision `f` on the blocking pool (CPU-bound crypto and fsync) under a write
/// place of `caller`'s region, held by the job until it ends ([`crate::work`]).
async fn blocking<T, F>(
    work: &WorkLimits,
    caller: &Caller,
    f: F,
) -> core::result::Result<T, Response<Body>>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let place = work.write(caller.identity.region.as_str()).await;
    match tokio::task::spawn_blocking(move || {
        let _place = place;
        f()
    })
    .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(from_error(&e)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "task failed",
        )),
    }
}

/// Runs a log read on the blocking pool, if a place of its kind is free now: however long it
/// takes, it holds no async worker, never queues behind other reads, and keeps its place
/// until it ends even if its caller hangs up. A read over its limit is answered `503 busy`
/// at once rather than queued.
async fn read_off_worker<F>(
    work: &WorkLimits,
    kind: Read,
    f: F,
) -> core::result::Result<Response<Body>, Response<Body>>
where
    F: FnOnce() -> core::result::Result<Response<Body>, Response<Body>> + Send + 'static,
{
    let Some(place) = work.read(kind) else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "other log reads are running; retry shortly",
        );
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
        return Err(r);
    };
    tokio::task::spawn_blocking(move || {
        let _place = place;
        f()
    })
    .await
    .unwrap_or_else(|_| {
        Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "task failed",
        ))
    })
}

/// Parses `name=value` pairs of a query string (values here are plain numbers and periods).
fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(q: &[(String, String)], name: &str) -> core::result::Result<u64, Response<Body>> {
    q.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("query parameter `{name}` must be a number"),
            )
        })
}

fn text(body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn audit_get(
    c: &Custodian,
    caller: &Caller,
    route: &[&str],
    q: &[(String, String)],
) -> core::result::Result<Response<Body>, Response<Body>> {
    let audit = c.audit();
    let map = |e: Error| from_error(&e);
    match route {
        ["checkpoint"] => audit.checkpoint().map(text).map_err(map),
        ["entries"] => {
            let (start, end) = (number(q, "start")?, number(q, "end")?);
            audit
                .entries(start, end)
                .map(|entries| json(StatusCode::OK, &EntriesResponse { start, entries }))
                .map_err(map)
        }
        ["proof", "inclusion"] => audit
            .inclusion_proof(number(q, "index")?, number(q, "size")?)
            .map(|proof| json(StatusCode::OK, &ProofResponse { proof }))
            .map_err(map),
        ["proof", "consistency"] => audit
            .consistency_proof(number(q, "old")?, number(q, "new")?)
            .map(|proof| json(StatusCode::OK, &ProofResponse { proof }))
            .map_err(map),
        ["details"] => {
            if !caller
                .entry
                .as_ref()
                .is_some_and(|e| e.roles.contains(&Role::Auditor))
            {
                return Err(from_error(&Error::Denied(Denial::RoleMissing)));
            }
            let (start, end) = (number(q, "start")?, number(q, "end")?);
            audit
                .details(start, end)
                .map(|(details, key)| {
                    json(
                        StatusCode::OK,
                        &DetailsResponse {
                            commitment_key: hex::encode(*key),
                            details,
                        },
                    )
                })
                .map_err(map)
        }
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such audit route",
        )),
    }
}

fn route_name(method: &Method, path: &str) -> &'static str {
    match (method, path) {
        (&Method::GET, "/healthz") => "healthz",
        (&Method::GET, "/metrics") => "metrics",
        (&Method::GET, "/v1/manifest") => "manifest",
        (&Method::POST, "/v1/unwrap") => "unwrap",
        (&Method::POST, "/v1/rewrap") => "rewrap",
        (&Method::POST, "/v1/keys/rotate") => "rotate",
        (&Method::POST, p) if p.starts_with("/v1/keys/") => "keys",
        (&Method::POST, p) if p.starts_with("/v1/approvals/") => "revoke",
        (&Method::GET, p) if p.starts_with("/v1/audit/") => "audit",
        (&Method::GET, "/v1/transparency") => "transparency",
        _ => "other",
    }
}

async fn handle(
    custodian: Arc<Custodian>,
    caller: Arc<Caller>,
    work: Arc<WorkLimits>,
    req: Request<Incoming>,
) -> Response<Body> {
    let limit = custodian.config().limits.max_body_bytes;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let c = custodian.clone();
    let who = caller.clone();
    let result: core::result::Result<Response<Body>, Response<Body>> =
        match (&method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => {
                c.active_version().map_err(|e| from_error(&e)).map(|v| {
                    json(
                        StatusCode::OK,
                        &Health {
                            status: "ok".into(),
                            region: c.config().region.to_string(),
                            custodian: c.config().custodian.to_string(),
                            active_version: v,
                        },
                    )
                })
            }
            (&Method::GET, ["metrics"]) => {
                let mut body = c.metrics.render();
                if let Ok((size, age, _)) = c.audit().stats() {
                    body.push_str(&format!(
                    "# TYPE custodia_audit_log_entries gauge\ncustodia_audit_log_entries {size}\n\
                         # TYPE custodia_audit_checkpoint_age_seconds gauge\n\
                         custodia_audit_checkpoint_age_seconds {age}\n"
                ));
                }
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok(r)
            }
            (&Method::GET, ["v1", "audit", ..]) => {
                let q = query(&req);
                let path = path.clone();
                read_off_worker(&work, Read::Audit, move || {
                    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                    audit_get(&c, &who, segments.get(2..).unwrap_or_default(), &q)
                })
                .await
            }
            (&Method::GET, ["v1", "transparency"]) => {
                let q = query(&req);
                match q
                    .iter()
                    .find(|(k, _)| k == "period")
                    .map(|(_, v)| v.parse::<Period>())
                {
                    Some(Ok(period)) => {
                        read_off_worker(&work, Read::Report, move || {
                            c.audit()
                                .report(period)
                                .map(|r| json(StatusCode::OK, &r))
                                .map_err(|e| from_error(&e))
                        })
                        .await
                    }
                    _ => Err(error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "`period` must be a month (2026-11) or a quarter (2026-Q4)",
                    )),
                }
            }
            // Usually a cached copy; a re-signing writes the keystore (fsync), so off the
            // async workers.
            (&Method::GET, ["v1", "manifest"]) => {
                blocking(&work, &caller, move || c.manifest(unix_now()))
                    .await
                    .map(|m| json(StatusCode::OK, &m))
            }
            (&Method::POST, ["v1", "unwrap"]) => match read_json::<UnwrapRequest>(req, limit).await
            {
                Ok(body) => blocking(&work, &caller, move || c.unwrap(&who, &body, unix_now()))
                    .await
                    .map(|r| json(StatusCode::OK, &r)),
                Err(r) => Err(r),
            },
            (&Method::POST, ["v1", "rewrap"]) => match read_json::<RewrapRequest>(req, limit).await
            {
                Ok(body) => blocking(&work, &caller, move || c.rewrap(&who, &body, unix_now()))
                    .await
                    .map(|r| json(StatusCode::OK, &r)),
                Err(r) => Err(r),
            },
            (&Method::POST, ["v1", "keys", "rotate"]) => {
                blocking(&work, &caller, move || c.rotate(&who, unix_now()))
                    .await
                    .map(|m| json(StatusCode::OK, &m))
            }
            (&Method::POST, ["v1", "keys", v, op @ ("retire" | "destroy")]) => {
                let Ok(version) = v.parse::<u32>() else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "key version must be a number",
                    );
                };
                if *op == "retire" {
                    blocking(&work, &caller, move || c.retire(&who, version, unix_now()))
                        .await
                        .map(|m| json(StatusCode::OK, &m))
                } else {
                    match read_json::<DestroyRequest>(req, limit).await {
                        Ok(body) => blocking(&work, &caller, move || {
                            c.destroy(&who, version, &body.approval, unix_now())
                        })
                        .await
                        .map(|m| json(StatusCode::OK, &m)),
                        Err(r) => Err(r),
                    }
                }
            }
            (&Method::POST, ["v1", "approvals", id, "revoke"]) => {
                let id = (*id).to_owned();
                match read_json::<Revocation>(req, limit).await {
                    Ok(body) => blocking(&work, &caller, move || {
                        c.revoke(&who, &id, &body, unix_now())
                    })
                    .await
                    .map(|()| json(StatusCode::OK, &serde_json::json!({"revoked": true}))),
                    Err(r) => Err(r),
                }
            }
            (_, ["healthz" | "metrics"] | ["v1", "manifest" | "unwrap" | "rewrap"]) => Err(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            )),
            _ => Err(error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {path}"),
            )),
        };
    result.unwrap_or_else(|r| r)
}

/// Replaces SIGXFSZ's default action (the process is killed) by a warning: a write past a
/// file-size limit (`ulimit -f`, systemd's `LimitFSIZE`) then fails with `EFBIG` like one to
/// a full disk, and the log answers `503 log_unavailable`, releasing nothing, as for a full
/// disk (`docs/API.md` §6.1). Call it inside the runtime before anything writes the log or
/// the keystore (a start at the limit then fails with an error instead of a kill); once per
/// process is enough, later calls do nothing.
pub fn survive_file_size_limit() {
    static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if INSTALLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            Ok(mut signals) => {
                tokio::spawn(async move {
                    while signals.recv().await.is_some() {
                        tracing::warn!(
                            "a write went past the file-size limit (SIGXFSZ): the audit log \
                             refuses appends until the limit is raised"
                        );
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot handle SIGXFSZ"),
        }
    }
}

/// How often an open connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// The answer written, unasked, to a caller over its connection cap, right after the
/// handshake; the connection is then closed. Waiting for its request would let a caller that
/// never sends one hold a place under the overall cap with connections that count against
/// no region.
fn too_many_connections(reason: Refused) -> Vec<u8> {
    let body = serde_json::to_vec(&ErrorBody {
        error: "too_many_connections".into(),
        detail: format!(
            "this caller holds too many connections ({} cap); reuse one or retry",
            reason.as_str()
        ),
    })
    .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The answer to a request on a connection whose certificate the policy in force (reloaded
/// since the connection was opened) no longer accepts; the connection is then closed.
fn certificate_refused() -> Response<Body> {
    let mut r = error(
        StatusCode::FORBIDDEN,
        "certificate_refused",
        "the custodian's policy changed and no longer accepts this certificate as it did",
    );
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// How long writing the refusal may take before the connection is just dropped.
const REFUSAL_WRITE: Duration = Duration::from_millis(200);

/// Serves the custodian on `listener` until `shutdown` completes.
///
/// Connections are admitted under the caps of `limits.max_connections`,
/// `max_handshakes`, `max_connections_per_region` and `max_connections_per_caller`
/// ([`Admission`]); a handshake gets `handshake_timeout_secs`, and a connection with no
/// request in flight for `idle_timeout_secs` is closed.
///
/// # Errors
/// Only if accepting connections fails fatally.
pub async fn serve(
    custodian: Arc<Custodian>,
    listener: TcpListener,
    tls: Arc<PolicyTls>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    survive_file_size_limit();
    // The policy served under goes on the log before the first connection is accepted.
    custodian.log_start()?;
    let admission = Admission::new(custodian.config().limits.connections);
    let work = Arc::new(WorkLimits::default());
    custodian.metrics.set_connection_gauge(admission.clone());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (connection, handshake) = match admission.accept(peer.ip()) {
            Ok(p) => p,
            Err(reason) => {
                custodian.metrics.connection_refused(reason.as_str());
                tracing::debug!(%peer, reason = reason.as_str(), "connection refused: cap reached");
                continue;
            }
        };
        // Responses are written whole: do not let Nagle hold their tail back for the peer's
        // delayed ACK (measured: 40 ms stalls on large batches).
        let _ = tcp.set_nodelay(true);
        // The client CAs and CRLs of the policy in force (rebuilt after a reload).
        let (generation, acceptor, policy) = match tls.current(&custodian) {
            Ok(current) => current,
            Err(e) => {
                tracing::error!(error = %e, "no TLS configuration for the policy in force");
                continue;
            }
        };
        let custodian = custodian.clone();
        let admission = admission.clone();
        let work = work.clone();
        tokio::spawn(async move {
            let _connection = connection;
            let limits = *admission.limits();
            let stream = match tokio::time::timeout(
                Duration::from_secs(limits.handshake_timeout_secs),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            drop(handshake);
            let chain: Vec<CertificateDer<'static>> = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            // Identified under the policy whose CAs and CRLs the handshake used.
            let identity = match policy.verifier().identify(&chain, UnixTime::now()) {
                Ok(id) => id,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "caller not identified");
                    return;
                }
            };
            let idle = Duration::from_secs(limits.idle_timeout_secs);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(idle);
            let _caller_permit = match admission.admit(&identity) {
                Ok(p) => p,
                Err(reason) => {
                    custodian.metrics.connection_refused(reason.as_str());
                    tracing::info!(
                        %peer, region = %identity.region, name = ?identity.name,
                        reason = reason.as_str(), "connection refused: caller over its cap"
                    );
                    // Tell the caller why at once, then close.
                    let mut stream = stream;
                    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
                        stream.write_all(&too_many_connections(reason)).await?;
                        stream.shutdown().await
                    })
                    .await;
                    return;
                }
            };
            tracing::debug!(%peer, region = %identity.region, name = ?identity.name, "caller connected");
            let caller = Arc::new(ConnectionCaller::new(
                chain,
                generation,
                Custodian::caller_under(identity, generation, &policy),
            ));
            let activity = Arc::new(Activity::default());
            let watched = activity.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let custodian = custodian.clone();
                let caller = caller.clone();
                let work = work.clone();
                let busy = activity.busy();
                async move {
                    let _busy = busy;
                    let started = Instant::now();
                    let route = route_name(req.method(), req.uri().path());
                    let timeout =
                        Duration::from_secs(custodian.config().limits.request_timeout_secs);
                    let resp = match caller.get(&custodian) {
                        Ok(caller) => tokio::time::timeout(
                            timeout,
                            handle(custodian.clone(), caller, work, req),
                        )
                        .await
                        .unwrap_or_else(|_| {
                            error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "timeout",
                                "request timed out",
                            )
                        }),
                        Err(e) => {
                            tracing::info!(error = %e, "caller refused by the reloaded policy");
                            certificate_refused()
                        }
                    };
                    custodian.metrics.request(
                        route,
                        resp.status().as_u16(),
                        started.elapsed().as_secs_f64(),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let mut closing: Option<Instant> = None;
            let result = loop {
                tokio::select! {
                    r = conn.as_mut() => break r,
                    () = tokio::time::sleep(IDLE_CHECK) => {
                        let Some(quiet) = watched.idle_for() else { continue };
                        match closing {
                            // Idle too long: close once no request is in flight.
                            None if quiet >= idle => {
                                tracing::debug!(%peer, "closing an idle connection");
                                conn.as_mut().graceful_shutdown();
                                closing = Some(Instant::now());
                            }
                            // Still open a second later with nothing in flight (a request
                            // head half sent): drop it.
                            Some(t) if t.elapsed() >= Duration::from_secs(1) => {
                                break Ok(());
                            }
                            _ => {}
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
