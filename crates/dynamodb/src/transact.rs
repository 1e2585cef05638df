//! Atomic writes across items: a commit with its idempotency record, and commits to several streams.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use strata_core::{AppendRequest, Commit, Error, ExpectedVersion, IdempotencyRecord, StreamId};

use crate::error::{TRANSACTION_CONFLICT, backend, is_retryable_code};
use crate::item::{IdempotencyItem, Item, to_item};
use crate::lost_answer::{first_event_id, is_own_commit};
use crate::store::{
    COMMIT_IS_NEW, DynamoStore, KEY_IS_FREE, Resolved, check_size, committed, conflict, next_version,
    now_value,
};

/// DynamoDB's limits on one TransactWriteItems call.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;
/// 4 MB of items per transaction.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

/// One conditional put in a transaction, and what its failed condition means.
pub(crate) struct Action {
    put: Put,
    bytes: usize,
    on_failure: Failure,
}

enum Failure {
    Commit {
        stream: StreamId,
        expected: ExpectedVersion,
        first_event_id: String,
    },
    /// The record of the append to `stream`.
    Idempotency {
        key: String,
        stream: StreamId,
        expected: ExpectedVersion,
    },
}

impl Failure {
    /// The conflict on this action's stream.
    fn conflict(&self) -> Error {
        let (Self::Commit { stream, expected, .. } | Self::Idempotency { stream, expected, .. }) = self;
        Error::Conflict { stream: stream.clone(), expected: *expected, actual: None }
    }
}

impl Action {
    pub(crate) fn commit(store: &DynamoStore, item: Item, request: &AppendRequest) -> Result<Self, Error> {
        Ok(Self {
            bytes: crate::item::item_size(&item),
            put: put(store, item, COMMIT_IS_NEW, None)?,
            on_failure: Failure::Commit {
                stream: request.stream.clone(),
                expected: request.expected,
                first_event_id: first_event_id(request),
            },
        })
    }

    pub(crate) fn idempotency(
        store: &DynamoStore,
        record: &IdempotencyRecord,
        request: &AppendRequest,
    ) -> Result<Self, Error> {
        let item = to_item(&IdempotencyItem::new(record)?, "idempotency record")?;
        check_size(&item, || format!("idempotency record {}", record.key))?;
        Ok(Self {
            bytes: crate::item::item_size(&item),
            put: put(store, item, KEY_IS_FREE, Some(HashMap::from([(":now".to_owned(), now_value())])))?,
            on_failure: Failure::Idempotency {
                key: record.key.clone(),
                stream: request.stream.clone(),
                expected: request.expected,
            },
        })
    }
}

fn put(
    store: &DynamoStore,
    item: Item,
    condition: &str,
    values: Option<HashMap<String, AttributeValue>>,
) -> Result<Put, Error> {
    Put::builder()
        .table_name(&*store.table)
        .set_item(Some(item))
        .condition_expression(condition)
        .set_expression_attribute_values(values)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| Error::InvalidRequest(e.to_string()))
}

impl DynamoStore {
    /// Appends to several streams in one TransactWriteItems: all commits are written or none.
    ///
    /// Each request is one action (two with an idempotency record), up to DynamoDB's 100 actions and
    /// 4 MB, checked before the call ([`Error::InvalidRequest`], [`Error::TooLarge`]). A stream may
    /// appear once. Expected versions other than `NoStream` are checked against each stream's head
    /// first (one Query per stream), for the reason given at
    /// [`EventStore::append_after_load`](strata_core::EventStore::append_after_load). A failed
    /// condition is [`Error::Conflict`] naming the first stream that failed it, or
    /// [`Error::IdempotencyKeyExists`]; a cancellation because another transaction was writing one of
    /// the commits (`TransactionConflict`) is [`Error::Conflict`] too, and one because another
    /// transaction was writing the record under our idempotency key (a request with the same key in
    /// flight) is [`Error::IdempotencyKeyExists`]; nothing is written then.
    ///
    /// Transactions cost twice the write units of plain puts; single-stream commands never use one
    /// unless they carry an idempotency key.
    pub async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<Commit>, Error> {
        let actions_needed: usize = requests.iter().map(|r| 1 + usize::from(r.idempotency.is_some())).sum();
        if requests.is_empty() {
            return Err(Error::InvalidRequest("a transaction needs at least one append".into()));
        }
        if actions_needed > MAX_TRANSACTION_ACTIONS {
            return Err(Error::InvalidRequest(format!(
                "{actions_needed} actions in one transaction; DynamoDB allows {MAX_TRANSACTION_ACTIONS}"
            )));
        }
        let mut streams = HashSet::new();
        let mut keys = HashSet::new();
        for request in &requests {
            if request.events.is_empty() {
                return Err(Error::InvalidRequest(format!("the append to {} has no events", request.stream)));
            }
            if !streams.insert(&request.stream) {
                return Err(Error::InvalidRequest(format!(
                    "{} appears twice in one transaction",
                    request.stream
                )));
            }
            if let Some(record) = &request.idempotency
                && !keys.insert((&record.tenant, &record.key))
            {
                return Err(Error::InvalidRequest(format!("idempotency key {} used twice", record.key)));
            }
        }
        let mut resolved = Vec::with_capacity(requests.len());
        for request in &requests {
            resolved.push(self.resolve_head(request, false).await?);
        }
        if resolved.iter().any(|r| matches!(r, Resolved::Committed(_))) {
            return self.committed_earlier(&requests, resolved).await;
        }
        let mut actions = Vec::with_capacity(actions_needed);
        let mut commits = Vec::with_capacity(requests.len());
        for (request, resolved) in requests.iter().zip(resolved) {
            let Resolved::After(head) = resolved else { continue };
            let first_version = next_version(head)?;
            actions.push(Action::commit(self, self.commit_item(request, first_version)?, request)?);
            if let Some(record) = &request.idempotency {
                actions.push(Action::idempotency(self, record, request)?);
            }
            commits.push(committed(request, first_version)?);
        }
        self.transact(actions).await?;
        Ok(commits)
    }

