//! The demo: an order's whole life on the emulator, through the four functions served locally.
//!
//! It provisions a stack of the CDK app's emulator template, serves the functions with `cargo lambda
//! watch`, and plays the parts AWS plays in a deployment: API Gateway (invoking the command and query
//! functions with HTTP API events), the DynamoDB stream's event source mapping (handing the table's
//! stream records to the publisher) and the SQS event source mapping (handing the queue's messages to
//! the projector, deleting those it did not report failed). `cargo run -p strata-tests --bin demo`
//! prints it; `tests/tests/demo.rs` checks it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::local::{Answer, LocalFunctions, apigw, functions_env};
use crate::{EmulatorStack, lambda_sqs_message};

/// What the walk through found, checked by the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The order's version after its five commands.
    pub version: u64,
    /// Its status.
    pub status: String,
    /// Stream records: all, those the event source mapping's filter hands the publisher (new
    /// commits and snapshots), and how many the publisher reported failed.
    pub records: (usize, usize, usize),
    /// Messages the projector's queue received (one per event).
    pub messages: usize,
    /// The read model's version (the last event it applied).
    pub view_version: u64,
    /// Orders listed for the customer through the lookup index.
    pub customer_orders: usize,
    /// The customer's name after forgetting, in the order's state.
    pub name_after_forget: Value,
    /// Whether the customer's name or email appear anywhere at rest (table scan) or in a message.
    pub plaintext_found: bool,
}

const ORDER: &str = "o-1001";
const CUSTOMER: &str = "cust-ada";
const NAME: &str = "Ada Lovelace";
const EMAIL: &str = "ada@example.com";

