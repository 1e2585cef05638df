#![doc = include_str!("../README.md")]

mod error;
pub mod item;
pub mod keys;
pub mod keys_store;
mod learned;
mod lost_answer;
mod metrics;
mod scan;
mod store;
mod table;
mod transact;
pub mod views;

pub use keys::parse_stream_pk;
pub use metrics::{OperationCount, RequestCounter, RequestCounts};
pub use scan::{ScanPosition, StreamsPage};
pub use store::{CommitFormat, DynamoStore};
pub use table::{IndexSpec, KeyAttribute, PartitionClass, SNAPSHOTS_INDEX, TableSpec};
pub use transact::{MAX_TRANSACTION_ACTIONS, MAX_TRANSACTION_BYTES};
pub use views::LOOKUP_INDEX;
