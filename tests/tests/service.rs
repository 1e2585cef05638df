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
    // movements and activity of a-1 and a-2 (4 + 4) and the balance of a-2 (2); not the balance of
    // a-1.
    assert_eq!((outcome.applied, outcome.failed), (10, 2), "{outcome:?}");
    let views = |name: &str| service.projector(name).unwrap().unwrap();
    assert_eq!(views("movements").view_json(&account("a-1")).await.unwrap().map(|(_, v)| v), Some(2));
    assert_eq!(views("balance").view_json(&account("a-1")).await.unwrap(), None);
    assert_eq!(views("balance").view_json(&account("a-2")).await.unwrap().map(|(_, v)| v), Some(2));

    // The queue delivers a-1's messages again: the balance catches up, movements and activity skip
    // them.
    failing.on.store(false, Ordering::SeqCst);
    let retry = messages(&store, &[account("a-1")], "retry").await;
    let (response, outcome) = project_batch_each(&projectors, sqs_event(retry)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((outcome.applied, outcome.duplicates), (2, 4), "{outcome:?}");
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

/// The emulator's part of the ledger's own CDK stack (examples/ledger/infra, kept current by its
/// tests): its table, bus, the projector's queue and the transfer process's queue with their rules.
const LEDGER_TEMPLATE: &str = include_str!("../../examples/ledger/infra/emulator-template.json");

/// The ledger deployed from its own template and its one binary served locally (`cargo lambda
/// watch`, every role at once, the publisher's included): commands over HTTP events; the table's
/// stream through the publisher to the bus; the transfer process's rule delivers only the transfer's
/// request to its queue, delivered twice; the process's commits published in turn; the projector's
/// queue drained until the views show the transfer settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_walks_a_transfer_end_to_end_on_its_own_stack() {
    use strata_tests::local::{Answer, LocalFunctions, apigw, functions_env};
    let sdk = strata_testing::sdk().await;
    let stack = strata_testing::EmulatorStack::deploy_template(&sdk, LEDGER_TEMPLATE).await;
    let mut env = functions_env(&stack, "acme").unwrap();
    env.push(("STRATA_ROLE", "all".to_owned()));
    let table = stack.output("TableName").to_owned();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = |name: &str| {
        (
            stack.output(&format!("{name}QueueUrl")).to_owned(),
            stack.output(&format!("{name}QueueArn")).to_owned(),
        )
    };
    let (process_url, process_arn) = queue("ConsumerTransferProcess");
    let (views_url, views_arn) = queue("Projector");
    let functions = Arc::new(tokio::task::spawn_blocking(move || LocalFunctions::serve(&env)).await.unwrap());
    let invoke = |event: Value| {
        let functions = Arc::clone(&functions);
        async move {
            tokio::task::spawn_blocking(move || functions.invoke("ledger-service", &event)).await.unwrap()
        }
    };
    let http = |method: &'static str, path: String, query: &'static str, body: Option<Value>| async move {
        Answer::of(&invoke(apigw(method, &path, query, &[], body.as_ref())).await).unwrap()
    };
    for id in ["a-1", "a-2"] {
        let body = serde_json::json!({ "holder_id": "h-1", "holder_name": "Ada" });
        let opened = http("POST", format!("/account/{id}/commands/open"), "", Some(body)).await;
        assert_eq!(opened.status, 200, "{}", opened.body);
    }
    let body = serde_json::json!({ "amount_minor": 100, "reference": "cash" });
    let credited = http("POST", "/account/a-1/commands/credit".into(), "", Some(body)).await;
    assert_eq!(credited.status, 200, "{}", credited.body);
    let body = serde_json::json!({ "from": "a-1", "to": "a-2", "amount_minor": 25 });
    let requested = http("POST", "/transfer/t-1/commands/request".into(), "", Some(body)).await;
    assert_eq!(requested.status, 200, "{}", requested.body);

    // The publisher: every commit so far, as its mapping's filter passes them.
    let publish = |from: usize| {
        let (sdk, store) = (sdk.clone(), store.clone());
        async move {
            let records = strata_testing::stream_records(&sdk, store.client(), store.table()).await;
            let records = strata_tests::through_mapping_filter(&records);
            let batch = serde_json::to_value(strata_tests::stream_event(&records[from..])).unwrap();
            let response = invoke(batch).await;
            assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
            records.len()
        }
    };
    let published = publish(0).await;

    // The process's queue holds the transfer's request only (its rule's pattern), delivered twice.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let request = loop {
        let got = strata_tests::receive(&sqs, &process_url, &process_arn, 30).await;
        // SQS may hand over a duplicate: what counts is that every message is the request (the
        // rule's pattern), not how many copies arrive.
        for message in &got {
            let body: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
            assert_eq!(
                body["detail-type"], "TransferRequested",
                "only the request reaches the process: {body}"
            );
        }
        if let Some(first) = got.first() {
            break first.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no TransferRequested on the process's queue");
    };
    let mut again = request.clone();
    again["messageId"] = Value::from("redelivered");
    let response = invoke(serde_json::json!({ "Records": [request, again] })).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    let debits = store.read(&account("a-1"), 1, 10).await.unwrap().events;
    assert_eq!(debits.iter().filter(|e| e.event_type == "Debited").count(), 1, "the process ran once");
    publish(published).await;

    // The projector's queue: drained into the binary until the views show the transfer settled.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got = strata_tests::receive(&sqs, &views_url, &views_arn, 30).await;
        if !got.is_empty() {
            let response = invoke(serde_json::json!({ "Records": got })).await;
            assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
            for message in &got {
                let handle = message["receiptHandle"].as_str().unwrap();
                sqs.delete_message().queue_url(&views_url).receipt_handle(handle).send().await.unwrap();
            }
        }
        let status = http("GET", "/views/transfer-status/t-1".into(), "", None).await;
        let a2 = http("GET", "/views/balance/a-2".into(), "", None).await;
        if status.body["view"]["status"] == "completed" && a2.body["view"]["balance_minor"] == 25 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "views did not settle: {} {}", status.body, a2.body);
    }
    let a1 = http("GET", "/views/balance/a-1".into(), "", None).await;
    assert_eq!((a1.status, a1.body["view"]["balance_minor"].as_u64()), (200, Some(75)), "{}", a1.body);
    let listed = http("GET", "/views/balance".into(), "lookup=h-1", None).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(2), "{}", listed.body);
    let state = http("GET", "/transfer/t-1".into(), "", None).await;
    assert_eq!(state.body["version"], 3, "{}", state.body);
    // The read model over both aggregates: the account and the transfer it sent, in one listing.
    let activity = http("GET", "/views/activity".into(), "lookup=a-1", None).await;
    let kinds: Vec<&str> = activity.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["view"]["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["account", "transfer_sent"], "{}", activity.body);
}

