//! The contract of snapshots: where they may be saved, which one a load starts from, what pruning
//! keeps, and the rule that a newer state schema's snapshot is never replaced nor removed.

use std::collections::BTreeMap;

use chrono::Utc;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use super::{Written, ensure, fail, versions_and_ids, write_commits};
use crate::{Error, EventId, EventStore, Snapshot, SnapshotStore, StreamId};

/// The state schemas the cases use; loads also ask for one more, of which there is no snapshot.
const SCHEMAS: u32 = 3;

/// Snapshots a case holds: version -> (state schema, number of the save that wrote it).
type Model = BTreeMap<u64, (u32, usize)>;

/// Snapshots to save: at the end of which commit, of which state schema.
type Saves = Vec<(Index, u32)>;

fn snapshot(stream: &StreamId, version: u64, state_schema_version: u32, save: usize) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version,
        state_schema_version,
        state: state(version, state_schema_version, save),
        taken_at: Utc::now(),
    }
}

/// A state naming its snapshot, so a load shows which save it returns.
fn state(version: u64, state_schema_version: u32, save: usize) -> Value {
    json!({ "version": version, "schema": state_schema_version, "save": save })
}

pub(crate) fn commits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 0..8)
}

/// A snapshot is accepted at every version that ends a commit, and refused (`InvalidRequest`,
/// nothing written) at 0, inside a multi-event commit, and past the head: a snapshot there would
/// claim a state no load can continue from.
pub(crate) async fn only_at_commit_ends<S: EventStore + SnapshotStore>(
    store: &S,
    stream: StreamId,
    sizes: Vec<usize>,
) -> Result<(), TestCaseError> {
    let written = write_commits(store, &stream, &sizes).await?;
    let total = written.ids.len() as u64;
    for version in 0..=total + 1 {
        let result = store.save_snapshot(snapshot(&stream, version, 1, 0)).await;
        if written.ends.contains(&version) {
            ensure!(matches!(result, Ok(true)), "a snapshot at {version}, which ends a commit: {result:?}");
        } else {
            ensure!(
                matches!(result, Err(Error::InvalidRequest(_))),
                "a snapshot at {version} (commits end at {:?}): {result:?}",
                written.ends
            );
        }
    }
    let loaded = store.load(&stream, 1).await.map_err(fail)?;
    ensure!(
        loaded.snapshot.map(|s| s.version) == written.ends.last().copied() && loaded.events.is_empty(),
        "the newest snapshot is at the head"
    );
    // Exactly the accepted ones exist: removing all removes one per commit.
    let removed = prune_until(store, &stream, 0, u32::MAX, written.ends.len()).await?;
    ensure!(removed == written.ends.len(), "{removed} snapshots stored, {} accepted", written.ends.len());
    Ok(())
}

/// Prunes until `expected` snapshots were removed in all, or a deadline passes; returns the total.
/// A store may list snapshots from an eventually consistent index (DynamoDB's keys-only GSI), so one
/// written a moment ago may be missed by one prune (it keeps more, never fewer): the contract is that
/// repeated prunes converge on exactly the doomed ones, and never remove more.
async fn prune_until<S: SnapshotStore>(
    store: &S,
    stream: &StreamId,
    keep: usize,
    schema: u32,
    expected: usize,
) -> Result<usize, TestCaseError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut removed = store.prune_snapshots(stream, keep, schema).await.map_err(fail)?;
    while removed < expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        removed += store.prune_snapshots(stream, keep, schema).await.map_err(fail)?;
    }
    Ok(removed)
}

pub(crate) fn saves() -> impl Strategy<Value = (Vec<usize>, Saves)> {
    (prop::collection::vec(1usize..4, 1..10), prop::collection::vec((any::<Index>(), 1..=SCHEMAS), 0..8))
}

/// Saves each snapshot and checks that it was written unless a newer schema's snapshot holds its
/// version; returns what the store holds.
async fn save_all<S: SnapshotStore>(
    store: &S,
    stream: &StreamId,
    written: &Written,
    saves: &Saves,
) -> Result<Model, TestCaseError> {
    let mut model = Model::new();
    for (save, (at, schema)) in saves.iter().enumerate() {
        let version = written.ends[at.index(written.ends.len())];
        let held = model.get(&version).copied();
        let replaces = held.is_none_or(|(kept, _)| kept <= *schema);
        let result = store.save_snapshot(snapshot(stream, version, *schema, save)).await.map_err(fail)?;
        ensure!(
            result == replaces,
            "save {save} of schema {schema} at {version}, holding {held:?}: written = {result}"
        );
        if replaces {
            model.insert(version, (*schema, save));
        }
    }
    Ok(model)
}