    /// An earlier attempt of this transaction committed and its answer was lost. Transactions are
    /// atomic, so every part must be there; one that is not is a conflict.
    async fn committed_earlier(
        &self,
        requests: &[AppendRequest],
        resolved: Vec<Resolved>,
    ) -> Result<Vec<Commit>, Error> {
        let mut commits = Vec::with_capacity(requests.len());
        for (request, resolved) in requests.iter().zip(resolved) {
            match resolved {
                Resolved::Committed(commit) => commits.push(commit),
                Resolved::After(head) => match self.own_commit_at(request, next_version(head)?).await? {
                    Some(commit) => commits.push(commit),
                    None => return Err(conflict(request, Some(head))),
                },
            }
        }
        Ok(commits)
    }

    pub(crate) async fn transact(&self, actions: Vec<Action>) -> Result<(), Error> {
        self.transact_for_winner(actions).await.map_err(|(error, _)| error)
    }

    /// [`DynamoStore::transact`], with a failure's commit in the way when DynamoDB returned it (the
    /// item of the first commit whose condition failed: `ReturnValuesOnConditionCheckFailure`).
    pub(crate) async fn transact_for_winner(
        &self,
        actions: Vec<Action>,
    ) -> Result<(), (Error, Option<Item>)> {
        let bytes: usize = actions.iter().map(|a| a.bytes).sum();
        if bytes > MAX_TRANSACTION_BYTES {
            return Err((
                Error::TooLarge { what: "transaction".into(), bytes, limit: MAX_TRANSACTION_BYTES },
                None,
            ));
        }
        let (items, failures): (Vec<_>, Vec<_>) = actions
            .into_iter()
            .map(|a| (TransactWriteItem::builder().put(a.put).build(), a.on_failure))
            .unzip();
        // The SDK fills in a ClientRequestToken once per call, so its own retries are idempotent.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let in_the_way = commit_in_the_way(&error, &failures);
                cancellation(error, &failures).map_err(|error| (error, in_the_way))
            }
        }
    }
}

/// The item in the way of the first commit whose condition failed, when DynamoDB returned it.
fn commit_in_the_way(
    error: &SdkError<TransactWriteItemsError, HttpResponse>,
    failures: &[Failure],
) -> Option<Item> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
    else {
        return None;
    };
    cancelled
        .cancellation_reasons()
        .iter()
        .zip(failures)
        .find(|(reason, failure)| {
            reason.code() == Some("ConditionalCheckFailed") && matches!(failure, Failure::Commit { .. })
        })
        .and_then(|(reason, _)| reason.item().cloned())
}

