//! The personal-data life cycle as one scenario over any store and key provider, so the in-memory
//! path (`LocalKeys`) and the AWS path (`KmsKeys` on DynamoDB) are held to the same behaviour by the
//! same code. Callers add what only they can see (the raw bytes of their backend).

use strata_core::projection::{Delivered, Projection, Projector, ViewStore};
use strata_core::{
    CommandContext, EventStore, FieldCipher, IdempotencyStore, Repository, SnapshotPolicy, SnapshotStore,
    StreamId,
};

use crate::samples::{PERSONAL_STRINGS, place_order};
use crate::{Order, OrderCommand, OrderSummaries, upcasters};

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn stream(id: &str) -> Result<StreamId, String> {
    StreamId::new("acme", "order", id).map_err(|e| e.to_string())
}

/// Places orders for two customers, exports one, forgets it, and has it come back:
/// - before forget, loads give the personal fields and export returns the 3 of the customer's order;
/// - after, loads (warm and replayed) read them as redacted, the other customer is untouched, commands
///   and snapshots go on, export is empty and no key is recreated;
/// - a returning customer gets a new key: old orders stay redacted, the new one reads, and export
///   returns only the new order's fields.
pub async fn personal_data_lifecycle<S>(store: &S, cipher: &FieldCipher) -> Result<(), String>
where
    S: EventStore + SnapshotStore + IdempotencyStore + Clone,
{
    let repo = Repository::<Order, _>::new(store.clone())
        .with_cipher(cipher.clone())
        .with_snapshot_policy(SnapshotPolicy::every(2));
    let ctx = CommandContext::default;
    let add = OrderCommand::AddItem { sku: "BOOK".into(), quantity: 1, unit_price_minor: 500 };
    let (o1, o2, o3) = (stream("o-1")?, stream("o-2")?, stream("o-3")?);
    let fail = |e: &dyn std::fmt::Debug| format!("{e:?}");
    for (order, customer) in [(&o1, "cust-1"), (&o2, "cust-2")] {
        repo.execute(order, &place_order(customer), ctx()).await.map_err(|e| fail(&e))?;
        repo.execute(order, &add, ctx()).await.map_err(|e| fail(&e))?; // v2: a snapshot
    }
    let customer = |o: &StreamId| {
        let repo = &repo;
        let o = o.clone();
        async move {
            let loaded = repo.load(&o).await.map_err(|e| fail(&e))?;
            loaded.state.customer.ok_or_else(|| format!("{o} has no customer"))
        }
    };
    ensure!(customer(&o1).await?.name.known().is_some(), "cust-1's name reads before forget");

    let exported = cipher.export_subject(store, "acme", "cust-1").await.map_err(|e| fail(&e))?;
    ensure!(
        exported.len() == 3 && exported.iter().all(|e| e.stream == o1),
        "export before forget: {exported:?}"
    );

    cipher.keys().forget("acme", "cust-1").await.map_err(|e| fail(&e))?;

    let forgotten = customer(&o1).await?;
    ensure!(
        forgotten.name.is_redacted()
            && forgotten.email.is_redacted()
            && forgotten.shipping_address.is_redacted(),
        "cust-1 reads redacted after forget: {forgotten:?}"
    );
    ensure!(customer(&o2).await?.name.known().is_some(), "cust-2 is untouched");
    let replayed = repo.load_at_version(&o1, 1).await.map_err(|e| fail(&e))?;
    ensure!(replayed.state.customer.is_some_and(|c| c.email.is_redacted()), "a replay reads redacted");
    ensure!(
        cipher.export_subject(store, "acme", "cust-1").await.map_err(|e| fail(&e))?.is_empty(),
        "export after forget"
    );
    repo.execute(&o1, &add, ctx()).await.map_err(|e| fail(&e))?;
    repo.execute(&o1, &add, ctx()).await.map_err(|e| fail(&e))?; // v4: a snapshot of redacted state
    ensure!(
        cipher.keys().key_for_read("acme", "cust-1").await.map_err(|e| fail(&e))?.is_none(),
        "no key was recreated for a forgotten subject"
    );

    repo.execute(&o3, &place_order("cust-1"), ctx()).await.map_err(|e| fail(&e))?;
    ensure!(
        customer(&o1).await?.name.is_redacted(),
        "the old order stays redacted when the customer returns"
    );
    ensure!(customer(&o3).await?.name.known().is_some(), "the returning customer's new order reads");
    let again = cipher.export_subject(store, "acme", "cust-1").await.map_err(|e| fail(&e))?;
    ensure!(again.len() == 3 && again.iter().all(|e| e.stream == o3), "export after return: {again:?}");
    Ok(())
}

