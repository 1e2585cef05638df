//! The committed OpenAPI documents (`functions/*/openapi.json`) are exactly what the code generates.
//! Regenerate with `STRATA_BLESS=1 cargo test -p strata-tests --test openapi`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use strata_core::InMemoryStore;

fn check(function: &str, generated: &Value) {
    strata_tests::assert_committed(
        &format!("functions/{function}/openapi.json"),
        generated,
        "cargo test -p strata-tests --test openapi",
    );
}

#[test]
fn the_command_api_document_matches_the_code() {
    let service = strata_orders::service(InMemoryStore::new());
    let document = service.command_document("Strata orders: commands", env!("CARGO_PKG_VERSION"));
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths.len(), 6, "one path per order command: {paths:?}");
    assert!(document["paths"]["/order/{id}/commands/add_item"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["quantity"].is_object());
    assert!(document["components"]["schemas"]["Address"].is_object());
    // The problem body's schema is derived from the type the API answers with.
    let problem = &document["components"]["schemas"]["Problem"]["properties"];
    for member in ["type", "title", "status", "detail", "code", "current_version", "retryable"] {
        assert!(problem[member].is_object(), "Problem lacks {member}: {problem}");
    }
    check("command-api", &document);
}

#[test]
fn the_query_api_document_matches_the_code() {
    let service = strata_orders::service(InMemoryStore::new());
    let document = service.query_document("Strata orders: queries", env!("CARGO_PKG_VERSION"), true);
    assert!(document["paths"]["/views/order-summary"]["get"].is_object());
    check("query-api", &document);
}

#[test]
fn a_service_of_two_aggregates_documents_both() {
    let service = strata_example_ledger::service(InMemoryStore::new());
    let commands = service.command_document("ledger", "0");
    let queries = service.query_document("ledger", "0", false);
    for path in
        ["/account/{id}/commands/open", "/account/{id}/commands/debit", "/transfer/{id}/commands/request"]
    {
        assert!(commands["paths"][path]["post"].is_object(), "{path}");
    }
    for path in ["/account/{id}", "/transfer/{id}/events", "/views/balance/{id}", "/views/transfer-status"] {
        assert!(queries["paths"][path]["get"].is_object(), "{path}");
    }
    assert!(queries["paths"]["/admin/subjects/{subject}"].is_null());
    // The read model over both aggregates names the stream's category; the others need not.
    let parameters = |path: &str| queries["paths"][path]["get"]["parameters"].as_array().unwrap().clone();
    let category = parameters("/views/activity/{id}").into_iter().find(|p| p["name"] == "category").unwrap();
    assert_eq!(category["schema"]["enum"], serde_json::json!(["account", "transfer"]));
    assert!(parameters("/views/balance/{id}").iter().all(|p| p["name"] != "category"));
    let mut ids: Vec<&str> = commands["paths"]
        .as_object()
        .unwrap()
        .values()
        .chain(queries["paths"].as_object().unwrap().values())
        .flat_map(|path| path.as_object().unwrap().values())
        .map(|operation| operation["operationId"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "operation ids are unique: {ids:?}");
}
