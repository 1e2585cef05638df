//! The command and query functions served locally by `cargo lambda watch` (the Lambda runtime API
//! emulator) against the AWS emulator, invoked with real API Gateway HTTP API (v2) events.
//!
//! Needs `cargo-lambda` on PATH (`./scripts/test` installs it into `.tools/venv`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use serde_json::{Value, json};
use strata_tests::local::{Answer, LocalFunctions, apigw, functions_env};

fn answer(response: Value) -> Answer {
    Answer::of(&response).unwrap()
}

fn command(f: &LocalFunctions, id: &str, name: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    answer(f.invoke(
        "command-api",
        &apigw("POST", &format!("/order/{id}/commands/{name}"), "", headers, Some(body)),
    ))
}

fn query(f: &LocalFunctions, path: &str, query: &str) -> Answer {
    answer(f.invoke("query-api", &apigw("GET", path, query, &[], None)))
}

fn is_problem(answer: &Answer, status: u64) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.body["status"], status);
}

/// A stack of its own (from the emulator template), and the functions' environment for it.
async fn provisioned() -> Vec<(&'static str, String)> {
    let stack = strata_testing::EmulatorStack::deploy(&strata_testing::sdk().await).await;
    functions_env(&stack, "acme").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_served_locally_take_commands_and_answer_queries() {
    let env = provisioned().await;
    // Blocking HTTP and a child process: off the async workers.
    tokio::task::spawn_blocking(move || walk_an_order(&LocalFunctions::serve(&env))).await.unwrap();
}

/// schemathesis (PyPI) generates requests from the committed OpenAPI documents, valid and invalid,
/// and sends them over HTTP to the functions' local URLs: no answer may be a 5xx.
///
/// Negative fuzzing is left out: it sends bodies that are not UTF-8, which cargo-lambda's function-URL
/// adapter answers with its own 500 before the function runs (AWS base64-encodes such bodies; the
/// function answers them with 400, see `crates/lambda/tests/api.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_either_api() {
    let env = provisioned().await;
    tokio::task::spawn_blocking(move || {
        let functions = LocalFunctions::serve(&env);
        for function in ["command-api", "query-api"] {
            // Compile and start the function before schemathesis' clock runs.
            functions.invoke(function, &apigw("GET", "/warm-up", "", &[], None));
            let document = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/");
            for (mode, phases) in [("positive", "examples,coverage,fuzzing"), ("negative", "coverage")] {
                let status = Command::new("schemathesis")
                    .args(["run", &format!("{document}{function}/openapi.json")])
                    .args(["--url", &format!("http://127.0.0.1:{}/lambda-url/{function}", functions.port)])
                    .args([
                        "--checks",
                        "not_a_server_error",
                        "--max-examples",
                        "25",
                        "--seed",
                        "7",
                        "--no-shrink",
                    ])
                    .args(["--mode", mode, "--phases", phases, "--workers", "1", "--warnings", "off"])
                    .stdout(Stdio::inherit())
                    .status()
                    .unwrap_or_else(|e| {
                        panic!("cannot run schemathesis ({e}): run ./scripts/test, which installs it")
                    });
                assert!(
                    status.success(),
                    "schemathesis ({mode}) found server errors in {function} (output above)"
                );
            }
        }
    })
    .await
    .unwrap();
}

fn walk_an_order(f: &LocalFunctions) {
    let place = json!({
        "customer_id": "cust-http", "customer_name": "Ada Lovelace", "customer_email": "ada@example.com",
        "shipping_address": { "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
        "currency": "GBP"
    });
    let placed = command(f, "h-1", "place_order", &place, &[("idempotency-key", "place-h-1")]);
    assert_eq!((placed.status, placed.body["version"].as_u64()), (200, Some(1)), "{}", placed.body);
    assert_eq!(placed.headers["etag"], "\"1\"");
    let book = json!({ "sku": "BOOK", "quantity": 2, "unit_price_minor": 1250 });
    let pen = json!({ "sku": "PEN", "quantity": 1, "unit_price_minor": 300 });
    assert_eq!(command(f, "h-1", "add_item", &book, &[("if-match", "\"1\"")]).body["version"], 2);
    assert_eq!(command(f, "h-1", "add_item", &pen, &[]).body["version"], 3);
    let pay = json!({ "amount_minor": 2800, "payment_reference": "pay-1" });
    assert_eq!(command(f, "h-1", "pay", &pay, &[]).body["version"], 4);
    let ship = json!({ "carrier": "DHL", "tracking_number": "1Z" });
    assert_eq!(command(f, "h-1", "ship", &ship, &[]).body["version"], 5);

    let state = query(f, "/order/h-1", "");
    assert_eq!((state.status, state.body["version"].as_u64()), (200, Some(5)), "{}", state.body);
    assert_eq!(state.body["state"]["status"], "shipped");
    assert_eq!(state.body["state"]["paid_minor"], 2800);
    assert_eq!(state.body["state"]["customer"]["name"], "Ada Lovelace");
    let then = query(f, "/order/h-1", "version=2");
    assert_eq!(then.body["state"]["status"], "placed");
    assert_eq!(then.body["state"]["lines"], json!({ "BOOK": { "quantity": 2, "unit_price_minor": 1250 } }));

    // The same Idempotency-Key again: the first response, no new event.
    let again = command(f, "h-1", "place_order", &place, &[("idempotency-key", "place-h-1")]);
    assert_eq!((again.status, &again.body), (200, &placed.body));
    let events = query(f, "/order/h-1/events", "");
    assert_eq!(events.body["events"].as_array().unwrap().len(), 5);

    let stale = command(f, "h-1", "cancel", &json!({ "reason": "late" }), &[("if-match", "\"3\"")]);
    is_problem(&stale, 409);
    let malformed = answer(f.invoke(
        "command-api",
        &json!({ "version": "2.0", "routeKey": "$default", "rawPath": "/order/h-1/commands/cancel", "rawQueryString": "",
                 "headers": { "content-type": "application/json" },
                 "requestContext": { "http": { "method": "POST", "path": "/order/h-1/commands/cancel", "protocol": "HTTP/1.1",
                                               "sourceIp": "203.0.113.9", "userAgent": "e2e" },
                                     "requestId": "r", "routeKey": "$default", "stage": "$default", "timeEpoch": 0 },
                 "body": "{\"reason\": ", "isBase64Encoded": false }),
    ));
    is_problem(&malformed, 400);
    let rule = command(f, "h-1", "add_item", &book, &[]);
    is_problem(&rule, 422);
    assert_eq!(rule.body["code"], "already_shipped");
    is_problem(&answer(f.invoke("query-api", &apigw("GET", "/nowhere", "", &[], None))), 404);
    is_problem(&command(f, "h-1", "teleport", &json!({}), &[]), 404);
}
