//! `projector`: Strata events from EventBridge, through an SQS queue, into every read model of the
//! orders service (`strata_orders::service`), each with its own checkpoints: one that fails for a
//! stream holds back neither the others nor other streams.
//!
//! Environment: `STRATA_TABLE`, `STRATA_KMS_KEY_ID` (opens events' personal fields and seals the
//! views'). Configure the SQS event source with `ReportBatchItemFailures`, and the queue with a
//! dead-letter queue (`maxReceiveCount`).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use strata_core::FieldCipher;
use strata_core::projection::AnyProjector;
use strata_dynamodb::DynamoStore;
use strata_kms::KmsKeys;
use strata_lambda::env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_lambda::init_logs();
    let table = env::required("STRATA_TABLE")?;
    let key_id = env::required("STRATA_KMS_KEY_ID")?;
    let sdk = strata_lambda::aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let keys = KmsKeys::new(aws_sdk_kms::Client::new(&sdk), key_id, store.clone());
    let projectors = strata_orders::service(store).with_cipher(FieldCipher::new(keys)).projectors()?;
    let projectors: &[&dyn AnyProjector] = &projectors.iter().map(AsRef::as_ref).collect::<Vec<_>>();
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        strata_eventbridge::project_batch_each(projectors, event.payload)
            .await
            .map(|(response, _)| response)
            .map_err(Error::from)
    }))
    .await
}