/// What a failed transaction of commits (and their idempotency records) means, from the reason
/// DynamoDB gives for each action, in the order of `failures`. Nothing was written, except when an
/// earlier attempt of the same transaction was.
fn cancellation(
    error: SdkError<TransactWriteItemsError, HttpResponse>,
    failures: &[Failure],
) -> Result<(), Error> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
    else {
        return Err(backend(error));
    };
    let reasons = cancelled.cancellation_reasons();
    let with = |code: &str| {
        reasons
            .iter()
            .zip(failures)
            .filter(move |(reason, _)| reason.code() == Some(code))
            .collect::<Vec<_>>()
    };
    let failed = with("ConditionalCheckFailed");
    // Our own earlier attempt committed (a timed-out call retried): transactions are atomic, so
    // everything else of it was written too.
    for (reason, failure) in &failed {
        if let Failure::Commit { first_event_id, .. } = failure
            && reason.item().is_some_and(|old| is_own_commit(old, first_event_id))
        {
            return Ok(());
        }
    }
    // A key already taken is final whatever else happened: the repository answers with its record.
    for (_, failure) in &failed {
        if let Failure::Idempotency { key, .. } = failure {
            return Err(Error::IdempotencyKeyExists { key: key.clone() });
        }
    }
    if let Some((_, failure)) = failed.first() {
        return Err(failure.conflict());
    }
    // Another transaction was writing one of our commits (same stream, same version): like a failed
    // condition, the answer is to reload and decide again, not to repeat the same write.
    let contended = with(TRANSACTION_CONFLICT);
    if let Some((_, failure)) = contended.iter().find(|(_, f)| matches!(f, Failure::Commit { .. })) {
        return Err(failure.conflict());
    }
    // Another transaction was writing the record under our idempotency key: a request with the same
    // key is in flight, whose record answers once it lands (the repository asks for it, and
    // answers "in progress" until then).
    if let Some((_, Failure::Idempotency { key, .. })) = contended.first() {
        return Err(Error::IdempotencyKeyExists { key: key.clone() });
    }
    let retryable = reasons.iter().any(|r| is_retryable_code(r.code()));
    Err(Error::backend(error, retryable))
}

#[cfg(test)]
mod tests {

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::{InternalServerError, TransactionCanceledException};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const OURS: &str = "01JAAAAAAAAAAAAAAAAAAAAAAA";

    fn stream(id: &str) -> StreamId {
        StreamId::new("acme", "tally", id).unwrap()
    }

    /// A commit to `id` and its idempotency record, as `write_commit` sends them.
    fn commit_and_record(id: &str) -> [Failure; 2] {
        let expected = ExpectedVersion::Exact(4);
        [
            Failure::Commit { stream: stream(id), expected, first_event_id: OURS.into() },
            Failure::Idempotency { key: format!("key-{id}"), stream: stream(id), expected },
        ]
    }

    fn reason(code: &str) -> CancellationReason {
        let message = match code {
            "ConditionalCheckFailed" => "The conditional request failed",
            "TransactionConflict" => "Transaction is ongoing for the item",
            _ => "",
        };
        let reason = CancellationReason::builder().code(code);
        if message.is_empty() { reason } else { reason.message(message) }.build()
    }

    /// The reason with the item in the way: a commit whose first event has this id, in each format
    /// (older writers still produce v2 or legacy items during a deploy), named by its format.
    fn with_item(
        reason: &CancellationReason,
        first_event_id: &str,
    ) -> Vec<(&'static str, CancellationReason)> {
        crate::item::commits_with_first_event(first_event_id)
            .into_iter()
            .map(|(format, item)| {
                let with = CancellationReason::builder()
                    .set_code(reason.code().map(Into::into))
                    .set_message(reason.message().map(Into::into))
                    .set_item(Some(item))
                    .build();
                (format, with)
            })
            .collect()
    }

