//! Translating SDK failures into `strata_core::Error` at the boundary.

use aws_sdk_dynamodb::config::http::HttpResponse;
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
    // Cancellation reason codes inside TransactionCanceledException.
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