/// The read model's personal-data life cycle over any store and key provider:
/// - views projected from the stored (sealed) events equal the aggregate's fold, and a customer's
///   orders list through the lookup;
/// - the stored views hold no plaintext of the personal fields;
/// - after the customer is forgotten the views read redacted (in place, no rebuild), the other
///   customer is untouched, and later events still project.
pub async fn read_model_lifecycle<S>(store: &S, cipher: &FieldCipher) -> Result<(), String>
where
    S: EventStore + SnapshotStore + IdempotencyStore + ViewStore + Clone,
{
    let repo = Repository::<Order, _>::new(store.clone()).with_cipher(cipher.clone());
    let projector =
        Projector::new(OrderSummaries, store.clone()).with_cipher(cipher.clone()).with_upcasters(upcasters());
    let fail = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let add = OrderCommand::AddItem { sku: "BOOK".into(), quantity: 2, unit_price_minor: 750 };
    let orders =
        [(stream("rm-1")?, "rm-cust-1"), (stream("rm-2")?, "rm-cust-1"), (stream("rm-3")?, "rm-cust-2")];
    for (order, customer) in &orders {
        repo.execute(order, &place_order(customer), CommandContext::default()).await.map_err(|e| fail(&e))?;
        repo.execute(order, &add, CommandContext::default()).await.map_err(|e| fail(&e))?;
    }
    let project = |order: StreamId| {
        let (store, projector) = (store, &projector);
        async move {
            let events = store.read(&order, 1, 1000).await.map_err(|e| fail(&e))?.events;
            projector
                .project(&order, events.into_iter().map(Delivered::Event).collect())
                .await
                .map_err(|e| fail(&e))
        }
    };
    for (order, _) in &orders {
        project(order.clone()).await?;
        let (view, version) = projector.view(order).await.map_err(|e| fail(&e))?.ok_or("no view")?;
        let folded = repo.load(order).await.map_err(|e| fail(&e))?;
        ensure!(
            view.order == folded.state && version == folded.version,
            "{order}: view {view:?} is not the fold"
        );
        ensure!(view.total_minor == 1500, "{order}: total {}", view.total_minor);
        let stored = store
            .get_view(OrderSummaries::NAME, order)
            .await
            .map_err(|e| fail(&e))?
            .ok_or("no stored view")?;
        let raw = serde_json::to_string(&stored.state).map_err(|e| fail(&e))?;
        for secret in PERSONAL_STRINGS {
            ensure!(!raw.contains(secret), "{order}: the stored view holds {secret:?} in clear");
        }
    }
    let listed = projector.lookup("acme", "rm-cust-1", None, 100).await.map_err(|e| fail(&e))?;
    let ids: Vec<&str> = listed.views.iter().map(|(s, _, _)| s.id()).collect();
    ensure!(ids == ["rm-1", "rm-2"], "rm-cust-1's orders: {ids:?}");

    cipher.keys().forget("acme", "rm-cust-1").await.map_err(|e| fail(&e))?;
    let (view, _) = projector.view(&orders[0].0).await.map_err(|e| fail(&e))?.ok_or("no view")?;
    let customer = view.order.customer.ok_or("no customer")?;
    ensure!(
        customer.name.is_redacted()
            && customer.email.is_redacted()
            && customer.shipping_address.is_redacted(),
        "a forgotten customer's view reads redacted: {customer:?}"
    );
    let listed = projector.lookup("acme", "rm-cust-1", None, 100).await.map_err(|e| fail(&e))?;
    ensure!(
        listed.views.len() == 2
            && listed.views.iter().all(|(_, _, v)| v
                .order
                .customer
                .as_ref()
                .is_some_and(|c| c.name.is_redacted())),
        "listed views read redacted"
    );
    let (other, _) = projector.view(&orders[2].0).await.map_err(|e| fail(&e))?.ok_or("no view")?;
    ensure!(other.order.customer.is_some_and(|c| c.name.known().is_some()), "rm-cust-2 is untouched");
    repo.execute(&orders[0].0, &OrderCommand::Cancel { reason: "gone".into() }, CommandContext::default())
        .await
        .map_err(|e| fail(&e))?;
    let done = project(orders[0].0.clone()).await?;
    ensure!(done.applied == 1 && done.version == 3, "an event after forget projects: {done:?}");
    let (view, _) = projector.view(&orders[0].0).await.map_err(|e| fail(&e))?.ok_or("no view")?;
    ensure!(view.order.status == crate::OrderStatus::Cancelled, "cancelled: {view:?}");
    ensure!(
        cipher.keys().key_for_read("acme", "rm-cust-1").await.map_err(|e| fail(&e))?.is_none(),
        "projecting never recreates a forgotten subject's key"
    );
    Ok(())
}

