//! The `strata` binary against the emulator: each subcommand, bad arguments, an unreachable
//! endpoint, and a rebuild of 10,000 events (equal to what the projector made; interrupted and
//! resumed from its checkpoint).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strata_core::projection::{Delivered, Projector, StoredView, ViewStore};
use strata_core::{
    AppendRequest, CommandContext, EventId, EventStore, ExpectedVersion, FieldCipher, Metadata, NewEvent,
    Repository, StreamId, encode_event,
};
use strata_dynamodb::{DynamoStore, TableSpec};
use strata_kms::KmsKeys;
use strata_orders::{Order, OrderEvent, OrderSummaries, samples};

fn strata(args: &[&str]) -> (i32, String, String) {
    let out = strata_command(args).output().unwrap();
    summary(&out)
}

fn strata_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.args(args).stdin(Stdio::null());
    // The normal AWS configuration: the emulator's endpoint is inherited; dummy keys if none are set.
    for (name, default) in
        [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")]
    {
        if std::env::var_os(name).is_none() {
            command.env(name, default);
        }
    }
    command
}

fn summary(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = strata(&all);
    assert_eq!(code, 0, "strata {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A table (TableSpec) and a KMS key of the test's own.
struct Setup {
    table: String,
    key: String,
    store: DynamoStore,
    cipher: FieldCipher,
}

async fn setup() -> Setup {
    let sdk = strata_testing::sdk().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = strata_testing::unique("strata-cli");
    TableSpec::strata().create(&client, &table, Duration::from_secs(30)).await.unwrap();
    strata_testing::stream_enabled(&sdk, &table).await.unwrap();
    let key = aws_sdk_kms::Client::new(&sdk).create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let store = DynamoStore::new(client, &table);
    let cipher = FieldCipher::new(KmsKeys::new(aws_sdk_kms::Client::new(&sdk), &key, store.clone()));
    Setup { table, key, store, cipher }
}

fn order(id: &str) -> StreamId {
    StreamId::new("acme", "order", id).unwrap()
}

/// Places an order through the repository (personal fields sealed), then appends `items` more
/// events in one commit.
async fn order_with_items(setup: &Setup, id: &str, customer: &str, items: usize) -> u64 {
    let repo = Repository::<Order, _>::new(setup.store.clone()).with_cipher(setup.cipher.clone());
    let stream = order(id);
    repo.execute(&stream, &samples::place_order(customer), CommandContext::default()).await.unwrap();
    if items == 0 {
        return 1;
    }
    let events = (0..items)
        .map(|i| {
            let event =
                OrderEvent::ItemAdded { sku: format!("SKU-{}", i % 50), quantity: 1, unit_price_minor: 100 };
            let encoded = encode_event(&event).unwrap();
            NewEvent {
                event_id: EventId::new(),
                event_type: encoded.event_type,
                schema_version: encoded.schema_version,
                payload: encoded.payload,
                metadata: Metadata::new("cli-test"),
            }
        })
        .collect();
    let commit = setup
        .store
        .append(AppendRequest { stream, expected: ExpectedVersion::Exact(1), events, idempotency: None })
        .await
        .unwrap();
    commit.last_version
}

#[tokio::test]
async fn table_init_creates_a_table_that_diagnose_calls_healthy() {
    let table = strata_testing::unique("strata-cli-init");
    let (code, stdout, stderr) = strata(&["table", "init", "--table", &table]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("table {table} created")), "{stdout}");
    let report = json_of(&["diagnose", "--table", &table]);
    assert_eq!(report["healthy"], true, "{report}");
    let verdicts: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("table reachable", "ok"),
            ("table keys", "ok"),
            ("index snapshots", "ok"),
            ("index lookup", "ok"),
            ("table stream", "ok"),
            ("TTL", "ok")
        ]
    );
    // Again: the table exists; a clear error, exit 1.
    let (code, _, stderr) = strata(&["table", "init", "--table", &table]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("strata: "), "{stderr}");
}

