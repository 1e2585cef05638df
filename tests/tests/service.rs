//! A service of several parts on the emulator, built from the registry: two projections of one
//! category where one's view writes fail for a stream (the other advances; the retry applies each
//! event once per projection), and a consumer whose event is delivered three times (its effect runs
//! once, its records in the table).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_core::projection::{AnyProjector, Projection};
use strata_core::{Aggregate, CommandContext, EventEnvelope, EventStore, FieldCipher, Repository, StreamId};
use strata_dynamodb::{DynamoStore, TableSpec};
use strata_eventbridge::{Effects, project_batch_each, sqs_event, sqs_message};
use strata_example_ledger::{
    Account, AccountCommand, AccountEvent, Transfer, TransferCommand, TransferProcess,
};

/// Fails every view write of one projection for one stream while switched on, as a throttled or
/// unreachable table would.
#[derive(Debug, Clone, Default)]
struct FailingViews {
    on: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
}

impl Intercept for FailingViews {
    fn name(&self) -> &'static str {
        "strata-tests::FailingViews"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let put = request.headers().get("x-amz-target") == Some("DynamoDB_20120810.PutItem");
        let body: Value =
            request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        let item = &body["Item"];
        if put
            && self.on.load(Ordering::SeqCst)
            && item["projection"]["S"] == "balance"
            && item["stream_id"]["S"] == "a-1"
        {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err("view store unavailable (injected)".into());
        }
        Ok(())
    }
}

/// A second read model of accounts: how many movements each has seen.
#[derive(Debug, Clone, Copy)]
struct Movements;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MovementCount {
    events: u64,
}

impl Projection for Movements {
    type Event = AccountEvent;
    type View = MovementCount;
    const NAME: &'static str = "movements";
    const CATEGORY: &'static str = Account::CATEGORY;

    fn apply(
        &self,
        view: Option<MovementCount>,
        _: &AccountEvent,
        _: &EventEnvelope,
    ) -> Option<MovementCount> {
        Some(MovementCount { events: view.map_or(0, |v| v.events) + 1 })
    }
}

async fn store_with(failing: &FailingViews) -> DynamoStore {
    let sdk = strata_testing::sdk().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(failing.clone()).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = strata_testing::unique("strata-service");
    TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
    DynamoStore::new(client, table)
}

fn account(id: &str) -> StreamId {
    StreamId::new("acme", "account", id).unwrap()
}

