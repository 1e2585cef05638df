//! The contract of appends and reads.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{ensure, event, fail, versions_and_ids, write_commits};
use crate::{AppendRequest, Error, EventId, EventStore, ExpectedVersion, NewEvent, StreamId};

/// How a case states its expectation, relative to the stream's version at that moment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    Any,
    NoStream,
    StreamExists,
    /// `Exact(current - back)` (at least 0): the head, or a stale version, which may lie inside a
    /// commit.
    Behind(u64),
    /// A version past the head.
    Ahead(u64),
    /// A version inside the newest commit when it holds several events (else the head): a store
    /// that checks only "is there an item at n + 1" would accept it and corrupt the stream.
    InsideNewest,
}

/// One append: the expectation, how many events, whether to call `append_after_load` (only when
/// the expectation is the head, as that method's contract requires), and whether to send an earlier
/// successful request again afterwards, as a caller does that lost the answer (through the same
/// method: an SDK-level retry of `append_after_load` happens after the head moved, too). The
/// look-back's stop rule and snapshots on top are covered by the DynamoDB crate's
/// `tests/lost_answers.rs`, not here.
pub(crate) type Op = (Expect, usize, bool, bool);

pub(crate) fn ops() -> impl Strategy<Value = Vec<Op>> {
    let expect = prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        Just(Expect::StreamExists),
        (0u64..4).prop_map(Expect::Behind),
        (1u64..3).prop_map(Expect::Ahead),
        Just(Expect::InsideNewest),
    ];
    prop::collection::vec((expect, 1usize..4, any::<bool>(), any::<bool>()), 1..24)
}

/// Appends succeed exactly when the expectation matches the stream's version, as one commit of
/// the next versions holding exactly the events sent; any other expectation is `Conflict` and writes
/// nothing; an empty append is refused. A successful request sent again later (same event ids,
/// whatever landed on top since) returns its first commit and writes nothing. The stream reads and
/// loads back as written.
pub(crate) async fn expected_versions<S: EventStore>(
    store: &S,
    stream: StreamId,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut current = 0u64;
    let mut newest = (0u64, 0u64);
    let mut ids: Vec<EventId> = Vec::new();
    let mut committed: Vec<(AppendRequest, crate::Commit, bool)> = Vec::new();
    for (i, (expect, count, after_load, replay)) in ops.into_iter().enumerate() {
        let expected = match expect {
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::StreamExists => ExpectedVersion::StreamExists,
            Expect::Behind(back) => ExpectedVersion::Exact(current.saturating_sub(back)),
            Expect::Ahead(ahead) => ExpectedVersion::Exact(current + ahead),
            Expect::InsideNewest if newest.1 > newest.0 => ExpectedVersion::Exact(newest.1 - 1),
            Expect::InsideNewest => ExpectedVersion::Exact(current),
        };
        let events: Vec<NewEvent> = (0..count).map(|j| event(i * 10 + j)).collect();
        let sent: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
        let request = AppendRequest { stream: stream.clone(), expected, events, idempotency: None };
        let after_load = after_load && expected == ExpectedVersion::Exact(current);
        let result = if after_load {
            store.append_after_load(request.clone()).await
        } else {
            store.append(request.clone()).await
        };
        match result {
            Ok(commit) => {
                ensure!(expected.matches(current), "{expected} was accepted at version {current}");
                let stored = versions_and_ids(&commit.events);
                let wanted: Vec<(u64, EventId)> = (current + 1..).zip(sent.iter().copied()).collect();
                ensure!(
                    (commit.first_version, commit.last_version) == (current + 1, current + count as u64)
                        && stored == wanted,
                    "{expected} at version {current}: commit {}..={} of {stored:?}, sent {wanted:?}",
                    commit.first_version,
                    commit.last_version
                );
                newest = (commit.first_version, commit.last_version);
                current = commit.last_version;
                ids.extend(sent);
                committed.push((request, commit, after_load));
            }
            Err(Error::Conflict { actual, .. }) => {
                ensure!(!expected.matches(current), "{expected} was refused at version {current}");
                // A store may not know what it lost to: a failed conditional write says only that
                // the key is taken.
                ensure!(
                    actual.is_none_or(|a| a == current),
                    "{expected}: the conflict reports version {actual:?}, the stream is at {current}"
                );
            }
            Err(other) => {
                return Err(TestCaseError::fail(format!("{expected} at version {current}: {other}")));
            }
        }
        if replay && let Some((request, first, after_load)) = committed.get(i % committed.len().max(1)) {
            let again = if *after_load {
                store.append_after_load(request.clone()).await
            } else {
                store.append(request.clone()).await
            };
            let expected = request.expected;
            ensure!(
                again.as_ref().is_ok_and(|commit| commit == first),
                "{expected} sent again at version {current}: {again:?}, first {}..={}",
                first.first_version,
                first.last_version
            );
        }
    }
    let empty = AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![],
        idempotency: None,
    };
    let empty = store.append(empty).await;
    ensure!(matches!(empty, Err(Error::InvalidRequest(_))), "an append of no events: {empty:?}");

    let page = store.read(&stream, 1, ids.len() + 1).await.map_err(fail)?;
    let wanted: Vec<(u64, EventId)> = (1..).zip(ids.iter().copied()).collect();
    ensure!(
        versions_and_ids(&page.events) == wanted && page.next_version.is_none(),
        "stored {:?}, written {wanted:?}",
        versions_and_ids(&page.events)
    );
    let loaded = store.load(&stream, 1).await.map_err(fail)?;
    ensure!(
        loaded.snapshot.is_none() && loaded.events == page.events,
        "a load without snapshots returns the stream as read"
    );
    Ok(())
}

