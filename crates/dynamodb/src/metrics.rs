//! Request accounting: an SDK interceptor that counts DynamoDB requests and consumed capacity per
//! operation, and flags reads that are not strongly consistent and any Scan.
//!
//! Attach it to the client's config; clones share their counts:
//!
//! ```no_run
//! # async fn example(sdk: &aws_config::SdkConfig) {
//! use strata_dynamodb::RequestCounter;
//! let counter = RequestCounter::new();
//! let config = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(counter.clone()).build();
//! let client = aws_sdk_dynamodb::Client::from_conf(config);
//! // ... use the client ...
//! println!("{}", counter.counts());
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_write_item::BatchWriteItemOutput, delete_item::DeleteItemOutput, get_item::GetItemInput,
    get_item::GetItemOutput, put_item::PutItemOutput, query::QueryInput, query::QueryOutput, scan::ScanInput,
    transact_write_items::TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::ConsumedCapacity;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Counts of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OperationCount {
    /// Operations called (one per SDK call, however many attempts it took), counted on completion.
    pub calls: u64,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Capacity units reported consumed (every Strata request asks for them). Only successful calls
    /// report capacity: a failed conditional write also consumes write units, uncounted here.
    pub capacity_units: f64,
}

/// What a [`RequestCounter`] has seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    /// Per operation name (`Query`, `PutItem`, `TransactWriteItems`, ...).
    pub operations: BTreeMap<String, OperationCount>,
    /// Queries on the table and GetItems that were not strongly consistent. (Queries on an index
    /// cannot be; they are not counted.)
    pub inconsistent_reads: u64,
    /// Scans of any kind.
    pub scans: u64,
}

impl RequestCounts {
    /// Calls of one operation.
    pub fn calls(&self, operation: &str) -> u64 {
        self.operations.get(operation).map_or(0, |c| c.calls)
    }

    /// Calls of every operation.
    pub fn total_calls(&self) -> u64 {
        self.operations.values().map(|c| c.calls).sum()
    }

    /// Calls of the operations that write.
    pub fn write_calls(&self) -> u64 {
        ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"]
            .iter()
            .map(|op| self.calls(op))
            .sum()
    }
}

impl fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<20} {:>8} {:>9} {:>12}", "operation", "calls", "requests", "capacity")?;
        for (name, c) in &self.operations {
            writeln!(f, "{name:<20} {:>8} {:>9} {:>12.1}", c.calls, c.requests, c.capacity_units)?;
        }
        write!(f, "inconsistent reads: {}, scans: {}", self.inconsistent_reads, self.scans)
    }
}

/// An SDK interceptor counting requests and consumed capacity per operation. Clones share counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<RequestCounts>>,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has been counted so far.
    pub fn counts(&self) -> RequestCounts {
        self.lock().clone()
    }

    /// Counts since the last reset, and a reset.
    pub fn take(&self) -> RequestCounts {
        std::mem::take(&mut *self.lock())
    }

    /// Back to zero.
    pub fn reset(&self) {
        self.take();
    }

    fn lock(&self) -> MutexGuard<'_, RequestCounts> {
        // Counts stay meaningful even if a thread panicked while holding the lock.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn operation(&self, cfg: &ConfigBag) -> String {
        cfg.load::<Metadata>().map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned())
    }
}

fn total(capacity: Option<&ConsumedCapacity>) -> f64 {
    capacity.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0)
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "strata::RequestCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let inconsistent = if let Some(query) = input.downcast_ref::<QueryInput>() {
            query.index_name().is_none() && query.consistent_read() != Some(true)
        } else if let Some(get) = input.downcast_ref::<GetItemInput>() {
            get.consistent_read() != Some(true)
        } else {
            false
        };
        let scan = input.downcast_ref::<ScanInput>().is_some();
        let mut counts = self.lock();
        counts.inconsistent_reads += u64::from(inconsistent);
        counts.scans += u64::from(scan);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = self.operation(cfg);
        self.lock().operations.entry(operation).or_default().requests += 1;
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = self.operation(cfg);
        let mut counts = self.lock();
        let count = counts.operations.entry(operation).or_default();
        // Counted after the call, when the operation's name is in the config bag.
        count.calls += 1;
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let units = if let Some(o) = output.downcast_ref::<QueryOutput>() {
            total(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
            total(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<GetItemOutput>() {
            total(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
            total(o.consumed_capacity())
        } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
            o.consumed_capacity().iter().map(|c| total(Some(c))).sum()
        } else if let Some(o) = output.downcast_ref::<BatchWriteItemOutput>() {
            o.consumed_capacity().iter().map(|c| total(Some(c))).sum()
        } else {
            0.0
        };
        count.capacity_units += units;
        Ok(())
    }
}
