//! The connections of one custodian client: a pool of mTLS HTTP/1.1 connections, each
//! carrying one request at a time, so concurrent calls never queue behind one connection.
//!
//! Every step is bounded: waiting for a place in the pool by the call's deadline, opening a
//! connection (TCP, TLS handshake, HTTP handshake) by the connect timeout. A custodian that
//! cannot be connected to (refused, unreachable, or accepting TCP but never finishing the
//! handshake, as a stopped process does) is marked down for [`DOWN_FOR`]: calls in that
//! window fail at once instead of each waiting out its own timeout, and the first call after
//! it tries again.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use crate::{Error, Result};

/// How long a custodian that could not be connected to is treated as down.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

/// Default bound on opening one connection (TCP, TLS and HTTP handshakes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default most connections open to one custodian at once (each carries one request).
pub const MAX_CONNECTIONS: usize = 32;

/// How long an idle connection is kept for reuse: shorter than the server's idle timeout
/// (30 s by default), so a request is not sent on a connection the server is closing.
pub const IDLE_FOR: Duration = Duration::from_secs(15);

type Sender = SendRequest<Full<Bytes>>;

/// Connections to one custodian endpoint.
pub(crate) struct Pool {
    addr: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    connect_timeout: Duration,
    slots: std::sync::Arc<Semaphore>,
    idle: Mutex<Vec<(Sender, Instant)>>,
    down_until: Mutex<Option<Instant>>,
}

/// A connection lent for one request. Give it back with [`Lease::reuse`] after a complete
/// exchange; dropped otherwise (the connection is closed).
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    pub(crate) sender: Sender,
    _slot: OwnedSemaphorePermit,
}

impl Lease<'_> {
    /// Returns the connection to the pool for the next request.
    pub(crate) fn reuse(self) {
        if !self.sender.is_closed() {
            let mut idle = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            idle.push((self.sender, Instant::now()));
        }
    }
}

impl Pool {
    pub(crate) fn new(
        addr: String,
        server_name: ServerName<'static>,
        connector: TlsConnector,
    ) -> Self {
        Self {
            addr,
            server_name,
            connector,
            connect_timeout: CONNECT_TIMEOUT,
            slots: std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            idle: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
        }
    }

    pub(crate) fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout.clamp(Duration::from_millis(100), Duration::from_secs(3600));
    }

    pub(crate) fn set_max_connections(&mut self, n: usize) {
        self.slots = std::sync::Arc::new(Semaphore::new(n.clamp(1, 4096)));
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    fn down(&self) -> Option<Duration> {
        let until = *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.and_then(|t| t.checked_duration_since(Instant::now()))
    }

    /// Marks the custodian down for [`DOWN_FOR`]: a call that got no answer by its deadline
    /// says so as surely as a failed connect.
    pub(crate) fn mark_down(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + DOWN_FOR);
    }

    fn down_error(&self, left: Duration) -> Error {
        Error::Transport(format!(
            "{}: unreachable (a call failed just now; next try in {} ms)",
            self.addr,
            left.as_millis()
        ))
    }

    fn mark_up(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// A connection for one request: an idle one, or a new one. Waits for a place in the
    /// pool until `deadline`.
    ///
    /// # Errors
    /// [`Error::Transport`] if the custodian is marked down, no place frees up by
    /// `deadline`, or a new connection cannot be opened within the connect timeout (which
    /// marks the custodian down).
    pub(crate) async fn lease(&self, deadline: Instant) -> Result<Lease<'_>> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            // Every connection is busy: wait for one, unless the custodian is marked down
            // (those busy connections are then waiting on a custodian that does not answer).
            Err(_) => {
                if let Some(left) = self.down() {
                    return Err(self.down_error(left));
                }
                tokio::time::timeout_at(deadline.into(), self.slots.clone().acquire_owned())
                    .await
                    .map_err(|_| {
                        Error::Transport(format!(
                            "{}: timed out waiting for a connection",
                            self.addr
                        ))
                    })?
                    .map_err(|_| Error::Transport("connection pool closed".into()))?
            }
        };
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|(s, since)| !s.is_closed() && since.elapsed() < IDLE_FOR);
            idle.pop().map(|(s, _)| s)
        };
        let sender = match reused {
            Some(s) => s,
            // Only a new connection is refused while the custodian is marked down: working
            // connections stay in use.
            None if let Some(left) = self.down() => return Err(self.down_error(left)),
            None => {
                let bound = self
                    .connect_timeout
                    .min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(bound, self.connect()).await {
                    Ok(Ok(s)) => {
                        self.mark_up();
                        s
                    }
                    Ok(Err(e)) => {
                        self.mark_down();
                        return Err(e);
                    }
                    Err(_) => {
                        // Only a full connect timeout says the custodian is down; a bound cut
                        // short by the caller's deadline says nothing.
                        if bound >= self.connect_timeout {
                            self.mark_down();
                        }
                        return Err(Error::Transport(format!(
                            "{}: no connection within {} ms (TCP, TLS and HTTP handshakes)",
                            self.addr,
                            bound.as_millis()
                        )));
                    }
                }
            }
        };
        Ok(Lease {
            pool: self,
            sender,
            _slot: slot,
        })
    }

    async fn connect(&self) -> Result<Sender> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| Error::Transport(format!("{}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| Error::Transport(format!("{}: TLS: {e}", self.addr)))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| Error::Transport(format!("{}: {e}", self.addr)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}
