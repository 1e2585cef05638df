//! The figures of the peer comparison (Strata next to cqrs-es 0.5 + dynamo-es 0.5) and their
//! section of the report. Compiled with or without the `peer` feature, so the report renders
//! whatever a run measured; the measuring itself is in `bench::peer`, behind the feature.

use std::fmt::Write as _;

use super::stats::{sig, thousands};

/// Which workload a table measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// One command on a new stream, and the item it wrote.
    ItemSize,
    /// `commands` commands, one after the other, on a stream of `length` events.
    Stream {
        /// Events before the first timed command.
        length: u64,
        /// Commands timed and counted.
        commands: usize,
        /// Snapshot interval, if any.
        snapshot_every: Option<u64>,
    },
    /// One load of a long stream without snapshots, then one command on it.
    Load {
        /// Events in the stream.
        length: u64,
    },
    /// Concurrent writers, each sending its commands one after the other.
    Writers {
        /// Writers.
        writers: usize,
        /// Streams they share (writer `w` writes stream `w % streams`).
        streams: usize,
        /// Commands per writer.
        commands_per_writer: usize,
    },
}

/// One figure: as printed, and as a number for the ratio (`None`: no ratio).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The cell's text.
    pub text: String,
    /// The number the ratio divides.
    pub value: Option<f64>,
}

impl Figure {
    /// A number shown with three significant digits (whole numbers with separators).
    pub fn number(value: f64) -> Self {
        let text = if value.fract() == 0.0 && (0.0..1e15).contains(&value) {
            thousands(value as u64)
        } else {
            sig(value)
        };
        Self { text, value: Some(value) }
    }

    /// A number shown as `text` (with its breakdown or spread).
    pub fn shown(text: impl Into<String>, value: f64) -> Self {
        Self { text: text.into(), value: Some(value) }
    }

    /// Text only.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), value: None }
    }
}

/// One line of a table: a metric for each subject.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    /// What is measured, with its unit.
    pub metric: String,
    /// Strata with its stream cache on (`CachePolicy::entries(1000)`).
    pub strata_cached: Figure,
    /// Strata with its stream cache off.
    pub strata_uncached: Figure,
    /// cqrs-es + dynamo-es.
    pub peer: Figure,
}

/// One workload's table.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerTable {
    /// The workload.
    pub workload: Workload,
    /// Its metrics.
    pub rows: Vec<PeerRow>,
}

fn ratio(peer: &Figure, strata: &Figure) -> String {
    match (peer.value, strata.value) {
        (Some(p), Some(s)) if s > 0.0 && p.is_finite() => format!("{}×", sig(p / s)),
        _ => "–".into(),
    }
}

/// The section: one table per workload, each with the explanation of its differences.
pub fn section(w: &mut String, tables: &[PeerTable]) {
    if tables.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Strata and cqrs-es + dynamo-es side by side\n");
    let _ = writeln!(w, "{INTRO}\n");
    for table in tables {
        let _ = writeln!(w, "### {}\n", heading(&table.workload));
        let _ = writeln!(
            w,
            "| | Strata, cache on | Strata, cache off | cqrs-es + dynamo-es | peer ÷ Strata (on) | peer ÷ Strata (off) |"
        );
        let _ = writeln!(w, "|---|---|---|---|---:|---:|");
        for row in &table.rows {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                row.metric,
                row.strata_cached.text,
                row.strata_uncached.text,
                row.peer.text,
                ratio(&row.peer, &row.strata_cached),
                ratio(&row.peer, &row.strata_uncached),
            );
        }
        let _ = writeln!(w, "\n{}\n", explanation(&table.workload));
    }
}

fn heading(workload: &Workload) -> String {
    match workload {
        Workload::ItemSize => "One event: the item and its write".into(),
        Workload::Stream { length, commands, snapshot_every: None } => {
            format!("{commands} commands on a {}-event stream, no snapshots", thousands(*length))
        }
        Workload::Stream { length, commands, snapshot_every: Some(every) } => format!(
            "{commands} commands on a {}-event stream, a snapshot every {every} events",
            thousands(*length)
        ),
        Workload::Load { length } => format!("Loading {} events, no snapshots", thousands(*length)),
        Workload::Writers { writers, streams, commands_per_writer } => format!(
            "{writers} writers × {commands_per_writer} commands on {streams} stream{}",
            if *streams == 1 { "" } else { "s" }
        ),
    }
}

