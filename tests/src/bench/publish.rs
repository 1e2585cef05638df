//! Publishing and delivery on the emulator: events per PutEvents call, and events per second from
//! the table's stream through the publisher, the bus and the queue to a projected read model.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use strata_core::projection::Projector;
use strata_core::{CommandContext, Repository, StreamId};
use strata_eventbridge::{Detail, EventBridgePublisher, StreamRelay, project_batch};
use strata_orders::{Order, OrderCommand, OrderSummaries, samples, upcasters};

use super::stats::Spread;
use crate::{Pipeline, sqs_event, stream_event, through_mapping_filter};

/// Records per publisher invocation: the batch size of the CDK app's stream mapping.
pub const STREAM_BATCH: usize = 100;

/// Publishing figures over all runs.
#[derive(Debug, Clone)]
pub struct PublishRow {
    /// Events committed per run.
    pub events_per_run: usize,
    /// Stream records the publisher was handed (those through the mapping's filter), all runs.
    pub records: usize,
    /// Events published, all runs.
    pub published: usize,
    /// PutEvents calls, all runs.
    pub calls: usize,
    /// Publisher invocations (batches of [`STREAM_BATCH`] records), all runs.
    pub invocations: usize,
    /// Per run: from handing the first record to the publisher until every event is in the read
    /// model (publisher and projector running concurrently, as their functions would).
    pub elapsed: Spread,
}

/// `orders` orders of 5 commands each per run (5 events: placed, 3 items, paid), committed untimed;
/// then their stream records are relayed in batches of [`STREAM_BATCH`] while a consumer receives
/// from the projector's queue (10 messages per receive, as the mapping) and projects the order
/// summaries, until every event is applied.
pub async fn run(p: &Pipeline, orders: usize, runs: usize) -> PublishRow {
    let cipher = p.cipher();
    let repo = Repository::<Order, _>::new(p.store.clone()).with_cipher(cipher.clone());
    let relay =
        StreamRelay::new(EventBridgePublisher::new(p.eventbridge.clone(), &p.bus, &p.source).unwrap());
    let summaries =
        Projector::new(OrderSummaries, p.store.clone()).with_cipher(cipher).with_upcasters(upcasters());
    let mut seen_records = 0;
    let mut row = PublishRow {
        events_per_run: orders * 5,
        records: 0,
        published: 0,
        calls: 0,
        invocations: 0,
        elapsed: Spread::none(),
    };
    let mut times = Vec::new();
    for run in 0..runs {
        for i in 0..orders {
            let s = StreamId::new("bench", "order", format!("p-{run}-{i}")).unwrap();
            for command in life() {
                repo.execute(&s, &command, CommandContext::default()).await.unwrap();
            }
        }
        let all = p.stream_records().await;
        let records = through_mapping_filter(&all[seen_records..]);
        seen_records = all.len();
        let expected = orders * 5;
        let prefix = format!("p-{run}-");
        let started = Instant::now();
        let publish = async {
            let (mut published, mut calls, mut invocations) = (0, 0, 0);
            for batch in records.chunks(STREAM_BATCH) {
                let (response, relayed) = relay.handle_counted(stream_event(batch)).await.unwrap();
                assert!(response.batch_item_failures.is_empty(), "{response:?}");
                published += relayed.published;
                calls += relayed.report.calls;
                invocations += 1;
            }
            (published, calls, invocations)
        };
        let consume = async {
            let deadline = Instant::now() + Duration::from_secs(300);
            let mut applied = BTreeSet::new();
            while applied.len() < expected {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {expected} events were projected",
                    applied.len()
                );
                let batch = p.receive().await;
                if batch.is_empty() {
                    continue;
                }
                let event = sqs_event(&batch);
                let (response, _) = project_batch(&summaries, event.clone()).await.unwrap();
                assert!(response.batch_item_failures.is_empty(), "{response:?}");
                p.acknowledge(&event, &response).await;
                for message in &batch {
                    let detail: EventBridgeEvent<Detail> =
                        serde_json::from_str(message["body"].as_str().unwrap_or_default()).unwrap();
                    // Only this run's orders count (a late duplicate of an earlier run's may arrive).
                    if detail.detail.stream.id().starts_with(&prefix) {
                        applied.insert((detail.detail.stream.clone(), detail.detail.version));
                    }
                }
            }
        };
        let ((published, calls, invocations), ()) = tokio::join!(publish, consume);
        times.push(started.elapsed());
        row.records += records.len();
        row.published += published;
        row.calls += calls;
        row.invocations += invocations;
    }
    row.elapsed = Spread::of_durations(&times).unwrap_or(row.elapsed);
    row
}

/// Five commands, five events: placed, three items, paid.
fn life() -> Vec<OrderCommand> {
    let add = |sku: &str| OrderCommand::AddItem { sku: sku.into(), quantity: 1, unit_price_minor: 1_000 };
    vec![
        samples::place_order("c-1"),
        add("BOOK"),
        add("PEN"),
        add("INK"),
        OrderCommand::Pay { amount_minor: 3_000, payment_reference: "pay-1".into() },
    ]
}
