//! The README's demo, run as a test: the order's life through the four functions served locally,
//! on a stack of the emulator template. Needs cargo-lambda on PATH (`./scripts/test` installs it).

use serde_json::json;
use strata_tests::demo::{Summary, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walks_an_order_from_command_to_forgotten_customer() {
    let rt = tokio::runtime::Handle::current();
    let mut lines = Vec::new();
    let summary = tokio::task::spawn_blocking(move || {
        let summary = run(&rt, &mut |line| lines.push(line));
        (summary, lines)
    })
    .await
    .expect("the demo does not panic");
    let (summary, lines) = summary;
    let summary = summary.unwrap_or_else(|e| panic!("demo failed: {e}\n{}", lines.join("\n")));
    assert_eq!(
        summary,
        Summary {
            version: 5,
            status: "shipped".into(),
            records: (7, 5, 0),
            messages: 5,
            view_version: 5,
            customer_orders: 1,
            name_after_forget: json!({ "$redacted": true }),
            plaintext_found: false,
        },
        "{}",
        lines.join("\n")
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with(char::is_numeric)).count(), 7, "seven steps");
}