/// Every function of the ledger's stack starts with the environment the construct gives it: the
/// ledger's binary, run with each function's deployed environment (the emulator template's `Env*`
/// outputs, resolved by the emulator's CloudFormation), gets past its configuration and asks the
/// Lambda runtime API (here a local listener) for its first event. A variable the construct forgot,
/// or a lease it disagrees on, stops the binary first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ledger_function_starts_with_its_deployed_environment() {
    use std::io::Read;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let sdk = strata_testing::sdk().await;
    let stack = strata_testing::EmulatorStack::deploy_template(&sdk, LEDGER_TEMPLATE).await;
    let mut functions: Vec<(String, serde_json::Map<String, Value>)> = stack
        .outputs()
        .iter()
        .filter(|(name, _)| name.starts_with("Env"))
        .map(|(name, text)| (name.clone(), serde_json::from_str(text).unwrap()))
        .collect();
    functions.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = functions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["EnvAdmin", "EnvCommand", "EnvConsumerTransferProcess", "EnvProjector", "EnvPublisher", "EnvQuery"]
    );

    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "-p", "ledger-service"])
        .current_dir(&workspace)
        .status();
    assert!(built.unwrap().success(), "cargo build -p ledger-service");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or(workspace.join("target"));
    let binary = target.join("debug").join("ledger-service");

    tokio::task::spawn_blocking(move || {
        for (name, variables) in functions {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let mut command = Command::new(&binary);
            command.env_clear().stdout(Stdio::null()).stderr(Stdio::piped());
            for (key, value) in &variables {
                command.env(key, value.as_str().unwrap());
            }
            for key in
                ["PATH", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            {
                if let Ok(value) = std::env::var(key) {
                    command.env(key, value);
                }
            }
            command
                .env("AWS_LAMBDA_FUNCTION_NAME", &name)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_RUNTIME_API", listener.local_addr().unwrap().to_string());
            let mut child = command.spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let request = loop {
                if let Ok((mut socket, _)) = listener.accept() {
                    socket.set_nonblocking(false).unwrap();
                    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut head = [0u8; 64];
                    let read = socket.read(&mut head).unwrap_or(0);
                    break String::from_utf8_lossy(&head[..read]).into_owned();
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let mut stderr = String::new();
                    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
                    panic!("{name}: the binary stopped ({status}) before asking for an event:\n{stderr}");
                }
                assert!(Instant::now() < deadline, "{name}: no request for an event within 60 s");
                std::thread::sleep(Duration::from_millis(20));
            };
            let _ = child.kill();
            let _ = child.wait();
            assert!(request.starts_with("GET /2018-06-01/runtime/invocation/next"), "{name}: {request}");
        }
    })
    .await
    .unwrap();
}
