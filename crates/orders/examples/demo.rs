//! The in-memory demo: one order through its life, printed step by step.
//!
//! Run it with `./scripts/demo` from the repository root.

use std::error::Error;

use strata_core::{
    CommandContext, CommandError, ExpectedVersion, FieldCipher, InMemoryPublisher, InMemoryStore, Publisher,
    Repository, SnapshotPolicy, StreamId,
};
use strata_orders::{Address, Order, OrderCommand};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let store = InMemoryStore::new();
    // Personal fields (name, email, address) are sealed before they reach the store; in memory the
    // data keys are local, on AWS they come from KMS (strata-kms).
    let repo = Repository::<Order, _>::new(store.clone())
        .with_cipher(FieldCipher::local())
        .with_upcasters(strata_orders::upcasters())
        .with_snapshot_policy(SnapshotPolicy::every(4).keep(2));
    let order = StreamId::new("acme", "order", "o-1001")?;
    let ctx = |key: Option<&str>| CommandContext {
        actor: Some("demo".into()),
        idempotency_key: key.map(str::to_owned),
        ..CommandContext::default()
    };

    println!("Strata in-memory demo: order {order}\n");
    let place = OrderCommand::PlaceOrder {
        customer_id: "cust-7".into(),
        customer_name: "Ada Lovelace".into(),
        customer_email: "ada@example.com".into(),
        shipping_address: Address {
            line1: "12 St James's Square".into(),
            line2: None,
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
        },
        currency: "GBP".into(),
    };
    let steps = [
        place,
        OrderCommand::AddItem { sku: "BOOK-1".into(), quantity: 2, unit_price_minor: 1_250 },
        OrderCommand::AddItem { sku: "PEN-3".into(), quantity: 1, unit_price_minor: 399 },
        OrderCommand::Ship { carrier: "DHL".into(), tracking_number: "JD0146".into() },
        OrderCommand::Pay { amount_minor: 2_899, payment_reference: "pay_81".into() },
        OrderCommand::Ship { carrier: "DHL".into(), tracking_number: "JD0146".into() },
    ];
    for (i, command) in steps.iter().enumerate() {
        let key = format!("req-{i}");
        match repo.execute(&order, command, ctx(Some(&key))).await {
            Ok(outcome) => println!("  {:<12} -> version {}", command_name(command), outcome.version),
            Err(CommandError::Rejected(rule)) => {
                println!("  {:<12} -> rejected: {rule}", command_name(command))
            }
            Err(CommandError::Failed(error)) => return Err(error.into()),
        }
    }

    let again = repo.execute(&order, &steps[4], ctx(Some("req-4"))).await?;
    println!(
        "\nrepeat of `pay` with the same Idempotency-Key -> version {} again, nothing written",
        again.version
    );
    let stale = CommandContext { expected_version: Some(ExpectedVersion::Exact(2)), ..ctx(None) };
    if let Err(error) =
        repo.execute(&order, &OrderCommand::Cancel { reason: "changed my mind".into() }, stale).await
    {
        println!("cancel with If-Match: 2 -> {error}");
    }

    let now = repo.load(&order).await?;
    let then = repo.load_at_version(&order, 3).await?;
    println!(
        "\nstate now (v{}): {:?}, total {} {}",
        now.version,
        now.state.status,
        now.state.total_minor(),
        now.state.currency
    );
    println!(
        "state at v{}: {:?}, {} lines, total {}",
        then.version,
        then.state.status,
        then.state.lines.len(),
        then.state.total_minor()
    );
    println!("snapshots kept at versions {:?}", store.snapshot_versions(&order));

    // The change feed is the outbox: a relay publishes every committed event, in order.
    let publisher = InMemoryPublisher::new();
    let (commits, _) = store.feed_since(0);
    for commit in &commits {
        publisher.publish(&commit.events).await?;
    }
    println!("\npublished from the outbox:");
    for event in publisher.published() {
        println!("  v{} {:<14} id {}", event.version, event.event_type, event.event_id);
    }
    Ok(())
}

fn command_name(command: &OrderCommand) -> &'static str {
    strata_core::Command::command_name(command)
}
