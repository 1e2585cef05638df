//! Commands per second on the emulator: one stream or many, one writer or several racing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::{CommandContext, Repository, RetryPolicy, SnapshotPolicy, StreamId};
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
    /// (each made its command load and decide again).
    pub conflicts: u64,
}

/// `streams` orders on a table of their own (placed 16 at a time, untimed), then for each writer
/// count `runs` runs of `commands` `add_item` commands by that many concurrent writers; snapshots
/// every 100 events, as the functions default to, and conflicts retried with jittered backoff until
/// they succeed.
pub async fn run(
    env: &Env,
    streams: usize,
    writers: &[usize],
    commands: usize,
    runs: usize,
) -> Vec<ThroughputRow> {
    let (store, counter) = env.table().await;
    let repo = Arc::new(
        Repository::<Order, _>::new(store.clone())
            .with_cipher(env.cipher(&store))
            .with_snapshot_policy(SnapshotPolicy::every(100))
            .with_retry_policy(RetryPolicy {
                max_attempts: 1_000,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(200),
            }),
    );
    let ids: Arc<Vec<StreamId>> = Arc::new(
        (0..streams).map(|i| StreamId::new("bench", "order", format!("t-{streams}-{i}")).unwrap()).collect(),
    );
    let (r, s) = (Arc::clone(&repo), Arc::clone(&ids));
    in_parallel(16, streams, move |i| {
        let (repo, ids) = (Arc::clone(&r), Arc::clone(&s));
        async move {
            repo.execute(&ids[i], &samples::place_order("c-1"), CommandContext::default()).await.unwrap();
        }
    })
    .await;
    let mut rows = Vec::new();
    for &writers in writers {
        counter.reset();
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let (r, s) = (Arc::clone(&repo), Arc::clone(&ids));
            in_parallel(writers, commands, move |i| {
                let (repo, ids) = (Arc::clone(&r), Arc::clone(&s));
                async move {
                    repo.execute(&ids[i % ids.len()], &add_item(), CommandContext::default()).await.unwrap();
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

/// Runs `job(0..jobs)` on `workers` tasks, each taking the next index until none is left.
async fn in_parallel<F, Fut>(workers: usize, jobs: usize, job: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let job = Arc::new(job);
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (next, job) = (Arc::clone(&next), Arc::clone(&job));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    job(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
