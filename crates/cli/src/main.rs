//! `custodia`: one binary for the custodian service and the operators' tools.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod custodian;

/// Custodia: client-side encryption with per-region key custody.
#[derive(Debug, Parser)]
#[command(name = "custodia", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run or set up a custodian (a region's key-custody service).
    #[command(subcommand)]
    Custodian(CustodianCommand),
}

#[derive(Debug, Subcommand)]
enum CustodianCommand {
    /// Create the custodian's sealed keystore (and its KEK file if missing) from its config.
    Init {
        /// The custodian's TOML config (see docs/API.md, "Configuration").
        #[arg(long)]
        config: PathBuf,
        /// Mark the keys insecure (development only): servers refuse them without --dev.
        #[arg(long)]
        dev: bool,
    },
    /// Serve the custodian API (HTTPS with mandatory mTLS) until SIGINT or SIGTERM.
    Serve {
        /// The custodian's TOML config.
        #[arg(long)]
        config: PathBuf,
        /// Accept keys marked insecure (development only).
        #[arg(long)]
        dev: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTODIA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Custodian(CustodianCommand::Init { config, dev }) => custodian::init(&config, dev),
        Command::Custodian(CustodianCommand::Serve { config, dev }) => {
            custodian::serve(&config, dev)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custodia: {e}");
            ExitCode::FAILURE
        }
    }
}
