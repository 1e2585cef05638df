//! `command-api`: `POST /order/{id}/commands/{name}` (see `strata_lambda::CommandApi`).
//!
//! Environment: `STRATA_TABLE`, `STRATA_KMS_KEY_ID`, `STRATA_TENANT` (or `STRATA_TENANT_CLAIM` to take
//! the tenant from a JWT claim), optional `STRATA_SNAPSHOT_EVERY` (events, default 100) and
//! `STRATA_STREAM_CACHE_ENTRIES` (streams a warm instance keeps, default 1000; 0 turns it off) and
//! `STRATA_COMMIT_FORMAT` (`v3`, the default; `v2` or `legacy` for the first deploy of an upgrade
//! from code that cannot read v3) and `STRATA_SNAPSHOT_PRUNING` (`command`, the default: the command
//! that writes a snapshot prunes the older ones; `publisher`: the stream publisher does, off the
//! command path, as the CDK construct deploys it).

use lambda_http::Error;
use strata_core::{CachePolicy, FieldCipher, Repository, SnapshotPolicy};
use strata_dynamodb::{CommitFormat, DynamoStore};
use strata_kms::KmsKeys;
use strata_lambda::{CommandApi, Tenancy, env};
use strata_orders::Order;

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let table = env::required("STRATA_TABLE")?;
    let key_id = env::required("STRATA_KMS_KEY_ID")?;
    let snapshot_every = env::parsed_or("STRATA_SNAPSHOT_EVERY", 100)?;
    let cached_streams = env::parsed_or("STRATA_STREAM_CACHE_ENTRIES", 1_000)?;
    let tenancy = Tenancy::from_env()?;
    let sdk = strata_lambda::aws().await;
    let format = env::parsed_or("STRATA_COMMIT_FORMAT", CommitFormat::V3)?;
    let snapshots = match env::optional("STRATA_SNAPSHOT_PRUNING")?.as_deref() {
        None | Some("command") => SnapshotPolicy::every(snapshot_every),
        Some("publisher") => SnapshotPolicy::every(snapshot_every).pruned_elsewhere(),
        Some(other) => {
            return Err(format!("STRATA_SNAPSHOT_PRUNING is `command` or `publisher`, not `{other}`").into());
        }
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table).with_commit_format(format);
    let keys = KmsKeys::new(aws_sdk_kms::Client::new(&sdk), key_id, store.clone());
    let repository = Repository::<Order, _>::new(store)
        .with_cipher(FieldCipher::new(keys))
        .with_upcasters(strata_orders::upcasters())
        .with_snapshot_policy(snapshots)
        .with_stream_cache(CachePolicy::entries(cached_streams));
    let api = &CommandApi::new(repository, tenancy);
    strata_lambda::http::run(move |request| api.handle(request)).await
}