/// Erasure across processes: plaintext opened under a forgotten key generation is never sealed again
/// under the returning subject's new key.
///
/// `process()` makes the cipher of one process (one Lambda instance: its own key cache over the
/// shared key store). Process D places an order for `back-cust` (and snapshots every command);
/// process A projects it: both now cache the customer's key K1. Process B forgets the customer, who
/// comes back (a new order in B creates K2), and adds an item to the old order. While A and D still
/// hold K1, A projects that event and D runs another command on the old order (a snapshot follows
/// it): neither may seal the old name and email under K2. A fresh process C reads the old order
/// redacted from the snapshot (load), from the view and from a replay, and the new order in clear.
pub async fn erasure_across_processes<S>(store: &S, process: impl Fn() -> FieldCipher) -> Result<(), String>
where
    S: EventStore + SnapshotStore + IdempotencyStore + ViewStore + Clone,
{
    let fail = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let ctx = CommandContext::default;
    let (a, b, c, d) = (process(), process(), process(), process());
    let repo = |cipher: &FieldCipher, every: u64| {
        Repository::<Order, _>::new(store.clone())
            .with_cipher(cipher.clone())
            .with_snapshot_policy(SnapshotPolicy::every(every))
    };
    let projector = |cipher: &FieldCipher| {
        Projector::new(OrderSummaries, store.clone()).with_cipher(cipher.clone()).with_upcasters(upcasters())
    };
    let deliver = |cipher: FieldCipher, order: StreamId, from: u64| async move {
        let events = store.read(&order, from, 1000).await.map_err(|e| fail(&e))?.events;
        projector(&cipher)
            .project(&order, events.into_iter().map(Delivered::Event).collect())
            .await
            .map_err(|e| fail(&e))
    };
    let (old, new) = (stream("back-old")?, stream("back-new")?);
    let add = OrderCommand::AddItem { sku: "BOOK".into(), quantity: 1, unit_price_minor: 500 };

    repo(&d, 1).execute(&old, &place_order("back-cust"), ctx()).await.map_err(|e| fail(&e))?;
    deliver(a.clone(), old.clone(), 1).await?;
    b.keys().forget("acme", "back-cust").await.map_err(|e| fail(&e))?;
    repo(&b, 0).execute(&new, &place_order("back-cust"), ctx()).await.map_err(|e| fail(&e))?;
    repo(&b, 0).execute(&old, &add, ctx()).await.map_err(|e| fail(&e))?;

    // A, still holding K1, projects the old order's new event into the view it opens with K1...
    let projected = deliver(a.clone(), old.clone(), 2).await?;
    ensure!(projected.version == 2, "the old order's view reached version 2: {projected:?}");
    // ...and D, still holding K1, runs a command on the old order, which snapshots it.
    repo(&d, 1).execute(&old, &add, ctx()).await.map_err(|e| fail(&e))?;

    let redacted = |customer: Option<crate::Customer>, what: &str| match customer {
        Some(c) if c.name.is_redacted() && c.email.is_redacted() && c.shipping_address.is_redacted() => {
            Ok(())
        }
        other => Err(format!("{what}: the forgotten customer reads {other:?}")),
    };
    let loaded = repo(&c, 0).load(&old).await.map_err(|e| fail(&e))?;
    ensure!(loaded.version == 3, "old order at version {}", loaded.version);
    redacted(loaded.state.customer, "a fresh load of the old order (snapshot)")?;
    let (view, _) = projector(&c).view(&old).await.map_err(|e| fail(&e))?.ok_or("no view")?;
    redacted(view.order.customer, "the old order's view")?;
    let replayed = repo(&c, 0).load_at_version(&old, 3).await.map_err(|e| fail(&e))?;
    redacted(replayed.state.customer, "a replay of the old order")?;
    let returned = repo(&c, 0).load(&new).await.map_err(|e| fail(&e))?.state.customer;
    ensure!(
        returned.is_some_and(|c| c.name.known().is_some()),
        "the returning customer's new order reads in clear"
    );
    Ok(())
}
