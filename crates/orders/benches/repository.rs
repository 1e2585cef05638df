//! In-memory costs (the CPU Strata adds, without any network): loading an order against its stream
//! length with and without snapshots, and one command with and without sealed personal fields.
//!
//! `scripts/bench` runs these and copies the figures into `docs/benchmarks.md`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use strata_core::fixture::tally::{Tally, TallyCommand};
use strata_core::{
    AppendRequest, CommandContext, EventId, EventStore, ExpectedVersion, FieldCipher, InMemoryStore,
    NewEvent, Repository, SnapshotPolicy, StreamId,
};
use strata_orders::{Order, OrderCommand, samples};

/// Stream lengths, in events.
const LENGTHS: [u64; 4] = [100, 1_000, 10_000, 100_000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

fn add() -> OrderCommand {
    OrderCommand::AddItem { sku: "BOOK-1".into(), quantity: 1, unit_price_minor: 1_250 }
}

fn repository(policy: SnapshotPolicy) -> Repository<Order, InMemoryStore> {
    Repository::<Order, _>::new(InMemoryStore::new())
        .with_snapshot_policy(policy)
        .with_cipher(FieldCipher::local())
}

/// An order of `events` events: placed through the repository (its personal fields sealed), then
/// `ItemAdded` events appended one per commit (as one command each would), with a snapshot taken
/// every `snapshot_every` events when given. Appending directly keeps seeding linear in the length.
fn seeded(
    rt: &tokio::runtime::Runtime,
    events: u64,
    snapshot_every: Option<u64>,
) -> (Repository<Order, InMemoryStore>, StreamId) {
    let policy = snapshot_every.map_or_else(SnapshotPolicy::never, SnapshotPolicy::every);
    let repo = repository(policy);
    let stream = StreamId::new("bench", "order", "o-1").unwrap();
    rt.block_on(async {
        repo.execute(&stream, &samples::place_order("c-1"), CommandContext::default()).await.unwrap();
        let added = samples::item_added_event("BOOK-1", 1, 1_250).unwrap();
        for version in 2..=events {
            let request = AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Exact(version - 1),
                events: vec![NewEvent { event_id: EventId::new(), ..added.clone() }],
                idempotency: None,
            };
            repo.store().append(request).await.unwrap();
            if snapshot_every.is_some_and(|every| version.is_multiple_of(every)) {
                repo.take_snapshot(&stream).await.unwrap();
            }
        }
    });
    (repo, stream)
}

fn load(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("load");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for length in LENGTHS {
        for (name, every) in [("no snapshots", None), ("snapshot every 100", Some(100))] {
            let (repo, stream) = seeded(&rt, length, every);
            let loaded = rt.block_on(repo.load(&stream)).unwrap();
            assert_eq!(loaded.version, length);
            group.bench_with_input(BenchmarkId::new(name, length), &length, |b, _| {
                b.iter(|| rt.block_on(repo.load(&stream)).unwrap())
            });
        }
    }
    group.finish();
}

fn command(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("command");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));

    // Without personal data: a tally bump (the core's fixture aggregate) on a new stream.
    let tally = Repository::<Tally, _>::new(InMemoryStore::new());
    let mut n = 0u64;
    group.bench_function("new stream, no personal fields (tally bump)", |b| {
        b.iter(|| {
            n += 1;
            let s = StreamId::new("bench", "tally", format!("t-{n}")).unwrap();
            rt.block_on(tally.execute(&s, &TallyCommand::Bump { times: 1 }, CommandContext::default()))
                .unwrap()
        })
    });

    // With: placing an order seals 3 fields (local data key, cached after the first use).
    let orders = repository(SnapshotPolicy::every(100));
    group.bench_function("new stream, 3 personal fields sealed (place_order)", |b| {
        b.iter(|| {
            n += 1;
            let s = StreamId::new("bench", "order", format!("o-{n}")).unwrap();
            rt.block_on(orders.execute(&s, &samples::place_order("c-1"), CommandContext::default())).unwrap()
        })
    });

    // A command on an existing order: its load opens the 3 sealed fields of the first event.
    let (repo, stream) = seeded(&rt, 10, Some(100));
    group.bench_function("order of 10+ events, 3 sealed fields opened on load (add_item)", |b| {
        b.iter(|| rt.block_on(repo.execute(&stream, &add(), CommandContext::default())).unwrap())
    });

    let state = rt.block_on(repo.load(&stream)).unwrap().state;
    group.bench_function("decide + encode alone (add_item)", |b| {
        b.iter_batched(
            add,
            |cmd| {
                use strata_core::Aggregate;
                state
                    .decide(&cmd)
                    .unwrap()
                    .iter()
                    .map(|e| strata_core::encode_event(e).unwrap())
                    .collect::<Vec<_>>()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, load, command);
criterion_main!(benches);
