//! Recognising the commit of an earlier attempt of the same append, whose answer was lost.
//!
//! A caller that never heard back from an append (a timeout, a dropped connection, a crash between
//! the write and the reply) sends the same [`AppendRequest`] again, with the same event ids. The
//! retry must answer with the commit the first attempt wrote and never store the events twice. A
//! commit is recognised as this request's by its first event id (a ULID, unique per event).

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{DateTime, TimeDelta, Utc};
use strata_core::{AppendRequest, Commit, Error};

use crate::error::backend;
use crate::item::{
    Item, committed_nanos_of, first_event_id_of, first_version_of, kind, kind_of, last_version_of, names,
};
use crate::keys::{stream_pk, version_sk};
use crate::store::{DynamoStore, committed, snapshot_version_of};

/// How much earlier than a request another commit may have been sent (by its `written_at`) and still
/// have landed after that request's first attempt: the clock skew between writers plus the longest
/// one PutItem stays in flight (the SDK's retries with backoff). Bounds the look-back of
/// [`DynamoStore::head_and_own_commit`].
pub(crate) const LOST_ANSWER_MARGIN: TimeDelta = TimeDelta::seconds(60);

/// Items the look-back's first Query asks for: the head, a snapshot on it and a few recent commits,
/// which small commits fit in one read unit. Further pages double.
const LOOK_BACK_FIRST_PAGE: i32 = 4;

/// What the look-back reads of each item: keys, kind, last version, send time, commit time and first
/// event id, under the names of every commit format ([`crate::item::names`]): the first version is
/// the `sk` in all. A v3 item's first event id lies inside its `d`, which is read whole: read units
/// are charged on whole items anyway, and the look-back stops at the first commit sent more than
/// [`LOST_ANSWER_MARGIN`] before the request, on a path no repository command takes (`Any` and
/// `StreamExists` appends without a loaded head). Projecting a name an item lacks costs nothing. None of these names is a DynamoDB reserved word, so no aliases
/// are needed.
const LOOK_BACK_PROJECTION: &str = "sk, kind, v, w, d, m.n, e[0].i, \
     last_version, written_at, metadata.committed_at, events[0].event_id";