/// For every schema, a load returns the newest snapshot of that schema (exactly as saved) and the
/// events after it, or no snapshot and the whole stream.
async fn check_loads<S: EventStore>(
    store: &S,
    stream: &StreamId,
    written: &Written,
    model: &Model,
) -> Result<(), TestCaseError> {
    for schema in 1..=SCHEMAS + 1 {
        let loaded = store.load(stream, schema).await.map_err(fail)?;
        let newest = model.iter().rev().find(|(_, (s, _))| *s == schema);
        let expected = newest.map(|(v, (s, save))| (*v, *s, state(*v, *s, *save)));
        let got = loaded.snapshot.map(|s| (s.version, s.state_schema_version, s.state));
        ensure!(got == expected, "load of schema {schema}: snapshot {got:?}, holding {model:?}");
        let from = newest.map_or(0, |(v, _)| *v);
        ensure!(
            versions_and_ids(&loaded.events) == written.after(from),
            "load of schema {schema}: the events after {from}"
        );
        let forward = store.load_forward(stream, schema).await.map_err(fail)?;
        let forward_got = forward.snapshot.map(|s| (s.version, s.state_schema_version, s.state));
        ensure!(
            forward_got == expected && versions_and_ids(&forward.events) == written.after(from),
            "a forward load of schema {schema} differs from a load: {forward_got:?}"
        );
        let total = written.ids.len() as u64;
        for until in 0..=total + 1 {
            let loaded = store.load_until(stream, schema, until).await.map_err(fail)?;
            let at = model.range(..=until).rev().find(|(_, (s, _))| *s == schema);
            let got = loaded.snapshot.map(|s| s.version);
            // A store may start further back (the default replays from version 1), never later.
            ensure!(
                got.is_none_or(|v| Some(v) == at.map(|(v, _)| *v)),
                "load of schema {schema} until {until}: snapshot at {got:?}, holding {model:?}"
            );
            let from = got.unwrap_or(0);
            let expected: Vec<(u64, EventId)> =
                written.after(from).into_iter().filter(|(v, _)| *v <= until).collect();
            ensure!(
                versions_and_ids(&loaded.events) == expected,
                "load of schema {schema} until {until}: the events after {from}"
            );
        }
    }
    Ok(())
}

/// A load starts from the newest snapshot of its own state schema, reading past snapshots of other
/// schemas; a save replaces a snapshot at its version only if that one is of its schema or older.
pub(crate) async fn loads_by_schema<S: EventStore + SnapshotStore>(
    store: &S,
    stream: StreamId,
    (sizes, saves): (Vec<usize>, Saves),
) -> Result<(), TestCaseError> {
    let written = write_commits(store, &stream, &sizes).await?;
    let model = save_all(store, &stream, &written, &saves).await?;
    check_loads(store, &stream, &written, &model).await
}

pub(crate) fn prunes() -> impl Strategy<Value = (Vec<usize>, Saves, usize, u32)> {
    (saves(), 0usize..4, prop_oneof![1..=SCHEMAS, Just(u32::MAX)])
        .prop_map(|((sizes, saves), keep, schema)| (sizes, saves, keep, schema))
}

/// Pruning removes the snapshots beyond the newest `keep` (counted over every schema) except those
/// of a newer schema than the pruner's, and says how many it removed.
pub(crate) async fn prune<S: EventStore + SnapshotStore>(
    store: &S,
    stream: StreamId,
    (sizes, saves, keep, schema): (Vec<usize>, Saves, usize, u32),
) -> Result<(), TestCaseError> {
    let written = write_commits(store, &stream, &sizes).await?;
    let mut model = save_all(store, &stream, &written, &saves).await?;
    let doomed: Vec<u64> =
        model.iter().rev().skip(keep).filter(|(_, (s, _))| *s <= schema).map(|(v, _)| *v).collect();
    let removed = prune_until(store, &stream, keep, schema, doomed.len()).await?;
    ensure!(
        removed == doomed.len(),
        "prune to {keep} by schema {schema} of {model:?} removed {removed}, not {doomed:?}"
    );
    for version in doomed {
        model.remove(&version);
    }
    check_loads(store, &stream, &written, &model).await?;
    let rest = prune_until(store, &stream, 0, u32::MAX, model.len()).await?;
    ensure!(rest == model.len(), "{rest} snapshots were left, not {}", model.len());
    Ok(())
}
