//! The demo's object store: `s3s-fs` (a real S3 implementation over a directory, used as a
//! library) behind `s3s`'s SigV4-checking service, served by hyper on 127.0.0.1 from a small
//! runtime of its own inside the demo process. It stands for the provider's blob store: the
//! gateways write to it with their own credentials, and whoever holds those credentials can
//! read every stored byte.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::failure::{CliResult, Failure, io_error};

/// A running embedded store; stopped when dropped.
pub(crate) struct EmbeddedStore {
    runtime: Option<tokio::runtime::Runtime>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The directory it keeps buckets and objects in.
    pub(crate) root: PathBuf,
}

impl EmbeddedStore {
    /// Serves `root` (created) to clients signing with `access_key`/`secret_key`.
    pub(crate) fn start(root: &Path, access_key: &str, secret_key: &str) -> CliResult<Self> {
        std::fs::create_dir_all(root).map_err(|e| io_error(root, &e))?;
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| Failure::failed(format!("s3s-fs on {}: {e:?}", root.display())))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            access_key.to_owned(),
            secret_key.to_owned(),
        ));
        let service = builder.build();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("demo-store")
            .enable_all()
            .build()
            .map_err(|e| Failure::failed(format!("tokio runtime: {e}")))?;
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| Failure::failed(format!("store: cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::failed(format!("store: {e}")))?;
        runtime.spawn(async move {
            loop {
                let socket = match listener.accept().await {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        tracing::warn!(error = %e, "demo store: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self {
            runtime: Some(runtime),
            addr,
            root: root.to_owned(),
        })
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
