//! Translating SDK failures into `strata_core::Error` at the boundary.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use strata_core::Error;

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
];

/// Wraps an SDK failure as [`Error::Backend`], telling whether a retry may help.
///
/// The SDK has already retried what it retries; this is what remains. A timeout or a 500 on a write
/// is ambiguous (the write may have happened): the conditional writes and event ids of this crate make
/// a retry of the same command safe, but deciding to retry is the caller's call.
pub fn backend<E, R>(error: SdkError<E, R>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            service.err().code().is_some_and(|code| RETRYABLE_CODES.contains(&code))
        }
        _ => false,
    };
    Error::backend(error, retryable)
}
