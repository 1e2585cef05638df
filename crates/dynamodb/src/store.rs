//! [`DynamoStore`]: the core store traits on one DynamoDB table.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};
use chrono::Utc;
use strata_core::{
    AppendAttempt, AppendRequest, Commit, Error, EventEnvelope, EventPage, EventStore, ExpectedVersion,
    IdempotencyRecord, IdempotencyStore, LoadedStream, Snapshot, SnapshotStore, StreamId,
};

use crate::error::{backend, commit_put_failure};
use crate::item::{
    CommitItem, IdempotencyItem, Item, LegacyCommitItem, MAX_ITEM_BYTES, SnapshotItem, from_item, item_size,
    kind, kind_of, last_version_of, state_schema_of, to_item,
};
use crate::keys::{IDEMPOTENCY_SK, SNAPSHOT_SUFFIX, idempotency_pk, snapshot_sk, stream_pk, version_sk};
use crate::learned::SnapshotDistances;
use crate::table::SNAPSHOTS_INDEX;
use crate::transact::Action;

/// A commit is new only if no item has its key: two writers at the same version both write
/// sk = version + 1, and exactly one wins.
pub(crate) const COMMIT_IS_NEW: &str = "attribute_not_exists(pk)";
/// An idempotency key is free if unused or expired (TTL deletion lags by up to days).
/// `expires_at` holds whole seconds (rounded up) and `:now` is whole seconds (rounded down), so `<=`
/// agrees exactly with [`IdempotencyStore::get_record`]'s `expires_at > now` for a live record.
pub(crate) const KEY_IS_FREE: &str = "attribute_not_exists(pk) OR expires_at <= :now";
/// How often an `Any` or `StreamExists` append re-reads the head after losing a race (within one
/// call: a caller's own retry of the same request starts over, and finds an earlier commit).
const UNCHECKED_APPEND_ATTEMPTS: u32 = 16;

/// The event store, snapshot store and idempotency store on one DynamoDB table (see the crate docs).
///
/// Cheap to clone: clones share the SDK client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: Arc<str>,
    load_page_size: i32,
    distances: Arc<SnapshotDistances>,
    commit_format: CommitFormat,
}

/// The item format a store writes commits in (it reads every one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitFormat {
    /// Metadata and events as one JSON text beside the keys and versions (see the crate docs): what
    /// every store writes by default.
    #[default]
    V3,
    /// Short names, nothing stored twice, metadata and events as native maps and lists: for the
    /// first deploy of an upgrade from code that reads v2 and legacy items but not v3.
    V2,
    /// The first format, for the first deploy of an upgrade from code that reads only it.
    Legacy,
}

impl std::str::FromStr for CommitFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "v3" => Ok(Self::V3),
            "v2" => Ok(Self::V2),
            "legacy" => Ok(Self::Legacy),
            other => Err(format!("unknown commit format {other:?} (v3, v2 or legacy)")),
        }
    }
}

impl DynamoStore {
    /// Items a load asks for per Query by default: a snapshot every 100 single-event commits is met
    /// in one Query.
    pub const DEFAULT_LOAD_PAGE_SIZE: u16 = 101;