/// Commit sizes, a page limit, and a version to read from (0 reads from 1; past the head reads
/// nothing).
pub(crate) fn paging() -> impl Strategy<Value = (Vec<usize>, usize, u64)> {
    prop::collection::vec(1usize..5, 0..12).prop_flat_map(|sizes| {
        let total = sizes.iter().sum::<usize>() as u64;
        (Just(sizes), 1usize..9, 0..=total + 2)
    })
}

/// Reading page by page from any version (also one inside a commit) returns every later event
/// once, in order; each page is full unless it reaches the end, and names the next version exactly
/// when events follow. A limit of 0 is refused.
pub(crate) async fn paged_reads<S: EventStore>(
    store: &S,
    stream: StreamId,
    (sizes, limit, from): (Vec<usize>, usize, u64),
) -> Result<(), TestCaseError> {
    let written = write_commits(store, &stream, &sizes).await?;
    let total = written.ids.len() as u64;
    let mut seen = Vec::new();
    let mut next = Some(from);
    while let Some(at) = next {
        let page = store.read(&stream, at, limit).await.map_err(fail)?;
        let remaining = usize::try_from(total.saturating_sub(at.max(1) - 1)).unwrap_or(usize::MAX);
        ensure!(
            page.events.len() == limit.min(remaining),
            "read({at}, {limit}) of {total} events returned {}",
            page.events.len()
        );
        let last = page.events.last().map(|e| e.version);
        ensure!(
            page.next_version == last.filter(|v| *v < total).map(|v| v + 1),
            "read({at}, {limit}) of {total} events names {:?} next",
            page.next_version
        );
        seen.extend(versions_and_ids(&page.events));
        next = page.next_version;
    }
    let wanted = written.after(from.max(1) - 1);
    ensure!(seen == wanted, "read from {from} by {limit}: {seen:?}, written {wanted:?}");
    let zero = store.read(&stream, 1, 0).await;
    ensure!(matches!(zero, Err(Error::InvalidRequest(_))), "a read of 0 events: {zero:?}");
    Ok(())
}

/// A writer catching up: an append after any commit end but the head loses and writes nothing
/// (with the commit in its way, exactly as stored, when the store returns it), [`EventStore::read_after`]
/// from any commit end returns exactly the events after it, and an append after the head commits.
pub(crate) async fn catch_ups<S: EventStore>(
    store: &S,
    stream: StreamId,
    sizes: Vec<usize>,
) -> Result<(), TestCaseError> {
    let mut written = write_commits(store, &stream, &sizes).await?;
    let head = written.ends.last().copied().unwrap_or(0);
    let starts: Vec<u64> = std::iter::once(0).chain(written.ends.iter().copied()).collect();
    for (i, &end) in starts.iter().enumerate() {
        let after = store.read_after(&stream, end).await.map_err(fail)?;
        ensure!(
            versions_and_ids(&after) == written.after(end),
            "read_after({end}) of commits ending {:?}",
            written.ends
        );
        let expected = if end == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(end) };
        let request = AppendRequest {
            stream: stream.clone(),
            expected,
            events: vec![event(1_000 + i)],
            idempotency: None,
        };
        let attempt = store.try_append_after_load(request).await.map_err(fail)?;
        match attempt {
            crate::AppendAttempt::Committed(commit) => {
                ensure!(end == head, "an append after {end} committed under head {head}: {commit:?}");
                ensure!(commit.first_version == head + 1, "committed at {}", commit.first_version);
                written.ids.extend(commit.events.iter().map(|e| e.event_id));
                written.ends.push(commit.last_version);
            }
            crate::AppendAttempt::Lost { winner, .. } => {
                ensure!(end < head, "an append after the head {head} lost");
                if let Some(winner) = winner {
                    let next_end = starts.get(i + 1).copied().unwrap_or(end);
                    let expected: Vec<(u64, EventId)> =
                        written.after(end).into_iter().filter(|(v, _)| *v <= next_end).collect();
                    ensure!(
                        versions_and_ids(&winner.events) == expected
                            && (winner.first_version, winner.last_version) == (end + 1, next_end),
                        "the commit in the way of an append after {end}: {winner:?}"
                    );
                }
            }
        }
    }
    let after = store.read_after(&stream, 0).await.map_err(fail)?;
    ensure!(versions_and_ids(&after) == written.after(0), "nothing written but the append after the head");
    Ok(())
}
