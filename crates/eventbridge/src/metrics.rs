//! Counting PutEvents where it happens: an SDK interceptor on the EventBridge client that records
//! each PutEvents call, the entries it sent, the HTTP requests it took and the entries EventBridge
//! failed. What the publisher reports about itself is checked against this, not the other way round.
//!
//! Attach it to the client's config; clones share their record:
//!
//! ```no_run
//! # fn example(config: aws_sdk_eventbridge::config::Builder) {
//! use strata_eventbridge::PutEventsCounter;
//! let counter = PutEventsCounter::new();
//! let client = aws_sdk_eventbridge::Client::from_conf(config.interceptor(counter.clone()).build());
//! // ... publish with the client ...
//! let entries: Vec<usize> = counter.calls().iter().map(|call| call.entries).collect();
//! # }
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_eventbridge::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_eventbridge::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_eventbridge::error::BoxError;
use aws_sdk_eventbridge::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// One PutEvents call as the client made it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutEventsCall {
    /// Entries in the request.
    pub entries: usize,
    /// HTTP requests sent for it (more than one when the SDK retried the call).
    pub requests: u32,
    /// Entries EventBridge answered as failed (`FailedEntryCount`); `None` when the call failed.
    pub failed_entries: Option<usize>,
}

impl Storable for PutEventsCall {
    type Storer = StoreReplace<Self>;
}

/// An SDK interceptor recording every PutEvents call of the client it is attached to, in the order
/// the calls finished. Other operations are not recorded. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct PutEventsCounter {
    calls: Arc<Mutex<Vec<PutEventsCall>>>,
}

impl PutEventsCounter {
    /// A counter with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls recorded so far.
    pub fn calls(&self) -> Vec<PutEventsCall> {
        self.lock().clone()
    }

    /// The calls recorded since the last take, and a reset.
    pub fn take(&self) -> Vec<PutEventsCall> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PutEventsCall>> {
        // The record stays meaningful even if a thread panicked while holding the lock.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Intercept for PutEventsCounter {
    fn name(&self) -> &'static str {
        "strata::PutEventsCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input().downcast_ref::<PutEventsInput>() {
            // Kept in the call's own config bag: concurrent calls do not mix.
            let call = PutEventsCall { entries: input.entries().len(), ..PutEventsCall::default() };
            cfg.interceptor_state().store_put(call);
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(mut call) = cfg.load::<PutEventsCall>().copied() {
            call.requests += 1;
            cfg.interceptor_state().store_put(call);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(mut call) = cfg.load::<PutEventsCall>().copied() else { return Ok(()) };
        call.failed_entries = context
            .output_or_error()
            .and_then(|outcome| outcome.ok())
            .and_then(|output| output.downcast_ref::<PutEventsOutput>())
            .map(|output| usize::try_from(output.failed_entry_count()).unwrap_or_default());
        self.lock().push(call);
        Ok(())
    }
}
