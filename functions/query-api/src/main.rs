//! `query-api`: the state and events of every aggregate of the orders service, its read models, and
//! (with `STRATA_ADMIN=true`) subject export and erasure (`strata_orders::service`, see
//! `strata_lambda::QueryApi`).
//!
//! Environment: `STRATA_TABLE`, `STRATA_KMS_KEY_ID`, `STRATA_TENANT` (or `STRATA_TENANT_CLAIM`),
//! optional `STRATA_ADMIN` (default false) and `STRATA_SNAPSHOT_EVERY` (the command function's: above
//! 0, loads start from its snapshots; this function writes none).

use lambda_http::Error;
use strata_core::FieldCipher;
use strata_dynamodb::DynamoStore;
use strata_kms::KmsKeys;
use strata_lambda::{Settings, Tenancy, env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let table = env::required("STRATA_TABLE")?;
    let key_id = env::required("STRATA_KMS_KEY_ID")?;
    let tenancy = Tenancy::from_env()?;
    let settings = Settings::from_env()?;
    let sdk = strata_lambda::aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let keys = KmsKeys::new(aws_sdk_kms::Client::new(&sdk), key_id, store.clone());
    let service = strata_orders::service(store).with_cipher(FieldCipher::new(keys));
    let api = &service.query_api(tenancy, &settings)?;
    strata_lambda::http::run(move |request| api.handle(request)).await
}
