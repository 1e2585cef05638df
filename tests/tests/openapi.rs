//! The committed OpenAPI documents (`functions/*/openapi.json`) are exactly what the code generates.
//! Regenerate with `STRATA_BLESS=1 cargo test -p strata-tests --test openapi`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use strata_orders::{Order, OrderSummaries};

fn check(function: &str, generated: &Value) {
    let path = format!("{}/../functions/{function}/openapi.json", env!("CARGO_MANIFEST_DIR"));
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{path} is stale: regenerate with STRATA_BLESS=1 cargo test -p strata-tests --test openapi"
    );
}

#[test]
fn the_command_api_document_matches_the_code() {
    let document =
        strata_lambda::openapi::command_api::<Order>("Strata orders: commands", env!("CARGO_PKG_VERSION"));
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths.len(), 6, "one path per order command: {paths:?}");
    assert!(document["paths"]["/order/{id}/commands/add_item"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["quantity"].is_object());
    assert!(document["components"]["schemas"]["Address"].is_object());
    check("command-api", &document);
}

#[test]
fn the_query_api_document_matches_the_code() {
    let document = strata_lambda::openapi::query_api(
        "Strata orders: queries",
        env!("CARGO_PKG_VERSION"),
        <Order as strata_core::Aggregate>::CATEGORY,
        <OrderSummaries as strata_core::projection::Projection>::NAME,
        true,
    );
    assert!(document["paths"]["/views/order-summary"]["get"].is_object());
    check("query-api", &document);
}
