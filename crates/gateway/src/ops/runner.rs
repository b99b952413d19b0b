//! Drives a job: walks the bucket (failed keys of an earlier run first), runs batches with
//! at most `jobs` in flight, applies their results in key order, checkpoints, and stops
//! cleanly on Ctrl-C or on an error that would fail every object (store or custodian
//! unreachable). Results are applied in walk order, so the checkpoint's "done up to" key
//! never passes an unfinished object.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;

use super::checkpoint::{Checkpoint, MAX_RETRY};
use super::walk::{self, Listed};
use super::{FailureNote, Kind, Options, Outcome, Progress, Scope, Summary};
use crate::error::Result;

/// How often the checkpoint is written while a job runs.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Failures listed in a summary.
const MAX_NOTED: usize = 1000;

/// The work of a job: one batch of objects in, one outcome per object out.
pub(crate) trait Work: Sync {
    fn batch(&self, items: Vec<Listed>) -> impl Future<Output = Vec<(Listed, Outcome)>> + Send;
}

/// Work done one object at a time (everything but rewrap, which batches custodian calls).
pub(crate) trait PerObject: Sync {
    fn one(&self, key: &str) -> impl Future<Output = Outcome> + Send;
}

impl<T: PerObject> Work for T {
    async fn batch(&self, items: Vec<Listed>) -> Vec<(Listed, Outcome)> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let o = self.one(&item.key).await;
            out.push((item, o));
        }
        out
    }
}

/// A job being run.
pub(crate) struct Runner<'a> {
    scope: &'a Scope,
    opts: &'a Options,
    progress: &'a dyn Progress,
    ck: Checkpoint,
    resumed: bool,
    notes: Vec<String>,
}

impl<'a> Runner<'a> {
    /// Loads the checkpoint (or starts a fresh one) for `command` with `params`.
    pub(crate) fn start(
        scope: &'a Scope,
        opts: &'a Options,
        progress: &'a dyn Progress,
        command: &str,
        params: &str,
    ) -> Result<Self> {
        let prefix = scope.prefix.clone().unwrap_or_default();
        let mut notes = Vec::new();
        let loaded = match (&opts.checkpoint, opts.dry_run) {
            (Some(path), false) => Checkpoint::load(path, command, &scope.bucket, &prefix, params)?,
            _ => None,
        };
        let (ck, resumed) = match loaded {
            Some(ck) if ck.finished => {
                notes.push("the checkpoint records a finished run: this is a new one".into());
                (
                    Checkpoint::new(command, &scope.bucket, &prefix, params),
                    false,
                )
            }
            Some(ck) => {
                progress.note(&format!(
                    "resuming from the checkpoint: done up to {:?}, {} failed key(s) to retry",
                    ck.after.as_deref().unwrap_or(""),
                    ck.retry.len()
                ));
                (ck, true)
            }
            None => (
                Checkpoint::new(command, &scope.bucket, &prefix, params),
                false,
            ),
        };
        Ok(Self {
            scope,
            opts,
            progress,
            ck,
            resumed,
            notes,
        })
    }

    /// The id naming this run's temporary objects (kept across resumes).
    pub(crate) fn run_id(&self) -> &str {
        &self.ck.run_id
    }

    fn save(&self) -> Result<()> {
        match (&self.opts.checkpoint, self.opts.dry_run) {
            (Some(path), false) => self.ck.save(path),
            _ => Ok(()),
        }
    }

