//! `stream-publisher`: the table's DynamoDB stream in, EventBridge out (the outbox relay).
//!
//! Environment: `STRATA_EVENT_BUS` (name or ARN), `STRATA_EVENT_SOURCE` (e.g. `com.example.orders`),
//! optional `STRATA_PUBLISH_ATTEMPTS` (per entry, default 4). Configure the event source mapping with
//! `ReportBatchItemFailures`, bisect on error, a retry limit and an on-failure destination.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use strata_eventbridge::{EventBridgePublisher, PublishRetry, StreamRelay};
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
    let client = aws_sdk_eventbridge::Client::new(&strata_lambda::aws().await);
    let relay = StreamRelay::new(EventBridgePublisher::new(client, bus, source)?.with_retry(retry));
    let relay = &relay;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        relay.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
