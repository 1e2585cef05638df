//! Commands contending for one stream, through the command API in-process over a real DynamoDB
//! table on the emulator: every conflict, DynamoDB's `TransactionConflict` included, is reloaded
//! and decided again; none is answered 503, and the stream ends contiguous with each command once.
//!
//! The emulator never reports `TransactionConflict` (it runs one request at a time), so an SDK
//! interceptor makes DynamoDB's answer to some commit writes: the request is not carried out (a
//! harmless read goes in its place) and the client gets DynamoDB's exact HTTP 400, which the SDK
//! decodes as it would from AWS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use lambda_http::Body;
use serde_json::{Value, json};
use strata_core::{EventStore, FieldCipher, Repository, RetryPolicy, StreamId};
use strata_dynamodb::{DynamoStore, TableSpec};
use strata_lambda::{CommandApi, Tenancy};
use strata_orders::{Order, samples, upcasters};

/// Makes DynamoDB's answer to every `every`-th commit write of one kind: a `TransactWriteItems`
/// cancelled with reason `TransactionConflict` on its commit, or a commit `PutItem` refused with
/// `TransactionConflictException` (a transaction holds the item). Nothing is written either way.
/// Clones share their counts.
#[derive(Debug, Clone)]
struct TransactionConflicts {
    every: usize,
    seen: Arc<AtomicUsize>,
    injected: Arc<AtomicUsize>,
}

/// The answer to give instead of the emulator's, for this attempt.
#[derive(Debug, Clone)]
struct Answer(Option<String>);

impl Storable for Answer {
    type Storer = StoreReplace<Self>;
}

impl TransactionConflicts {
    fn every(every: usize) -> Self {
        Self { every, seen: Arc::default(), injected: Arc::default() }
    }

    /// DynamoDB's error body for this request, when it is a commit write whose turn it is.
    fn answer(&self, target: &str, body: &Value) -> Option<String> {
        let answer = match target {
            "DynamoDB_20120810.TransactWriteItems" => {
                // One reason per action, in order: the commit (first) met another transaction.
                let actions = body["TransactItems"].as_array()?.len();
                let mut reasons = vec![
                    json!({ "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" }),
                ];
                reasons.resize(actions, json!({ "Code": "None" }));
                let codes: Vec<&str> =
                    reasons.iter().map(|r| r["Code"].as_str().unwrap_or_default()).collect();
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": format!(
                        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                        codes.join(", ")
                    ),
                    "CancellationReasons": reasons,
                })
            }
            "DynamoDB_20120810.PutItem" if body["Item"]["kind"]["S"] == "commit" => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                "message": "Transaction is ongoing for the item",
            }),
            _ => return None,
        };
        let turn = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        turn.is_multiple_of(self.every).then(|| {
            self.injected.fetch_add(1, Ordering::Relaxed);
            answer.to_string()
        })
    }
}

impl Intercept for TransactionConflicts {
    fn name(&self) -> &'static str {
        "strata-tests::TransactionConflicts"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let target = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
        let body: Value =
            request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        let answer = self.answer(&target, &body);
        if answer.is_some() {
            // A read in its place: the emulator writes nothing, as DynamoDB does not.
            request.headers_mut().insert("x-amz-target", "DynamoDB_20120810.ListTables");
            request.headers_mut().insert("content-length", "2");
            *request.body_mut() = SdkBody::from("{}");
        }
        // Every attempt says what it wants, so an SDK retry never inherits an earlier attempt's.
        cfg.interceptor_state().store_put(Answer(answer));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Answer(Some(body))) = cfg.load::<Answer>() {
            let mut response = HttpResponse::new(400u16.try_into()?, SdkBody::from(body.clone()));
            response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
            *context.response_mut() = response;
        }
        Ok(())
    }
}

/// The command API over a table of its own, with `faults` on its client.
async fn command_api(faults: &TransactionConflicts) -> (CommandApi, DynamoStore) {
    let sdk = strata_testing::sdk().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(faults.clone()).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = strata_testing::unique("strata-contention");
    TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
    strata_testing::stream_enabled(&sdk, &table).await.unwrap();
    let store = DynamoStore::new(client, table);
    // 16 writers on one stream: the last to win has lost up to 15 races, plus the injected
    // conflicts. The default policy (50 attempts within 16 s) is for ordinary contention; this test
    // raises the attempts and the time so that it asserts on the mapping, not on the policy.
    let repository = Repository::<Order, _>::new(store.clone())
        .with_cipher(FieldCipher::local())
        .with_upcasters(upcasters())
        .with_retry_policy(RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(500),
            max_elapsed: Duration::from_secs(120),
        });
    (CommandApi::new(Tenancy::Fixed("acme".into())).with_aggregate(repository).unwrap(), store)
}

/// Status and JSON body of one command sent as API Gateway delivers it.
async fn command(
    api: &CommandApi,
    id: &str,
    name: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let event = strata_testing::apigw_v2_event(
        "POST",
        &format!("/order/{id}/commands/{name}"),
        "",
        headers,
        Some(&body.to_string()),
    );
    let response = api.handle(lambda_http::request::from_str(&event.to_string()).unwrap()).await;
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (response.status().as_u16(), body)
}

/// Sends 16 `add_item` commands (distinct SKUs) at once to an order placed first, with an
/// Idempotency-Key each when `keyed`; checks every answer and the stream.
async fn sixteen_at_once(faults: TransactionConflicts, keyed: bool) {
    let (api, store) = command_api(&faults).await;
    let api = Arc::new(api);
    let place = serde_json::to_value(samples::place_order("c-1")).unwrap()["place_order"].clone();
    let (status, placed) = command(&api, "o-1", "place_order", &place, &[]).await;
    assert_eq!((status, placed["version"].as_u64()), (200, Some(1)), "{placed}");

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let item = json!({ "sku": format!("SKU-{i:02}"), "quantity": 1, "unit_price_minor": 100 });
                let key = format!("add-{i:02}");
                let headers = if keyed { vec![("idempotency-key", key.as_str())] } else { vec![] };
                command(&api, "o-1", "add_item", &item, &headers).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert!(!statuses.contains(&503), "a conflict answered 503: {answers:?}");
    assert_eq!(statuses, vec![200; 16], "{answers:?}");
    let versions: BTreeSet<u64> = answers.iter().map(|(_, body)| body["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, (2..=17).collect(), "each command its own version");

    let stream = StreamId::new("acme", "order", "o-1").unwrap();
    let page = store.read(&stream, 1, 100).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=17).collect::<Vec<_>>());
    let by_version: HashMap<u64, String> =
        page.events.iter().map(|e| (e.version, e.event_id.to_string())).collect();
    for (_, body) in &answers {
        let version = body["version"].as_u64().unwrap();
        assert_eq!(body["event_ids"], json!([by_version[&version]]), "the answer names the stored event");
    }
    let skus: BTreeSet<&str> = page.events[1..].iter().map(|e| e.payload["sku"].as_str().unwrap()).collect();
    assert_eq!(skus.len(), 16, "each command's item once");
    assert!(
        faults.injected.load(Ordering::Relaxed) >= 17 / faults.every,
        "every {}-th of at least 17 commit writes met a transaction",
        faults.every
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_keyed_commands_on_one_stream_all_succeed_through_transaction_conflicts() {
    // Commands with an Idempotency-Key commit in a transaction (commit + record).
    sixteen_at_once(TransactionConflicts::every(3), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_commands_on_one_stream_all_succeed_when_their_puts_meet_transactions() {
    // Without a key a command commits with one PutItem, which a transaction on the same item refuses.
    sixteen_at_once(TransactionConflicts::every(3), false).await;
}
