//! Authorization past the tenant, on the service's command and query APIs: the scope each route
//! needs under JWT, a team's object-level hook, admin routes asked of the main API, and the tenant
//! claim (missing, malformed, not allowed). Every refusal is a 403 problem and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use lambda_http::{Body, Response};
use serde_json::{Value, json};
use strata_core::{EventStore, FieldCipher, InMemoryStore, StreamId};
use strata_lambda::authorize::{Access, Action, Authorizer, Denied, Scopes, Target};
use strata_lambda::{CommandApi, QueryApi, Service, Settings, Tenancy};
use strata_orders::samples::address;
use strata_orders::{Order, OrderSummaries, upcasters};
use strata_testing::apigw_v2_event as apigw;

/// Customers may touch only orders whose id starts with their `sub`; nobody may cancel.
struct OwnOrdersNoCancel;

impl Authorizer for OwnOrdersNoCancel {
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied> {
        if access.action == Action::Command("cancel") {
            return Err(Denied::new("orders are cancelled by support only"));
        }
        match access.target {
            Target::Stream(stream) => match access.claim("sub") {
                Some(sub) if stream.id().starts_with(&format!("{sub}-")) => Ok(()),
                _ => Err(Denied::new(format!("{} is not yours", stream.id()))),
            },
            _ => Ok(()),
        }
    }
}

fn scopes() -> Scopes {
    Scopes {
        read: Some("strata/read".into()),
        write: Some("strata/write".into()),
        admin: Some("strata/admin".into()),
    }
}

struct Apis {
    store: InMemoryStore,
    commands: CommandApi,
    queries: QueryApi,
    admin: QueryApi,
}

fn apis(tenancy: Tenancy, authorizer: Option<OwnOrdersNoCancel>) -> Apis {
    let store = InMemoryStore::new();
    let mut service = Service::new(store.clone())
        .with_cipher(FieldCipher::local())
        .with_upcasters(upcasters())
        .aggregate::<Order>()
        .projection(OrderSummaries);
    if let Some(authorizer) = authorizer {
        service = service.with_authorizer(authorizer);
    }
    let settings = Settings { scopes: Some(scopes()), ..Settings::default() };
    let admin = Settings { admin: true, ..settings.clone() };
    Apis {
        commands: service.command_api(tenancy.clone(), &settings).unwrap(),
        queries: service.query_api(tenancy.clone(), &settings).unwrap(),
        admin: service.query_api(tenancy, &admin).unwrap(),
        store,
    }
}

/// A request with a verified JWT of these claims and scopes.
fn request(
    method: &str,
    path: &str,
    body: Option<&str>,
    claims: Value,
    scopes: &[&str],
) -> lambda_http::Request {
    let mut event = apigw(method, path, "", &[("content-type", "application/json")], body);
    event["requestContext"]["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": scopes } });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn place() -> String {
    json!({ "customer_id": "c-1", "customer_name": "Ada Lovelace", "customer_email": "ada@example.com",
            "shipping_address": address(), "currency": "GBP" })
    .to_string()
}

async fn status_and_body(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        Body::Empty => Value::Null,
        _ => Value::Null,
    };
    (status, body)
}

fn forbidden((status, body): (u16, Value), detail: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:strata:problem:forbidden");
    assert_eq!(body["detail"], detail);
}

async fn events_of(store: &InMemoryStore, tenant: &str, id: &str) -> usize {
    store.read(&StreamId::new(tenant, "order", id).unwrap(), 1, 10).await.unwrap().events.len()
}

#[tokio::test]
async fn each_route_needs_its_scope() {
    let apis = apis(Tenancy::Fixed("acme".into()), None);
    let claims = json!({ "sub": "u-1" });
    let body = place();
    // A read-only token cannot command; a write-only one cannot read; neither reaches the admin routes.
    let post = |scopes: &'static [&'static str]| {
        request("POST", "/order/o-1/commands/place_order", Some(&body), claims.clone(), scopes)
    };
    forbidden(
        status_and_body(apis.commands.handle(post(&["strata/read"])).await).await,
        "the token lacks the scope strata/write",
    );
    assert_eq!(events_of(&apis.store, "acme", "o-1").await, 0, "nothing written");
    let (status, _) = status_and_body(apis.commands.handle(post(&["strata/write"])).await).await;
    assert_eq!(status, 200);
    let get = |scopes: &'static [&'static str]| request("GET", "/order/o-1", None, claims.clone(), scopes);
    forbidden(
        status_and_body(apis.queries.handle(get(&["strata/write"])).await).await,
        "the token lacks the scope strata/read",
    );
    assert_eq!(status_and_body(apis.queries.handle(get(&["strata/read"])).await).await.0, 200);
    let export =
        request("GET", "/admin/subjects/c-1/export", None, claims.clone(), &["strata/read", "strata/write"]);
    forbidden(
        status_and_body(apis.admin.handle(export).await).await,
        "the token lacks the scope strata/admin",
    );
    let export = request("GET", "/admin/subjects/c-1/export", None, claims.clone(), &["strata/admin"]);
    assert_eq!(status_and_body(apis.admin.handle(export).await).await.0, 200);
}

