//! The three subjects of the comparison, each on tables of its own with its requests counted: Strata
//! with its stream cache on, Strata with it off, and cqrs-es + dynamo-es.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use dynamo_es::DynamoEventRepository;
use strata_core::{
    CachePolicy, CommandContext, CommandError, EventId, Metadata, NewEvent, Repository, SnapshotPolicy,
    StreamId, encode_event,
};
use strata_dynamodb::item::{CommitItem, Item, item_size};
use strata_dynamodb::{DynamoStore, RequestCounter};

use super::counter::{Counter, CounterEvent, increment};
use crate::bench::Env;

/// Which library, and how configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Strata, `CachePolicy::entries(1000)`.
    StrataCached,
    /// Strata, `CachePolicy::off()`.
    StrataUncached,
    /// cqrs-es 0.5 + dynamo-es 0.5.
    Peer,
}

type PeerStore = PersistedEventStore<DynamoEventRepository, Counter>;

enum Library {
    Strata(Repository<Counter, DynamoStore>),
    Peer {
        cqrs: CqrsFramework<Counter, PeerStore>,
        /// The same repository as `cqrs`'s, for loads without a command (the framework keeps its
        /// store private).
        store: PeerStore,
    },
}

/// One subject on tables of its own.
pub struct Subject {
    library: Library,
    client: Client,
    tables: Vec<String>,
    /// Counts this subject's requests (its client's interceptor).
    pub counter: RequestCounter,
}

/// The stream (Strata) or aggregate id (peer) of `id`.
fn stream(id: &str) -> StreamId {
    StreamId::new("bench", "counter", id).expect("bench stream ids are valid")
}

impl Subject {
    /// `side` on new tables, snapshots every `snapshot_every` events when given.
    pub async fn new(env: &Env, side: Side, snapshot_every: Option<u64>) -> Arc<Self> {
        let subject = match side {
            Side::StrataCached | Side::StrataUncached => {
                let (store, counter) = env.table().await;
                let cache =
                    if side == Side::StrataCached { CachePolicy::entries(1000) } else { CachePolicy::off() };
                // As deployed: the stream publisher prunes snapshots, off the command path.
                let policy = snapshot_every.map_or_else(SnapshotPolicy::never, |every| {
                    SnapshotPolicy::every(every).pruned_elsewhere()
                });
                let client = store.client().clone();
                let tables = vec![store.table().to_owned()];
                let repo = Repository::new(store).with_snapshot_policy(policy).with_stream_cache(cache);
                Self { library: Library::Strata(repo), client, tables, counter }
            }
            Side::Peer => {
                // The peer's tables have no secondary index.
                let counter = RequestCounter::for_indexes(Vec::new());
                let config =
                    aws_sdk_dynamodb::config::Builder::from(&env.sdk).interceptor(counter.clone()).build();
                let client = Client::from_conf(config);
                let events = crate::unique("peer-events");
                let snapshots = crate::unique("peer-snapshots");
                create_peer_tables(&client, &events, &snapshots).await;
                let repository =
                    || DynamoEventRepository::new(client.clone()).with_tables(&events, &snapshots);
                let store = || match snapshot_every {
                    Some(every) => PersistedEventStore::new_snapshot_store(repository(), every as usize),
                    None => PersistedEventStore::new_event_store(repository()),
                };
                let cqrs = CqrsFramework::new(store(), Vec::new(), ());
                counter.reset();
                Self {
                    library: Library::Peer { cqrs, store: store() },
                    client,
                    tables: vec![events, snapshots],
                    counter,
                }
            }
        };
        Arc::new(subject)
    }

    /// One `increment` command on stream `id`: `Ok(true)` when it committed, `Ok(false)` when it
    /// lost to a concurrent writer (after Strata's retries; the peer has none).
    pub async fn command(&self, id: &str) -> bool {
        match &self.library {
            Library::Strata(repo) => {
                match repo.execute(&stream(id), &increment(), CommandContext::default()).await {
                    Ok(_) => true,
                    Err(CommandError::Failed(error)) if error.is_conflict() => false,
                    Err(error) => panic!("strata command on {id}: {error}"),
                }
            }
            // The same metadata Strata records with every event: a correlation id and the commit
            // time (cqrs-es stores a string map as given, and nothing when it is empty).
            Library::Peer { cqrs, .. } => {
                match cqrs.execute_with_metadata(id, increment(), peer_metadata()).await {
                    Ok(()) => true,
                    Err(AggregateError::AggregateConflict) => false,
                    Err(error) => panic!("peer command on {id}: {error}"),
                }
            }
        }
    }

    /// Loads stream `id` without a command; returns the events folded.
    pub async fn load(&self, id: &str) -> u64 {
        match &self.library {
            Library::Strata(repo) => repo.load(&stream(id)).await.expect("strata load").version,
            Library::Peer { store, .. } => {
                store.load_aggregate(id).await.expect("peer load").current_sequence as u64
            }
        }
    }

