//! The stream publisher (the outbox relay) as every Strata function builds it from its environment:
//! `functions/stream-publisher` and the `publisher` role of [`crate::runtime`].
//!
//! | variable | meaning |
//! |---|---|
//! | `STRATA_EVENT_BUS` | the bus (name or ARN) events are published to |
//! | `STRATA_EVENT_SOURCE` | their EventBridge `source`, e.g. `com.example.orders` |
//! | `STRATA_PUBLISH_ATTEMPTS` | attempts per entry (default 4) |
//! | `STRATA_SNAPSHOT_KEEP` | with `STRATA_TABLE`: prunes each stream's snapshots to this many when one is written (for a command function deployed with `STRATA_SNAPSHOT_PRUNING=publisher`) |

use aws_config::SdkConfig;
use lambda_runtime::Error;
use strata_dynamodb::DynamoStore;
use strata_eventbridge::{EventBridgePublisher, PublishRetry, SnapshotPruner, StreamRelay};

use crate::env;

/// The relay the environment describes (see the module docs).
pub fn relay_from_env(sdk: &SdkConfig) -> Result<StreamRelay<aws_sdk_eventbridge::Client>, Error> {
    let bus = env::required("STRATA_EVENT_BUS")?;
    let source = env::required("STRATA_EVENT_SOURCE")?;
    let retry = PublishRetry {
        max_attempts: env::parsed_or("STRATA_PUBLISH_ATTEMPTS", 4)?,
        ..PublishRetry::default()
    };
    let client = aws_sdk_eventbridge::Client::new(sdk);
    let mut relay = StreamRelay::new(EventBridgePublisher::new(client, bus, source)?.with_retry(retry));
    if let Some(keep) = env::optional("STRATA_SNAPSHOT_KEEP")? {
        let keep: usize = env::parse("STRATA_SNAPSHOT_KEEP", &keep)?;
        // A bad maintenance setting must not stop the outbox: keep one, and say so.
        if keep == 0 {
            tracing::error!("STRATA_SNAPSHOT_KEEP=0: keeping 1 snapshot per stream");
        }
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), env::required("STRATA_TABLE")?);
        relay = relay.with_snapshot_pruner(SnapshotPruner::new(store, keep));
    }
    Ok(relay)
}
