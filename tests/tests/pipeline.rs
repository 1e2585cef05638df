//! The whole publishing path on the emulator: commands -> table -> DynamoDB stream records (read from
//! the emulator's Streams API, handed over as Lambda's JSON) -> the publisher's handler -> EventBridge
//! bus -> rule -> SQS -> the projector's handler -> read models in the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::{Value, json};
use strata_core::fixture::tally::TallyProjection;
use strata_core::projection::{Projection, Projector};
use strata_core::{
    AppendRequest, CommandContext, EventEnvelope, EventStore, ExpectedVersion, Metadata, NewEvent,
    Repository, StreamId,
};
use strata_eventbridge::{Detail, EventBridgePublisher, PublishRetry, PutEvents, StreamRelay, project_batch};
use strata_orders::samples::{PERSONAL_STRINGS, place_order};
use strata_orders::{Order, OrderCommand, OrderEvent, OrderSummaries, upcasters};
use strata_tests::{FlakyPutEvents, Pipeline, sqs_event, stream_event, through_mapping_filter};

/// Records the versions it applies, in order: the proof of order and exactly-once.
struct AppliedVersions;

impl Projection for AppliedVersions {
    type Event = OrderEvent;
    type View = Vec<u64>;
    const NAME: &'static str = "applied-versions";
    const CATEGORY: &'static str = "order";

    fn apply(&self, view: Option<Vec<u64>>, _: &OrderEvent, envelope: &EventEnvelope) -> Option<Vec<u64>> {
        let mut view = view.unwrap_or_default();
        view.push(envelope.version);
        Some(view)
    }
}

fn order(id: &str) -> StreamId {
    StreamId::new("acme", "order", id).unwrap()
}

fn add(sku: &str, quantity: u32) -> OrderCommand {
    OrderCommand::AddItem { sku: sku.into(), quantity, unit_price_minor: 1_250 }
}

/// Runs a life of commands per order; returns each order's head version.
async fn run_commands(
    repo: &Repository<Order, strata_dynamodb::DynamoStore>,
    orders: &[(&str, &str)],
) -> BTreeMap<StreamId, u64> {
    let mut heads = BTreeMap::new();
    for (i, (id, customer)) in orders.iter().enumerate() {
        let s = order(id);
        let mut commands = vec![place_order(customer), add("BOOK", 2), add("PEN", 1)];
        match i % 3 {
            0 => commands.extend([
                OrderCommand::Pay { amount_minor: 3_750, payment_reference: format!("pay-{id}") },
                OrderCommand::Ship { carrier: "DHL".into(), tracking_number: format!("T{i}") },
            ]),
            1 => commands.push(OrderCommand::Cancel { reason: "changed mind".into() }),
            _ => commands.extend([OrderCommand::RemoveItem { sku: "PEN".into() }, add("INK", 3)]),
        }
        let mut head = 0;
        for command in &commands {
            head = repo.execute(&s, command, CommandContext::default()).await.unwrap().version;
        }
        heads.insert(s, head);
    }
    heads
}

/// Hands stream records to the publisher's handler in batches, as Lambda's event source mapping does:
/// after a partial batch response it retries from the earliest failed record; `redeliver` also hands
/// every batch over a second time (a retried invocation). Returns how many invocations it took.
async fn relay_all<C: PutEvents>(
    relay: &StreamRelay<C>,
    records: &[Value],
    batch: usize,
    redeliver: bool,
) -> usize {
    let mut position = 0;
    let mut invocations = 0;
    while position < records.len() {
        invocations += 1;
        assert!(invocations < 500, "the publisher does not make progress");
        let end = (position + batch).min(records.len());
        let response = relay.handle(stream_event(&records[position..end])).await.unwrap();
        if redeliver {
            relay.handle(stream_event(&records[position..end])).await.unwrap();
        }
        let failed: Vec<&str> =
            response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
        position = match records[position..end]
            .iter()
            .position(|r| failed.contains(&r["dynamodb"]["SequenceNumber"].as_str().unwrap()))
        {
            Some(first_failed) => position + first_failed,
            None => end,
        };
    }
    invocations
}

