//! Streams whose older commits are legacy or v2 items (written before the v3 format, or by an older
//! writer during a rolling deploy): they load, read, end snapshots and answer lost-answer retries like
//! v3 items, with no migration, and new commits land on top of them in v3.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use chrono::Utc;
use common::{Fixture, append, bumps, fixture, stream};
use serde_json::json;
use strata_core::{AppendRequest, EventStore, ExpectedVersion, Snapshot, SnapshotStore, StreamId};
use strata_dynamodb::CommitFormat;
use strata_dynamodb::item::{CommitItem, LegacyCommitItem, names, to_item};

/// Writes `request`'s events at `first_version` as an older writer did: a legacy item.
async fn put_legacy(f: &Fixture, request: &AppendRequest, first_version: u64) {
    put_older(f, request, first_version, CommitFormat::Legacy).await;
}

/// Writes `request`'s events at `first_version` as a writer of an older format did.
async fn put_older(f: &Fixture, request: &AppendRequest, first_version: u64, format: CommitFormat) {
    let (item, name) = match format {
        CommitFormat::Legacy => {
            let item = LegacyCommitItem::new(&request.stream, first_version, &request.events).unwrap();
            (to_item(&item, "commit").unwrap(), names::legacy::EVENTS)
        }
        CommitFormat::V2 => {
            let item = CommitItem::new(&request.stream, first_version, &request.events).unwrap();
            (to_item(&item, "commit").unwrap(), names::EVENTS)
        }
        other => panic!("{other:?} is not an older format"),
    };
    assert!(item.contains_key(name));
    f.store.client().put_item().table_name(f.store.table()).set_item(Some(item)).send().await.unwrap();
}

async fn versions(f: &Fixture, s: &StreamId) -> Vec<u64> {
    let page = f.store.read(s, 1, 100).await.unwrap();
    page.events.iter().map(|e| e.version).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_legacy_commits_loads_reads_and_takes_v3_commits_on_top() {
    let f = fixture().await;
    let s = stream("legacy-mixed");
    put_legacy(&f, &append(&s, ExpectedVersion::NoStream, bumps(1, 2)), 1).await;
    put_legacy(&f, &append(&s, ExpectedVersion::Exact(2), bumps(3, 1)), 3).await;

    // The head is a legacy item: an exact append checks against its last_version.
    let commit = f.store.append(append(&s, ExpectedVersion::Exact(3), bumps(4, 2))).await.unwrap();
    assert_eq!((commit.first_version, commit.last_version), (4, 5));
    let conflict = f.store.append(append(&s, ExpectedVersion::Exact(2), bumps(4, 1))).await;
    assert!(matches!(conflict, Err(strata_core::Error::Conflict { .. })), "{conflict:?}");

    let loaded = f.store.load(&s, 1).await.unwrap();
    assert_eq!(loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(versions(&f, &s).await, [1, 2, 3, 4, 5]);
    // Reading from inside a legacy commit finds the commit that holds the version.
    let page = f.store.read(&s, 2, 10).await.unwrap();
    assert_eq!(page.events.first().map(|e| e.version), Some(2));

    // A snapshot may end a legacy commit.
    let snapshot = Snapshot {
        stream: s.clone(),
        version: 3,
        state_schema_version: 1,
        state: json!({}),
        taken_at: Utc::now(),
    };
    assert!(f.store.save_snapshot(snapshot).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_whose_first_attempt_an_older_writer_committed_gets_that_commit_back() {
    let f = fixture().await;
    for older in [CommitFormat::Legacy, CommitFormat::V2] {
        let s = stream(&format!("{older:?}-retry").to_lowercase());
        f.store.append(append(&s, ExpectedVersion::NoStream, bumps(1, 1))).await.unwrap();
        // The first attempts of these requests were written by an older writer, then their answers
        // lost (the look-back reads each format's names; the GetItem of an exact one, the whole item).
        let any = append(&s, ExpectedVersion::Any, bumps(2, 2));
        put_older(&f, &any, 2, older).await;
        f.store.append(append(&s, ExpectedVersion::Any, bumps(4, 1))).await.unwrap();
        let exact = append(&s, ExpectedVersion::Exact(4), bumps(5, 1));
        put_older(&f, &exact, 5, older).await;
        f.counter.reset();

        let again = f.store.append(any).await.unwrap();
        assert_eq!((again.first_version, again.last_version), (2, 3), "{older:?}");
        let again = f.store.append(exact).await.unwrap();
        assert_eq!(again.first_version, 5, "{older:?}");
        assert_eq!(f.counter.take().write_calls(), 0, "nothing written twice ({older:?})");
        assert_eq!(versions(&f, &s).await, [1, 2, 3, 4, 5], "{older:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_set_to_an_older_format_writes_items_older_code_reads() {
    let f = fixture().await;
    let s = stream("legacy-writer");
    let legacy = f.store.clone().with_commit_format(CommitFormat::Legacy);
    legacy.append(append(&s, ExpectedVersion::NoStream, bumps(1, 2))).await.unwrap();
    let v2 = f.store.clone().with_commit_format(CommitFormat::V2);
    v2.append(append(&s, ExpectedVersion::Exact(2), bumps(3, 1))).await.unwrap();
    f.store.append(append(&s, ExpectedVersion::Exact(3), bumps(4, 1))).await.unwrap();
    let items = f
        .store
        .client()
        .query()
        .table_name(f.store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(strata_dynamodb::keys::stream_pk(&s)),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let formats: Vec<[bool; 3]> = items
        .iter()
        .map(|i| [names::legacy::EVENTS, names::EVENTS, names::DATA].map(|name| i.contains_key(name)))
        .collect();
    assert_eq!(
        formats,
        [[true, false, false], [false, true, false], [false, false, true]],
        "legacy, then v2, then v3 (the default)"
    );
    assert_eq!(versions(&f, &s).await, [1, 2, 3, 4]);
    for (text, format) in
        [("v3", CommitFormat::V3), ("v2", CommitFormat::V2), ("legacy", CommitFormat::Legacy)]
    {
        assert_eq!(text.parse(), Ok(format));
    }
    assert!("v4".parse::<CommitFormat>().is_err());
}