    /// A store on `table`, which must have the shape of [`crate::TableSpec::strata`].
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            load_page_size: i32::from(Self::DEFAULT_LOAD_PAGE_SIZE),
            distances: Arc::default(),
            commit_format: CommitFormat::V3,
        }
    }

    /// Writes commits in this format ([`CommitFormat::V3`] by default). The older formats are for the
    /// first deploy of an upgrade from a version that cannot read v3 ([`CommitFormat::V2`]) or reads
    /// only legacy items ([`CommitFormat::Legacy`]): while old and new code both run, the old code
    /// must be able to read what the new writes. Deploy with it (the command function:
    /// `STRATA_COMMIT_FORMAT=v2` or `legacy`), then without it in a second deploy. Every format is
    /// read either way.
    pub fn with_commit_format(mut self, format: CommitFormat) -> Self {
        self.commit_format = format;
        self
    }

    /// Items a load's first Query asks for. Set it to your snapshot interval (in commits) plus one:
    /// then one Query reaches the newest snapshot, and what it reads past the snapshot is bounded by
    /// the interval (a Query pays for every item it returns). When the first page holds no snapshot,
    /// each further page asks for twice as many items as the one before (DynamoDB's 1 MB per page
    /// still applies): a stream without snapshots loads in a logarithmic number of Queries until the
    /// pages reach 1 MB. When the snapshot lies beyond the first page, the page that meets it also
    /// reads older commits, up to its size: another reason to match the first page to the interval.
    ///
    /// This is the first page of a stream the store knows nothing about. Once it has loaded a stream
    /// (or written its snapshot), it remembers how many items lie above the newest snapshot, counts
    /// the commits it writes on top, and asks for that many plus one: a warm process reads only the
    /// snapshot and what follows it (clones share what was learned, bounded at 10,000 streams).
    pub fn with_load_page_size(mut self, items: u16) -> Self {
        self.load_page_size = i32::from(items.max(1));
        self
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The versions of the stream's snapshots, newest first, from the sparse `snapshots` index
    /// (eventually consistent: a snapshot written a moment ago may be missing).
    pub async fn snapshot_versions(&self, stream: &StreamId) -> Result<Vec<u64>, Error> {
        Ok(self
            .snapshot_keys(stream)
            .await?
            .iter()
            .filter_map(|item| item.get("snapshot_version")?.as_n().ok()?.parse().ok())
            .collect())
    }

    /// The keys of the stream's snapshots, newest first, from the sparse `snapshots` index.
    async fn snapshot_keys(&self, stream: &StreamId) -> Result<Vec<Item>, Error> {
        self.query_all(
            self.client
                .query()
                .table_name(&*self.table)
                .index_name(SNAPSHOTS_INDEX)
                .key_condition_expression("snapshot_of = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(stream_pk(stream)))
                .scan_index_forward(false),
        )
        .await
    }

    /// The stream's current version, from one strongly consistent Query of one item: the newest item
    /// is either the last commit or a snapshot taken at the last version. Reads only key-like
    /// attributes, so a snapshot item in an older format does not block appends.
    pub async fn head(&self, stream: &StreamId) -> Result<u64, Error> {
        let out = self.query_stream(stream, false, None, Some(1), None).await?;
        match out.items.unwrap_or_default().into_iter().next() {
            None => Ok(0),
            Some(item) if kind_of(&item) == Some(kind::SNAPSHOT) => snapshot_version_of(&item),
            Some(item) => last_version_of(&item),
        }
    }

    /// A strongly consistent Query of a stream's partition. `bound` is a key condition on `sk` with
    /// its value bound to `:sk`.
    async fn query_stream(
        &self,
        stream: &StreamId,
        forward: bool,
        bound: Option<(&str, String)>,
        limit: Option<i32>,
        start: Option<Item>,
    ) -> Result<QueryOutput, Error> {
        self.query_partition(stream, Consistency::Strong, forward, bound, limit, start).await
    }

    /// A Query of a stream's partition, strongly or eventually consistent.
    async fn query_partition(
        &self,
        stream: &StreamId,
        consistency: Consistency,
        forward: bool,
        bound: Option<(&str, String)>,
        limit: Option<i32>,
        start: Option<Item>,
    ) -> Result<QueryOutput, Error> {
        let mut condition = String::from("pk = :pk");
        let mut request = self
            .client
            .query()
            .table_name(&*self.table)
            .expression_attribute_values(":pk", AttributeValue::S(stream_pk(stream)))
            .scan_index_forward(forward)
            .consistent_read(consistency == Consistency::Strong)
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some((op, value)) = bound {
            condition.push_str(" AND sk ");
            condition.push_str(op);
            condition.push_str(" :sk");
            request = request.expression_attribute_values(":sk", AttributeValue::S(value));
        }
        request.key_condition_expression(condition).send().await.map_err(backend)
    }

    async fn append_checked(&self, request: AppendRequest, head_is_loaded: bool) -> Result<Commit, Error> {
        if request.events.is_empty() {
            return Err(Error::InvalidRequest("a commit needs at least one event".into()));
        }
        let mut head = match self.resolve_head(&request, head_is_loaded).await? {
            Resolved::Committed(commit) => return Ok(commit),
            Resolved::After(head) => head,
        };
        let mut attempt = 1;
        loop {
            match self.write_commit(&request, next_version(head)?).await {
                Err(Error::Conflict { .. })
                    if matches!(request.expected, ExpectedVersion::Any | ExpectedVersion::StreamExists)
                        && attempt < UNCHECKED_APPEND_ATTEMPTS =>
                {
                    attempt += 1;
                    // The head alone: none of this call's attempts can hide under it, since each
                    // failed write was checked against our first event id.
                    head = self.head(&request.stream).await?;
                }
                result => return result,
            }
        }
    }

    /// Where to append: after the expected version, checked against the stored head unless the
    /// caller loaded it, or after the stored head for `Any` and `StreamExists`. When the check finds
    /// that this very request was committed by an earlier attempt whose answer was lost, the answer is
    /// that commit, so a caller's retry never writes the events twice: for `Exact(n)` the commit at
    /// n + 1 is ours or none is; for `Any` and `StreamExists` ours may lie under later items, and
    /// [`DynamoStore::head_and_own_commit`] reads back for it. (`NoStream` and a loaded head need no
    /// read: their write is conditional on the one key ours would have.)
    pub(crate) async fn resolve_head(
        &self,
        request: &AppendRequest,
        head_is_loaded: bool,
    ) -> Result<Resolved, Error> {
        let head = match request.expected {
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => 0,
            ExpectedVersion::Exact(n) if head_is_loaded => n,
            ExpectedVersion::Exact(n) => {
                // A version inside a multi-event commit has no item of its own, so a conditional put
                // at n + 1 could succeed and corrupt the stream: check the head first.
                let head = self.head(&request.stream).await?;
                if head != n {
                    if head > n
                        && let Some(commit) = self.own_commit_at(request, next_version(n)?).await?
                    {
                        return Ok(Resolved::Committed(commit));
                    }
                    return Err(conflict(request, Some(head)));
                }
                n
            }
            ExpectedVersion::Any | ExpectedVersion::StreamExists => {
                let (head, own) = self.head_and_own_commit(request).await?;
                if let Some(commit) = own {
                    return Ok(Resolved::Committed(commit));
                }
                if head == 0 && request.expected == ExpectedVersion::StreamExists {
                    return Err(conflict(request, Some(0)));
                }
                head
            }
        };
        Ok(Resolved::After(head))
    }

    /// One PutItem, or a two-item transaction when an idempotency record rides along.
    async fn write_commit(&self, request: &AppendRequest, first_version: u64) -> Result<Commit, Error> {
        match self.try_write_commit(request, first_version).await? {
            AppendAttempt::Committed(commit) => Ok(commit),
            AppendAttempt::Lost { actual, .. } => Err(conflict(request, actual)),
        }
    }

    /// [`DynamoStore::write_commit`], answering a lost race with the commit in the way when DynamoDB
    /// returned it (`ReturnValuesOnConditionCheckFailure`: no extra request).
    async fn try_write_commit(
        &self,
        request: &AppendRequest,
        first_version: u64,
    ) -> Result<AppendAttempt, Error> {
        let commit = committed(request, first_version)?;
        let item = self.commit_item(request, first_version)?;
        if let Some(record) = &request.idempotency {
            let actions =
                vec![Action::commit(self, item, request)?, Action::idempotency(self, record, request)?];
            return match self.transact_for_winner(actions).await {
                Ok(()) => {
                    self.distances.grow(&stream_pk(&request.stream), None);
                    Ok(AppendAttempt::Committed(commit))
                }
                Err((Error::Conflict { actual, .. }, in_the_way)) => Ok(AppendAttempt::Lost {
                    winner: in_the_way.and_then(|item| decode_in_the_way(item, &request.stream)),
                    actual,
                }),
                Err((error, _)) => Err(error),
            };
        }
        let result = self
            .client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(item))
            .condition_expression(COMMIT_IS_NEW)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let error = match result {
            Ok(_) => {
                self.distances.grow(&stream_pk(&request.stream), None);
                return Ok(AppendAttempt::Committed(commit));
            }
            Err(error) => error,
        };
        let contended =
            matches!(error.as_service_error(), Some(PutItemError::TransactionConflictException(_)));
        let winner = match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
            _ => None,
        };
        match commit_put_failure(error, request) {
            Ok(()) => Ok(AppendAttempt::Committed(commit)),
            // That exception carries no item: an SDK retry of a write whose first attempt
            // landed would read as a conflict, and the command be decided and committed
            // again. One consistent GetItem tells, on this rare path only.
            Err(Error::Conflict { .. }) if contended => {
                match self.own_commit_at(request, first_version).await? {
                    Some(_) => Ok(AppendAttempt::Committed(commit)),
                    None => Ok(AppendAttempt::Lost { winner: None, actual: None }),
                }
            }
            Err(Error::Conflict { .. }) => Ok(AppendAttempt::Lost {
                winner: winner.and_then(|item| decode_in_the_way(item, &request.stream)),
                actual: None,
            }),
            Err(error) => Err(error),
        }
    }
}

