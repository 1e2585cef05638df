//! The store contract (`strata_core::conformance`) against DynamoDB on the emulator: the same code
//! the in-memory store runs in `strata-core`, so the two cannot drift. Each property gets a table
//! of its own, and few cases: every case costs tens of requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use strata_core::conformance::StoreContract;

/// Cases per property: enough to meet multi-event commits, paging and mixed schemas on every run.
const CASES: u32 = 6;

#[test]
fn the_dynamodb_store_keeps_the_store_contract() {
    if let Err(violation) = StoreContract::new(CASES).check(|| async { common::fixture().await.store }) {
        panic!("{violation}");
    }
}