const INTRO: &str = "The same workload through both libraries on the same emulator in the same run: a \
    `Counter` aggregate whose one command records one event with a 200-byte note (the state is its count), \
    no field encryption (dynamo-es has none). Strata: `DynamoStore` on a table made by \
    `TableSpec::strata()`, default `RetryPolicy`, its stream cache on (`CachePolicy::entries(1000)`) or off. \
    The peer: cqrs-es 0.5 `CqrsFramework` over dynamo-es 0.5 `DynamoEventRepository`, on the `Events` and \
    `Snapshots` tables of its `db/create_tables.sh`. Both get the same `aws_sdk_dynamodb` client type \
    (dynamo-es 0.5 depends on `aws-sdk-dynamodb` 1.x, resolved to the workspace's version), each with a \
    `RequestCounter` interceptor (no indexes on the peer's tables): requests, items and modelled capacity \
    are counted the same way on both sides. Ratios are peer ÷ Strata: above 1 the peer spends more (or, \
    for rates and successes, does more). Source references are to dynamo-es 0.5.0 and cqrs-es 0.5.0 as \
    published on crates.io.";

fn explanation(workload: &Workload) -> &'static str {
    match workload {
        Workload::ItemSize => {
            "Item size by DynamoDB's rules (`strata_dynamodb::item::item_size`) of the event item each \
             library wrote, read back with a Scan. dynamo-es writes every event in a `TransactWriteItems` \
             (`helpers.rs`, `commit_transactions`, called by `insert_events`), and a transactional write \
             costs twice the units of a plain one; Strata writes a single-commit append with one conditional \
             `PutItem` (`crates/dynamodb/src/store.rs`, `try_write_commit`). The peer's item repeats the \
             aggregate type and id (`AggregateTypeAndId`, `AggregateType`, `AggregateId`) and stores payload \
             and metadata as JSON in binary attributes with long attribute names \
             (`event_repository.rs`, `build_event_put_transactions`); Strata's commit item (v3, \
             `crates/dynamodb/src/item/commit.rs`) stores nothing twice, names its attributes with one \
             letter and keeps metadata and events in one JSON text: six attribute values to the peer's \
             eight. Both carry the same metadata (a correlation id and the commit \
             time: Strata always records them, the peer is given them as its metadata map); Strata's item \
             also carries an event id and its send time (`w`), which the peer has no use for. On a new stream both read first (Strata: a Query that finds nothing, then a \
             cache-on repository keeps the state)."
        }
        Workload::Stream { snapshot_every: None, .. } => {
            "Without snapshots, every peer command reads the whole stream: `CqrsFramework::execute` calls \
             `PersistedEventStore::load_aggregate`, which for `new_event_store` calls `get_events` → \
             `query_events` (`event_repository.rs`): one strongly consistent Query of every event, then one \
             `TransactWriteItems`. Strata with the cache off reads as many items, eventually consistent \
             (half the units; see the next workload for why that is safe): a repository without a \
             snapshot policy loads forward in 1 MB pages (`store.rs`, `load_forward`), following \
             `LastEvaluatedKey`, so 500 small events are one Query too, and a longer stream stays \
             correct (see the load below). Its write is one conditional `PutItem`, half the units of a transactional put. With \
             the cache on, the first command loads and every later one is decided on the state the \
             repository holds and written at once: one `PutItem`, nothing read; the condition at the next \
             version is the check that nothing newer exists. Emulator timings measure moto (which walks \
             and sorts the whole table on every Query and builds and serializes each returned item value \
             by value in Python), so they follow items, attribute values and Queries; compare them with \
             each other only. With the cache off both sides read the same items in one Query; Strata's \
             items have fewer attribute values (six, to eight) and its write is a plain `PutItem`."
        }
        Workload::Stream { snapshot_every: Some(_), .. } => {
            "The peer keeps snapshots in a second table, one item per aggregate: `get_snapshot` is a Query \
             on `Snapshots` (not a GetItem), then `get_last_events` → `query_events_from` reads the events \
             after it with a second Query that does not set `ConsistentRead` (`event_repository.rs`): \
             eventually consistent, so half the read units, but a load may miss the newest commit, and the \
             command then fails its condition with `AggregateConflict`. A snapshot is written inside the \
             command's `TransactWriteItems` when the new events reach a multiple of the interval \
             (`update_snapshot`; cqrs-es `persist/event_store.rs`, `commit_snapshot_with_addl_events`); no \
             timed command here crosses one. The peer reads only the events after its snapshot. Strata \
             keeps snapshots in the stream's own partition, sorted among its commits, and reads from the \
             head down to the newest snapshot in one Query (`store.rs`, `load_backward`). A store that knows nothing of the stream asks for a first page of 101 items \
             (a snapshot every 100 commits is met at once, with up to 100 older commits read and charged); \
             once it has loaded the stream, written its snapshot or its commits, it asks for the items it \
             knows lie above the snapshot plus one (`learned.rs`), so a warm store with the cache off reads \
             the snapshot and the commits after it in one Query instead of two. A command's load is \
             eventually consistent, like the peer's read of its events (half the units; `load_recent`): \
             its conditional write fails on anything newer and returns it, which is folded in, and a \
             rejection, a no-op or a failed `If-Match` decided on it is decided again on a strongly \
             consistent load before it is answered (`execute.rs`, `Basis::Recent`), so a replica's lag \
             costs a lost write, never a wrong answer. The peer answers its `AggregateConflict` to the \
             caller instead. With the cache on, later commands read nothing."
        }
        Workload::Load { .. } => {
            "dynamo-es loads with a single Query and never looks at `LastEvaluatedKey` (`event_repository.rs`, \
             `query_events`/`query_table`): DynamoDB returns at most 1 MB per Query page, so a stream longer \
             than about 1 MB of items loads truncated, the aggregate folds only the first page, and every \
             later command writes a sequence number that already exists and fails with \
             `AggregateConflict`, forever: the stream can no longer be written. (`stream_events`, the replay \
             path, does paginate.) Strata's load (no snapshot policy) reads forward in 1 MB pages and \
             follows `LastEvaluatedKey` to the head (`store.rs`, `load_forward`), and folds every event: it \
             reads more in all because it reads the whole stream, and less per event folded. The cache \
             plays no part in a load: both Strata columns are one measurement. Load times here include \
             moto's paging: to answer a page after the first it walks the partition from its start up to \
             `ExclusiveStartKey`, comparing keys in Python (DynamoDB seeks to it)."
        }
        Workload::Writers { .. } => {
            "Each writer sends its commands one after the other; writer `w` writes stream `w mod streams`; \
             snapshots every 100 events on both sides. cqrs-es has no retry: a command that loses the race \
             for a sequence number returns `AggregateError::AggregateConflict` (dynamo-es `error.rs` maps \
             the cancelled transaction to `OptimisticLock`) and is counted as failed here, as an application \
             would have to retry it. Strata retries conflicts with jittered backoff (`RetryPolicy::default()`: \
             up to 50 attempts, 10 ms doubling to 1.6 s, within 16 s); a lost `PutItem` returns the winning \
             commit (`ReturnValuesOnConditionCheckFailure`), which the repository folds in before deciding \
             again without a read (after a second loss in a row it reads what came after). A command still \
             losing after the policy's budget returns the conflict (counted as failed): the policy bounds \
             the wait; it does not promise success under any contention. Where races are lost, the peer's \
             losers give up after one attempt while Strata's keep trying: wall time then counts Strata's \
             retries and waits, and the rates count successes. Commands per second count successful \
             commands; the emulator serializes requests, so the rates compare request counts and \
             retries more than DynamoDB latency. Capacity is counted per command that succeeded: a failed \
             command has spent its reads and writes (a failed condition still consumes write units) and \
             must be sent again."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_ratios_against_both_strata_columns() {
        let table = PeerTable {
            workload: Workload::Load { length: 10_000 },
            rows: vec![PeerRow {
                metric: "Queries".into(),
                strata_cached: Figure::number(2.0),
                strata_uncached: Figure::number(4.0),
                peer: Figure::number(1.0),
            }],
        };
        let mut md = String::new();
        section(&mut md, &[table]);
        assert!(md.contains("### Loading 10,000 events, no snapshots"), "{md}");
        assert!(md.contains("| Queries | 2 | 4 | 1 | 0.500× | 0.250× |"), "{md}");
        let mut empty = String::new();
        section(&mut empty, &[]);
        assert!(empty.is_empty());
    }
}