    /// The error the SDK hands over for a cancelled transaction: the modelled exception with its
    /// reasons (one per action, `None` for the actions that were fine), the metadata its deserializer
    /// fills in, and DynamoDB's raw HTTP 400.
    fn cancelled(reasons: Vec<CancellationReason>) -> SdkError<TransactWriteItemsError, HttpResponse> {
        let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
        let message = format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        );
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"{message}","CancellationReasons":[{}]}}"#,
            codes.iter().map(|c| format!(r#"{{"Code":"{c}"}}"#)).collect::<Vec<_>>().join(",")
        );
        let exception = TransactionCanceledException::builder()
            .message(&message)
            .set_cancellation_reasons(Some(reasons))
            .meta(ErrorMetadata::builder().code("TransactionCanceledException").message(&message).build())
            .build();
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(exception),
            HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body)),
        )
    }

    fn conflict_on(result: Result<(), Error>) -> StreamId {
        match result {
            Err(Error::Conflict { stream, expected: ExpectedVersion::Exact(4), actual: None }) => stream,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn a_transaction_cancelled_for_a_concurrent_transaction_is_a_conflict_on_that_stream() {
        let failures = commit_and_record("t-1");
        let on_commit = cancelled(vec![reason("TransactionConflict"), reason("None")]);
        assert_eq!(conflict_on(cancellation(on_commit, &failures)), stream("t-1"));
        // Another request with the same key in flight: the key is taken, and its record answers.
        let on_record = cancelled(vec![reason("None"), reason("TransactionConflict")]);
        assert!(matches!(
            cancellation(on_record, &failures),
            Err(Error::IdempotencyKeyExists { key }) if key == "key-t-1"
        ));

        // Across streams, the conflict names the stream whose action met the other transaction.
        let [a_commit, a_record] = commit_and_record("a");
        let [b_commit, b_record] = commit_and_record("b");
        let failures = [a_commit, a_record, b_commit, b_record];
        let on_b =
            cancelled(vec![reason("None"), reason("None"), reason("TransactionConflict"), reason("None")]);
        assert_eq!(conflict_on(cancellation(on_b, &failures)), stream("b"));
    }

    #[test]
    fn a_taken_key_stays_a_taken_key_and_a_failed_commit_condition_a_conflict() {
        let failures = commit_and_record("t-1");
        let key_taken = cancelled(vec![reason("None"), reason("ConditionalCheckFailed")]);
        assert!(matches!(
            cancellation(key_taken, &failures),
            Err(Error::IdempotencyKeyExists { key }) if key == "key-t-1"
        ));
        // Even when the commit met another transaction at the same time: the key's record answers.
        let both = cancelled(vec![reason("TransactionConflict"), reason("ConditionalCheckFailed")]);
        assert!(matches!(cancellation(both, &failures), Err(Error::IdempotencyKeyExists { .. })));

        for (_, theirs) in with_item(&reason("ConditionalCheckFailed"), "01JBBBBBBBBBBBBBBBBBBBBBBB") {
            let version_taken = cancelled(vec![theirs, reason("None")]);
            assert_eq!(conflict_on(cancellation(version_taken, &failures)), stream("t-1"));
        }
    }

    #[test]
    fn the_winner_is_the_item_in_the_way_of_a_commit_and_never_of_a_record() {
        let failures = commit_and_record("t-1");
        let theirs = "01JBBBBBBBBBBBBBBBBBBBBBBB";
        for (format, in_the_way) in with_item(&reason("ConditionalCheckFailed"), theirs) {
            let expected = in_the_way.item().cloned();
            let lost = cancelled(vec![in_the_way, reason("None")]);
            assert_eq!(commit_in_the_way(&lost, &failures), expected, "{format}");
            assert!(expected.is_some());
        }
        // The record's condition failed, with the record in the way: no commit won anything.
        let record = crate::item::commits_with_first_event(theirs)[0].1.clone();
        let key_taken = cancelled(vec![
            reason("None"),
            CancellationReason::builder().code("ConditionalCheckFailed").set_item(Some(record)).build(),
        ]);
        assert_eq!(commit_in_the_way(&key_taken, &failures), None);
        // Another transaction on the commit, or a reason without its item: nothing to fold in.
        let contended = cancelled(vec![reason("TransactionConflict"), reason("None")]);
        assert_eq!(commit_in_the_way(&contended, &failures), None);
        let bare = cancelled(vec![reason("ConditionalCheckFailed"), reason("None")]);
        assert_eq!(commit_in_the_way(&bare, &failures), None);
    }

    #[test]
    fn our_own_earlier_commit_in_the_way_means_the_transaction_was_written() {
        let failures = commit_and_record("t-1");
        for (format, ours) in with_item(&reason("ConditionalCheckFailed"), OURS) {
            let ours = cancelled(vec![ours, reason("ConditionalCheckFailed")]);
            assert!(cancellation(ours, &failures).is_ok(), "{format}");
        }
    }

    #[test]
    fn throttled_or_failed_transactions_stay_backend_errors_that_say_whether_to_retry() {
        let failures = commit_and_record("t-1");
        let throttled = cancelled(vec![reason("ThrottlingError"), reason("None")]);
        assert!(matches!(cancellation(throttled, &failures), Err(Error::Backend { retryable: true, .. })));
        let invalid = cancelled(vec![reason("ValidationError"), reason("None")]);
        assert!(matches!(cancellation(invalid, &failures), Err(Error::Backend { retryable: false, .. })));
        let message = "Internal server error";
        let server = SdkError::service_error(
            TransactWriteItemsError::InternalServerError(
                InternalServerError::builder()
                    .message(message)
                    .meta(ErrorMetadata::builder().code("InternalServerError").message(message).build())
                    .build(),
            ),
            HttpResponse::new(StatusCode::try_from(500).unwrap(), SdkBody::from("{}")),
        );
        assert!(matches!(cancellation(server, &failures), Err(Error::Backend { retryable: true, .. })));
    }
}