    /// Runs `work` over every object not done yet; returns the summary.
    ///
    /// # Errors
    /// Listing errors before any work started (unknown bucket, store unreachable) and
    /// checkpoint file errors. Errors during the walk stop it and are reported in the
    /// summary (`stopped`), with the checkpoint saved.
    pub(crate) async fn drive<W: Work>(mut self, work: &W) -> Result<Summary> {
        let s3 = self.scope.s3()?;
        walk::probe(s3, &self.scope.bucket).await?;
        // The progress total is counted by a listing of its own, alongside the work, so
        // that a bucket of millions starts at once.
        let mut counting = std::pin::pin!(count(
            s3,
            &self.scope.bucket,
            self.scope.prefix.clone(),
            self.ck.after.clone(),
            self.ck.retry.len() as u64,
            self.progress,
        ));
        let mut counted = false;
        let started = Instant::now();
        let batch = self.opts.batch.max(1);
        let mut old_retry: VecDeque<String> = std::mem::take(&mut self.ck.retry).into();
        let retry_batches: Vec<Vec<Listed>> = old_retry
            .iter()
            .map(|k| Listed {
                key: k.clone(),
                size: 0,
            })
            .collect::<Vec<_>>()
            .chunks(batch)
            .map(<[Listed]>::to_vec)
            .collect();
        let retries = stream::iter(retry_batches.into_iter().map(|b| Ok((true, b))));
        let walked = walk::batches(
            s3,
            &self.scope.bucket,
            self.scope.prefix.clone(),
            self.ck.after.clone(),
            batch,
        )
        .map(|r| r.map(|b| (false, b)));
        let mut results = std::pin::pin!(
            retries
                .chain(walked)
                .map(|item| async move {
                    match item {
                        Ok((retry, b)) => Ok((retry, work.batch(b).await)),
                        Err(e) => Err(e),
                    }
                })
                .buffered(self.opts.jobs.max(1))
        );
        let mut new_failures: Vec<String> = Vec::new();
        let mut noted: Vec<FailureNote> = Vec::new();
        let mut stopped = None;
        let mut handled = 0u64;
        let mut last_save = Instant::now();
        let mut stop = self.opts.stop.clone();
        let finished = loop {
            let event = tokio::select! {
                biased;
                r = async {
                    match stop.as_mut() {
                        Some(rx) => rx.wait_for(|v| *v).await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => Event::Stop(r),
                () = &mut counting, if !counted => Event::Counted,
                n = results.next() => Event::Done(n),
            };
            let next = match event {
                Event::Done(n) => n,
                Event::Counted => {
                    counted = true;
                    continue;
                }
                Event::Stop(true) => {
                    stopped = Some("interrupted".to_owned());
                    break false;
                }
                // The sender is gone: nobody can interrupt any more.
                Event::Stop(false) => {
                    stop = None;
                    continue;
                }
            };
            let Some(next) = next else { break true };
            let (retry, done) = match next {
                Ok(x) => x,
                Err(e) => {
                    stopped = Some(e.to_string());
                    break false;
                }
            };
            if let Some((_, fatal)) = done.iter().find(|(_, o)| o.fatal) {
                stopped = Some(fatal.detail.clone().unwrap_or_else(|| "failed".into()));
                break false;
            }
            if retry {
                for (l, _) in &done {
                    if old_retry.front() == Some(&l.key) {
                        old_retry.pop_front();
                        let failed = self.ck.counts.entry(Kind::Failed).or_default();
                        *failed = failed.saturating_sub(1);
                    }
                }
            } else if let Some((last, _)) = done.last() {
                self.ck.after = Some(last.key.clone());
            }
            for (l, o) in &done {
                handled += 1;
                *self.ck.counts.entry(o.kind).or_default() += 1;
                self.ck.bytes += o.bytes;
                for v in &o.versions {
                    *self.ck.key_versions.entry(v.clone()).or_default() += 1;
                }
                if o.kind == Kind::Failed && new_failures.len() < MAX_RETRY {
                    new_failures.push(l.key.clone());
                }
                if matches!(
                    o.kind,
                    Kind::Failed
                        | Kind::Damaged
                        | Kind::Unreadable
                        | Kind::WrongRegion
                        | Kind::LegacyLayout
                ) && noted.len() < MAX_NOTED
                {
                    noted.push(FailureNote {
                        key: l.key.clone(),
                        kind: o.kind,
                        error: o.detail.clone().unwrap_or_default(),
                    });
                }
                self.progress.done(&l.key, o);
            }
            if last_save.elapsed() >= SAVE_EVERY {
                self.ck.retry = old_retry
                    .iter()
                    .cloned()
                    .chain(new_failures.iter().cloned())
                    .collect();
                self.save()?;
                last_save = Instant::now();
            }
        };
        self.ck.retry = old_retry.into_iter().chain(new_failures).collect();
        self.ck.finished = finished;
        self.save()?;
        let elapsed = started.elapsed().as_secs_f64();
        let mut notes = self.notes;
        if !finished && self.opts.checkpoint.is_some() && !self.opts.dry_run {
            notes.push("stopped before the end: run the same command again to resume".into());
        }
        if finished && !self.ck.retry.is_empty() && self.opts.checkpoint.is_some() {
            notes.push(format!(
                "{} object(s) failed: run the same command again to retry them",
                self.ck.retry.len()
            ));
        }
        Ok(Summary {
            command: self.ck.command.clone(),
            bucket: self.ck.bucket.clone(),
            prefix: self.ck.prefix.clone(),
            objects: self.ck.counts.values().sum(),
            bytes: self.ck.bytes,
            counts: self.ck.counts.clone(),
            key_versions: self.ck.key_versions.clone(),
            failures: noted,
            complete: finished,
            stopped,
            resumed: self.resumed,
            elapsed_secs: elapsed,
            #[allow(clippy::cast_precision_loss, reason = "a rate")]
            objects_per_sec: if elapsed > 0.0 {
                handled as f64 / elapsed
            } else {
                0.0
            },
            notes,
        })
    }
}

/// What the driving loop woke up for.
enum Event<T> {
    /// Ctrl-C (`true`), or the stop sender went away (`false`).
    Stop(bool),
    /// The progress total is known.
    Counted,
    /// The next batch finished (or the walk ended).
    Done(Option<T>),
}

/// Counts what is left to walk (after `after`, plus `retries`), for the progress bar's
/// length and ETA. Advisory: a listing error here is left to the walk itself to report.
async fn count(
    s3: &crate::store::s3::S3Store,
    bucket: &str,
    prefix: Option<String>,
    after: Option<String>,
    retries: u64,
    progress: &dyn Progress,
) {
    let mut pages = std::pin::pin!(walk::batches(s3, bucket, prefix, after, 1000));
    let (mut n, mut bytes) = (retries, 0u64);
    while let Some(Ok(page)) = pages.next().await {
        for o in page {
            n += 1;
            bytes += o.size;
        }
        progress.listed(n, bytes);
    }
    progress.listed(n, bytes);
}