#[tokio::test]
async fn diagnose_checks_the_stack_and_fails_on_what_is_missing() {
    let sdk = strata_testing::sdk().await;
    let stack = strata_testing::EmulatorStack::deploy(&sdk).await;
    let (table, bus, key) =
        (stack.output("TableName"), stack.output("EventBusName"), stack.output("FieldKeyArn"));
    let report = json_of(&["diagnose", "--table", table, "--bus", bus, "--kms-key", key]);
    let verdict = |check: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == check)
            .map(|c| c["verdict"].clone())
    };
    assert_eq!(report["healthy"], true, "{report}");
    for check in [
        "table keys",
        "index snapshots",
        "index lookup",
        "table stream",
        "event bus",
        "rules on the bus",
        "KMS key",
        "KMS key rotation",
    ] {
        assert_eq!(verdict(check), Some(json!("ok")), "{check}: {report}");
    }
    // moto's CloudFormation ignores TimeToLiveSpecification: a warning there (ok on AWS), never a failure.
    assert!([Some(json!("warn")), Some(json!("ok"))].contains(&verdict("TTL")), "{report}");

    let (code, stdout, _) = strata(&["diagnose", "--table", "no-such-table", "--bus", "no-such-bus"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("table reachable  FAIL"), "{stdout}");
    assert!(stdout.contains("event bus        FAIL"), "{stdout}");
    assert!(stdout.contains("verdict: NOT healthy"), "{stdout}");
}