async fn messages(
    store: &DynamoStore,
    streams: &[StreamId],
    tag: &str,
) -> Vec<aws_lambda_events::event::sqs::SqsMessage> {
    let mut messages = Vec::new();
    for stream in streams {
        for event in store.read(stream, 1, 100).await.unwrap().events {
            messages.push(sqs_message(&event, &format!("{}-{tag}", event.event_id)));
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_projection_failing_for_a_stream_holds_back_neither_the_other_nor_its_retry() {
    let failing = FailingViews::default();
    let store = store_with(&failing).await;
    let service =
        strata_example_ledger::service(store.clone()).with_cipher(FieldCipher::local()).projection(Movements);
    let accounts = Repository::<Account, _>::new(store.clone()).with_cipher(FieldCipher::local());
    for id in ["a-1", "a-2"] {
        let open = AccountCommand::Open { holder_id: format!("h-{id}"), holder_name: "Ada".into() };
        accounts.execute(&account(id), &open, CommandContext::default()).await.unwrap();
        let credit = AccountCommand::Credit { amount_minor: 10, reference: "cash".into() };
        accounts.execute(&account(id), &credit, CommandContext::default()).await.unwrap();
    }
    let projectors = service.projectors().unwrap();
    let projectors: Vec<&dyn AnyProjector> = projectors.iter().map(AsRef::as_ref).collect();

    failing.on.store(true, Ordering::SeqCst);
    let batch = messages(&store, &[account("a-1"), account("a-2")], "first").await;
    let (response, outcome) = project_batch_each(&projectors, sqs_event(batch)).await.unwrap();
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed.len(), 2, "a-1's two messages are retried: {failed:?}");
    assert!(failing.failed.load(Ordering::SeqCst) >= 1);
    // movements of a-1 and a-2 (2 + 2) and the balance of a-2 (2); not the balance of a-1.
    assert_eq!((outcome.applied, outcome.failed), (6, 2), "{outcome:?}");
    let views = |name: &str| service.projector(name).unwrap();
    assert_eq!(views("movements").view_json(&account("a-1")).await.unwrap().map(|(_, v)| v), Some(2));
    assert_eq!(views("balance").view_json(&account("a-1")).await.unwrap(), None);
    assert_eq!(views("balance").view_json(&account("a-2")).await.unwrap().map(|(_, v)| v), Some(2));

    // The queue delivers a-1's messages again: the balance catches up, movements skip them.
    failing.on.store(false, Ordering::SeqCst);
    let retry = messages(&store, &[account("a-1")], "retry").await;
    let (response, outcome) = project_batch_each(&projectors, sqs_event(retry)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((outcome.applied, outcome.duplicates), (2, 2), "{outcome:?}");
    let (movements, _) = views("movements").view_json(&account("a-1")).await.unwrap().unwrap();
    assert_eq!(movements["events"], 2, "each event once");
    let (balance, version) = views("balance").view_json(&account("a-1")).await.unwrap().unwrap();
    assert_eq!((balance["balance_minor"].as_u64(), version), (Some(10), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_delivered_three_times_moves_the_money_once() {
    let store = store_with(&FailingViews::default()).await;
    let cipher = FieldCipher::local();
    let accounts = Repository::<Account, _>::new(store.clone()).with_cipher(cipher.clone());
    let transfers = Repository::<Transfer, _>::new(store.clone()).with_cipher(cipher.clone());
    for id in ["a-1", "a-2"] {
        let open = AccountCommand::Open { holder_id: "h".into(), holder_name: "Ada".into() };
        accounts.execute(&account(id), &open, CommandContext::default()).await.unwrap();
    }
    let credit = AccountCommand::Credit { amount_minor: 100, reference: "cash".into() };
    accounts.execute(&account("a-1"), &credit, CommandContext::default()).await.unwrap();
    let transfer = StreamId::new("acme", "transfer", "t-1").unwrap();
    let request = TransferCommand::Request { from: "a-1".into(), to: "a-2".into(), amount_minor: 30 };
    transfers.execute(&transfer, &request, CommandContext::default()).await.unwrap();
    let requested = store.read(&transfer, 1, 1).await.unwrap().events.remove(0);
    let process = TransferProcess::new(
        Repository::<Account, _>::new(store.clone()).with_cipher(cipher.clone()),
        Repository::<Transfer, _>::new(store.clone()).with_cipher(cipher.clone()),
    );
    let effects = Effects::new(process, store.clone()).with_cipher(cipher);

    // Twice in one batch (SQS at-least-once), then once more later (an archive replay).
    let twice = sqs_event(vec![sqs_message(&requested, "m-1"), sqs_message(&requested, "m-2")]);
    let (response, first) = effects.handle_batch(twice).await.unwrap();
    let (_, replayed) = effects.handle_batch(sqs_event(vec![sqs_message(&requested, "m-3")])).await.unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!((first.done, first.duplicates, replayed.done, replayed.duplicates), (1, 1, 0, 1));
    let balance = |id: &'static str| {
        let accounts = &accounts;
        async move { accounts.load(&account(id)).await.unwrap().state.balance_minor }
    };
    assert_eq!((balance("a-1").await, balance("a-2").await), (70, 30));
    let steps: Vec<String> =
        store.read(&transfer, 1, 10).await.unwrap().events.into_iter().map(|e| e.event_type).collect();
    assert_eq!(steps, ["TransferRequested", "TransferDebited", "TransferCompleted"]);
    assert_eq!(<Transfer as Aggregate>::CATEGORY, transfer.category());
}

/// The ledger's one binary served locally (`cargo lambda watch`) on a stack of the emulator
/// template, every role at once: commands and queries as API Gateway events, then the transfer's
/// events as the queue delivers them (twice) to the projectors and the transfer process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_binary_walks_a_transfer_end_to_end() {
    use strata_tests::local::{Answer, LocalFunctions, apigw, functions_env};
    let sdk = strata_testing::sdk().await;
    let stack = strata_testing::EmulatorStack::deploy(&sdk).await;
    let mut env = functions_env(&stack, "acme").unwrap();
    env.push(("STRATA_ROLE", "all".to_owned()));
    let table = stack.output("TableName").to_owned();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let transfer = StreamId::new("acme", "transfer", "t-1").unwrap();
    let requested = tokio::task::spawn_blocking(move || {
        let f = LocalFunctions::serve(&env);
        let call = |method: &str, path: &str, query: &str, body: Option<Value>| {
            Answer::of(&f.invoke("ledger-service", &apigw(method, path, query, &[], body.as_ref()))).unwrap()
        };
        for id in ["a-1", "a-2"] {
            let opened = call(
                "POST",
                &format!("/account/{id}/commands/open"),
                "",
                Some(serde_json::json!({ "holder_id": "h-1", "holder_name": "Ada" })),
            );
            assert_eq!(opened.status, 200, "{}", opened.body);
        }
        let credited = call(
            "POST",
            "/account/a-1/commands/credit",
            "",
            Some(serde_json::json!({ "amount_minor": 100, "reference": "cash" })),
        );
        assert_eq!(credited.status, 200, "{}", credited.body);
        let requested = call(
            "POST",
            "/transfer/t-1/commands/request",
            "",
            Some(serde_json::json!({ "from": "a-1", "to": "a-2", "amount_minor": 25 })),
        );
        assert_eq!(requested.status, 200, "{}", requested.body);
        f
    })
    .await
    .unwrap();
    let functions = requested;
    let event = store.read(&transfer, 1, 1).await.unwrap().events.remove(0);
    let batch = serde_json::to_value(sqs_event(vec![sqs_message(&event, "m-1"), sqs_message(&event, "m-2")]))
        .unwrap();
    let accounts: Vec<StreamId> = ["a-1", "a-2"].iter().map(|id| account(id)).collect();
    let outcome = tokio::task::spawn_blocking(move || {
        let response = functions.invoke("ledger-service", &batch);
        (functions, response)
    })
    .await
    .unwrap();
    let (functions, response) = outcome;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    // The process ran once: one debit, one credit; then the views of everything, through the queue.
    let mut messages = messages(&store, &accounts, "views").await;
    messages.extend(messages_of(&store, &transfer).await);
    let batch = serde_json::to_value(sqs_event(messages)).unwrap();
    tokio::task::spawn_blocking(move || {
        let response = functions.invoke("ledger-service", &batch);
        assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
        let get = |path: &str, query: &str| {
            Answer::of(&functions.invoke("ledger-service", &apigw("GET", path, query, &[], None))).unwrap()
        };
        let a1 = get("/views/balance/a-1", "");
        assert_eq!((a1.status, a1.body["view"]["balance_minor"].as_u64()), (200, Some(75)), "{}", a1.body);
        let listed = get("/views/balance", "lookup=h-1");
        assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(2), "{}", listed.body);
        let status = get("/views/transfer-status/t-1", "");
        assert_eq!(status.body["view"]["status"], "completed", "{}", status.body);
        let state = get("/transfer/t-1", "");
        assert_eq!(state.body["version"], 3, "{}", state.body);
    })
    .await
    .unwrap();
    let debits = store.read(&account("a-1"), 1, 10).await.unwrap().events;
    assert_eq!(debits.iter().filter(|e| e.event_type == "Debited").count(), 1);
}

async fn messages_of(
    store: &DynamoStore,
    stream: &StreamId,
) -> Vec<aws_lambda_events::event::sqs::SqsMessage> {
    messages(store, std::slice::from_ref(stream), "views").await
}