impl DynamoStore {
    /// Our own commit at `version`, if an earlier attempt of this request wrote it: for `Exact(n)`,
    /// whose commit can only start at n + 1. One GetItem.
    pub(crate) async fn own_commit_at(
        &self,
        request: &AppendRequest,
        version: u64,
    ) -> Result<Option<Commit>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .key("pk", AttributeValue::S(stream_pk(&request.stream)))
            .key("sk", AttributeValue::S(version_sk(version)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        match out.item {
            Some(item) if is_own_commit(&item, &first_event_id(request)) => {
                Ok(Some(committed(request, version)?))
            }
            _ => Ok(None),
        }
    }

    /// The stream's head and, when an earlier attempt of this request committed it, that commit: for
    /// `Any` and `StreamExists`, whose earlier commit can sit under any number of later items
    /// (snapshots, other writers' commits).
    ///
    /// Reads back from the head, strongly consistent and projected to keys, the first event id and
    /// the commit's `written_at` (a v3 item's `d` whole, as its first event id lies inside it), until it meets this request's first event id, or a commit sent more
    /// than [`LOST_ANSWER_MARGIN`] before this request was built (the time in its first event id, a
    /// ULID), or the start of the stream. Why that stop is sound: the earlier attempt was sent after the request was built,
    /// and everything that landed after it sits above it; a commit sent before that, less the margin,
    /// landed before it unless it stayed in flight longer than the margin (or its writer's clock is
    /// that far behind). Another writer's late retry of an old request carries a recent `written_at`
    /// (it is stamped per send), so it does not end the look-back early. On a stream not written
    /// within the margin that is one Query of a few items, as the plain head read was.
    pub(crate) async fn head_and_own_commit(
        &self,
        request: &AppendRequest,
    ) -> Result<(u64, Option<Commit>), Error> {
        let first_id = first_event_id(request);
        // When the request was built: its first event id was made then, before any attempt was sent
        // (unlike `committed_at`, which an import may carry from long ago).
        let built = request
            .events
            .first()
            .and_then(|e| i64::try_from(e.event_id.timestamp_ms()).ok())
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let written_before = built.checked_sub_signed(LOST_ANSWER_MARGIN).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut head = None;
        let mut start = None;
        let mut limit = LOOK_BACK_FIRST_PAGE;
        loop {
            let out = self
                .client
                .query()
                .table_name(&*self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(stream_pk(&request.stream)))
                .projection_expression(LOOK_BACK_PROJECTION)
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(limit)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                if kind_of(&item) == Some(kind::SNAPSHOT) {
                    // A snapshot on top names the head; a snapshot has no commit time, and is passed.
                    head.get_or_insert(snapshot_version_of(&item)?);
                    continue;
                }
                let head = *head.get_or_insert(last_version_of(&item)?);
                if is_own_commit(&item, &first_id) {
                    return Ok((head, Some(committed(request, first_version_of(&item)?)?)));
                }
                if written_at(&item)? < written_before {
                    return Ok((head, None));
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => {
                    start = Some(key);
                    limit = limit.saturating_mul(2);
                }
                _ => return Ok((head.unwrap_or(0), None)),
            }
        }
    }
}

/// The id of the request's first event, which names its commit.
pub(crate) fn first_event_id(request: &AppendRequest) -> String {
    request.events.first().map(|e| e.event_id.to_string()).unwrap_or_default()
}

/// Whether `item` (a commit of any format, whole or projected to its first event id) is the commit
/// of the request whose first event has this id.
pub(crate) fn is_own_commit(item: &Item, first_event_id: &str) -> bool {
    first_event_id_of(item).is_some_and(|stored| stored == first_event_id)
}

/// When a commit item was sent (`w`, or `written_at` on a legacy item: the writer's clock), or for
/// legacy items written before that attribute existed, when its command was decided
/// (`metadata.committed_at`, never later).
fn written_at(item: &Item) -> Result<DateTime<Utc>, Error> {
    let millis = [names::WRITTEN_AT, names::legacy::WRITTEN_AT]
        .iter()
        .find_map(|name| item.get(*name)?.as_n().ok()?.parse().ok());
    if let Some(millis) = millis {
        return DateTime::<Utc>::from_timestamp_millis(millis)
            .ok_or_else(|| Error::backend("commit item with an out-of-range written_at", false));
    }
    let committed_at = |metadata: &str| item.get(metadata)?.as_m().ok();
    // v3 and v2 items always carry `w`; their `n` is read for completeness, as every i64 of
    // nanoseconds is a time.
    if let Some(nanos) = committed_nanos_of(item).or_else(|| {
        committed_at(names::METADATA).and_then(|m| m.get(names::COMMITTED_AT)?.as_n().ok()?.parse().ok())
    }) {
        return Ok(DateTime::<Utc>::from_timestamp_nanos(nanos));
    }
    committed_at(names::legacy::METADATA)
        .and_then(|m| m.get(names::legacy::COMMITTED_AT))
        .and_then(|at| at.as_s().ok())
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| Error::backend("commit item without a readable written_at or committed_at", false))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly

    use serde_json::json;
    use strata_core::{Metadata, NewEvent, StreamId};

    use super::*;
    use crate::item::CommitItem;

    #[test]
    fn a_commit_is_dated_by_its_send_time_or_else_by_its_commit_time_in_every_format() {
        let stream = StreamId::new("acme", "counter", "c-1").unwrap();
        let mut metadata = Metadata::new("c");
        metadata.committed_at = DateTime::from_timestamp_nanos(1_767_225_600_123_456_789);
        let events = [NewEvent::new("Noted", 1, json!({}), metadata.clone())];
        let mut commit = CommitItem::new(&stream, 1, &events).unwrap();
        commit.written_at = Some(1_767_225_601_000);
        let sent = DateTime::<Utc>::from_timestamp_millis(1_767_225_601_000).unwrap();
        for mut item in [commit.to_item().unwrap(), crate::item::to_item(&commit, "commit").unwrap()] {
            assert_eq!(written_at(&item).unwrap(), sent);
            item.remove(names::WRITTEN_AT);
            assert_eq!(written_at(&item).unwrap(), metadata.committed_at);
        }
        // Legacy items carry committed_at as RFC 3339 text (to the nanosecond).
        let mut legacy = crate::item::LegacyCommitItem::new(&stream, 1, &events).unwrap();
        legacy.written_at = Some(1_767_225_601_000);
        let mut item = crate::item::to_item(&legacy, "commit").unwrap();
        assert_eq!(written_at(&item).unwrap(), sent);
        item.remove(names::legacy::WRITTEN_AT);
        assert_eq!(written_at(&item).unwrap(), metadata.committed_at);
    }
}
