//! `strata snapshots list|take|prune`.

use aws_config::SdkConfig;
use serde_json::json;
use strata_core::{Repository, SnapshotStore};

use crate::args::SnapshotsCommand;
use crate::{CliError, Output, cipher, store, stream_id};

pub(crate) async fn run(sdk: &SdkConfig, command: SnapshotsCommand) -> Result<Output, CliError> {
    match command {
        SnapshotsCommand::List(target) => {
            let stream = stream_id(&target.stream)?;
            let versions = store(sdk, &target.table).snapshot_versions(&stream).await?;
            let rows = versions.iter().map(|v| vec![v.to_string()]).collect();
            let count = versions.len();
            Ok(Output::table(
                json!({ "stream": stream.to_string(), "versions": versions }),
                &["version"],
                rows,
            )
            .with_message(format!("{count} snapshot(s) of {stream}")))
        }
        SnapshotsCommand::Take { stream: target, kms_key } => {
            let stream = stream_id(&target.stream)?;
            let store = store(sdk, &target.table);
            // The state's type comes from the category; this binary knows the example domain.
            if stream.category() != "order" {
                return Err(CliError::Usage(format!(
                    "no aggregate for category '{}' in this binary (known: order)",
                    stream.category()
                )));
            }
            let mut repository = Repository::<strata_orders::Order, _>::new(store.clone())
                .with_upcasters(strata_orders::upcasters());
            if let Some(key) = kms_key {
                repository = repository.with_cipher(cipher(sdk, &key, &store));
            }
            let version = repository.take_snapshot(&stream).await?;
            Ok(Output {
                json: json!({ "stream": stream.to_string(), "version": version }),
                ..Output::message(format!("snapshot of {stream} at version {version}"))
            })
        }
        SnapshotsCommand::Prune { stream: target, keep } => {
            let stream = stream_id(&target.stream)?;
            // An operator's prune keeps the newest `keep` of every state schema alike.
            let removed = store(sdk, &target.table).prune_snapshots(&stream, keep, u32::MAX).await?;
            Ok(Output {
                json: json!({ "stream": stream.to_string(), "removed": removed, "kept": keep }),
                ..Output::message(format!(
                    "removed {removed} snapshot(s) of {stream}, kept the newest {keep}"
                ))
            })
        }
    }
}