/// The commit in the way of a lost write, read back as a load would; one that does not decode is
/// left to the caller's read.
fn decode_in_the_way(item: Item, stream: &StreamId) -> Option<Commit> {
    match decode_commit(item, stream) {
        Ok(commit) => Some(commit),
        Err(error) => {
            tracing::warn!(%stream, %error, "commit in the way does not decode");
            None
        }
    }
}

/// A commit item read back.
pub(crate) fn decode_commit(item: Item, stream: &StreamId) -> Result<Commit, Error> {
    CommitItem::from_item(item)?.into_commit(stream)
}

impl DynamoStore {
    /// Every item a Query matches, following `LastEvaluatedKey` to the end.
    pub(crate) async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, Error> {
        let query = query.return_consumed_capacity(ReturnConsumedCapacity::Total);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query.clone().set_exclusive_start_key(start).send().await.map_err(backend)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// An unconditional PutItem (a replace).
    pub(crate) async fn put(&self, item: Item) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

pub(crate) fn now_value() -> AttributeValue {
    AttributeValue::N(Utc::now().timestamp().to_string())
}

pub(crate) fn conflict(request: &AppendRequest, actual: Option<u64>) -> Error {
    Error::Conflict { stream: request.stream.clone(), expected: request.expected, actual }
}

/// The commit as it will read back once written at `first_version`.
pub(crate) fn committed(request: &AppendRequest, first_version: u64) -> Result<Commit, Error> {
    let last_version = (request.events.len() as u64)
        .checked_sub(1)
        .and_then(|extra| first_version.checked_add(extra))
        .ok_or_else(|| Error::InvalidRequest(format!("no room for the events of {}", request.stream)))?;
    let events = request
        .events
        .iter()
        .zip(first_version..=last_version)
        .map(|(event, version)| EventEnvelope::committed(request.stream.clone(), version, event.clone()))
        .collect();
    Ok(Commit { stream: request.stream.clone(), first_version, last_version, events })
}

/// Where an append after `head` starts.
pub(crate) fn next_version(head: u64) -> Result<u64, Error> {
    head.checked_add(1).ok_or_else(|| Error::InvalidRequest("stream version past u64::MAX".into()))
}

/// What [`DynamoStore::resolve_head`] found.
pub(crate) enum Resolved {
    /// Append after this version.
    After(u64),
    /// This request is already committed.
    Committed(Commit),
}

/// A snapshot's version, from its sort key (present on every snapshot item, whatever its format).
pub(crate) fn snapshot_version_of(item: &Item) -> Result<u64, Error> {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .and_then(|sk| sk.strip_suffix(SNAPSHOT_SUFFIX))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::backend("snapshot item without a snapshot sort key", false))
}

/// The commit item, refused before any call if it is over DynamoDB's 400 KB.
impl DynamoStore {
    /// The commit item of `request` at `first_version`, in the format this store writes.
    pub(crate) fn commit_item(&self, request: &AppendRequest, first_version: u64) -> Result<Item, Error> {
        let item = match self.commit_format {
            CommitFormat::V3 => {
                CommitItem::new(&request.stream, first_version, &request.events)?.to_item()?
            }
            CommitFormat::V2 => {
                to_item(&CommitItem::new(&request.stream, first_version, &request.events)?, "commit")?
            }
            CommitFormat::Legacy => {
                to_item(&LegacyCommitItem::new(&request.stream, first_version, &request.events)?, "commit")?
            }
        };
        check_size(&item, || format!("commit of {} at version {first_version}", request.stream))?;
        Ok(item)
    }
}

pub(crate) fn check_size(item: &Item, what: impl FnOnce() -> String) -> Result<(), Error> {
    let bytes = item_size(item);
    if bytes > MAX_ITEM_BYTES {
        return Err(Error::TooLarge { what: what(), bytes, limit: MAX_ITEM_BYTES });
    }
    Ok(())
}

impl EventStore for DynamoStore {
    async fn append(&self, request: AppendRequest) -> Result<Commit, Error> {
        self.append_checked(request, false).await
    }

