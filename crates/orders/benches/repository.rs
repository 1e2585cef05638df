//! In-memory costs: loading a 10,000-event order with and without snapshots, and one command.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use strata_core::{
    Aggregate, CommandContext, FieldCipher, InMemoryStore, Repository, SnapshotPolicy, StreamId, encode_event,
};
use strata_orders::{Order, OrderCommand};

fn place() -> OrderCommand {
    strata_orders::samples::place_order("c-1")
}

fn add() -> OrderCommand {
    OrderCommand::AddItem { sku: "BOOK-1".into(), quantity: 1, unit_price_minor: 1_250 }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

/// A repository whose order stream holds `events` events.
fn seeded(
    rt: &tokio::runtime::Runtime,
    events: u64,
    policy: SnapshotPolicy,
) -> (Repository<Order, InMemoryStore>, StreamId) {
    let repo = Repository::<Order, _>::new(InMemoryStore::new())
        .with_snapshot_policy(policy)
        .with_cipher(FieldCipher::local());
    let stream = StreamId::new("bench", "order", "o-1").unwrap();
    rt.block_on(async {
        repo.execute(&stream, &place(), CommandContext::default()).await.unwrap();
        for _ in 1..events {
            repo.execute(&stream, &add(), CommandContext::default()).await.unwrap();
        }
    });
    (repo, stream)
}

fn load(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("load 10,000 events");
    for (name, policy) in
        [("no snapshot", SnapshotPolicy::never()), ("snapshot every 100", SnapshotPolicy::every(100))]
    {
        let (repo, stream) = seeded(&rt, 10_000, policy);
        group.bench_function(name, |b| b.iter(|| rt.block_on(repo.load(&stream)).unwrap()));
    }
    group.finish();
}

fn command(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("command");
    let (repo, stream) = seeded(&rt, 50, SnapshotPolicy::every(100));
    group.bench_function("execute add_item (load + decide + envelope + append)", |b| {
        b.iter(|| rt.block_on(repo.execute(&stream, &add(), CommandContext::default())).unwrap())
    });
    let state = rt.block_on(repo.load(&stream)).unwrap().state;
    group.bench_function("decide + encode add_item", |b| {
        b.iter_batched(
            add,
            |cmd| state.decide(&cmd).unwrap().iter().map(|e| encode_event(e).unwrap()).collect::<Vec<_>>(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, load, command);
criterion_main!(benches);