/// Runs the demo; `say` gets each line of the account. Call from a blocking thread inside a Tokio
/// runtime (`spawn_blocking`): it waits on HTTP and on the emulator.
pub fn run(rt: &Handle, say: &mut dyn FnMut(String)) -> Result<Summary, String> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        return Err("AWS_ENDPOINT_URL is not set: start the emulator first (scripts/demo does)".into());
    }
    let sdk = rt.block_on(strata_testing::sdk());

    say("1. Provision the emulator from infra/emulator-template.json (the CDK stack's data plane)".into());
    let stack = rt.block_on(EmulatorStack::try_deploy(&sdk))?;
    let out = |key: &str| stack.try_output(key).map(str::to_owned);
    let (table, bus) = (out("TableName")?, out("EventBusName")?);
    let (queue_url, queue_arn) = (out("ProjectorQueueUrl")?, out("ProjectorQueueArn")?);
    say(format!("   stack {}: table {table}, bus {bus}, projector queue with DLQ", stack.name));

    say("2. Serve command-api, query-api, stream-publisher and projector with cargo lambda watch".into());
    let env = functions_env(&stack, "demo")?;
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/demo-functions.log");
    let f = LocalFunctions::try_serve(&env, Some(&log))?;
    say(format!("   their output: {}", log.display()));
    let http = |function: &str, method: &str, path: &str, query: &str, body: Option<&Value>| {
        let event = apigw(method, path, query, &[], body);
        let answer = Answer::of(&f.try_invoke(function, &event)?)?;
        let shown = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        Ok::<_, String>((format!("{method} {shown} -> {}", answer.status), answer))
    };

    say("3. Commands (API Gateway v2 events to command-api)".into());
    let commands = [
        (
            "place_order",
            json!({
            "customer_id": CUSTOMER, "customer_name": NAME, "customer_email": EMAIL,
            "shipping_address": { "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" },
            "currency": "GBP" }),
        ),
        ("add_item", json!({ "sku": "BOOK", "quantity": 2, "unit_price_minor": 1250 })),
        ("add_item", json!({ "sku": "PEN", "quantity": 1, "unit_price_minor": 300 })),
        ("pay", json!({ "amount_minor": 2800, "payment_reference": "pay-1" })),
        ("ship", json!({ "carrier": "DHL", "tracking_number": "1Z999" })),
    ];
    for (name, body) in &commands {
        let (line, answer) =
            http("command-api", "POST", &format!("/order/{ORDER}/commands/{name}"), "", Some(body))?;
        expect(answer.status == 200, &line, &answer)?;
        say(format!("   {line}, version {}", answer.body["version"]));
    }

    say("4. Query the order (query-api)".into());
    let (line, state) = http("query-api", "GET", &format!("/order/{ORDER}"), "", None)?;
    expect(state.status == 200, &line, &state)?;
    let status = state.body["state"]["status"].as_str().unwrap_or_default().to_owned();
    let version = state.body["version"].as_u64().unwrap_or_default();
    say(format!(
        "   {line}: version {version}, {status}, customer {}",
        state.body["state"]["customer"]["name"]
    ));

    say("5. Publish: the table's stream records to stream-publisher (as the event source mapping does)"
        .into());
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let records = rt.block_on(strata_testing::stream_records(&sdk, &dynamodb, &table));
    let commits = crate::through_mapping_filter(&records);
    let response = f.try_invoke("stream-publisher", &json!({ "Records": commits }))?;
    let failed = response["batchItemFailures"].as_array().map_or(0, Vec::len);
    say(format!(
        "   {} stream records, {} through the mapping's filter (new commits and snapshots; a data key and its subject \
         index are not events), {failed} reported failed; events put on bus {bus}",
        records.len(),
        commits.len()
    ));

    say("6. Project: the projector queue's messages to projector (as the SQS event source mapping does)"
        .into());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let messages = rt.block_on(receive(&sqs, &queue_url, &queue_arn, commands.len()))?;
    let first: Value = serde_json::from_str(messages[0]["body"].as_str().unwrap_or("{}")).unwrap_or_default();
    say(format!(
        "   {} messages; the first: source {}, detail-type {}, customer name in the payload: {}",
        messages.len(),
        first["source"],
        first["detail-type"],
        short(&first["detail"]["payload"]["customer_name"]),
    ));
    let projected = f.try_invoke("projector", &json!({ "Records": messages }))?;
    let failures = projected["batchItemFailures"].as_array().map_or(0, Vec::len);
    rt.block_on(delete(&sqs, &queue_url, &messages));
    say(format!("   projector reported {failures} failed; messages deleted"));
    let (line, view) = http("query-api", "GET", &format!("/views/order-summary/{ORDER}"), "", None)?;
    expect(view.status == 200, &line, &view)?;
    let view_version = view.body["version"].as_u64().unwrap_or_default();
    say(format!("   {line}: version {view_version}, total {} minor units", view.body["view"]["total_minor"]));
    // The lookup index is eventually consistent: ask again (deadline 30 s) until the order is listed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (line, customer_orders) = loop {
        let (line, listed) =
            http("query-api", "GET", "/views/order-summary", &format!("lookup={CUSTOMER}"), None)?;
        let customer_orders = listed.body["items"].as_array().map_or(0, Vec::len);
        if customer_orders > 0 || Instant::now() > deadline {
            break (line, customer_orders);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    say(format!("   {line}: {customer_orders} order(s) of {CUSTOMER}"));

    say(format!("7. Forget the customer (DELETE /admin/subjects/{CUSTOMER}: their data key is deleted)"));
    let (line, forgotten) = http("query-api", "DELETE", &format!("/admin/subjects/{CUSTOMER}"), "", None)?;
    expect(forgotten.status == 204, &line, &forgotten)?;
    let (_, after) = http("query-api", "GET", &format!("/order/{ORDER}"), "", None)?;
    let name_after_forget = after.body["state"]["customer"]["name"].clone();
    say(format!(
        "   {line}; the order now reads customer name {name_after_forget}, status {}",
        after.body["state"]["status"]
    ));
    let at_rest = rt.block_on(strata_testing::table_text(&dynamodb, &table));
    let in_messages: String = messages.iter().map(|m| m["body"].as_str().unwrap_or_default()).collect();
    let plaintext_found = [NAME, EMAIL].iter().any(|p| at_rest.contains(p) || in_messages.contains(p));
    say(format!(
        "   plaintext of the name or email at rest or in a message: {}",
        if plaintext_found { "FOUND" } else { "none" }
    ));

    Ok(Summary {
        version,
        status,
        records: (records.len(), commits.len(), failed),
        messages: messages.len(),
        view_version,
        customer_orders,
        name_after_forget,
        plaintext_found,
    })
}

fn expect(ok: bool, line: &str, answer: &Answer) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("{line}: {}", answer.body)) }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 { format!("{}...", &text[..57]) } else { text }
}

/// Receives until `count` messages arrived (deadline 30 s), as Lambda's SQS poller would.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    queue_arn: &str,
    count: usize,
) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut messages = Vec::new();
    while messages.len() < count {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {count} messages reached the projector queue in 30 s",
                messages.len()
            ));
        }
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| format!("receive: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        messages
            .extend(out.messages.unwrap_or_default().into_iter().map(|m| lambda_sqs_message(m, queue_arn)));
    }
    Ok(messages)
}

async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, messages: &[Value]) {
    for handle in messages.iter().filter_map(|m| m["receiptHandle"].as_str()) {
        let _ = sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await;
    }
}
