//! `command-api`: `POST /{category}/{id}/commands/{name}` for every aggregate of the orders service
//! (`strata_orders::service`, see `strata_lambda::CommandApi`).
//!
//! Environment: `STRATA_TABLE`, `STRATA_KMS_KEY_ID`, `STRATA_TENANT` (or `STRATA_TENANT_CLAIM` to take
//! the tenant from a JWT claim), the snapshot and cache settings of `strata_lambda::Settings::from_env`
//! (`STRATA_SNAPSHOT_EVERY`, `STRATA_SNAPSHOT_PRUNING`, `STRATA_STREAM_CACHE_ENTRIES`), and optional
//! `STRATA_COMMIT_FORMAT` (`v3`, the default; `v2` or `legacy` for the first deploy of an upgrade from
//! code that cannot read v3).

use lambda_http::Error;
use strata_core::FieldCipher;
use strata_dynamodb::{CommitFormat, DynamoStore};
use strata_kms::KmsKeys;
use strata_lambda::{Settings, Tenancy, env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let table = env::required("STRATA_TABLE")?;
    let key_id = env::required("STRATA_KMS_KEY_ID")?;
    let tenancy = Tenancy::from_env()?;
    let settings = Settings::from_env()?;
    let format = env::parsed_or("STRATA_COMMIT_FORMAT", CommitFormat::V3)?;
    let sdk = strata_lambda::aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table).with_commit_format(format);
    let keys = KmsKeys::new(aws_sdk_kms::Client::new(&sdk), key_id, store.clone());
    let service = strata_orders::service(store).with_cipher(FieldCipher::new(keys));
    let api = &service.command_api(tenancy, &settings)?;
    strata_lambda::http::run(move |request| api.handle(request)).await
}