#[tokio::test]
async fn a_kind_of_route_without_a_scope_is_not_checked() {
    let store = InMemoryStore::new();
    let service = Service::new(store.clone()).with_cipher(FieldCipher::local()).aggregate::<Order>();
    let settings = Settings {
        scopes: Scopes::from_values(None, None, Some("strata/admin".into())),
        ..Settings::default()
    };
    let commands = service.command_api(Tenancy::Fixed("acme".into()), &settings).unwrap();
    let body = place();
    let post = request("POST", "/order/o-1/commands/place_order", Some(&body), json!({ "sub": "u-1" }), &[]);
    assert_eq!(status_and_body(commands.handle(post).await).await.0, 200);
}

#[tokio::test]
async fn an_admin_route_asked_of_the_main_api_is_forbidden_even_with_the_admin_scope() {
    let apis = apis(Tenancy::Fixed("acme".into()), None);
    let scopes = &["strata/read", "strata/write", "strata/admin"];
    for (method, path) in [("GET", "/admin/subjects/c-1/export"), ("DELETE", "/admin/subjects/c-1")] {
        let asked = request(method, path, None, json!({ "sub": "u-1" }), scopes);
        forbidden(
            status_and_body(apis.queries.handle(asked).await).await,
            "the admin routes are served by the admin API only",
        );
    }
}

#[tokio::test]
async fn the_teams_hook_refuses_commands_and_reads_with_its_reason_and_writes_nothing() {
    let apis = apis(Tenancy::Fixed("acme".into()), Some(OwnOrdersNoCancel));
    let body = place();
    let all = &["strata/read", "strata/write"];
    let mine =
        request("POST", "/order/u-1-o/commands/place_order", Some(&body), json!({ "sub": "u-1" }), all);
    assert_eq!(status_and_body(apis.commands.handle(mine).await).await.0, 200);
    let theirs =
        request("POST", "/order/u-2-o/commands/place_order", Some(&body), json!({ "sub": "u-1" }), all);
    forbidden(status_and_body(apis.commands.handle(theirs).await).await, "u-2-o is not yours");
    assert_eq!(events_of(&apis.store, "acme", "u-2-o").await, 0);
    let cancel = request(
        "POST",
        "/order/u-1-o/commands/cancel",
        Some("{\"reason\":\"x\"}"),
        json!({ "sub": "u-1" }),
        all,
    );
    forbidden(
        status_and_body(apis.commands.handle(cancel).await).await,
        "orders are cancelled by support only",
    );
    assert_eq!(events_of(&apis.store, "acme", "u-1-o").await, 1, "the cancel wrote nothing");
    for path in ["/order/u-1-o", "/order/u-1-o/events"] {
        let read = request("GET", path, None, json!({ "sub": "u-2" }), all);
        forbidden(status_and_body(apis.queries.handle(read).await).await, "u-1-o is not yours");
    }
}

#[tokio::test]
async fn a_tenant_claim_missing_malformed_or_not_allowed_is_forbidden() {
    let allowed = BTreeSet::from(["acme".to_owned(), "globex".to_owned()]);
    let apis = apis(Tenancy::ClaimIn { claim: "tenant".into(), allowed }, None);
    let body = place();
    let post = |claims: Value| {
        request("POST", "/order/o-1/commands/place_order", Some(&body), claims, &["strata/write"])
    };
    let cases = [
        (json!({ "sub": "u-1" }), "the token has no tenant claim"),
        (json!({ "sub": "u-1", "tenant": "acme#S#order-o-1" }), "the token's tenant claim is not a tenant"),
        (json!({ "sub": "u-1", "tenant": "" }), "the token's tenant claim is not a tenant"),
        (
            json!({ "sub": "u-1", "tenant": "initech" }),
            "the token's tenant claim names a tenant this service does not serve",
        ),
    ];
    for (claims, detail) in cases {
        forbidden(status_and_body(apis.commands.handle(post(claims)).await).await, detail);
    }
    for tenant in ["initech", "acme"] {
        assert_eq!(events_of(&apis.store, tenant, "o-1").await, 0);
    }
    let (status, _) =
        status_and_body(apis.commands.handle(post(json!({ "sub": "u-1", "tenant": "globex" }))).await).await;
    assert_eq!(status, 200);
    assert_eq!(events_of(&apis.store, "globex", "o-1").await, 1);
}

#[test]
fn the_allowed_tenants_and_the_scopes_are_checked_as_configuration() {
    assert_eq!(
        Tenancy::allowed_tenants("acme, globex").unwrap(),
        BTreeSet::from(["acme".to_owned(), "globex".to_owned()])
    );
    for bad in ["acme,bad#tenant", "", "acme,,globex"] {
        let error = Tenancy::allowed_tenants(bad).unwrap_err().to_string();
        assert!(error.contains("STRATA_TENANT_ALLOWED"), "{bad:?}: {error}");
    }
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(Scopes::from_values(None, None, None), None, "IAM auth: no scope checked");
    let admin_only = Scopes::from_values(None, None, some("a")).unwrap();
    assert_eq!((admin_only.read, admin_only.write, admin_only.admin), (None, None, some("a")));
}
