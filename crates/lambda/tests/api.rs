//! The command and query APIs in-process on the in-memory store, fed API Gateway HTTP API (v2)
//! events as Lambda delivers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lambda_http::{Body, Response};
use serde_json::{Value, json};
use strata_core::projection::{Delivered, Projector};
use strata_core::{EventStore, FieldCipher, InMemoryStore, Repository, SnapshotPolicy, StreamId};
use strata_lambda::{CommandApi, QueryApi, Tenancy};
use strata_orders::samples::address;
use strata_orders::{Order, OrderSummaries, upcasters};

use strata_testing::apigw_v2_event as apigw;

struct Apis {
    store: InMemoryStore,
    commands: CommandApi,
    queries: QueryApi,
    projector: Projector<OrderSummaries, InMemoryStore>,
}

fn apis() -> Apis {
    let store = InMemoryStore::new();
    let cipher = FieldCipher::local();
    let repo =
        || Repository::<Order, _>::new(store.clone()).with_cipher(cipher.clone()).with_upcasters(upcasters());
    let projector = || {
        Projector::new(OrderSummaries, store.clone()).with_cipher(cipher.clone()).with_upcasters(upcasters())
    };
    let tenancy = Tenancy::Fixed("acme".into());
    Apis {
        commands: CommandApi::new(tenancy.clone()).with_aggregate(repo()).unwrap(),
        queries: QueryApi::new(tenancy)
            .with_aggregate(repo().with_snapshot_policy(SnapshotPolicy::read_only()))
            .unwrap()
            .with_projection(projector())
            .unwrap()
            .with_admin(store.clone(), cipher.clone()),
        projector: projector(),
        store,
    }
}

struct Answer {
    status: u16,
    headers: lambda_http::http::HeaderMap,
    body: Value,
}

fn answer(response: Response<Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        Body::Empty => Value::Null,
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap(),
        _ => Value::Null,
    };
    Answer { status, headers, body }
}

impl Apis {
    async fn command(&self, id: &str, name: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
        let text = body.to_string();
        let event = apigw("POST", &format!("/order/{id}/commands/{name}"), "", headers, Some(&text));
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        answer(self.commands.handle(request).await)
    }

    async fn raw(&self, method: &str, path: &str, query: &str, body: Option<&str>, commands: bool) -> Answer {
        let event = apigw(method, path, query, &[("content-type", "application/json")], body);
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        answer(if commands {
            self.commands.handle(request).await
        } else {
            self.queries.handle(request).await
        })
    }

    async fn get(&self, path: &str, query: &str) -> Answer {
        self.raw("GET", path, query, None, false).await
    }

    async fn project(&self, id: &str) {
        let stream = StreamId::new("acme", "order", id).unwrap();
        let events = self.store.read(&stream, 1, 100).await.unwrap().events;
        self.projector.project(&stream, events.into_iter().map(Delivered::Event).collect()).await.unwrap();
    }
}

fn place(customer: &str) -> Value {
    json!({ "customer_id": customer, "customer_name": "Ada Lovelace", "customer_email": "ada@example.com",
            "shipping_address": address(), "currency": "GBP" })
}

fn is_problem(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    assert_eq!(a.body["status"], status);
    assert!(a.body["type"].as_str().unwrap().starts_with("urn:strata:problem:"));
}

