//! Commands per second on the emulator: one stream or many, one writer or several racing.

use std::sync::Arc;
use std::time::Instant;

use strata_core::{CachePolicy, CommandContext, Repository, RetryPolicy, SnapshotPolicy, StreamId};
use strata_dynamodb::RequestCounts;
use strata_orders::{Order, samples};

use super::{Env, costs::add_item, stats::Spread};

/// One configuration's result.
#[derive(Debug, Clone)]
pub struct ThroughputRow {
    /// Streams the commands spread over (round robin).
    pub streams: usize,
    /// Concurrent writers.
    pub writers: usize,
    /// Commands per run.
    pub commands: usize,
    /// Each run's wall time.
    pub elapsed: Spread,
    /// Requests of all runs together.
    pub counts: RequestCounts,
    /// PutItems that wrote nothing: conditions that failed because another writer won the version
    /// (each made its command fold in the winner and decide again).
    pub conflicts: u64,
    /// Commands of all runs that ran out of retries (the default [`strata_core::RetryPolicy`]).
    pub failed: usize,
    /// Runs measured.
    pub runs: usize,
}

/// `streams` orders on a table of their own (placed 16 at a time, untimed), then for each writer
/// count `runs` runs of `commands` `add_item` commands by that many concurrent writers, each with a
/// repository of its own as a function instance has (stream cache on, snapshots every 100 events,
/// the default retry policy); a command out of retries is counted, not retried further.
pub async fn run(
    env: &Env,
    streams: usize,
    writers: &[usize],
    commands: usize,
    runs: usize,
    retry: RetryPolicy,
) -> Vec<ThroughputRow> {
    let (store, counter) = env.table().await;
    // Each writer is a function instance of its own: its own repository, stream cache and key cache.
    let repository = || {
        Arc::new(
            Repository::<Order, _>::new(store.clone())
                .with_cipher(env.cipher(&store))
                .with_snapshot_policy(SnapshotPolicy::every(100).pruned_elsewhere())
                .with_stream_cache(CachePolicy::entries(1_000))
                .with_retry_policy(retry),
        )
    };
    let ids: Arc<Vec<StreamId>> = Arc::new(
        (0..streams).map(|i| StreamId::new("bench", "order", format!("t-{streams}-{i}")).unwrap()).collect(),
    );
    let (r, s) = (repository(), Arc::clone(&ids));
    in_parallel(16, streams, move |_, i| {
        let (repo, ids) = (Arc::clone(&r), Arc::clone(&s));
        async move {
            repo.execute(&ids[i], &samples::place_order("c-1"), CommandContext::default()).await.unwrap();
        }
    })
    .await;
    let mut rows = Vec::new();
    for &writers in writers {
        let repos: Arc<Vec<_>> = Arc::new((0..writers.max(1)).map(|_| repository()).collect());
        counter.reset();
        let mut times = Vec::new();
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..runs {
            let started = Instant::now();
            let (r, s, f) = (Arc::clone(&repos), Arc::clone(&ids), Arc::clone(&failed));
            in_parallel(writers, commands, move |writer, i| {
                let (repos, ids, failed) = (Arc::clone(&r), Arc::clone(&s), Arc::clone(&f));
                async move {
                    let result = repos[writer]
                        .execute(&ids[i % ids.len()], &add_item(), CommandContext::default())
                        .await;
                    match result {
                        Ok(_) => {}
                        // Out of retries (the default policy): counted, as a caller would see a 409.
                        Err(error)
                            if matches!(error.as_error(), Some(strata_core::Error::Conflict { .. })) =>
                        {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(error) => panic!("command failed: {error}"),
                    }
                }
            })
            .await;
            times.push(started.elapsed());
        }
        let counts = counter.take();
        rows.push(ThroughputRow {
            streams,
            writers,
            commands,
            elapsed: Spread::of_durations(&times).unwrap_or(Spread::none()),
            conflicts: conflicts(&counts),
            failed: failed.load(std::sync::atomic::Ordering::Relaxed),
            runs,
            counts,
        });
    }
    let _ = store.client().delete_table().table_name(store.table()).send().await;
    rows
}

/// PutItems that did not write: conditional checks that failed.
fn conflicts(counts: &RequestCounts) -> u64 {
    counts.operations.get("PutItem").map_or(0, |put| put.calls - put.items_written)
}

/// Runs `job(worker, 0..jobs)` on `workers` tasks, each taking the next index until none is left.
async fn in_parallel<F, Fut>(workers: usize, jobs: usize, job: F)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let job = Arc::new(job);
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|worker| {
            let (next, job) = (Arc::clone(&next), Arc::clone(&job));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    job(worker, i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
