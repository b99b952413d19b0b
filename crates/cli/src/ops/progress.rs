//! How a bulk job shows its progress: a bar on a terminal (objects, bytes, rate, ETA), and
//! a plain line every few seconds otherwise (logs, CI), both on stderr so that `--json` on
//! stdout stays clean.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custodia_gateway::ops::{Kind, Outcome, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Renders a job's progress.
pub(crate) struct Shown {
    command: &'static str,
    quiet: bool,
    bar: Option<ProgressBar>,
    total: AtomicU64,
    done: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Shown {
    /// A bar if stderr is a terminal, else periodic lines; neither with `quiet` (notes such
    /// as "resuming from the checkpoint" are still shown).
    pub(crate) fn new(command: &'static str, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} objects · {msg} · {per_sec} · ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(command);
            bar
        });
        Self {
            command,
            quiet,
            bar,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// Removes the bar (before the summary is printed).
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, force: bool) {
        if self.quiet {
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if !force && last.elapsed() < LINE_EVERY {
            return;
        }
        *last = Instant::now();
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(done);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss, reason = "display")]
        let rate = done as f64 / secs;
        #[allow(clippy::cast_precision_loss, reason = "display")]
        let eta = if rate > 0.0 {
            format!("{:.0}s", (total - done) as f64 / rate)
        } else {
            "?".into()
        };
        eprintln!(
            "{}: {done}/{total} objects, {}, {rate:.1} objects/s, {} failed, ETA {eta}",
            self.command,
            bytes(self.bytes.load(Ordering::Relaxed)),
            self.failed.load(Ordering::Relaxed),
        );
    }
}

/// `n` bytes for people.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Progress for Shown {
    fn listed(&self, objects: u64, _bytes: u64) {
        self.total.store(objects, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(objects);
        }
    }

    fn done(&self, _key: &str, outcome: &Outcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let b = self.bytes.fetch_add(outcome.bytes, Ordering::Relaxed) + outcome.bytes;
        if outcome.kind.is_failure() || outcome.kind == Kind::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!(
                    "{} · {} failed",
                    bytes(b),
                    self.failed.load(Ordering::Relaxed)
                ));
            }
            None => self.line(false),
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {line}", self.command)),
            None => eprintln!("{}: {line}", self.command),
        }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        if self.bar.is_none() && self.done.load(Ordering::Relaxed) > 0 {
            self.line(true);
        }
    }
}