#[tokio::test]
async fn an_order_goes_through_its_life_over_http() {
    let apis = apis();
    let placed = apis.command("o-1", "place_order", place("c-1"), &[("x-correlation-id", "corr-9")]).await;
    assert_eq!((placed.status, placed.body["version"].as_u64()), (200, Some(1)), "{}", placed.body);
    assert_eq!(placed.headers["etag"], "\"1\"");
    assert_eq!(placed.headers["x-correlation-id"], "corr-9");
    assert_eq!(placed.body["event_ids"].as_array().unwrap().len(), 1);
    let add = json!({ "sku": "BOOK", "quantity": 2, "unit_price_minor": 1250 });
    assert_eq!(apis.command("o-1", "add_item", add, &[("if-match", "\"1\"")]).await.status, 200);
    let pay = json!({ "amount_minor": 2500, "payment_reference": "p-1" });
    assert_eq!(apis.command("o-1", "pay", pay, &[]).await.body["version"], 3);
    let ship = json!({ "carrier": "DHL", "tracking_number": "T1" });
    assert_eq!(apis.command("o-1", "ship", ship, &[]).await.body["version"], 4);

    let state = apis.get("/order/o-1", "").await;
    assert_eq!((state.status, state.body["version"].as_u64()), (200, Some(4)));
    assert_eq!(state.body["state"]["status"], "shipped");
    assert_eq!(state.body["state"]["customer"]["name"], "Ada Lovelace");
    assert_eq!(state.headers["etag"], "\"4\"");
    let then = apis.get("/order/o-1", "version=2").await;
    assert_eq!(
        (then.body["version"].as_u64(), then.body["state"]["status"].as_str()),
        (Some(2), Some("placed"))
    );
    assert_eq!(then.body["state"]["lines"]["BOOK"]["quantity"], 2);
    let now = apis.get("/order/o-1", "at=2999-01-01T00:00:00Z").await;
    assert_eq!(now.body["version"], 4);
    let before = apis.get("/order/o-1", "at=2000-01-01T00:00:00Z").await;
    assert_eq!(before.body["version"], 0);

    let first = apis.get("/order/o-1/events", "limit=3").await;
    assert_eq!(first.body["events"].as_array().unwrap().len(), 3);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = apis.get("/order/o-1/events", &format!("cursor={cursor}")).await;
    let types: Vec<&str> =
        rest.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["OrderShipped"]);
    assert!(rest.body.get("next_cursor").is_none());
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_response_and_writes_nothing() {
    let apis = apis();
    let key = [("idempotency-key", "k-1")];
    let first = apis.command("o-2", "place_order", place("c-2"), &key).await;
    let again = apis.command("o-2", "place_order", place("c-2"), &key).await;
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(first.body, again.body);
    let stream = StreamId::new("acme", "order", "o-2").unwrap();
    assert_eq!(apis.store.read(&stream, 1, 10).await.unwrap().events.len(), 1);
    let other = apis.command("o-2", "place_order", place("c-3"), &key).await;
    is_problem(&other, 422);
    assert_eq!(other.body["code"], "idempotency_key_reused");
}

#[tokio::test]
async fn bad_requests_get_typed_problems() {
    let apis = apis();
    apis.command("o-3", "place_order", place("c-3"), &[]).await;

    let stale = apis.command("o-3", "cancel", json!({ "reason": "x" }), &[("if-match", "\"0\"")]).await;
    is_problem(&stale, 409);
    assert_eq!(stale.body["current_version"], 1);

    is_problem(&apis.raw("POST", "/order/o-3/commands/cancel", "", Some("{\"reason\": "), true).await, 400);
    let wrong_type = apis
        .command("o-3", "add_item", json!({ "sku": "B", "quantity": "many", "unit_price_minor": 1 }), &[])
        .await;
    is_problem(&wrong_type, 400);
    assert!(!wrong_type.body["detail"].as_str().unwrap().contains("many"), "values are not echoed");

    let rule = apis.command("o-3", "ship", json!({ "carrier": "DHL", "tracking_number": "T" }), &[]).await;
    is_problem(&rule, 422);
    assert_eq!(rule.body["code"], "not_paid");
    let mut bad_email = place("c-4");
    bad_email["customer_email"] = json!("not-an-email");
    let invalid = apis.command("o-4", "place_order", bad_email, &[]).await;
    is_problem(&invalid, 400);
    assert_eq!(invalid.body["code"], "invalid_input");

    is_problem(&apis.command("o-3", "teleport", json!({}), &[]).await, 404);
    is_problem(&apis.raw("POST", "/nothing/here", "", None, true).await, 404);
    is_problem(&apis.raw("GET", "/order/o-3/commands/cancel", "", None, true).await, 405);
    // `#` arrives percent-encoded in the raw path.
    is_problem(&apis.command("a%23b", "cancel", json!({ "reason": "x" }), &[]).await, 400);
    let long_key = "k".repeat(300);
    is_problem(
        &apis.command("o-3", "cancel", json!({ "reason": "x" }), &[("idempotency-key", &long_key)]).await,
        400,
    );
    is_problem(&apis.command("o-3", "cancel", json!([1]), &[]).await, 400);

    is_problem(&apis.get("/order/missing", "").await, 404);
    is_problem(&apis.get("/order/o-3", "version=9").await, 404);
    is_problem(&apis.get("/order/o-3", "version=x").await, 400);
    is_problem(&apis.get("/order/o-3", "version=1&at=2026-01-01T00:00:00Z").await, 400);
    is_problem(&apis.get("/order/o-3/events", "cursor=garbage!").await, 400);
    is_problem(&apis.get("/order/o-3/events", "limit=0").await, 400);
    is_problem(&apis.raw("DELETE", "/order/o-3", "", None, false).await, 405);
}

