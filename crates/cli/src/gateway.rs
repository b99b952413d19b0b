//! `custodia gateway serve`: runs the encrypting proxy from its config until SIGINT or
//! SIGTERM, then drains in-flight requests.

use std::path::Path;

use crate::failure::{CliResult, Failure};

/// Loads `config_path`, binds the fronts, prints their addresses and serves.
pub(crate) fn serve(config_path: &Path) -> CliResult {
    let config = custodia_gateway::Config::load(config_path)
        .map_err(|e| Failure::failed(e.to_string()).context(config_path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("tokio runtime: {e}")))?;
    runtime.block_on(async move {
        let gateway = custodia_gateway::Gateway::bind(config)
            .await
            .map_err(|e| Failure::failed(e.to_string()).context(config_path.display()))?;
        if let Some(a) = gateway.http_addr() {
            println!("http listening on {a}");
        }
        if let Some(a) = gateway.s3_addr() {
            println!("s3 listening on {a}");
        }
        gateway
            .serve(shutdown_signal())
            .await
            .map_err(|e| Failure::failed(e.to_string()).context(config_path.display()))
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
