//! `stream-publisher`: the table's DynamoDB stream in, EventBridge out (the outbox relay).
//!
//! Environment: `STRATA_EVENT_BUS` (name or ARN), `STRATA_EVENT_SOURCE` (e.g. `com.example.orders`),
//! optional `STRATA_PUBLISH_ATTEMPTS` (per entry, default 4), and `STRATA_TABLE` with
//! `STRATA_SNAPSHOT_KEEP` to prune each stream's snapshots to that many when a snapshot is written
//! (for a command function deployed with `STRATA_SNAPSHOT_PRUNING=publisher`). Configure the event source mapping with
//! `ReportBatchItemFailures`, bisect on error, a retry limit and an on-failure destination.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use strata_dynamodb::DynamoStore;
use strata_eventbridge::{EventBridgePublisher, PublishRetry, SnapshotPruner, StreamRelay};
use strata_lambda::env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let bus = env::required("STRATA_EVENT_BUS")?;
    let source = env::required("STRATA_EVENT_SOURCE")?;
    let retry = PublishRetry {
        max_attempts: env::parsed_or("STRATA_PUBLISH_ATTEMPTS", 4)?,
        ..PublishRetry::default()
    };
    let sdk = strata_lambda::aws().await;
    let client = aws_sdk_eventbridge::Client::new(&sdk);
    let mut relay = StreamRelay::new(EventBridgePublisher::new(client, bus, source)?.with_retry(retry));
    if let Some(keep) = env::optional("STRATA_SNAPSHOT_KEEP")? {
        let keep: usize = env::parse("STRATA_SNAPSHOT_KEEP", &keep)?;
        // A bad maintenance setting must not stop the outbox: keep one, and say so.
        if keep == 0 {
            tracing::error!("STRATA_SNAPSHOT_KEEP=0: keeping 1 snapshot per stream");
        }
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), env::required("STRATA_TABLE")?);
        relay = relay.with_snapshot_pruner(SnapshotPruner::new(store, keep));
    }
    let relay = &relay;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        relay.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