#[tokio::test]
async fn read_models_and_subject_rights_are_served() {
    let apis = apis();
    for (id, customer) in [("o-5", "c-5"), ("o-6", "c-5"), ("o-7", "c-7")] {
        apis.command(id, "place_order", place(customer), &[]).await;
        apis.project(id).await;
    }
    let view = apis.get("/views/order-summary/o-5", "").await;
    assert_eq!((view.status, view.body["version"].as_u64()), (200, Some(1)));
    assert_eq!(view.body["view"]["order"]["customer"]["email"], "ada@example.com");
    is_problem(&apis.get("/views/order-summary/o-404", "").await, 404);

    let page = apis.get("/views/order-summary", "lookup=c-5&limit=1").await;
    assert_eq!(page.body["items"][0]["stream"]["id"], "o-5");
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = apis.get("/views/order-summary", &format!("lookup=c-5&limit=1&cursor={cursor}")).await;
    assert_eq!(next.body["items"][0]["stream"]["id"], "o-6");
    is_problem(&apis.get("/views/order-summary", "").await, 400);

    let export = apis.get("/admin/subjects/c-5/export", "").await;
    assert_eq!(export.body["fields"].as_array().unwrap().len(), 6, "3 fields in each of 2 orders");
    let forgotten = apis.raw("DELETE", "/admin/subjects/c-5", "", None, false).await;
    assert_eq!(forgotten.status, 204);
    let state = apis.get("/order/o-5", "").await;
    assert_eq!(state.body["state"]["customer"]["name"], json!({ "$redacted": true }));
    let view = apis.get("/views/order-summary/o-5", "").await;
    assert_eq!(view.body["view"]["order"]["customer"]["email"], json!({ "$redacted": true }));
    assert_eq!(apis.get("/admin/subjects/c-5/export", "").await.body["fields"], json!([]));
}

