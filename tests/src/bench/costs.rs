//! What a load and a command cost on the emulator, by stream length, with and without snapshots:
//! requests, items and capacity units (counted at the SDK), and how long a load takes.
//!
//! Each scenario gets a table of its own: the emulator sorts a whole table on every Query, so
//! sharing one would make every figure depend on what else it holds.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use strata_core::{CachePolicy, CommandContext, EventId, Repository, SnapshotPolicy, StreamId};
use strata_dynamodb::item::{CommitItem, Item};
use strata_dynamodb::{DynamoStore, RequestCounter, RequestCounts};
use strata_orders::{Order, OrderCommand, samples};

use super::{Env, stats::Spread};

/// One order on a table of its own, and the counter of the store's requests.
pub struct Seeded {
    /// The store on the scenario's table.
    pub store: DynamoStore,
    /// Counts the store client's requests.
    pub counter: RequestCounter,
    /// The repository (KMS field cipher, the scenario's snapshot policy, a stream cache as the
    /// command function has it).
    pub repo: Repository<Order, DynamoStore>,
    /// The order.
    pub stream: StreamId,
}

impl Seeded {
    /// Deletes the scenario's table (the emulator keeps everything in memory).
    pub async fn drop_table(self) {
        let _ = self.store.client().delete_table().table_name(self.store.table()).send().await;
    }
}

/// The command the cost rows and throughput runs execute: one `ItemAdded` event, no personal data.
pub fn add_item() -> OrderCommand {
    OrderCommand::AddItem { sku: "BOOK-1".into(), quantity: 1, unit_price_minor: 1_250 }
}

/// A new table holding one order of `length` events: placed through the repository (personal fields
/// sealed with a KMS data key), then one `ItemAdded` per commit, written with BatchWriteItem as the
/// very items the store writes (a command per event would make seeding quadratic), with a snapshot
/// through the repository every `snapshot_every` events when given.
pub async fn seeded(env: &Env, length: u64, snapshot_every: Option<u64>) -> Seeded {
    let (store, counter) = env.table().await;
    // As the construct deploys it: the stream publisher prunes, the commands do not.
    let policy = snapshot_every
        .map_or_else(SnapshotPolicy::never, |every| SnapshotPolicy::every(every).pruned_elsewhere());
    let repo = Repository::<Order, _>::new(store.clone())
        .with_cipher(env.cipher(&store))
        .with_snapshot_policy(policy)
        .with_stream_cache(CachePolicy::entries(16));
    let stream = StreamId::new("bench", "order", format!("o-{length}")).unwrap();
    repo.execute(&stream, &samples::place_order("c-1"), CommandContext::default()).await.unwrap();
    let added = samples::item_added_event("BOOK-1", 1, 1_250).unwrap();
    let mut pending: Vec<Item> = Vec::new();
    for version in 2..=length {
        let mut event = added.clone();
        event.event_id = EventId::new();
        pending.push(CommitItem::new(&stream, version, &[event]).unwrap().to_item().unwrap());
        let snapshot_due = snapshot_every.is_some_and(|every| version.is_multiple_of(every));
        if pending.len() == 25 || snapshot_due || version == length {
            batch_put(&store, std::mem::take(&mut pending)).await;
        }
        if snapshot_due {
            repo.take_snapshot(&stream).await.unwrap();
        }
    }
    // Written around the repository: its cached state (version 1) is stale.
    repo.evict_cached(&stream);
    counter.reset();
    Seeded { store, counter, repo, stream }
}

/// Puts up to 25 items in one BatchWriteItem, resending what comes back unprocessed.
async fn batch_put(store: &DynamoStore, items: Vec<Item>) {
    let mut requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    while !requests.is_empty() {
        let out =
            store.client().batch_write_item().request_items(store.table(), requests).send().await.unwrap();
        requests = out.unprocessed_items.and_then(|mut u| u.remove(store.table())).unwrap_or_default();
    }
}

/// One row of the cost table.
#[derive(Debug, Clone)]
pub struct CostRow {
    /// Events in the stream.
    pub length: u64,
    /// The snapshot interval, if any.
    pub snapshot_every: Option<u64>,
    /// A load with the subject's data key cached (as in a warm function).
    pub load: RequestCounts,
    /// One `add_item` command after it, on a stream the repository has not cached.
    pub command: RequestCounts,
    /// A second `add_item` command, on the state the first one left in the stream cache.
    pub cached_command: RequestCounts,
    /// Warm loads through the repository (fold included), timed.
    pub load_time: Option<Spread>,
}

/// Seeds a stream of `length` events, times `runs` loads (at least one, the first also counted),
/// then counts one command.
pub async fn measure(env: &Env, length: u64, snapshot_every: Option<u64>, runs: usize) -> CostRow {
    // Placing the order cached its data key, as a warm function has it.
    let s = seeded(env, length, snapshot_every).await;
    let started = Instant::now();
    let loaded = s.repo.load(&s.stream).await.unwrap();
    let mut times: Vec<Duration> = vec![started.elapsed()];
    assert_eq!(loaded.version, length, "the seeded stream loads whole");
    let load = s.counter.take();
    for _ in 1..runs {
        let started = Instant::now();
        s.repo.load(&s.stream).await.unwrap();
        times.push(started.elapsed());
    }
    s.counter.reset();
    let outcome = s.repo.execute(&s.stream, &add_item(), CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, length + 1);
    let command = s.counter.take();
    let outcome = s.repo.execute(&s.stream, &add_item(), CommandContext::default()).await.unwrap();
    assert_eq!(outcome.version, length + 2);
    let cached_command = s.counter.take();
    s.drop_table().await;
    CostRow { length, snapshot_every, load, command, cached_command, load_time: Spread::of_durations(&times) }
}
