//! Translating SDK failures into `strata_core::Error` at the boundary.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use strata_core::{AppendRequest, Error};

use crate::lost_answer::{first_event_id, is_own_commit};
use crate::store::conflict;

/// Error codes after which the same request may succeed: throttling and transient server trouble.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflict",
    "TransactionConflictException",
    "TransactionInProgressException",
    // Cancellation reason codes inside TransactionCanceledException.
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// The cancellation reason of a transaction's action whose item another transaction was writing at
/// the same moment. Nothing was written.
pub(crate) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// Wraps an SDK failure as [`Error::Backend`], telling whether a retry may help.
///
/// The SDK has already retried what it retries; this is what remains. A timeout or a 500 on a write
/// is ambiguous (the write may have happened): the conditional writes and event ids of this crate make
/// a retry of the same command safe, but deciding to retry is the caller's call.
pub fn backend<E>(error: SdkError<E, HttpResponse>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error() || is_retryable_code(service.err().code())
        }
        _ => false,
    };
    Error::backend(error, retryable)
}

/// Whether an error code says the same request may succeed later.
pub fn is_retryable_code(code: Option<&str>) -> bool {
    code.is_some_and(|code| RETRYABLE_CODES.contains(&code))
}

/// What a failed conditional PutItem of a commit means: `Ok` when the item in the way is this very
/// request's commit (an earlier attempt landed), [`Error::Conflict`] when the version is taken or
/// contended, [`backend`] otherwise.
pub(crate) fn commit_put_failure(
    error: SdkError<PutItemError, HttpResponse>,
    request: &AppendRequest,
) -> Result<(), Error> {
    match error.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(failed)) => {
            // The SDK retries a timed-out request with the same body. If the item in the way is our
            // own (same first event id), the first attempt did commit.
            if failed.item().is_some_and(|old| is_own_commit(old, &first_event_id(request))) {
                Ok(())
            } else {
                Err(conflict(request, None))
            }
        }
        // A transaction (another command, with an idempotency key) was writing this very item: nothing
        // was written, and once that transaction commits the version is taken. Like a failed
        // condition, the answer is to reload and decide again, not to repeat the same write.
        Some(PutItemError::TransactionConflictException(_)) => Err(conflict(request, None)),
        _ => Err(backend(error)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ThrottlingException, TransactionConflictException,
    };
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use strata_core::{ExpectedVersion, Metadata, NewEvent, StreamId};

    use super::*;
    use crate::item::{Item, names};

    #[test]
    fn throttling_and_server_trouble_are_retryable_and_the_rest_is_not() {
        for code in ["ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"] {
            assert!(is_retryable_code(Some(code)), "{code}");
        }
        for code in ["ValidationException", "ResourceNotFoundException", "AccessDeniedException"] {
            assert!(!is_retryable_code(Some(code)), "{code}");
        }
        assert!(!is_retryable_code(None));
    }

    fn request() -> AppendRequest {
        AppendRequest {
            stream: StreamId::new("acme", "tally", "t-1").unwrap(),
            expected: ExpectedVersion::Exact(4),
            events: vec![NewEvent::new("Bumped", 1, serde_json::json!({}), Metadata::new("c"))],
            idempotency: None,
        }
    }

    /// A PutItem error as the SDK hands it over: the modelled error (with the metadata its
    /// deserializer fills in) and the raw HTTP 400 response DynamoDB sent.
    fn put_error(error: PutItemError, code: &str, message: &str) -> SdkError<PutItemError, HttpResponse> {
        let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"}}"#);
        let raw = HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body));
        SdkError::service_error(error, raw)
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    /// The item DynamoDB returns for a failed condition: a commit whose first event has this id, in
    /// every format (older writers still produce v2 or legacy items during a deploy).
    fn commits_with_first_event(id: &str) -> [Item; 3] {
        crate::item::commits_with_first_event(id).map(|(_, item)| item)
    }

    #[test]
    fn a_put_refused_for_a_transaction_in_progress_is_a_conflict() {
        let message = "Transaction is ongoing for the item";
        let error = put_error(
            PutItemError::TransactionConflictException(
                TransactionConflictException::builder()
                    .message(message)
                    .meta(meta("TransactionConflictException", message))
                    .build(),
            ),
            "TransactionConflictException",
            message,
        );
        let request = request();
        match commit_put_failure(error, &request) {
            Err(Error::Conflict { stream, expected, actual }) => {
                assert_eq!((stream, expected, actual), (request.stream, ExpectedVersion::Exact(4), None));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_condition_is_a_conflict_unless_the_item_in_the_way_is_our_own_commit() {
        let request = request();
        let failed = |old: Item| {
            let message = "The conditional request failed";
            put_error(
                PutItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder()
                        .message(message)
                        .set_item(Some(old))
                        .meta(meta("ConditionalCheckFailedException", message))
                        .build(),
                ),
                "ConditionalCheckFailedException",
                message,
            )
        };
        for ours in commits_with_first_event(&first_event_id(&request)) {
            assert!(commit_put_failure(failed(ours), &request).is_ok());
        }
        for theirs in commits_with_first_event("01J00000000000000000000000") {
            assert!(matches!(commit_put_failure(failed(theirs), &request), Err(Error::Conflict { .. })));
        }
        // A v2 item whose first event id sits under the legacy names (or the other way round) is not ours.
        let [_, v2, legacy] = commits_with_first_event(&first_event_id(&request));
        let mixed = HashMap::from([
            (names::legacy::EVENTS.to_owned(), v2[names::EVENTS].clone()),
            (names::EVENTS.to_owned(), legacy[names::legacy::EVENTS].clone()),
        ]);
        assert!(matches!(commit_put_failure(failed(mixed), &request), Err(Error::Conflict { .. })));
        // A v3 item is known by its `d` alone: our id under another format's names beside it does
        // not make it ours.
        let [theirs_v3, _, _] = commits_with_first_event("01J00000000000000000000000");
        let mut mixed = theirs_v3;
        mixed.insert(names::EVENTS.to_owned(), v2[names::EVENTS].clone());
        assert!(matches!(commit_put_failure(failed(mixed), &request), Err(Error::Conflict { .. })));
    }

    #[test]
    fn other_put_failures_stay_backend_errors_that_say_whether_to_retry() {
        let message = "Rate of requests exceeds the allowed throughput";
        let error = put_error(
            PutItemError::ThrottlingException(
                ThrottlingException::builder()
                    .message(message)
                    .meta(meta("ThrottlingException", message))
                    .build(),
            ),
            "ThrottlingException",
            message,
        );
        assert!(matches!(commit_put_failure(error, &request()), Err(Error::Backend { retryable: true, .. })));
    }
}