#[tokio::test]
async fn a_body_that_is_not_utf8_or_a_header_that_is_not_ascii_is_a_400() {
    let apis = apis();
    let mut event = apigw("POST", "/order/o-9/commands/cancel", "", &[], None);
    event["body"] = json!("//4A/w==");
    event["isBase64Encoded"] = json!(true);
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    is_problem(&answer(apis.commands.handle(request).await), 400);

    // A header value that is not visible ASCII is refused like any other bad If-Match.
    apis.command("o-9", "place_order", place("c-9"), &[]).await;
    let event = apigw(
        "POST",
        "/order/o-9/commands/cancel",
        "",
        &[("if-match", "\"é\"")],
        Some("{\"reason\": \"x\"}"),
    );
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    is_problem(&answer(apis.commands.handle(request).await), 400);
    // What the runtime adapter answers when an event does not even convert into a request.
    let response = strata_lambda::http::api_gateway_v2_response(
        strata_lambda::Problem::new(strata_lambda::ProblemKind::BadRequest, "x").into_response(),
    );
    assert_eq!(
        (response["statusCode"].as_u64(), response["isBase64Encoded"].as_bool()),
        (Some(400), Some(false))
    );
    assert_eq!(response["headers"]["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_lambda_adapter_answers_api_gateway_events_in_api_gateway_format() {
    use lambda_http::{Context, LambdaEvent};
    let apis = apis();
    let handler = |request| apis.commands.handle(request);
    let body = place("c-10").to_string();
    let event =
        apigw("POST", "/order/o-10/commands/place_order", "", &[("x-correlation-id", "c-10")], Some(&body));
    let response = strata_lambda::http::invoke(&handler, LambdaEvent::new(event, Context::default())).await;
    assert_eq!(response["statusCode"], 200);
    assert_eq!(
        (response["headers"]["etag"].as_str(), response["headers"]["x-correlation-id"].as_str()),
        (Some("\"1\""), Some("c-10"))
    );
    let outcome: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["version"], 1);

    // Not an HTTP event at all: a 400 in API Gateway's format, not a failed invocation.
    let response =
        strata_lambda::http::invoke(&handler, LambdaEvent::new(json!({ "hello": 1 }), Context::default()))
            .await;
    assert_eq!(response["statusCode"], 400);
    assert_eq!(response["headers"]["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_header_that_changes_the_command_is_never_read_as_absent() {
    let apis = apis();
    apis.command("o-11", "place_order", place("c-11"), &[]).await;
    // Bytes over 0x7f reach the handler (API Gateway passes them); they must not read as "no key".
    let mut request = lambda_http::request::from_str(
        &apigw("POST", "/order/o-11/commands/cancel", "", &[], Some("{\"reason\": \"x\"}")).to_string(),
    )
    .unwrap();
    request
        .headers_mut()
        .insert("idempotency-key", lambda_http::http::HeaderValue::from_bytes(b"k\xe9").unwrap());
    let refused = answer(apis.commands.handle(request).await);
    is_problem(&refused, 400);
    let stream = StreamId::new("acme", "order", "o-11").unwrap();
    assert_eq!(apis.store.read(&stream, 1, 10).await.unwrap().events.len(), 1, "nothing written");
}

#[tokio::test]
async fn a_named_stage_prefix_is_not_part_of_the_route() {
    let apis = apis();
    let mut event = apigw("GET", "/prod/order/none", "", &[], None);
    event["requestContext"]["stage"] = json!("prod");
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let found = answer(apis.queries.handle(request).await);
    is_problem(&found, 404);
    assert_eq!(found.body["detail"], "acme/order-none has no events", "routed as /order/none");
}

#[tokio::test]
async fn the_actor_is_the_caller_api_gateway_verified_the_iam_role_or_user_or_the_jwt_subject() {
    let apis = apis();
    let send = |id: &str, authorizer: Value| {
        let body = place("c-12").to_string();
        let mut event = apigw("POST", &format!("/order/{id}/commands/place_order"), "", &[], Some(&body));
        event["requestContext"]["authorizer"] = authorizer;
        lambda_http::request::from_str(&event.to_string()).unwrap()
    };
    // The session name (often a person's email under IAM Identity Center) stays out of the history.
    let role = "arn:aws:sts::123456789012:assumed-role/ordering/ada@example.com";
    let iam = json!({ "iam": { "accessKey": "AKIA", "accountId": "123456789012", "callerId": "AROA:session-1",
                               "userArn": role, "userId": "AROA:session-1" } });
    let jwt = json!({ "jwt": { "claims": { "sub": "user-7" }, "scopes": ["strata/write"] } });
    let user =
        json!({ "iam": { "accountId": "123456789012", "userArn": "arn:aws:iam::123456789012:user/ci" } });
    let cases = [
        ("o-12", iam, Some("arn:aws:sts::123456789012:assumed-role/ordering")),
        ("o-13", jwt, Some("user-7")),
        ("o-14", Value::Null, None),
        ("o-15", user, Some("arn:aws:iam::123456789012:user/ci")),
    ];
    for (id, authorizer, actor) in cases {
        let placed = answer(apis.commands.handle(send(id, authorizer)).await);
        assert_eq!(placed.status, 200, "{}", placed.body);
        let stream = StreamId::new("acme", "order", id).unwrap();
        let events = apis.store.read(&stream, 1, 10).await.unwrap().events;
        assert_eq!(events[0].metadata.actor.as_deref(), actor, "{id}");
    }
}

#[tokio::test]
async fn a_subjects_export_pages_by_whole_events_and_resumes_where_it_stopped() {
    let apis = apis();
    for id in ["o-21", "o-22", "o-23"] {
        apis.command(id, "place_order", place("c-21"), &[]).await;
    }
    // Over HTTP: one page under the response budget; a cursor this API did not give is a 400.
    let whole = apis.get("/admin/subjects/c-21/export", "").await;
    assert_eq!(whole.body["fields"].as_array().unwrap().len(), 9, "3 fields in each of 3 orders");
    assert_eq!(whole.body["next_cursor"], Value::Null, "one page under the response budget");
    is_problem(&apis.get("/admin/subjects/c-21/export", "cursor=bm90LWEtY3Vyc29y").await, 400);
    // A cursor, then the subject forgotten: 409, the export is incomplete, and recorded failed.
    apis.raw("DELETE", "/admin/subjects/c-21", "", None, false).await;
    let cursor = "eDoxfGFjbWUvb3JkZXItby0yMg"; // "x:1|acme/order-o-22", as the API encodes it
    let gone = apis.get("/admin/subjects/c-21/export", &format!("cursor={cursor}")).await;
    is_problem(&gone, 409);
    let audit = strata_core::SubjectAudit::accesses(&apis.store, "acme", "c-21").await.unwrap();
    let last = &audit[audit.len() - 2..];
    assert_eq!(
        (last[0].action, last[0].outcome, last[1].outcome),
        (
            strata_core::SubjectAction::Export,
            strata_core::AccessOutcome::Attempted,
            strata_core::AccessOutcome::Failed
        )
    );
    assert_eq!(last[0].access_id, last[1].access_id, "an access's two records share its id");

    // The paging itself, with a budget of one byte: one event's fields per page, in stream order.
    let store = InMemoryStore::new();
    let cipher = FieldCipher::local();
    let orders = Repository::<Order, _>::new(store.clone()).with_cipher(cipher.clone());
    for id in ["o-31", "o-33"] {
        let stream = StreamId::new("acme", "order", id).unwrap();
        let command: strata_orders::OrderCommand =
            serde_json::from_value(json!({ "place_order": place("c-31") })).unwrap();
        orders.execute(&stream, &command, strata_core::CommandContext::default()).await.unwrap();
    }
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = cipher.export_subject_page(&store, "acme", "c-31", cursor.as_ref(), 1).await.unwrap();
        pages.push(page.fields.iter().map(|f| f.stream.id().to_owned()).collect::<Vec<_>>());
        if pages.len() == 1 {
            // A stream the subject gains between pages, sorting before the cursor: not exported
            // twice, and not at all by this export (it began before it).
            let stream = StreamId::new("acme", "order", "o-30").unwrap();
            let command: strata_orders::OrderCommand =
                serde_json::from_value(json!({ "place_order": place("c-31") })).unwrap();
            orders.execute(&stream, &command, strata_core::CommandContext::default()).await.unwrap();
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["o-31"; 3], vec!["o-33"; 3]]);
    let all = cipher.export_subject(&store, "acme", "c-31").await.unwrap();
    assert_eq!(all.len(), 9, "a new export sees all three");

    // Forgotten between pages: the next page says so (the API answers 409), never "that was all".
    let first = cipher.export_subject_page(&store, "acme", "c-31", None, 1).await.unwrap();
    cipher.keys().forget("acme", "c-31").await.unwrap();
    let after = cipher.export_subject_page(&store, "acme", "c-31", first.next.as_ref(), 1).await.unwrap();
    assert!(after.forgotten && after.fields.is_empty() && after.next.is_none());
}

#[tokio::test]
async fn every_export_and_forget_is_recorded_in_the_subjects_audit_partition_before_and_after_acting() {
    let apis = apis();
    apis.command("o-41", "place_order", place("c-41"), &[]).await;
    let admin = |method: &str, path: &str, query: &str| {
        let mut event = apigw(method, path, query, &[], None);
        event["requestContext"]["authorizer"] = json!({ "iam": {
            "accountId": "123456789012", "userArn": "arn:aws:sts::123456789012:assumed-role/privacy/ada@example.com" } });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    };
    assert_eq!(
        answer(apis.queries.handle(admin("GET", "/admin/subjects/c-41/export", "")).await).status,
        200
    );
    assert_eq!(answer(apis.queries.handle(admin("DELETE", "/admin/subjects/c-41", "")).await).status, 204);
    let audit = strata_core::SubjectAudit::accesses(&apis.store, "acme", "c-41").await.unwrap();
    let seen: Vec<(strata_core::SubjectAction, strata_core::AccessOutcome, Option<&str>, &str)> =
        audit.iter().map(|a| (a.action, a.outcome, a.actor.as_deref(), a.via.as_str())).collect();
    // The full ARN: the audit trail names the person (the event history does not).
    let actor = Some("arn:aws:sts::123456789012:assumed-role/privacy/ada@example.com");
    use strata_core::AccessOutcome::{Attempted, Done};
    use strata_core::SubjectAction::{Export, Forget};
    assert_eq!(
        seen,
        [
            (Export, Attempted, actor, "http"),
            (Export, Done, actor, "http"),
            (Forget, Attempted, actor, "http"),
            (Forget, Done, actor, "http")
        ]
    );
    assert_eq!(audit[0].access_id, audit[1].access_id, "an access's two records share its id");
    assert_ne!(audit[1].access_id, audit[2].access_id);
    // A cursor this API did not give is refused before anything is recorded.
    let bad = answer(apis.queries.handle(admin("GET", "/admin/subjects/c-41/export", "cursor=eA")).await);
    is_problem(&bad, 400);
    assert_eq!(strata_core::SubjectAudit::accesses(&apis.store, "acme", "c-41").await.unwrap().len(), 4);
    assert!(audit.windows(2).all(|w| w[0].at <= w[1].at));
}