    async fn append_after_load(&self, request: AppendRequest) -> Result<Commit, Error> {
        self.append_checked(request, true).await
    }

    /// One PutItem (or transaction), and no read: the head is the caller's. A lost race carries the
    /// commit that took the version, as DynamoDB returns it with the failed condition.
    async fn try_append_after_load(&self, request: AppendRequest) -> Result<AppendAttempt, Error> {
        if request.events.is_empty() {
            return Err(Error::InvalidRequest("a commit needs at least one event".into()));
        }
        let head = match self.resolve_head(&request, true).await? {
            Resolved::Committed(commit) => return Ok(AppendAttempt::Committed(commit)),
            Resolved::After(head) => head,
        };
        if !matches!(request.expected, ExpectedVersion::Exact(_) | ExpectedVersion::NoStream) {
            return self.append_checked(request, true).await.map(AppendAttempt::Committed);
        }
        self.try_write_commit(&request, next_version(head)?).await
    }

    /// One forward Query (1 MB pages) from the version after `version`: its key, since `version`
    /// ends a commit, so no commit straddles it.
    async fn read_after(&self, stream: &StreamId, version: u64) -> Result<Vec<EventEnvelope>, Error> {
        self.read_forward(stream, version, None).await
    }

    async fn read(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<EventPage, Error> {
        if limit == 0 {
            return Err(Error::InvalidRequest("page limit must be at least 1".into()));
        }
        let from = from_version.max(1);
        let mut events = Vec::new();
        // The commit holding `from` may start before it: it is the newest item below `from`'s key,
        // unless that item is a snapshot (which sits right after a commit's last version).
        if from > 1 {
            let out = self.query_stream(stream, false, Some(("<", version_sk(from))), Some(1), None).await?;
            if let Some(item) = out.items.unwrap_or_default().into_iter().next()
                && kind_of(&item) == Some(kind::COMMIT)
            {
                let commit = CommitItem::from_item(item)?.into_commit(stream)?;
                events.extend(commit.events.into_iter().filter(|e| e.version >= from));
            }
        }
        let mut start = None;
        // Ask for one event more than the limit, to know whether another page follows.
        while events.len() <= limit {
            let wanted = i32::try_from((limit - events.len()).saturating_add(1)).unwrap_or(i32::MAX);
            let out = self
                .query_stream(stream, true, Some((">=", version_sk(from))), Some(wanted), start.take())
                .await?;
            for item in out.items.unwrap_or_default() {
                if kind_of(&item) != Some(kind::COMMIT) {
                    continue;
                }
                let commit = CommitItem::from_item(item)?.into_commit(stream)?;
                let expected = events.last().map_or(from, |e: &EventEnvelope| e.version.saturating_add(1));
                if commit.first_version != expected {
                    return Err(Error::StreamCorrupted {
                        stream: stream.clone(),
                        expected,
                        found: commit.first_version,
                    });
                }
                events.extend(commit.events);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let next_version = if events.len() > limit {
            events.truncate(limit);
            events.last().and_then(|e| e.version.checked_add(1))
        } else {
            None
        };
        Ok(EventPage { events, next_version })
    }

    /// Reads past snapshots of other state schemas (in the same descending pages, so no extra
    /// Query while the wanted one lies within the pages read anyway) without parsing their state.
    async fn load(&self, stream: &StreamId, state_schema_version: u32) -> Result<LoadedStream, Error> {
        self.load_backward(stream, state_schema_version, None, Consistency::Strong).await
    }

    /// Forward from the stream's first key in 1 MB pages (no `Limit`): a stream without snapshots
    /// costs one Query per MB. A snapshot of the wanted schema met on the way still counts.
    async fn load_forward(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
    ) -> Result<LoadedStream, Error> {
        self.load_ascending(stream, state_schema_version, Consistency::Strong).await
    }

    /// The load or forward load with eventually consistent Queries: half the read units of a strongly
    /// consistent one. A page may come from a replica that has not applied the newest writes yet;
    /// every replica applies a partition's writes in order, so a page holds the partition as it stood
    /// at some moment: the first page of a backward read may start below the head, a forward read
    /// may end below it. Pages after the first may come from another replica: a backward page from
    /// one further behind than where the first page ended would leave a gap, which the version
    /// checks refuse; then the stream is loaded again with strongly consistent reads.
    async fn load_recent(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        forward: bool,
    ) -> Result<LoadedStream, Error> {
        let relaxed = if forward {
            self.load_ascending(stream, state_schema_version, Consistency::Eventual).await
        } else {
            self.load_backward(stream, state_schema_version, None, Consistency::Eventual).await
        };
        match relaxed {
            Err(Error::StreamCorrupted { .. }) if forward => {
                self.load_forward(stream, state_schema_version).await
            }
            Err(Error::StreamCorrupted { .. }) => self.load(stream, state_schema_version).await,
            other => other,
        }
    }

    /// The stream's snapshots from the sparse `snapshots` index (one Query, keys only, eventually
    /// consistent: the newest may be missing, then an older one serves), newest first; for each, one
    /// strongly consistent Query of two items from its key down reads the snapshot and the commit it
    /// ends on, until a snapshot of the schema whose last commit was made at or before `at` turns up.
    /// Then the commits after it, forward in 1 MB pages (one Query for most streams), to the first
    /// event committed after `at`. Without such a snapshot (none kept from that far back), from
    /// version 1.
    async fn load_until_time(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        at: chrono::DateTime<Utc>,
    ) -> Result<LoadedStream, Error> {
        let mut snapshot = None;
        for key in self.snapshot_keys(stream).await? {
            let Some(version) = key.get("snapshot_version").and_then(|v| v.as_n().ok()?.parse::<u64>().ok())
            else {
                continue;
            };
            let out =
                self.query_stream(stream, false, Some(("<=", snapshot_sk(version))), Some(2), None).await?;
            let mut items = out.items.unwrap_or_default().into_iter();
            // Pruned since the index was read: the next older one.
            let (Some(found), Some(below)) = (items.next(), items.next()) else { continue };
            if kind_of(&found) != Some(kind::SNAPSHOT) || kind_of(&below) != Some(kind::COMMIT) {
                continue;
            }
            let commit = decode_commit(below, stream)?;
            let ends_before = commit.last_version == version
                && commit.events.last().is_some_and(|e| e.metadata.committed_at <= at);
            if !ends_before {
                continue;
            }
            if let Some(found) = wanted_snapshot(found, stream, state_schema_version) {
                snapshot = Some(found);
                break;
            }
        }
        let after = snapshot.as_ref().map_or(0, |s| s.version);
        let events = self.read_forward(stream, after, Some(at)).await?;
        Ok(LoadedStream { snapshot, events })
    }

    /// The same descending read as a load, from the key after `version` down.
    async fn load_until(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        version: u64,
    ) -> Result<LoadedStream, Error> {
        let mut loaded =
            self.load_backward(stream, state_schema_version, Some(version), Consistency::Strong).await?;
        loaded.events.retain(|e| e.version <= version);
        Ok(loaded)
    }
}

impl DynamoStore {
    /// Every event after `version` (which ends a commit), forward in 1 MB pages from the key after
    /// it, strongly consistent; with `until`, only up to the first event committed after it.
    async fn read_forward(
        &self,
        stream: &StreamId,
        version: u64,
        until: Option<chrono::DateTime<Utc>>,
    ) -> Result<Vec<EventEnvelope>, Error> {
        let from = next_version(version)?;
        let mut events: Vec<EventEnvelope> = Vec::new();
        let mut start = None;
        loop {
            let out =
                self.query_stream(stream, true, Some((">=", version_sk(from))), None, start.take()).await?;
            for item in out.items.unwrap_or_default() {
                match kind_of(&item) {
                    Some(kind::COMMIT) => {}
                    Some(kind::SNAPSHOT) => continue,
                    other => return Err(foreign_item(other, stream)),
                }
                let commit = decode_commit(item, stream)?;
                let expected = events.last().map_or(from, |e| e.version.saturating_add(1));
                if commit.first_version != expected {
                    return Err(Error::StreamCorrupted {
                        stream: stream.clone(),
                        expected,
                        found: commit.first_version,
                    });
                }
                for event in commit.events {
                    if until.is_some_and(|at| event.metadata.committed_at > at) {
                        return Ok(events);
                    }
                    events.push(event);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(events),
            }
        }
    }

    /// Reads forward from the stream's first key in 1 MB pages, keeping the newest snapshot of the
    /// wanted schema met and the events after it.
    async fn load_ascending(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        consistency: Consistency,
    ) -> Result<LoadedStream, Error> {
        let mut loaded = LoadedStream::default();
        let mut start = None;
        loop {
            let out = self.query_partition(stream, consistency, true, None, None, start.take()).await?;
            for item in out.items.unwrap_or_default() {
                match kind_of(&item) {
                    Some(kind::COMMIT) => loaded.events.extend(decode_commit(item, stream)?.events),
                    Some(kind::SNAPSHOT) => {
                        if let Some(found) = wanted_snapshot(item, stream, state_schema_version) {
                            loaded.events.clear();
                            loaded.snapshot = Some(found);
                        }
                    }
                    other => return Err(foreign_item(other, stream)),
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let mut next = loaded.snapshot.as_ref().map_or(1, |s| s.version.saturating_add(1));
        for event in &loaded.events {
            if event.version != next {
                return Err(Error::StreamCorrupted {
                    stream: stream.clone(),
                    expected: next,
                    found: event.version,
                });
            }
            next = next.saturating_add(1);
        }
        Ok(loaded)
    }

    /// Reads the stream backwards from its head (or from the key after `until`) down to the newest
    /// snapshot of `state_schema_version`: a first page of `load_page_size` items, then pages twice
    /// as large.
    async fn load_backward(
        &self,
        stream: &StreamId,
        state_schema_version: u32,
        until: Option<u64>,
        consistency: Consistency,
    ) -> Result<LoadedStream, Error> {
        let bound = match until {
            Some(version) => Some(("<", version_sk(next_version(version)?))),
            None => None,
        };
        let mut commits = Vec::new();
        let mut snapshot = None;
        let mut start = None;
        let pk = stream_pk(stream);
        // What was learned about the head holds for head loads only.
        let learned = if until.is_none() { self.distances.get(&pk, state_schema_version) } else { None };
        let mut page_size = learned
            .map_or(self.load_page_size, |items| i32::try_from(items.saturating_add(1)).unwrap_or(i32::MAX));
        let mut read: u32 = 0;
        'pages: loop {
            let out = self
                .query_partition(stream, consistency, false, bound.clone(), Some(page_size), start)
                .await?;
            // A learned page that missed (others wrote on top) goes on at the default size at least.
            page_size = page_size.saturating_mul(2).max(self.load_page_size);
            for item in out.items.unwrap_or_default() {
                read = read.saturating_add(1);
                match kind_of(&item) {
                    Some(kind::COMMIT) => commits.push(CommitItem::from_item(item)?),
                    Some(kind::SNAPSHOT) => {
                        if let Some(found) = wanted_snapshot(item, stream, state_schema_version) {
                            snapshot = Some(found);
                            break 'pages;
                        }
                    }
                    other => return Err(foreign_item(other, stream)),
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        if until.is_none() {
            match snapshot {
                Some(_) => self.distances.set(&pk, state_schema_version, read),
                None => self.distances.forget(&pk, Some(state_schema_version)),
            }
        }
        let mut next = snapshot.as_ref().map_or(1, |s: &Snapshot| s.version.saturating_add(1));
        let mut events = Vec::new();
        for item in commits.into_iter().rev() {
            let commit = item.into_commit(stream)?;
            if commit.first_version != next {
                return Err(Error::StreamCorrupted {
                    stream: stream.clone(),
                    expected: next,
                    found: commit.first_version,
                });
            }
            next = commit.last_version.saturating_add(1);
            events.extend(commit.events);
        }
        Ok(LoadedStream { snapshot, events })
    }
}

/// How a Query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consistency {
    /// Every write acknowledged before the read (one read unit per 4 KB).
    Strong,
    /// Possibly missing the newest writes (half a unit per 4 KB).
    Eventual,
}

/// A snapshot item of the wanted schema, read; `None` for another schema's (during a rolling deploy
/// both schemas' code loads the stream, each from its own snapshot) and for one that cannot be read
/// (snapshots are a cache: read past it).
fn wanted_snapshot(item: Item, stream: &StreamId, state_schema_version: u32) -> Option<Snapshot> {
    if let Some(other) = state_schema_of(&item).filter(|v| *v != state_schema_version) {
        tracing::debug!(%stream, schema = other, wanted = state_schema_version, "snapshot of another state schema read past");
        return None;
    }
    match from_item::<SnapshotItem>(item, "snapshot").and_then(|s| s.into_snapshot(stream)) {
        Ok(found) => Some(found),
        Err(error) => {
            tracing::warn!(%stream, %error, "unreadable snapshot item skipped");
            None
        }
    }
}

/// An item that has no place in a stream's partition.
fn foreign_item(kind: Option<&str>, stream: &StreamId) -> Error {
    Error::backend(format!("item of kind {kind:?} in the partition of {stream}"), false)
}

impl SnapshotStore for DynamoStore {
    /// Refuses ([`Error::InvalidRequest`]) a version that does not end a commit: its key would sort
    /// inside the stream and a load would stop at it. Checking costs one Query of one item. The put
    /// is conditional on the schema of a snapshot already at that version (`SCHEMA_NOT_NEWER`), so
    /// not even a racing writer of an older schema replaces a newer one.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<bool, Error> {
        let item = snapshot_item(&snapshot)?;
        let v = snapshot.version;
        let below = self
            .query_stream(&snapshot.stream, false, Some(("<", version_sk(next_version(v)?))), Some(1), None)
            .await?;
        let ends_a_commit = match below.items.unwrap_or_default().into_iter().next() {
            Some(item) if kind_of(&item) == Some(kind::SNAPSHOT) => snapshot_version_of(&item)? == v,
            Some(item) => last_version_of(&item)? == v,
            None => false,
        };
        if v == 0 || !ends_a_commit {
            return Err(Error::InvalidRequest(format!(
                "snapshot of {} at version {v}, which does not end a commit",
                snapshot.stream
            )));
        }
        self.distances.forget(&stream_pk(&snapshot.stream), None);
        self.put_snapshot(item, snapshot.state_schema_version).await
    }

    /// One conditional PutItem: the repository's version is a head it loaded or wrote.
    async fn save_snapshot_after_load(&self, snapshot: Snapshot) -> Result<bool, Error> {
        let item = snapshot_item(&snapshot)?;
        if snapshot.version == 0 {
            return Err(Error::InvalidRequest(format!("snapshot of {} at version 0", snapshot.stream)));
        }
        let pk = stream_pk(&snapshot.stream);
        let written = self.put_snapshot(item, snapshot.state_schema_version).await?;
        // At the head: the next load's first page is the snapshot and what follows it.
        if written {
            self.distances.grow(&pk, Some(snapshot.state_schema_version));
            self.distances.set(&pk, snapshot.state_schema_version, 1);
        } else {
            self.distances.forget(&pk, None);
        }
        Ok(written)
    }

    /// Lists the stream's snapshots from the sparse `snapshots` index (keys only, never the commits)
    /// and deletes all but the newest `keep`, each delete conditional on the item's schema (the
    /// keys-only index does not carry it, and a condition also holds against a racing writer). The
    /// index is eventually consistent: a snapshot written a moment ago may be missing from the list,
    /// which only keeps one more than asked. Only deletes that removed an item are counted.
    async fn prune_snapshots(
        &self,
        stream: &StreamId,
        keep: usize,
        state_schema_version: u32,
    ) -> Result<usize, Error> {
        let keys = self.snapshot_keys(stream).await?;
        let mut removed = 0;
        for item in keys.into_iter().skip(keep) {
            let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else { continue };
            let result = self
                .client
                .delete_item()
                .table_name(&*self.table)
                .key("pk", pk.clone())
                .key("sk", sk.clone())
                // Only ever a snapshot: a key from the index that now names another item is left.
                .condition_expression(format!(
                    "attribute_exists(pk) AND #kind = :snapshot AND ({SCHEMA_NOT_NEWER})"
                ))
                .expression_attribute_names("#kind", kind::ATTRIBUTE)
                .expression_attribute_values(":snapshot", AttributeValue::S(kind::SNAPSHOT.into()))
                .expression_attribute_values(":schema", schema_value(state_schema_version))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(_) => removed += 1,
                // Of a newer schema (kept), not a snapshot, or already gone.
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(DeleteItemError::is_conditional_check_failed_exception) => {}
                Err(error) => return Err(backend(error)),
            }
        }
        Ok(removed)
    }
}

/// The snapshot's item, checked against DynamoDB's item size limit.
fn snapshot_item(snapshot: &Snapshot) -> Result<Item, Error> {
    let item = to_item(&SnapshotItem::new(snapshot)?, "snapshot")?;
    check_size(&item, || format!("snapshot of {} at version {}", snapshot.stream, snapshot.version))?;
    Ok(item)
}

impl DynamoStore {
    /// Puts a snapshot item unless one of a newer state schema holds its key (`SCHEMA_NOT_NEWER`),
    /// so not even a racing writer of an older schema replaces a newer one. Whether it was written.
    async fn put_snapshot(&self, item: Item, state_schema_version: u32) -> Result<bool, Error> {
        let result = self
            .client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(item))
            .condition_expression(SCHEMA_NOT_NEWER)
            .expression_attribute_values(":schema", schema_value(state_schema_version))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(error) => Err(backend(error)),
        }
    }
}

/// A snapshot item may be replaced or removed only by a writer of its state schema or a newer one.
/// An item without a readable schema is no use to any load, so anyone may replace it.
const SCHEMA_NOT_NEWER: &str =
    "attribute_not_exists(state_schema_version) OR state_schema_version <= :schema";

fn schema_value(state_schema_version: u32) -> AttributeValue {
    AttributeValue::N(state_schema_version.to_string())
}

impl IdempotencyStore for DynamoStore {
    async fn get_record(&self, tenant: &str, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .set_key(Some(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(idempotency_pk(tenant, key))),
                ("sk".to_owned(), AttributeValue::S(IDEMPOTENCY_SK.to_owned())),
            ])))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else { return Ok(None) };
        let record = from_item::<IdempotencyItem>(item, "idempotency record")?.into_record()?;
        // TTL deletes expired items late; an expired record is no record.
        Ok((record.expires_at > Utc::now()).then_some(record))
    }

    async fn put_record(&self, record: IdempotencyRecord) -> Result<(), Error> {
        let item = to_item(&IdempotencyItem::new(&record)?, "idempotency record")?;
        check_size(&item, || format!("idempotency record {}", record.key))?;
        let result = self
            .client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(item))
            .condition_expression(KEY_IS_FREE)
            .expression_attribute_values(":now", now_value())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::IdempotencyKeyExists { key: record.key })
                }
                _ => Err(backend(error)),
            },
        }
    }

    async fn delete_record(&self, tenant: &str, key: &str, request_hash: &str) -> Result<(), Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&*self.table)
            .key("pk", AttributeValue::S(idempotency_pk(tenant, key)))
            .key("sk", AttributeValue::S(IDEMPOTENCY_SK.to_owned()))
            .condition_expression("request_hash = :hash")
            .expression_attribute_values(":hash", AttributeValue::S(request_hash.to_owned()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another holder's record, or none: left as it is.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(error) => Err(backend(error)),
        }
    }
}
