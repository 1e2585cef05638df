//! `cargo run -p strata-tests --bin demo` (what `scripts/demo` runs once the emulator is up): an
//! order's life through the four functions on the emulator, printed as it happens.

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let rt = tokio::runtime::Handle::current();
    let outcome =
        tokio::task::spawn_blocking(move || strata_tests::demo::run(&rt, &mut |line| println!("{line}")))
            .await;
    let summary = match outcome {
        Ok(Ok(summary)) => summary,
        Ok(Err(message)) => {
            eprintln!("demo failed: {message}");
            return ExitCode::FAILURE;
        }
        Err(panicked) => {
            eprintln!("demo failed: {panicked}");
            return ExitCode::FAILURE;
        }
    };
    let (records, commits, failed) = summary.records;
    println!();
    println!("Summary");
    println!("  order:       version {}, {}", summary.version, summary.status);
    println!("  published:   {commits} events from {records} stream records ({failed} failed)");
    println!("  projected:   {} messages; read model at version {}", summary.messages, summary.view_version);
    println!("  lookup:      {} order(s) listed for the customer", summary.customer_orders);
    println!("  forgotten:   the customer's name now reads {}", summary.name_after_forget);
    println!(
        "  plaintext:   {}",
        if summary.plaintext_found { "FOUND at rest or in a message" } else { "none at rest or in messages" }
    );
    if summary.plaintext_found { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
