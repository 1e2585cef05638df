//! The exact counts behind `docs/benchmarks.md`: the same scenarios `scripts/bench` runs, at the
//! lengths where every figure is small enough to state here. Timings are never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::{CommandContext, Repository};
use strata_dynamodb::RequestCounts;
use strata_eventbridge::PutEventsCounter;
use strata_orders::Order;
use strata_tests::Pipeline;
use strata_tests::bench::{Env, costs, publish};

fn calls(counts: &RequestCounts) -> Vec<(&str, u64)> {
    counts.operations.iter().map(|(op, c)| (op.as_str(), c.calls)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_and_a_command_cost_by_stream_length_with_and_without_snapshots() {
    let env = Env::new().await;

    // 100 events, no snapshots: one Query reads all 100 commits; the command adds one PutItem.
    let row = costs::measure(&env, 100, None, 1).await;
    assert_eq!(calls(&row.load), [("Query", 1)], "{}", row.load);
    assert_eq!(row.load.items_read(), 100);
    assert_eq!(calls(&row.command), [("PutItem", 1), ("Query", 1)], "{}", row.command);
    assert_eq!((row.command.items_written(), row.command.write_units()), (1, 1.0), "{}", row.command);
    assert_eq!((row.load.inconsistent_reads, row.load.scans), (0, 0));
    // The command's load is eventually consistent: half the units of the same Query.
    assert_eq!((row.command.inconsistent_reads, row.command.read_units()), (1, row.load.read_units() / 2.0));
    // The next command finds the state in the stream cache: one PutItem and nothing read.
    assert_eq!(calls(&row.cached_command), [("PutItem", 1)], "{}", row.cached_command);
    assert_eq!((row.cached_command.items_read(), row.cached_command.read_units()), (0, 0.0));

    // 1,000 events, no snapshot policy: the load reads forward in 1 MB pages, and 1,000 commits of
    // one small event are about 200 KB: one Query.
    let row = costs::measure(&env, 1_000, None, 1).await;
    assert_eq!(calls(&row.load), [("Query", 1)], "{}", row.load);
    assert_eq!(row.load.items_read(), 1_000);
    assert_eq!(calls(&row.command), [("PutItem", 1), ("Query", 1)], "{}", row.command);

    // With a snapshot every 100 the cost is the same at 100 and at 1,000 events: one Query, one
    // PutItem. The store wrote the snapshot at the head, so it asks for the snapshot and one item
    // more (not a fixed page of 101).
    for length in [100, 1_000] {
        let row = costs::measure(&env, length, Some(100), 1).await;
        assert_eq!(calls(&row.load), [("Query", 1)], "{length}: {}", row.load);
        assert_eq!(row.load.items_read(), 2, "{length}");
        assert_eq!(calls(&row.command), [("PutItem", 1), ("Query", 1)], "{length}: {}", row.command);
        assert_eq!(row.command.items_written(), 1);
        assert_eq!(
            row.command.read_units(),
            row.load.read_units() / 2.0,
            "what a load reads, eventually consistent"
        );
        assert_eq!(calls(&row.cached_command), [("PutItem", 1)], "{length}: {}", row.cached_command);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_puts_ten_events_per_call() {
    let mut p = Pipeline::new().await;
    // Counted at the EventBridge client, not taken from the publisher's report about itself.
    let put_events = PutEventsCounter::new();
    let config = aws_sdk_eventbridge::config::Builder::from(&p.sdk).interceptor(put_events.clone()).build();
    p.eventbridge = aws_sdk_eventbridge::Client::from_conf(config);
    // 20 orders of 5 commands: 100 commits, one publisher invocation of 100 records.
    let row = publish::run(&p, 20, 1).await;
    assert_eq!((row.records, row.invocations), (100, 1));
    let calls = put_events.calls();
    let entries: Vec<usize> = calls.iter().map(|call| call.entries).collect();
    assert_eq!(entries, [10; 10], "10 entries per PutEvents call");
    assert!(calls.iter().all(|call| (call.requests, call.failed_entries) == (1, Some(0))), "{calls:?}");
    assert_eq!((row.published, row.calls), (100, 10), "the publisher's report agrees with the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_state_catches_up_from_the_commit_that_won_and_never_commits_on_an_old_head() {
    let env = Env::new().await;
    let s = costs::seeded(&env, 3, None).await;
    // Another writer (another function instance): no cache, the same table.
    let other = Repository::<Order, _>::new(s.store.clone()).with_cipher(env.cipher(&s.store));
    let ctx = CommandContext::default;
    assert_eq!(s.repo.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap().version, 4);
    assert_eq!(other.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap().version, 5);
    s.counter.reset();
    // Decided on version 4, written at 5: lost, and DynamoDB returned commit 5 with the failure;
    // folded in, decided again, written at 6. Nothing read.
    assert_eq!(s.repo.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap().version, 6);
    let retried = s.counter.take();
    assert_eq!(calls(&retried), [("PutItem", 2)], "{retried}");
    assert_eq!(retried.items_written(), 1, "the lost write wrote nothing");
    // Two commits behind: the first loss returns commit 7, the second loss (at 8) reads the rest.
    other.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    other.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    s.counter.reset();
    assert_eq!(s.repo.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap().version, 9);
    let behind = s.counter.take();
    assert_eq!(calls(&behind), [("PutItem", 3), ("Query", 1)], "{behind}");
    // The stream as stored: every version once, the state folded from all of them.
    let loaded = other.load(&s.stream).await.unwrap();
    assert_eq!(loaded.version, 9);
    assert_eq!(loaded.state.lines.values().map(|l| l.quantity).sum::<u32>(), 8, "{:?}", loaded.state);

    // With an Idempotency-Key the write is a transaction, whose cancellation reason returns the
    // commit that won just the same: folded in, decided again, nothing read.
    other.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    s.counter.reset();
    let keyed = || CommandContext { idempotency_key: Some("k-stale".into()), ..ctx() };
    let outcome = s.repo.execute(&s.stream, &costs::add_item(), keyed()).await.unwrap();
    assert_eq!(outcome.version, 11);
    let retried = s.counter.take();
    assert_eq!(calls(&retried), [("TransactWriteItems", 2)], "{retried}");
    let loaded = other.load(&s.stream).await.unwrap();
    assert_eq!(loaded.version, 11);
    assert_eq!(loaded.state.lines.values().map(|l| l.quantity).sum::<u32>(), 10, "{:?}", loaded.state);
    // The key's record holds the outcome of the attempt that was written.
    s.counter.reset();
    assert_eq!(s.repo.execute(&s.stream, &costs::add_item(), keyed()).await.unwrap(), outcome);
    let repeat = s.counter.take();
    assert_eq!(calls(&repeat), [("GetItem", 1), ("TransactWriteItems", 1)], "{repeat}");
    assert_eq!(repeat.items_written(), 0);
    s.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_kind_at_its_request_floor() {
    let env = Env::new().await;
    let s = costs::seeded(&env, 3, None).await;
    let ctx = CommandContext::default;
    let keyed = |key: &str| CommandContext { idempotency_key: Some(key.into()), ..ctx() };
    s.repo.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    s.counter.reset();

    // With an Idempotency-Key on a cached stream: no read of the key first, the commit and the
    // key's record in one transaction.
    let first = s.repo.execute(&s.stream, &costs::add_item(), keyed("k-1")).await.unwrap();
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("TransactWriteItems", 1)], "{counts}");
    // The repeat: its transaction fails on the record, which is read to answer it.
    assert_eq!(s.repo.execute(&s.stream, &costs::add_item(), keyed("k-1")).await.unwrap(), first);
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("GetItem", 1), ("TransactWriteItems", 1)], "{counts}");
    assert_eq!(counts.items_written(), 0);

    // Sealing personal data: a new order of the subject the seeding placed (its key is cached):
    // the empty stream's Query, the subject's stream index, the commit.
    let order = |id: &str| strata_core::StreamId::new("bench", "order", id).unwrap();
    s.repo.execute(&order("known"), &strata_orders::samples::place_order("c-1"), ctx()).await.unwrap();
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("PutItem", 2), ("Query", 1)], "{counts}");
    // A new subject: its key is created (and read back once, conditional on being the first).
    s.repo.execute(&order("new"), &strata_orders::samples::place_order("c-2"), ctx()).await.unwrap();
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("GetItem", 1), ("PutItem", 3), ("Query", 1)], "{counts}");
    s.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_a_snapshot_and_travelling_in_time_start_from_what_is_known() {
    let env = Env::new().await;
    let s = costs::seeded(&env, 10_000, Some(100)).await;
    // A version between two snapshots (9,900 and 10,000): one Query from it down to the snapshot
    // below.
    let at = s.repo.load_at_version(&s.stream, 9_950).await.unwrap();
    assert_eq!(at.version, 9_950);
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("Query", 1)], "{counts}");
    // The page is the store's load page (101 items): a Query pays for what it returns, so it reads
    // 50 commits older than the snapshot too, the price of one round trip instead of two.
    assert_eq!(counts.items_read(), 101, "{counts}");

    // A time after the seeding: the snapshots index lists the snapshots (one Query), the newest
    // listed is read with the commit it ends on (one Query of two items: committed before the
    // time), then one forward Query from it.
    let at = chrono::Utc::now();
    let then = s.repo.load_at_time(&s.stream, at).await.unwrap();
    assert_eq!(then.version, 10_000);
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("Query", 3)], "{counts}");

    // 99 commands after the head's snapshot, the 100th takes one: the commit, the snapshot (no
    // alignment read: the repository wrote the head) and its data key read past the cache (a
    // snapshot never recreates a forgotten subject's key). No prune: the stream publisher prunes,
    // off the command path, as the construct deploys it.
    for _ in 0..99 {
        s.repo.execute(&s.stream, &costs::add_item(), CommandContext::default()).await.unwrap();
    }
    s.counter.reset();
    s.repo.execute(&s.stream, &costs::add_item(), CommandContext::default()).await.unwrap();
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("GetItem", 1), ("PutItem", 2)], "{counts}");
    s.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_asks_for_what_the_store_learned_lies_above_the_snapshot() {
    let env = Env::new().await;
    let s = costs::seeded(&env, 100, Some(100)).await;
    // A store that knows nothing about the stream reads the default first page (101 items).
    let fresh = strata_dynamodb::DynamoStore::new(s.store.client().clone(), s.store.table());
    // (With a snapshot policy: a repository without one loads forward and needs no distance.)
    let cold = Repository::<Order, _>::new(fresh.clone())
        .with_cipher(env.cipher(&fresh))
        .with_snapshot_policy(strata_core::SnapshotPolicy::every(100));
    let ctx = CommandContext::default;
    assert_eq!(cold.load(&s.stream).await.unwrap().version, 100);
    // (Its cipher's cold key cache also reads the subject's key: one GetItem.)
    assert_eq!(s.counter.take().operations["Query"].items_read, 101);
    // Three commands on top through it: it counts them, and the next load asks for 3 + 1 + 1.
    for _ in 0..3 {
        cold.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    }
    s.counter.reset();
    assert_eq!(cold.load(&s.stream).await.unwrap().version, 103);
    let counts = s.counter.take();
    assert_eq!((calls(&counts), counts.items_read()), (vec![("Query", 1)], 5), "{counts}");
    // Another writer adds two commits it does not know of: the learned page (one item of slack)
    // misses the snapshot, the next page (the default size) reaches it; nothing is missed.
    s.repo.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    s.repo.execute(&s.stream, &costs::add_item(), ctx()).await.unwrap();
    s.counter.reset();
    assert_eq!(cold.load(&s.stream).await.unwrap().version, 105);
    let counts = s.counter.take();
    assert_eq!(calls(&counts), [("Query", 2)], "{counts}");
    s.drop_table().await;
}
