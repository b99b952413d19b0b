//! The demo's servers as child processes of this very binary (`custodian serve`, `gateway
//! serve`), and the one cleanup that stops them and removes the scratch directory: run when
//! the demo ends (drop guard, on success and on every error), or on Ctrl-C / SIGTERM.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::failure::{CliResult, Failure};

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    children: Vec<(String, Child)>,
    dir: Option<tempfile::TempDir>,
    done: bool,
}

/// The processes and directory to clean up; clones share them.
#[derive(Clone)]
pub(crate) struct Cleanup {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl Cleanup {
    /// Owns `dir` (removed at cleanup).
    pub(crate) fn new(dir: tempfile::TempDir) -> Self {
        let path = dir.path().to_owned();
        Self {
            state: Arc::new(Mutex::new(State {
                dir: Some(dir),
                ..State::default()
            })),
            path,
        }
    }

    /// The scratch directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.path
    }

    fn add(&self, name: &str, child: Child) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.children.push((name.to_owned(), child));
    }

    /// Stops every server (SIGKILL, then waits for it) and removes the directory. Only the
    /// first call does anything.
    pub(crate) fn run(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.done {
            return;
        }
        state.done = true;
        for (_, child) in &mut state.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        state.children.clear();
        if let Some(dir) = state.dir.take() {
            let _ = dir.close();
        }
    }

    /// The servers that exited on their own (name and status), for diagnostics.
    pub(crate) fn exited(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .children
            .iter_mut()
            .filter_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some(format!("{name} exited ({status})")),
                _ => None,
            })
            .collect()
    }
}

/// Runs [`Cleanup::run`] when dropped.
pub(crate) struct Guard(pub(crate) Cleanup);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.run();
    }
}

/// Ctrl-C and SIGTERM: while `waiting` (the `--keep` pause), a message on the returned
/// channel; otherwise the servers are stopped, the directory removed, and the process exits
/// with status 130.
pub(crate) fn on_interrupt(cleanup: Cleanup, waiting: Arc<AtomicBool>) -> Receiver<()> {
    let (tx, rx) = channel();
    std::thread::spawn(move || interrupt_thread(&cleanup, &waiting, &tx));
    rx
}

fn interrupt_thread(cleanup: &Cleanup, waiting: &AtomicBool, tx: &Sender<()>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
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
    });
    if waiting.load(Ordering::SeqCst) {
        let _ = tx.send(());
        return;
    }
    cleanup.run();
    eprintln!(
        "custodia demo: interrupted; servers stopped, {} removed",
        cleanup.dir().display()
    );
    std::process::exit(130);
}

/// Starts `custodia ARGS…` (this executable) as `name`, its stderr in `log`, and waits for
/// one stdout line starting with each of `prefixes`; returns the addresses those lines name,
/// in the same order. The child is registered with `cleanup` at once.
pub(crate) fn spawn_server(
    cleanup: &Cleanup,
    name: &str,
    args: &[OsString],
    log: &Path,
    prefixes: &[&str],
) -> CliResult<Vec<SocketAddr>> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::failed(format!("finding the custodia executable: {e}")))?;
    let stderr = std::fs::File::create(log).map_err(|e| crate::failure::io_error(log, &e))?;
    let mut child = Command::new(&exe)
        .args(args)
        .env("CUSTODIA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| Failure::failed(format!("starting {name} ({}): {e}", exe.display())))?;
    let stdout = child.stdout.take();
    cleanup.add(name, child);
    let Some(stdout) = stdout else {
        return Err(Failure::failed(format!("{name}: no stdout")));
    };
    let (tx, rx) = channel::<String>();
    // Reads every line until the server exits, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut found: Vec<Option<SocketAddr>> = vec![None; prefixes.len()];
    let deadline = Instant::now() + START_TIMEOUT;
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(start_failure(name, log, "did not start in time"));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(start_failure(name, log, "exited before it listened"));
            }
        };
        for (slot, prefix) in found.iter_mut().zip(prefixes) {
            if let Some(addr) = line.strip_prefix(prefix) {
                *slot = Some(addr.trim().parse().map_err(|_| {
                    Failure::failed(format!("{name}: unexpected address in {line:?}"))
                })?);
            }
        }
    }
    Ok(found.into_iter().flatten().collect())
}

fn start_failure(name: &str, log: &Path, what: &str) -> Failure {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Failure::failed(format!(
        "{name} {what}{}{}",
        if tail.is_empty() { "" } else { ": " },
        tail.join(" | ")
    ))
}
