//! Atomic writes across items: a commit with its idempotency record, and commits to several streams.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use strata_core::{AppendRequest, Commit, Error, ExpectedVersion, IdempotencyRecord, StreamId};

use crate::error::{backend, is_retryable_code};
use crate::item::{IdempotencyItem, Item, to_item};
use crate::store::{
    COMMIT_IS_NEW, DynamoStore, KEY_IS_FREE, Resolved, check_size, commit_item, committed, conflict,
    first_event_id, is_own_commit, next_version, now_value,
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
    Commit { stream: StreamId, expected: ExpectedVersion, first_event_id: String },
    Idempotency { key: String },
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

    pub(crate) fn idempotency(store: &DynamoStore, record: &IdempotencyRecord) -> Result<Self, Error> {
        let item = to_item(&IdempotencyItem::new(record)?, "idempotency record")?;
        check_size(&item, || format!("idempotency record {}", record.key))?;
        Ok(Self {
            bytes: crate::item::item_size(&item),
            put: put(store, item, KEY_IS_FREE, Some(HashMap::from([(":now".to_owned(), now_value())])))?,
            on_failure: Failure::Idempotency { key: record.key.clone() },
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
    /// [`Error::IdempotencyKeyExists`]; nothing is written then.
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
            actions.push(Action::commit(self, commit_item(request, first_version)?, request)?);
            if let Some(record) = &request.idempotency {
                actions.push(Action::idempotency(self, record)?);
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
        let bytes: usize = actions.iter().map(|a| a.bytes).sum();
        if bytes > MAX_TRANSACTION_BYTES {
            return Err(Error::TooLarge { what: "transaction".into(), bytes, limit: MAX_TRANSACTION_BYTES });
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
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
        else {
            return Err(backend(error));
        };
        let reasons = cancelled.cancellation_reasons();
        let failed: Vec<_> = reasons
            .iter()
            .zip(&failures)
            .filter(|(reason, _)| reason.code() == Some("ConditionalCheckFailed"))
            .collect();
        // Our own earlier attempt committed (a timed-out call retried): transactions are atomic, so
        // everything else of it was written too.
        for (reason, failure) in &failed {
            if let Failure::Commit { first_event_id, .. } = failure
                && reason.item().is_some_and(|old| is_own_commit(old, first_event_id))
            {
                return Ok(());
            }
        }
        for (_, failure) in &failed {
            if let Failure::Idempotency { key } = failure {
                return Err(Error::IdempotencyKeyExists { key: key.clone() });
            }
        }
        for (_, failure) in &failed {
            if let Failure::Commit { stream, expected, .. } = failure {
                return Err(Error::Conflict { stream: stream.clone(), expected: *expected, actual: None });
            }
        }
        let retryable = reasons.iter().any(|r| is_retryable_code(r.code()));
        Err(Error::backend(error, retryable))
    }
}