#[tokio::test]
async fn streams_are_listed_and_shown_sealed_or_decrypted_and_subjects_exported_and_forgotten() {
    let s = setup().await;
    order_with_items(&s, "o-1", "cust-1", 2).await;
    order_with_items(&s, "o-2", "cust-2", 0).await;
    let listed = json_of(&["streams", "list", "--table", &s.table]);
    assert_eq!(
        listed,
        json!([{ "stream": "acme/order-o-1", "version": 3 }, { "stream": "acme/order-o-2", "version": 1 }])
    );
    let (code, stdout, _) = strata(&["streams", "list", "--table", &s.table, "--category", "invoice"]);
    assert_eq!((code, stdout.trim_end().lines().last()), (0, Some("0 stream(s)")));

    let sealed = json_of(&["streams", "show", "acme/order-o-1", "--table", &s.table]);
    let events = sealed["events"].as_array().unwrap();
    assert_eq!(events.iter().map(|e| e["version"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(events[0]["payload"]["customer_name"]["$enc"].is_object(), "{sealed}");
    assert!(!sealed.to_string().contains("Ada Lovelace"));
    let opened = json_of(&[
        "streams",
        "show",
        "acme/order-o-1",
        "--table",
        &s.table,
        "--decrypt",
        "--kms-key",
        &s.key,
    ]);
    assert_eq!(opened["events"][0]["payload"]["customer_name"], "Ada Lovelace");
    let page =
        json_of(&["streams", "show", "acme/order-o-1", "--table", &s.table, "--from", "2", "--limit", "1"]);
    assert_eq!((page["events"][0]["version"].as_u64(), page["next_version"].as_u64()), (Some(2), Some(3)));
    let (code, stdout, _) = strata(&["streams", "show", "acme/order-o-1", "--table", &s.table]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("version  type         committed"), "{stdout}");

    let exported =
        json_of(&["subjects", "export", "acme", "cust-1", "--table", &s.table, "--kms-key", &s.key]);
    let values: Vec<&Value> = exported["fields"].as_array().unwrap().iter().map(|f| &f["value"]).collect();
    assert!(values.contains(&&json!("Ada Lovelace")), "{exported}");
    let (code, _, stderr) =
        strata(&["subjects", "forget", "acme", "cust-1", "--table", &s.table, "--kms-key", &s.key]);
    assert_eq!((code, stderr.trim()), (2, "strata: forgetting acme/cust-1 cannot be undone: add --yes"));
    let (code, stdout, _) =
        strata(&["subjects", "forget", "acme", "cust-1", "--table", &s.table, "--kms-key", &s.key, "--yes"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("forgot acme/cust-1"), "{stdout}");
    let exported =
        json_of(&["subjects", "export", "acme", "cust-1", "--table", &s.table, "--kms-key", &s.key]);
    assert_eq!(exported["fields"], json!([]));
    // The same audit records the admin API writes, in the subject's audit partition, kept after the
    // forget: each action attempted, then done (the refused forget without --yes left none); the
    // operator as STS names them.
    let audit = strata_core::SubjectAudit::accesses(&s.store, "acme", "cust-1").await.unwrap();
    let actions: Vec<_> = audit.iter().map(|a| (a.action, a.outcome, a.via.as_str())).collect();
    use strata_core::AccessOutcome::{Attempted, Done};
    use strata_core::SubjectAction::{Export, Forget};
    assert_eq!(
        actions,
        [
            (Export, Attempted, "cli"),
            (Export, Done, "cli"),
            (Forget, Attempted, "cli"),
            (Forget, Done, "cli"),
            (Export, Attempted, "cli"),
            (Export, Done, "cli")
        ]
    );
    assert!(
        audit.iter().all(|a| a.actor.as_deref().is_some_and(|actor| actor.starts_with("arn:"))),
        "{audit:?}"
    );
    let opened = json_of(&[
        "streams",
        "show",
        "acme/order-o-1",
        "--table",
        &s.table,
        "--decrypt",
        "--kms-key",
        &s.key,
    ]);
    assert_eq!(opened["events"][0]["payload"]["customer_name"], json!({ "$redacted": true }));
}

#[test]
fn bad_arguments_and_an_unreachable_endpoint_exit_non_zero_with_a_message() {
    for (args, code, needle) in [
        (
            &["streams", "show", "not-a-stream", "--table", "t"][..],
            2,
            "is not a stream: write tenant/category-id",
        ),
        (
            &["streams", "show", "acme/order-o-1", "--table", "t", "--decrypt"][..],
            2,
            "--decrypt needs --kms-key",
        ),
        (&["streams", "show", "acme/order-o-1", "--table", "t", "--limit", "0"][..], 2, "invalid value '0'"),
        (
            &["projections", "rebuild", "nope", "--table", "t", "--no-cipher"][..],
            2,
            "unknown projection 'nope'",
        ),
        (&["projections", "rebuild", "order-summary", "--table", "t"][..], 2, "give --kms-key"),
        (&["subjects", "export", "ac#me", "c", "--table", "t", "--kms-key", "k"][..], 2, "ac#me/c"),
        (&["teleport"][..], 2, "unrecognized subcommand"),
        (&["completions", "tcsh"][..], 2, "invalid value 'tcsh'"),
    ] {
        let out = strata_command(args).env_remove("STRATA_KMS_KEY_ID").output().unwrap();
        let (got, _, stderr) = summary(&out);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Nothing listens on port 9 of loopback: refused at once, reported, exit 1.
    let out = strata_command(&["streams", "list", "--table", "t"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let (code, _, stderr) = summary(&out);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.starts_with("strata: ") && !stderr.contains("panicked"), "{stderr}");
}

/// `--endpoint-url` and `--region` win over the environment: with the environment's endpoint (the
/// emulator) a table is created; the same command pointed by flag at a closed port fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_flag_wins_over_the_environment() {
    let table = strata_testing::unique("strata-cli-flag");
    let (code, _, stderr) = strata(&["table", "init", "--table", &table, "--region", "us-east-1"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) =
        strata(&["table", "init", "--table", &format!("{table}-2"), "--endpoint-url", "http://127.0.0.1:9"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.starts_with("strata: ") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn completions_are_printed_for_each_shell_without_aws() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = strata_command(&["completions", shell])
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let (code, stdout, stderr) = summary(&out);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains("strata") && stdout.contains("rebuild"), "{shell}: {stdout}");
    }
}

/// 100 orders of 100 events (10,000 events): views made by the projector, then broken, then rebuilt by
/// the CLI, must equal them; a rebuild killed midway and started again with its checkpoint skips the
/// pages it had finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_of_10000_events_equals_the_projector_and_resumes_from_its_checkpoint() {
    let s = setup().await;
    let mut streams = Vec::new();
    for i in 0..100 {
        let id = format!("o-{i:03}");
        assert_eq!(order_with_items(&s, &id, &format!("cust-{}", i % 10), 99).await, 100);
        streams.push(order(&id));
    }
    let projector = Projector::new(OrderSummaries, s.store.clone())
        .with_cipher(s.cipher.clone())
        .with_upcasters(strata_orders::upcasters());
    let mut expected = Vec::new();
    for stream in &streams {
        let projected = projector
            .project(stream, vec![Delivered::Reference { stream: stream.clone(), version: 100 }])
            .await
            .unwrap();
        assert_eq!(projected.applied, 100);
        expected.push(projector.view(stream).await.unwrap().unwrap());
    }
    let break_views = || async {
        for stream in &streams {
            let stored = s.store.get_view("order-summary", stream).await.unwrap().unwrap();
            let broken = StoredView { state: None, lookup: None, ..stored.clone() };
            s.store.put_view(broken, Some(stored.version)).await.unwrap();
        }
    };
    let broken_count = || async {
        let mut n = 0;
        for stream in &streams {
            n += usize::from(projector.view(stream).await.unwrap().is_none());
        }
        n
    };
    break_views().await;
    assert_eq!(broken_count().await, 100);

    let dir = std::env::temp_dir().join(strata_testing::unique("strata-rebuild"));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint.json");
    let checkpoint_arg = checkpoint.to_str().unwrap().to_owned();
    let rebuild = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "projections",
            "rebuild",
            "order-summary",
            "--table",
            &s.table,
            "--kms-key",
            &s.key,
        ];
        args.extend_from_slice(&["--checkpoint", &checkpoint_arg]);
        args.extend_from_slice(extra);
        strata_command(&args)
    };

    // Interrupted: one segment, small pages; killed once some pages are checkpointed.
    let mut child =
        rebuild(&["--segments", "1", "--page-items", "10"]).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        if let Some(saved) = read(&checkpoint).filter(|c| c["streams"].as_u64().unwrap_or(0) >= 5) {
            break saved;
        }
        assert!(child.try_wait().unwrap().is_none(), "the rebuild ended before it could be interrupted");
        assert!(Instant::now() < deadline, "no checkpoint within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = read(&checkpoint).unwrap_or(at_kill); // the last one written before the kill
    let finished = at_kill["streams"].as_u64().unwrap();
    assert!(finished > 0 && finished < 100, "{at_kill}");

    // Break every view again: the resumed rebuild must leave the finished pages' streams alone.
    break_views().await;
    let out = rebuild(&["--segments", "1", "--page-items", "10"]).output().unwrap();
    let (code, stdout, stderr) = summary(&out);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["resumed"], true);
    assert_eq!(
        broken_count().await as u64,
        finished,
        "exactly the streams of checkpointed pages were skipped"
    );
    assert!(!checkpoint.exists(), "a finished rebuild removes its checkpoint");

    // A full rebuild in four segments: every view equals the projector's.
    let out = rebuild(&["--segments", "4"]).output().unwrap();
    let (code, stdout, stderr) = summary(&out);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (report["streams"].as_u64(), report["events"].as_u64(), &report["resumed"]),
        (Some(100), Some(10_000), &json!(false))
    );
    for (stream, want) in streams.iter().zip(&expected) {
        assert_eq!(projector.view(stream).await.unwrap().as_ref(), Some(want), "{stream}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[tokio::test]
async fn snapshots_are_taken_listed_and_pruned() {
    let s = setup().await;
    order_with_items(&s, "o-1", "cust-1", 2).await;
    let stream = "acme/order-o-1";
    let taken = json_of(&["snapshots", "take", stream, "--table", &s.table, "--kms-key", &s.key]);
    assert_eq!(taken["version"], 3);
    let repo = Repository::<Order, _>::new(s.store.clone()).with_cipher(s.cipher.clone());
    let add = strata_orders::OrderCommand::AddItem { sku: "INK".into(), quantity: 1, unit_price_minor: 10 };
    repo.execute(&order("o-1"), &add, CommandContext::default()).await.unwrap();
    assert_eq!(
        json_of(&["snapshots", "take", stream, "--table", &s.table, "--kms-key", &s.key])["version"],
        4
    );
    // `list` and `prune` read the snapshots index, which DynamoDB keeps eventually consistent: wait
    // until it lists what was written before acting on it.
    let listed = |expected: Value| {
        let table = s.table.clone();
        strata_testing::eventually("snapshots list", move || {
            let (expected, table) = (expected.clone(), table.clone());
            async move {
                let versions = json_of(&["snapshots", "list", stream, "--table", &table])["versions"].clone();
                if versions == expected { Ok(()) } else { Err(versions.to_string()) }
            }
        })
    };
    listed(json!([4, 3])).await;
    let pruned = json_of(&["snapshots", "prune", stream, "--table", &s.table, "--keep", "1"]);
    assert_eq!(pruned["removed"], 1);
    listed(json!([4])).await;
    // The state loads the same from the snapshot.
    assert_eq!(repo.load(&order("o-1")).await.unwrap().version, 4);
    let (code, _, stderr) = strata(&["snapshots", "take", "acme/invoice-i-1", "--table", &s.table]);
    assert_eq!(
        (code, stderr.trim()),
        (2, "strata: no aggregate for category 'invoice' in this binary (known: order)")
    );
}

#[tokio::test]
async fn replay_publishes_the_chosen_events_marked_as_replayed() {
    let sdk = strata_testing::sdk().await;
    let stack = strata_testing::EmulatorStack::deploy(&sdk).await;
    let table = stack.output("TableName").to_owned();
    let key = stack.output("FieldKeyArn").to_owned();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    let cipher = FieldCipher::new(KmsKeys::new(aws_sdk_kms::Client::new(&sdk), &key, store.clone()));
    let s = Setup { table: table.clone(), key, store, cipher };
    order_with_items(&s, "o-1", "cust-1", 2).await;
    order_with_items(&s, "o-2", "cust-2", 0).await;
    let (bus, source) = (stack.output("EventBusName"), stack.output("EventSource"));
    let base = ["replay", "--table", &table, "--bus", bus, "--source", source];
    let dry: Vec<&str> = base.iter().copied().chain(["--dry-run"]).collect();
    assert_eq!(json_of(&dry)["events"], 4);
    let future: Vec<&str> = base.iter().copied().chain(["--since", "2999-01-01T00:00:00Z"]).collect();
    assert_eq!(json_of(&future)["events"], 0);
    // Neither published anything.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = stack.output("ProjectorQueueUrl");
    let early = sqs.receive_message().queue_url(queue).wait_time_seconds(1).send().await.unwrap();
    assert!(early.messages.unwrap_or_default().is_empty(), "a dry run or an empty window published");
    let placed: Vec<&str> = base.iter().copied().chain(["--type", "OrderPlaced"]).collect();
    let report = json_of(&placed);
    assert_eq!((report["events"].as_u64(), report["streams"].as_u64()), (Some(2), Some(2)), "{report}");
    let replay = report["replay"].as_str().unwrap().to_owned();

    // The bus's rule delivers them to the projector's queue, marked.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        assert!(Instant::now() < deadline, "{} of 2 replayed events arrived", bodies.len());
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in out.messages.unwrap_or_default() {
            bodies.push(serde_json::from_str::<Value>(message.body.as_deref().unwrap()).unwrap());
        }
    }
    let mut seen: Vec<(String, u64, String)> = bodies
        .iter()
        .map(|b| {
            (
                b["detail"]["stream"]["id"].as_str().unwrap().to_owned(),
                b["detail"]["version"].as_u64().unwrap(),
                b["detail"]["metadata"]["user"]["strata_replay"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [("o-1".to_owned(), 1, replay.clone()), ("o-2".to_owned(), 1, replay)]);
    assert!(bodies.iter().all(|b| b["detail-type"] == "OrderPlaced" && b["source"] == source));

    let bad: Vec<&str> = base.iter().copied().chain(["--since", "yesterday"]).collect();
    let (code, _, stderr) = strata(&bad);
    assert_eq!(code, 2);
    assert!(stderr.contains("--since yesterday: not an RFC 3339 time"), "{stderr}");
}
