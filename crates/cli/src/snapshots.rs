//! `strata snapshots list|take|prune`.

use aws_config::SdkConfig;
use serde_json::json;
use strata_core::SnapshotStore;
use strata_lambda::Settings;

use crate::args::SnapshotsCommand;
use crate::{CliError, Output, Registry, cipher, store, stream_id};

pub(crate) async fn run(
    sdk: &SdkConfig,
    command: SnapshotsCommand,
    registry: Registry,
) -> Result<Output, CliError> {
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
            // The state's type comes from the category, through the binary's registry.
            let mut service = registry(store.clone());
            if let Some(key) = kms_key {
                service = service.with_cipher(cipher(sdk, &key, &store));
            }
            let version = service.take_snapshot(&stream, &Settings::default()).await.ok_or_else(|| {
                CliError::Usage(format!(
                    "no aggregate for category '{}' in this binary (known: {})",
                    stream.category(),
                    service.categories().join(", ")
                ))
            })??;
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
