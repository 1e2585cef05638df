//! What each role's code writes to the table, by IAM action and partition class, recorded at the
//! DynamoDB client (`RequestCounts::writes`) while each role of a service (the ledger: accounts with
//! personal data, transfers, three read models, a process that issues commands) does its work on the
//! emulator. Committed as `infra/role-writes.json`; the CDK tests (`infra/test/security.test.ts`) hold
//! each function's `dynamodb:LeadingKeys` against it. Partition classes come from the TableSpec on
//! both sides, so a new class, tag or write path that the IAM roles do not cover fails one of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use strata_core::{EventEnvelope, EventStore, SnapshotPolicy, StreamId};
use strata_dynamodb::{RequestCounts, TableSpec};
use strata_eventbridge::{SnapshotPruner, sqs_event, sqs_message};
use strata_lambda::runtime::{Deployment, Handler, Role};
use strata_lambda::{Settings, Tenancy};
use strata_testing::apigw_v2_event as apigw;
use strata_tests::{Pipeline, assert_committed, stream_event};

/// Each action's partition classes, by the TableSpec's tags (`{tenant}#{tag}#...`).
fn classes(counts: &RequestCounts, spec: &TableSpec) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_action: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (action, pk) in &counts.writes {
        let tag = pk.split('#').nth(1).unwrap_or_default();
        let class = spec.partition_classes.iter().find(|c| c.tag == tag).unwrap_or_else(|| {
            panic!("{action} of {pk:?}: no partition class of the TableSpec has tag {tag:?}")
        });
        by_action.entry(action.clone()).or_default().insert(class.name.clone());
    }
    by_action
}

fn handler(p: &Pipeline, role: Role, consumer: Option<&str>) -> Handler {
    let deployment = Deployment { sdk: p.sdk.clone(), store: p.store.clone(), cipher: p.cipher() };
    let functions = strata_example_ledger::functions(&deployment);
    // As the construct deploys the command side: a snapshot every 2 events (to have one to prune),
    // pruned by the publisher.
    let mut settings =
        Settings { snapshots: SnapshotPolicy::every(2).pruned_elsewhere(), ..Settings::default() };
    let http = matches!(role, Role::Command | Role::Query | Role::Admin);
    let tenancy = http.then(|| Tenancy::Fixed("acme".into()));
    Handler::new(role, functions, tenancy, &mut settings, consumer).unwrap()
}

async fn invoke(handler: &Handler, event: Value) -> Value {
    handler.invoke(LambdaEvent::new(event, Context::default())).await.unwrap()
}

async fn http(handler: &Handler, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) {
    let text = body.map(|b| b.to_string());
    let answer = invoke(handler, apigw(method, path, "", headers, text.as_deref())).await;
    assert!(answer["statusCode"].as_u64().is_some_and(|s| s < 300), "{method} {path}: {answer}");
}

async fn events(p: &Pipeline, category: &str, id: &str) -> Vec<EventEnvelope> {
    p.store.read(&StreamId::new("acme", category, id).unwrap(), 1, 100).await.unwrap().events
}

fn queue_batch(events: &[EventEnvelope]) -> Value {
    let messages = events.iter().enumerate().map(|(i, e)| sqs_message(e, &format!("m-{i}"))).collect();
    serde_json::to_value(sqs_event(messages)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_roles_writes_by_action_and_partition_class_are_the_committed_ones() {
    let p = Pipeline::new().await;
    let spec = TableSpec::strata();
    let mut roles: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();

    // command: opens two accounts (a new data subject each: data keys), credits one with an
    // idempotency key, requests a transfer; the fourth event of a-1 takes a snapshot.
    let command = handler(&p, Role::Command, None);
    p.counter.reset();
    for (id, holder) in [("a-1", "h-1"), ("a-2", "h-2")] {
        let body = json!({ "holder_id": holder, "holder_name": "Ada" });
        http(&command, "POST", &format!("/account/{id}/commands/open"), &[], Some(body)).await;
    }
    for reference in ["cash-1", "cash-2", "cash-3"] {
        let body = json!({ "amount_minor": 100, "reference": reference });
        http(&command, "POST", "/account/a-1/commands/credit", &[("idempotency-key", reference)], Some(body))
            .await;
    }
    let body = json!({ "from": "a-1", "to": "a-2", "amount_minor": 25 });
    http(&command, "POST", "/transfer/t-1/commands/request", &[], Some(body)).await;
    roles.insert("command", classes(&p.counter.take(), &spec));

    // query: state, events, a view listing: nothing written.
    let query = handler(&p, Role::Query, None);
    http(&query, "GET", "/account/a-1", &[], None).await;
    http(&query, "GET", "/account/a-1/events", &[], None).await;
    roles.insert("query", classes(&p.counter.take(), &spec));

    // projector: every event of both aggregates, as its queue delivers them.
    let projector = handler(&p, Role::Projector, None);
    let mut all = events(&p, "account", "a-1").await;
    all.extend(events(&p, "account", "a-2").await);
    all.extend(events(&p, "transfer", "t-1").await);
    invoke(&projector, queue_batch(&all)).await;
    roles.insert("projector", classes(&p.counter.take(), &spec));

    // consumer (the transfer process, which issues commands): the transfer's request.
    let consumer = handler(&p, Role::Consumer, Some("transfer-process"));
    let answer = invoke(&consumer, queue_batch(&events(&p, "transfer", "t-1").await[..1])).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(events(&p, "transfer", "t-1").await.len(), 3, "requested, debited, completed");
    roles.insert("consumer-issuing-commands", classes(&p.counter.take(), &spec));

    // publisher: pruning a stream's snapshots to the newest one when a snapshot is inserted.
    let records = p.stream_records().await;
    p.counter.reset();
    let pruned = SnapshotPruner::new(p.store.clone(), 1).prune(&stream_event(&records)).await;
    assert!(pruned >= 1, "a snapshot to prune");
    roles.insert("publisher", classes(&p.counter.take(), &spec));

    // admin: a subject's export, then its erasure.
    let admin = handler(&p, Role::Admin, None);
    http(&admin, "GET", "/admin/subjects/h-1/export", &[], None).await;
    http(&admin, "DELETE", "/admin/subjects/h-1", &[], None).await;
    roles.insert("admin", classes(&p.counter.take(), &spec));

    assert_committed(
        "infra/role-writes.json",
        &serde_json::to_value(&roles).unwrap(),
        "STRATA_BLESS=1 cargo test -p strata-tests --test leading_keys",
    );
}