    /// Writes stream `id` up to `length` events: the first through a command, the rest as the items
    /// the library itself writes, with BatchWriteItem (a command per event would make seeding
    /// quadratic); snapshots every `snapshot_every` events as each library takes them. Then the
    /// counter is reset and Strata's cache forgets the stream.
    pub async fn seed(&self, id: &str, length: u64, snapshot_every: Option<u64>) {
        assert!(self.command(id).await, "the first command on a new stream commits");
        match &self.library {
            Library::Strata(repo) => {
                let stream = stream(id);
                let encoded = encode_event(&event()).expect("the counter event encodes");
                let mut pending = Vec::new();
                for version in 2..=length {
                    // A correlation id as long as the ULID a command gets.
                    let metadata = Metadata::new(EventId::new().to_string());
                    let new = NewEvent::new(
                        encoded.event_type.clone(),
                        encoded.schema_version,
                        encoded.payload.clone(),
                        metadata,
                    );
                    let commit = CommitItem::new(&stream, version, &[new]).expect("a commit item");
                    pending.push(commit.to_item().expect("a commit item"));
                    let snapshot_due = snapshot_every.is_some_and(|every| version.is_multiple_of(every));
                    if pending.len() == 25 || snapshot_due || version == length {
                        self.batch_put(&self.tables[0], std::mem::take(&mut pending)).await;
                    }
                    if snapshot_due {
                        repo.take_snapshot(&stream).await.expect("strata snapshot");
                    }
                }
                repo.evict_cached(&stream);
            }
            Library::Peer { .. } => {
                let first = self.event_items().await.pop().expect("the first command's item");
                // With snapshots the last event goes through a command, which writes the snapshot
                // in the same transaction (cqrs-es snapshots when a commit reaches a multiple).
                let last = if snapshot_every.is_some() { length - 1 } else { length };
                let mut pending = Vec::new();
                for sequence in 2..=last {
                    let mut item = first.clone();
                    item.insert("AggregateIdSequence".into(), AttributeValue::N(sequence.to_string()));
                    pending.push(item);
                    if pending.len() == 25 || sequence == last {
                        self.batch_put(&self.tables[0], std::mem::take(&mut pending)).await;
                    }
                }
                if last < length {
                    assert!(self.command(id).await, "the seeding command commits");
                }
            }
        }
        self.counter.reset();
    }

    /// Every event item in the subject's event table (a Scan: for seeding and item sizes only).
    pub async fn event_items(&self) -> Vec<Item> {
        let out = self.client.scan().table_name(&self.tables[0]).send().await.expect("scan");
        let items = out.items.unwrap_or_default();
        match self.library {
            // Strata's table holds its snapshots too (the items with `snapshot_of`).
            Library::Strata(_) => items.into_iter().filter(|i| !i.contains_key("snapshot_of")).collect(),
            Library::Peer { .. } => items,
        }
    }

    /// The size (DynamoDB's rules) of the one event item written so far.
    pub async fn event_item_bytes(&self) -> usize {
        self.event_items().await.iter().map(item_size).max().unwrap_or(0)
    }

    async fn batch_put(&self, table: &str, items: Vec<Item>) {
        let mut requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item)).build().expect("a put request");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        while !requests.is_empty() {
            let out = self
                .client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .expect("batch write");
            requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        }
    }

    /// Deletes the subject's tables (the emulator keeps everything in memory).
    pub async fn drop_tables(&self) {
        for table in &self.tables {
            let _ = self.client.delete_table().table_name(table).send().await;
        }
    }
}

/// The event every command records.
fn event() -> CounterEvent {
    let super::counter::CounterCommand::Increment { note } = increment();
    CounterEvent::Incremented { note }
}

/// The tables of dynamo-es's `db/create_tables.sh`, under unique names.
async fn create_peer_tables(client: &Client, events: &str, snapshots: &str) {
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().expect("a key")
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("an attribute")
    };
    client
        .create_table()
        .table_name(events)
        .key_schema(key("AggregateTypeAndId", KeyType::Hash))
        .key_schema(key("AggregateIdSequence", KeyType::Range))
        .attribute_definitions(attribute("AggregateTypeAndId", ScalarAttributeType::S))
        .attribute_definitions(attribute("AggregateIdSequence", ScalarAttributeType::N))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the peer's event table");
    client
        .create_table()
        .table_name(snapshots)
        .key_schema(key("AggregateTypeAndId", KeyType::Hash))
        .attribute_definitions(attribute("AggregateTypeAndId", ScalarAttributeType::S))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the peer's snapshot table");
    // The emulator creates tables ACTIVE at once: no wait, unlike DynamoDB.
}

/// What Strata records about every command, as a cqrs-es user would pass it: a new correlation id
/// (a ULID, as Strata makes one) and the commit time.
fn peer_metadata() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("correlation_id".to_owned(), EventId::new().to_string()),
        ("committed_at".to_owned(), chrono::Utc::now().to_rfc3339()),
    ])
}
