//! Field encryption costs with a cached data key: one field sealed and opened, and the per-command
//! overhead of a payload with two personal fields (seal on write, open on load).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use strata_core::{
    Aggregate, CommandContext, Event, FieldCipher, InMemoryStore, PersonalData, Repository, StreamId,
};
use strata_orders::Order;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

fn payload() -> Value {
    json!({"customer_id": "c-1", "customer_name": "Ada Lovelace", "customer_email": "ada@example.com", "currency": "GBP"})
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let cipher = FieldCipher::local();
    let one = PersonalData::new("c-1", ["/customer_name"]);
    let two = PersonalData::new("c-1", ["/customer_name", "/customer_email"]);
    // Warm the key (the cached case).
    rt.block_on(cipher.seal("acme", "warm", &mut payload(), &one)).unwrap();

    c.bench_function("crypto/seal 1 field", |b| {
        b.iter_batched(
            payload,
            |mut p| rt.block_on(cipher.seal("acme", "e", &mut p, &one)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut sealed_one = payload();
    rt.block_on(cipher.seal("acme", "e", &mut sealed_one, &one)).unwrap();
    c.bench_function("crypto/open 1 field", |b| {
        b.iter_batched(
            || sealed_one.clone(),
            |mut p| rt.block_on(cipher.open("acme", "e", &mut p)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut sealed_two = payload();
    rt.block_on(cipher.seal("acme", "e", &mut sealed_two, &two)).unwrap();
    c.bench_function("crypto/seal+open 2 fields (per-command overhead)", |b| {
        b.iter_batched(
            payload,
            |mut p| {
                rt.block_on(cipher.seal("acme", "e", &mut p, &two)).unwrap();
                rt.block_on(cipher.open("acme", "e", &mut p)).unwrap();
            },
            BatchSize::SmallInput,
        )
    });

    // What sealing costs inside place_order: its event's 3 personal fields, sealed alone.
    let placed = Order::default().decide(&strata_orders::samples::place_order("c-1")).unwrap().remove(0);
    let marked = placed.personal_data().unwrap();
    let placed_payload = strata_core::encode_event(&placed).unwrap().payload;
    c.bench_function("crypto/seal the 3 personal fields of OrderPlaced", |b| {
        b.iter_batched(
            || placed_payload.clone(),
            |mut p| rt.block_on(cipher.seal("acme", "e", &mut p, &marked)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // End to end: placing an order (3 sealed fields) and loading it back, in memory.
    let repo = Repository::<Order, _>::new(InMemoryStore::new()).with_cipher(cipher.clone());
    let mut n = 0u64;
    c.bench_function("crypto/place + load an order with 3 sealed fields", |b| {
        b.iter(|| {
            n += 1;
            let s = StreamId::new("acme", "order", format!("o-{n}")).unwrap();
            rt.block_on(repo.execute(
                &s,
                &strata_orders::samples::place_order("c-1"),
                CommandContext::default(),
            ))
            .unwrap();
            rt.block_on(repo.load(&s)).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
