//! The HTTPS + mandatory mTLS front of the custodian: connection handling and routes
//! (`docs/API.md`). The caller's identity is fixed once per connection from its certificate.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::UnixTime;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{DestroyRequest, ErrorBody, Health, RewrapRequest, UnwrapRequest};
use crate::approval::Revocation;
use crate::service::{Caller, Custodian, unix_now};
use crate::tls::RegionVerifier;
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
                "the decision log cannot be written; nothing was released",
            );
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("5"),
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
    let body = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {limit} bytes"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON: {e}"),
        )
    })
}

/// Runs `f` on the blocking pool (CPU-bound crypto and fsync), mapping the result.
async fn blocking<T, F>(f: F) -> core::result::Result<T, Response<Body>>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(from_error(&e)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "task failed",
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
        _ => "other",
    }
}

async fn handle(
    custodian: Arc<Custodian>,
    caller: Arc<Caller>,
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
                let mut r = Response::new(Full::new(Bytes::from(c.metrics.render())));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok(r)
            }
            (&Method::GET, ["v1", "manifest"]) => c
                .manifest(unix_now())
                .map(|m| json(StatusCode::OK, &m))
                .map_err(|e| from_error(&e)),
            (&Method::POST, ["v1", "unwrap"]) => match read_json::<UnwrapRequest>(req, limit).await
            {
                Ok(body) => blocking(move || c.unwrap(&who, &body, unix_now()))
                    .await
                    .map(|r| json(StatusCode::OK, &r)),
                Err(r) => Err(r),
            },
            (&Method::POST, ["v1", "rewrap"]) => match read_json::<RewrapRequest>(req, limit).await
            {
                Ok(body) => blocking(move || c.rewrap(&who, &body, unix_now()))
                    .await
                    .map(|r| json(StatusCode::OK, &r)),
                Err(r) => Err(r),
            },
            (&Method::POST, ["v1", "keys", "rotate"]) => {
                blocking(move || c.rotate(&who, unix_now()))
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
                    blocking(move || c.retire(&who, version, unix_now()))
                        .await
                        .map(|m| json(StatusCode::OK, &m))
                } else {
                    match read_json::<DestroyRequest>(req, limit).await {
                        Ok(body) => {
                            blocking(move || c.destroy(&who, version, &body.approval, unix_now()))
                                .await
                                .map(|m| json(StatusCode::OK, &m))
                        }
                        Err(r) => Err(r),
                    }
                }
            }
            (&Method::POST, ["v1", "approvals", id, "revoke"]) => {
                let id = (*id).to_owned();
                match read_json::<Revocation>(req, limit).await {
                    Ok(body) => blocking(move || c.revoke(&who, &id, &body, unix_now()))
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

/// Serves the custodian on `listener` until `shutdown` completes.
///
/// # Errors
/// Only if accepting connections fails fatally.
pub async fn serve(
    custodian: Arc<Custodian>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    verifier: Arc<RegionVerifier>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(tls);
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
        let acceptor = acceptor.clone();
        let custodian = custodian.clone();
        let verifier = verifier.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
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
            let identity = match stream
                .get_ref()
                .1
                .peer_certificates()
                .ok_or_else(|| Error::Tls("no client certificate".into()))
                .and_then(|chain| verifier.identify(chain, UnixTime::now()))
            {
                Ok(id) => id,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "caller not identified");
                    return;
                }
            };
            let caller = Arc::new(custodian.caller(identity));
            tracing::debug!(%peer, region = %caller.identity.region, name = %caller.identity.name, "caller connected");
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let custodian = custodian.clone();
                let caller = caller.clone();
                async move {
                    let started = Instant::now();
                    let route = route_name(req.method(), req.uri().path());
                    let timeout =
                        Duration::from_secs(custodian.config().limits.request_timeout_secs);
                    let resp =
                        tokio::time::timeout(timeout, handle(custodian.clone(), caller, req))
                            .await
                            .unwrap_or_else(|_| {
                                error(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "timeout",
                                    "request timed out",
                                )
                            });
                    custodian.metrics.request(
                        route,
                        resp.status().as_u16(),
                        started.elapsed().as_secs_f64(),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
