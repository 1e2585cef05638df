//! The ledger service end to end in memory: commands over HTTP through the registry-built command
//! API, the transfer process as a consumer delivered at least once, both read models through the
//! projector, queries over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use lambda_http::{Body, Response};
use serde_json::{Value, json};
use strata_core::projection::AnyProjector;
use strata_core::{EventEnvelope, EventStore, FieldCipher, InMemoryStore, Repository, StreamId};
use strata_eventbridge::{Effects, sqs_event, sqs_message};
use strata_example_ledger::{Account, Transfer, TransferProcess, service};
use strata_lambda::{CommandApi, QueryApi, Settings, Tenancy};

struct Ledger {
    store: InMemoryStore,
    commands: CommandApi,
    queries: QueryApi,
    projectors: Vec<Box<dyn AnyProjector>>,
    process: Effects<TransferProcess<InMemoryStore>, InMemoryStore>,
}

fn ledger() -> Ledger {
    let store = InMemoryStore::new();
    let cipher = FieldCipher::local();
    let service = service(store.clone()).with_cipher(cipher.clone());
    let tenancy = Tenancy::Fixed("acme".into());
    let settings = Settings { admin: true, ..Settings::default() };
    let process = TransferProcess::new(
        Repository::<Account, _>::new(store.clone()).with_cipher(cipher.clone()),
        Repository::<Transfer, _>::new(store.clone()).with_cipher(cipher.clone()),
    );
    Ledger {
        commands: service.command_api(tenancy.clone(), &settings).unwrap(),
        queries: service.query_api(tenancy, &settings).unwrap(),
        projectors: service.projectors().unwrap(),
        process: Effects::new(process, store.clone()).with_cipher(cipher),
        store,
    }
}

fn body(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        _ => Value::Null,
    };
    (status, body)
}

impl Ledger {
    async fn command(&self, path: &str, fields: Value) -> (u16, Value) {
        let text = fields.to_string();
        let event = strata_testing::apigw_v2_event("POST", path, "", &[], Some(&text));
        body(self.commands.handle(lambda_http::request::from_str(&event.to_string()).unwrap()).await)
    }

    async fn get(&self, path: &str, query: &str) -> (u16, Value) {
        let event = strata_testing::apigw_v2_event("GET", path, query, &[], None);
        body(self.queries.handle(lambda_http::request::from_str(&event.to_string()).unwrap()).await)
    }

    async fn events(&self, category: &str, id: &str) -> Vec<EventEnvelope> {
        let stream = StreamId::new("acme", category, id).unwrap();
        self.store.read(&stream, 1, 100).await.unwrap().events
    }

    /// Opens these accounts for holder `h`; each answers 200.
    async fn open(&self, accounts: &[&str]) {
        for account in accounts {
            let (status, answer) = self
                .command(
                    &format!("/account/{account}/commands/open"),
                    json!({ "holder_id": "h", "holder_name": "Ada" }),
                )
                .await;
            assert_eq!(status, 200, "{answer}");
        }
    }

    /// The transfer's request event, delivered once to the transfer process; its batch response
    /// reports nothing failed.
    async fn settle(&self, transfer: &str) -> strata_eventbridge::EffectsOutcome {
        let requested = self.events("transfer", transfer).await.remove(0);
        let (response, outcome) =
            self.process.handle_batch(sqs_event(vec![sqs_message(&requested, "m-1")])).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        outcome
    }

