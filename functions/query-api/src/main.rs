//! `query-api`: order state, events, the order-summary read model, and (with `STRATA_ADMIN=true`)
//! subject export and erasure (see `strata_lambda::QueryApi`).
//!
//! Environment: `STRATA_TABLE`, `STRATA_KMS_KEY_ID`, `STRATA_TENANT` (or `STRATA_TENANT_CLAIM`),
//! optional `STRATA_ADMIN` (default false).

use lambda_http::Error;
use strata_core::projection::Projector;
use strata_core::{FieldCipher, Repository, SnapshotPolicy};
use strata_dynamodb::DynamoStore;
use strata_kms::KmsKeys;
use strata_lambda::{QueryApi, Tenancy, env};
use strata_orders::{Order, OrderSummaries, upcasters};

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let table = env::required("STRATA_TABLE")?;
    let key_id = env::required("STRATA_KMS_KEY_ID")?;
    let admin = env::parsed_or("STRATA_ADMIN", false)?;
    let tenancy = Tenancy::from_env()?;
    let sdk = strata_lambda::aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let cipher = FieldCipher::new(KmsKeys::new(aws_sdk_kms::Client::new(&sdk), key_id, store.clone()));
    // Loads start from the command function's snapshots; this function never writes one.
    let repository = Repository::<Order, _>::new(store.clone())
        .with_cipher(cipher.clone())
        .with_upcasters(upcasters())
        .with_snapshot_policy(SnapshotPolicy::read_only());
    let projector = Projector::new(OrderSummaries, store).with_cipher(cipher).with_upcasters(upcasters());
    let api = &QueryApi::new(repository, projector, tenancy).with_admin(admin);
    strata_lambda::http::run(move |request| api.handle(request)).await
}