/// Every message the queue receives until `expected` distinct events have arrived and the queue is
/// drained (deadline 60 s), deleting what it receives.
async fn drain_queue(p: &Pipeline, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut messages = Vec::new();
    let mut distinct = BTreeSet::new();
    loop {
        let batch = p.receive().await;
        if batch.is_empty() && distinct.len() >= expected {
            return messages;
        }
        assert!(Instant::now() < deadline, "only {} of {expected} events arrived", distinct.len());
        p.delete(&sqs_event(&batch).records).await;
        for message in batch {
            let detail: EventBridgeEvent<Detail> =
                serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
            distinct.insert((detail.detail.stream.clone(), detail.detail.version));
            messages.push(message);
        }
    }
}

fn no_plaintext(what: &str, text: &str) {
    for plain in PERSONAL_STRINGS {
        assert!(!text.contains(plain), "plaintext {plain:?} in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_the_read_model_through_stream_bus_and_queue() {
    let p = Pipeline::new().await;
    let cipher = p.cipher();
    let repo = Repository::<Order, _>::new(p.store.clone()).with_cipher(cipher.clone());
    let heads = run_commands(&repo, &[("e2e-1", "cust-a"), ("e2e-2", "cust-a"), ("e2e-3", "cust-b")]).await;
    let total: u64 = heads.values().sum();

    let records = p.stream_records().await;
    let relay =
        StreamRelay::new(EventBridgePublisher::new(p.eventbridge.clone(), &p.bus, &p.source).unwrap());
    let mut published = 0;
    for batch in records.chunks(4) {
        let (response, relayed) = relay.handle_counted(stream_event(batch)).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        published += relayed.published;
    }
    assert_eq!(published as u64, total, "every committed event is published once");

    let mut messages = drain_queue(&p, total as usize).await;
    // At-least-once: a message may come twice (the projector deduplicates); every event came.
    let distinct: BTreeSet<_> =
        messages.iter().map(|m| m["body"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(distinct.len() as u64, total);
    // A standard queue does not promise order (LocalStack's reorders these, moto's happens not to):
    // hand the projector each stream's events in order, the case that must cost no store read.
    messages.sort_by_key(|message| {
        let body = message["body"].as_str().unwrap_or_default();
        let event: EventBridgeEvent<Detail> = serde_json::from_str(body).unwrap();
        (event.detail.stream, event.detail.version)
    });
    for message in &messages {
        let body = message["body"].as_str().unwrap();
        no_plaintext("an EventBridge payload", body);
        let event: EventBridgeEvent<Detail> = serde_json::from_str(body).unwrap();
        assert_eq!(
            (event.source.as_str(), event.detail_type.as_str()),
            (p.source.as_str(), event.detail.event_type.as_str())
        );
        assert!(!event.detail.claim_check && event.detail.payload.is_some());
    }

    let summaries = Projector::new(OrderSummaries, p.store.clone())
        .with_cipher(cipher.clone())
        .with_upcasters(upcasters());
    let applied =
        Projector::new(AppliedVersions, p.store.clone()).with_cipher(p.cipher()).with_upcasters(upcasters());
    for batch in messages.chunks(10) {
        let (response, outcome) = project_batch(&summaries, sqs_event(batch)).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        assert_eq!(outcome.fetched, 0, "in-order delivery needs no store reads");
        let (response, _) = project_batch(&applied, sqs_event(batch)).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }

    for (stream, head) in &heads {
        let (summary, version) = summaries.view(stream).await.unwrap().unwrap();
        let folded = repo.load(stream).await.unwrap();
        assert_eq!((&summary.order, version), (&folded.state, *head), "{stream}: the read model is the fold");
        assert_eq!(
            summary.order.customer.as_ref().unwrap().name.known().map(String::as_str),
            Some("Ada Lovelace")
        );
        let (versions, _) = applied.view(stream).await.unwrap().unwrap();
        assert_eq!(versions, (1..=*head).collect::<Vec<_>>(), "{stream}: applied once each, in order");
    }
    // The lookup index is eventually consistent: wait until it lists both orders.
    let listed = strata_testing::eventually("the customer's lookup", || async {
        let page = summaries.lookup("acme", "cust-a", None, 100).await.unwrap();
        let listed: Vec<String> = page.views.into_iter().map(|(s, _, _)| s.id().to_owned()).collect();
        if listed.len() == 2 { Ok(listed) } else { Err(format!("{listed:?}")) }
    })
    .await;
    assert_eq!(listed, ["e2e-1", "e2e-2"]);

    // Forgetting the customer reaches the read model without a rebuild.
    cipher.keys().forget("acme", "cust-a").await.unwrap();
    let (summary, _) = summaries.view(&order("e2e-1")).await.unwrap().unwrap();
    assert!(summary.order.customer.unwrap().email.is_redacted());
    no_plaintext("the table (commits, views, keys)", &p.table_text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_third_of_entries_failing_and_batches_redelivered_nothing_is_lost_or_applied_twice() {
    let p = Pipeline::new().await;
    let cipher = p.cipher();
    let repo = Repository::<Order, _>::new(p.store.clone()).with_cipher(cipher.clone());
    let ids: Vec<(String, String)> =
        (0..6).map(|i| (format!("flaky-{i}"), format!("cust-{}", i % 2))).collect();
    let orders: Vec<(&str, &str)> = ids.iter().map(|(o, c)| (o.as_str(), c.as_str())).collect();
    let heads = run_commands(&repo, &orders).await;
    let total: u64 = heads.values().sum();

    let flaky = FlakyPutEvents::new(p.eventbridge.clone(), 0.3, 7);
    let retry = PublishRetry {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    let relay =
        StreamRelay::new(EventBridgePublisher::new(flaky, &p.bus, &p.source).unwrap().with_retry(retry));
    let records = p.stream_records().await;
    let invocations = relay_all(&relay, &records, 5, true).await;
    let injected = relay.publisher().client().injected.load(Ordering::Relaxed);
    assert!(injected > 0, "faults were injected");
    assert!(invocations > records.len().div_ceil(5), "some batches were retried after partial failures");

    let mut messages = drain_queue(&p, total as usize).await;
    assert!(messages.len() as u64 > total, "redelivered batches published duplicates");
    for message in &messages {
        no_plaintext("an EventBridge payload", message["body"].as_str().unwrap());
    }
    // Deliver in a shuffled order, every batch twice.
    fastrand::Rng::with_seed(11).shuffle(&mut messages);
    let summaries =
        Projector::new(OrderSummaries, p.store.clone()).with_cipher(cipher).with_upcasters(upcasters());
    let applied =
        Projector::new(AppliedVersions, p.store.clone()).with_cipher(p.cipher()).with_upcasters(upcasters());
    let (mut applied_total, mut summary_total) = (0, 0);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut rest = messages.as_slice();
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at(rng.usize(1..=10).min(rest.len()));
        rest = tail;
        for _ in 0..2 {
            let (response, outcome) = project_batch(&applied, sqs_event(batch)).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
            applied_total += outcome.applied;
            let (response, outcome) = project_batch(&summaries, sqs_event(batch)).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
            summary_total += outcome.applied;
        }
    }
    assert_eq!(
        (applied_total, summary_total),
        (total, total),
        "each event applied exactly once per projection"
    );
    for (stream, head) in &heads {
        let (versions, _) = applied.view(stream).await.unwrap().unwrap();
        assert_eq!(versions, (1..=*head).collect::<Vec<_>>(), "{stream}: in order, once each");
        let (summary, version) = summaries.view(stream).await.unwrap().unwrap();
        assert_eq!((summary.order, version), (repo.load(stream).await.unwrap().state, *head));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_256_kb_travels_as_a_claim_check_and_is_read_from_the_store() {
    let p = Pipeline::new().await;
    let s = StreamId::new("acme", "tally", "big").unwrap();
    let pad = "x".repeat(300 * 1024);
    let big = NewEvent::new("Bumped", 1, json!({ "n": 1, "pad": pad }), Metadata::new("big"));
    let request = AppendRequest {
        stream: s.clone(),
        expected: ExpectedVersion::NoStream,
        events: vec![big],
        idempotency: None,
    };
    p.store.append(request).await.unwrap();

    let relay =
        StreamRelay::new(EventBridgePublisher::new(p.eventbridge.clone(), &p.bus, &p.source).unwrap());
    let (response, relayed) = relay.handle_counted(stream_event(&p.stream_records().await)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((relayed.published, relayed.report.claim_checks), (1, 1));

    let messages = drain_queue(&p, 1).await;
    let body = messages[0]["body"].as_str().unwrap();
    assert!(body.len() < 2048 && !body.contains("xxxx"), "the entry carries no payload");
    let projector = Projector::new(TallyProjection, p.store.clone());
    let (_, outcome) = project_batch(&projector, sqs_event(&messages)).await.unwrap();
    assert_eq!((outcome.applied, outcome.fetched), (1, 1));
    assert_eq!(projector.view(&s).await.unwrap().unwrap().0.seen, [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_a_strata_event_is_reported_alone_and_ends_in_the_dead_letter_queue() {
    let p = Pipeline::new().await;
    let repo = Repository::<Order, _>::new(p.store.clone()).with_cipher(p.cipher());
    let heads = run_commands(&repo, &[("poison-1", "cust-p")]).await;
    let relay =
        StreamRelay::new(EventBridgePublisher::new(p.eventbridge.clone(), &p.bus, &p.source).unwrap());
    relay.handle(stream_event(&p.stream_records().await)).await.unwrap();
    let poison =
        p.sqs.send_message().queue_url(&p.queue_url).message_body("{\"not\": \"an event\"}").send().await;
    let poison_id = poison.unwrap().message_id.unwrap();
    let projector =
        Projector::new(OrderSummaries, p.store.clone()).with_cipher(p.cipher()).with_upcasters(upcasters());

    // Lambda's loop: invoke with what arrives, delete what did not fail; a failed message comes back
    // (visibility 0 here) until the queue's receive limit moves it to the dead-letter queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut reported, mut applied) = (0, 0);
    while p.dead_letters().await == 0 {
        assert!(Instant::now() < deadline, "the poison message never reached the dead-letter queue");
        let batch = p.receive_hidden_for(0).await;
        if batch.is_empty() {
            continue;
        }
        let event = sqs_event(&batch);
        let (response, outcome) = project_batch(&projector, event.clone()).await.unwrap();
        for failure in &response.batch_item_failures {
            assert_eq!(failure.item_identifier, poison_id, "only the poison message fails");
        }
        reported += outcome.failed;
        applied += outcome.applied;
        p.acknowledge(&event, &response).await;
    }
    assert!(reported >= 1, "the poison message was reported");
    assert_eq!(applied, heads[&order("poison-1")], "the order's events were applied once, poison or not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_prunes_snapshots_off_the_command_path() {
    let p = Pipeline::new().await;
    let repo = Repository::<Order, _>::new(p.store.clone())
        .with_cipher(p.cipher())
        .with_snapshot_policy(strata_core::SnapshotPolicy::every(2).pruned_elsewhere());
    let s = order("pruned");
    repo.execute(&s, &place_order("cust-p"), CommandContext::default()).await.unwrap();
    p.counter.reset();
    for sku in ["A", "B", "C", "D", "E"] {
        repo.execute(&s, &add(sku, 1), CommandContext::default()).await.unwrap();
    }
    // Snapshots at 2, 4 and 6 written by the commands (one Query each: its load), none listed or
    // deleted by them.
    let commands = p.counter.take();
    assert_eq!((commands.calls("DeleteItem"), commands.calls("Query")), (0, 5), "{commands}");
    let stored = |version: u64| {
        let key = p.store.client().get_item().table_name(p.store.table());
        let key = key
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(strata_dynamodb::keys::stream_pk(&s)))
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(strata_dynamodb::keys::snapshot_sk(version)),
            )
            .consistent_read(true);
        async move { key.send().await.unwrap().item.is_some() }
    };
    for version in [2, 4, 6] {
        assert!(stored(version).await, "snapshot at {version}");
    }

    // What the event source mapping passes (commit and snapshot inserts), until the eventually
    // consistent index has listed the old snapshots to the pruner and both are gone (deadline 30 s);
    // redelivering the batch is what Lambda does anyway.
    let records = through_mapping_filter(&p.stream_records().await);
    let pruner = strata_eventbridge::SnapshotPruner::new(p.store.clone(), 1);
    let relay =
        StreamRelay::new(EventBridgePublisher::new(p.eventbridge.clone(), &p.bus, &p.source).unwrap())
            .with_snapshot_pruner(pruner);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pruned = 0;
    loop {
        let (response, relayed) = relay.handle_counted(stream_event(&records)).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        assert_eq!(relayed.published, 6, "every event published, whatever the pruning");
        pruned += relayed.pruned;
        if !stored(2).await && !stored(4).await {
            break;
        }
        assert!(Instant::now() < deadline, "snapshots 2 and 4 still stored after 30 s");
        // A pause between polls, not a wait for something: the deadline bounds the loop.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(pruned, 2, "each old snapshot deleted once");
    assert!(stored(6).await, "the newest kept");
    assert_eq!(repo.load(&s).await.unwrap().version, 6);
}