    /// Every event of these streams, through every projection, as one SQS batch.
    async fn project(&self, streams: &[(&str, &str)]) {
        let mut messages = Vec::new();
        for (category, id) in streams {
            for event in self.events(category, id).await {
                messages.push(sqs_message(&event, &format!("{}-p", event.event_id)));
            }
        }
        let projectors: Vec<&dyn AnyProjector> = self.projectors.iter().map(AsRef::as_ref).collect();
        let (response, _) =
            strata_eventbridge::project_batch_each(&projectors, sqs_event(messages)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
}

#[tokio::test]
async fn a_transfer_moves_money_once_however_often_its_event_is_delivered() {
    let ledger = ledger();
    for (account, holder) in [("a-1", "h-1"), ("a-2", "h-2")] {
        let (status, _) = ledger
            .command(
                &format!("/account/{account}/commands/open"),
                json!({ "holder_id": holder, "holder_name": "Ada" }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = ledger
        .command("/account/a-1/commands/credit", json!({ "amount_minor": 100, "reference": "cash" }))
        .await;
    assert_eq!(status, 200);
    let (status, requested) = ledger
        .command("/transfer/t-1/commands/request", json!({ "from": "a-1", "to": "a-2", "amount_minor": 60 }))
        .await;
    assert_eq!((status, requested["version"].as_u64()), (200, Some(1)), "{requested}");

    // Delivered three times: twice in one batch (an SQS duplicate) and again later (a replay).
    let requested = ledger.events("transfer", "t-1").await.remove(0);
    let batch = sqs_event(vec![sqs_message(&requested, "m-1"), sqs_message(&requested, "m-2")]);
    let (response, outcome) = ledger.process.handle_batch(batch).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((outcome.done, outcome.duplicates), (1, 1));
    let (_, again) =
        ledger.process.handle_batch(sqs_event(vec![sqs_message(&requested, "m-3")])).await.unwrap();
    assert_eq!((again.done, again.duplicates), (0, 1));

    let debits: Vec<String> =
        ledger.events("account", "a-1").await.iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(debits, ["AccountOpened", "Credited", "Debited"]);
    let credits: Vec<String> =
        ledger.events("account", "a-2").await.iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(credits, ["AccountOpened", "Credited"]);
    let steps: Vec<String> =
        ledger.events("transfer", "t-1").await.iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(steps, ["TransferRequested", "TransferDebited", "TransferCompleted"]);

    // Both read models, each from its own category, through one projector function.
    ledger.project(&[("account", "a-1"), ("account", "a-2"), ("transfer", "t-1")]).await;
    let (status, balance) = ledger.get("/views/balance/a-1", "").await;
    assert_eq!((status, balance["view"]["balance_minor"].as_u64()), (200, Some(40)), "{balance}");
    assert_eq!(balance["view"]["holder_name"], "Ada");
    let (_, listed) = ledger.get("/views/balance", "lookup=h-2").await;
    assert_eq!(listed["items"][0]["view"]["balance_minor"], 60, "{listed}");
    let (_, transfer) = ledger.get("/views/transfer-status/t-1", "").await;
    assert_eq!(transfer["view"]["status"], "completed", "{transfer}");
    let (_, out_of_a1) = ledger.get("/views/transfer-status", "lookup=a-1").await;
    assert_eq!(out_of_a1["items"].as_array().unwrap().len(), 1);

    // One read model over both aggregates' streams: the account and the transfer it sent, listed
    // together; each view also by its stream (`?category=` for the other category).
    let (status, activity) = ledger.get("/views/activity", "lookup=a-1").await;
    assert_eq!(status, 200, "{activity}");
    let lines: Vec<(&str, &str)> = activity["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["stream"]["category"].as_str().unwrap(), item["view"]["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [("account", "account"), ("transfer", "transfer_sent")], "{activity}");
    assert_eq!(activity["items"][0]["view"]["balance_minor"], 40, "{activity}");
    assert_eq!(activity["items"][1]["view"]["status"], "completed", "{activity}");
    let (_, sent) = ledger.get("/views/activity/t-1", "category=transfer").await;
    assert_eq!((sent["view"]["to"].as_str(), sent["version"].as_u64()), (Some("a-2"), Some(3)), "{sent}");
    let (_, own) = ledger.get("/views/activity/a-2", "").await;
    assert_eq!(own["view"]["balance_minor"], 60, "{own}");
    let (status, refused) = ledger.get("/views/activity/t-1", "category=order").await;
    assert_eq!(status, 400, "{refused}");
    let (_, listed) = ledger.get("/views/activity", "lookup=a-2").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "a-2 sent nothing: {listed}");

    // Each aggregate's state through the same query function.
    let (_, account) = ledger.get("/account/a-2", "").await;
    assert_eq!(account["state"]["balance_minor"], 60);
    let (_, state) = ledger.get("/transfer/t-1", "").await;
    assert_eq!((state["version"].as_u64(), &state["state"]["status"]), (Some(3), &json!("completed")));
}

#[tokio::test]
async fn a_transfer_over_the_balance_fails_and_moves_nothing() {
    let ledger = ledger();
    ledger.open(&["a-1", "a-2"]).await;
    ledger
        .command("/transfer/t-9/commands/request", json!({ "from": "a-1", "to": "a-2", "amount_minor": 5 }))
        .await;
    assert_eq!(ledger.settle("t-9").await.done, 1);
    let (_, state) = ledger.get("/transfer/t-9", "").await;
    assert_eq!(state["state"]["status"], "failed", "{state}");
    assert_eq!(ledger.events("account", "a-1").await.len(), 1, "nothing debited");
    assert_eq!(ledger.events("account", "a-2").await.len(), 1, "nothing credited");
}

#[tokio::test]
async fn the_registry_refuses_what_would_collide_and_routes_by_category() {
    let ledger = ledger();
    let (status, problem) = ledger.command("/order/o-1/commands/place_order", json!({})).await;
    assert_eq!((status, problem["type"].as_str()), (404, Some("urn:strata:problem:not-found")));
    let (status, problem) = ledger.command("/transfer/t-1/commands/open", json!({ "holder_id": "h" })).await;
    assert_eq!(status, 404, "open is an account command: {problem}");
    let (status, problem) =
        ledger.command("/account/a-1/commands/credit", json!({ "amount_minor": 1 })).await;
    assert_eq!(status, 400, "{problem}");

    let twice = service(InMemoryStore::new()).aggregate::<Account>();
    let error = twice.command_api(Tenancy::Fixed("acme".into()), &Settings::default()).err().unwrap();
    assert_eq!(error.to_string(), "aggregate \"account\" is registered twice");
    let twice = service(InMemoryStore::new()).projection(strata_example_ledger::Balances);
    assert!(twice.projectors().is_err());
    let no_cipher = service(InMemoryStore::new());
    let admin = Settings { admin: true, ..Settings::default() };
    assert_eq!(
        no_cipher.query_api(Tenancy::Fixed("acme".into()), &admin).err(),
        Some(strata_lambda::RegistryError::AdminWithoutCipher)
    );
}

#[tokio::test]
async fn a_refused_credit_refunds_the_debit_and_a_rerun_repeats_nothing() {
    let ledger = ledger();
    ledger.command("/account/a-1/commands/open", json!({ "holder_id": "h", "holder_name": "Ada" })).await;
    ledger.command("/account/a-1/commands/credit", json!({ "amount_minor": 50, "reference": "cash" })).await;
    // a-2 was never opened: its credit is refused.
    ledger
        .command("/transfer/t-3/commands/request", json!({ "from": "a-1", "to": "a-2", "amount_minor": 20 }))
        .await;
    let requested = ledger.events("transfer", "t-3").await.remove(0);
    let (response, _) =
        ledger.process.handle_batch(sqs_event(vec![sqs_message(&requested, "m-1")])).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let steps = |events: Vec<EventEnvelope>| events.into_iter().map(|e| e.event_type).collect::<Vec<_>>();
    assert_eq!(
        steps(ledger.events("transfer", "t-3").await),
        ["TransferRequested", "TransferDebited", "TransferCreditRefused", "TransferFailed"]
    );
    let (_, account) = ledger.get("/account/a-1", "").await;
    assert_eq!(account["state"]["balance_minor"], 50, "refunded: {account}");

    // The process run again for the same event (a crash before its done record, a replay after
    // the records expired): the transfer is settled, nothing moves.
    let delivery = strata_eventbridge::Delivery {
        event_id: requested.event_id,
        stream: requested.stream.clone(),
        version: requested.version,
        metadata: requested.metadata.clone(),
    };
    let event = strata_example_ledger::TransferEvent::TransferRequested {
        from: "a-1".into(),
        to: "a-2".into(),
        amount_minor: 20,
    };
    strata_eventbridge::Consumer::handle(ledger.process.consumer(), event, &delivery).await.unwrap();
    assert_eq!(
        steps(ledger.events("account", "a-1").await),
        ["AccountOpened", "Credited", "Debited", "Credited"]
    );
    assert_eq!(ledger.events("transfer", "t-3").await.len(), 4);
}

#[tokio::test]
async fn callers_cannot_record_the_process_steps_or_take_its_keys() {
    let ledger = ledger();
    ledger
        .command("/transfer/t-1/commands/request", json!({ "from": "a-1", "to": "a-2", "amount_minor": 5 }))
        .await;
    for step in ["record_debit", "record_credit", "refuse_credit", "fail"] {
        let (status, problem) =
            ledger.command(&format!("/transfer/t-1/commands/{step}"), json!({ "reason": "x" })).await;
        assert_eq!(status, 404, "{step}: {problem}");
    }
    let text = json!({ "amount_minor": 1, "reference": "r" }).to_string();
    let key = format!("{}transfer/t-1/credit", strata_core::RESERVED_KEY_PREFIX);
    let event = strata_testing::apigw_v2_event(
        "POST",
        "/account/a-2/commands/credit",
        "",
        &[("idempotency-key", &key)],
        Some(&text),
    );
    let (status, problem) =
        body(ledger.commands.handle(lambda_http::request::from_str(&event.to_string()).unwrap()).await);
    assert_eq!(status, 400, "{problem}");
    let document = service(InMemoryStore::new()).command_document("ledger", "0");
    assert!(document["paths"]["/transfer/{id}/commands/request"].is_object());
    assert!(
        document["paths"]["/transfer/{id}/commands/fail"].is_null(),
        "internal commands are not documented"
    );
}

#[tokio::test]
async fn a_refused_step_stays_refused_when_the_funds_arrive_before_a_rerun() {
    use strata_core::IdempotencyStore;
    let ledger = ledger();
    ledger.open(&["a-1", "a-2"]).await;
    ledger
        .command("/transfer/t-6/commands/request", json!({ "from": "a-1", "to": "a-2", "amount_minor": 10 }))
        .await;
    // An earlier run found a-1 short and wrote its refusal under the debit's key, then died before
    // recording the failure; the funds arrive before the rerun.
    let transfer = StreamId::new("acme", "transfer", "t-6").unwrap();
    let refusal = strata_core::IdempotencyRecord {
        tenant: "acme".into(),
        key: strata_example_ledger::step_key(&transfer, "debit"),
        request_hash: "refused:insufficient_funds".into(),
        outcome: json!({ "refused": "insufficient_funds" }),
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
    };
    ledger.store.put_record(refusal).await.unwrap();
    ledger.command("/account/a-1/commands/credit", json!({ "amount_minor": 100, "reference": "cash" })).await;

    ledger.settle("t-6").await;

    let (_, state) = ledger.get("/transfer/t-6", "").await;
    assert_eq!(
        (&state["state"]["status"], &state["state"]["failure"]),
        (&json!("failed"), &json!("insufficient_funds"))
    );
    assert_eq!(ledger.events("account", "a-1").await.len(), 2, "opened and credited; never debited");
}

#[tokio::test]
async fn a_transfer_of_the_longest_id_settles() {
    let ledger = ledger();
    ledger.open(&["a-1", "a-2"]).await;
    ledger.command("/account/a-1/commands/credit", json!({ "amount_minor": 5, "reference": "cash" })).await;
    let id = "t".repeat(strata_core::MAX_ID_LEN);
    let (status, _) = ledger
        .command(
            &format!("/transfer/{id}/commands/request"),
            json!({ "from": "a-1", "to": "a-2", "amount_minor": 5 }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ledger.settle(&id).await.done, 1);
    let (_, account) = ledger.get("/account/a-2", "").await;
    assert_eq!(account["state"]["balance_minor"], 5, "{account}");
}
