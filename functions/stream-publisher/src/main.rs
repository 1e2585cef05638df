//! `stream-publisher`: the table's DynamoDB stream in, EventBridge out (the outbox relay).
//!
//! Environment: see `strata_lambda::publisher` (`STRATA_EVENT_BUS`, `STRATA_EVENT_SOURCE`, optional
//! `STRATA_PUBLISH_ATTEMPTS`, and `STRATA_TABLE` with `STRATA_SNAPSHOT_KEEP` to prune snapshots).
//! Configure the event source mapping with `ReportBatchItemFailures`, bisect on error, a retry limit
//! and an on-failure destination.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let sdk = strata_lambda::aws().await;
    let relay = &strata_lambda::publisher::relay_from_env(&sdk)?;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        relay.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
