//! Read models: projections that fold one stream's events into a view, exactly once.
//!
//! Events reach a read model at least once and in any order (EventBridge, SQS, retries). A
//! [`Projector`] makes that exactly-once, in-order application: each view records the last stream
//! version it includes (its checkpoint, kept in the same item as the view, so both change in one
//! conditional write). A delivered event at or below the checkpoint is a duplicate and skipped; one
//! beyond the next version means events are missing, and the projector reads them from the event
//! store first. So two events of one stream are never applied out of order, and a lost or
//! reordered delivery heals on the next one.
//!
//! A view is per stream (one order's summary); views are listed across streams by a [`Lookup`]
//! (all orders of one customer). A read model may follow the streams of several aggregates
//! ([`Projection::OTHER_CATEGORIES`], its events an [`crate::Either`]): still a view per stream,
//! and one lookup listing views of every category it follows (an account and the transfers it
//! sent). Views that aggregate many streams into one row need a checkpoint per stream inside the
//! row and are not covered here.

mod any;
mod projector;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{Error, Event, EventEnvelope, PersonalData, StreamId};

pub use any::AnyProjector;
pub use projector::{Delivered, LookupPage, Projected, Projector};

/// A read model kept per stream.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use strata_core::fixture::tally::TallyEvent;
/// use strata_core::projection::Projection;
/// use strata_core::EventEnvelope;
///
/// /// How many times a tally was bumped.
/// struct Bumps;
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct BumpCount { bumps: u64 }
///
/// impl Projection for Bumps {
///     type Event = TallyEvent;
///     type View = BumpCount;
///     const NAME: &'static str = "bumps";
///     const CATEGORY: &'static str = "tally";
///
///     fn apply(&self, view: Option<BumpCount>, event: &TallyEvent, _: &EventEnvelope) -> Option<BumpCount> {
///         let mut view = view.unwrap_or(BumpCount { bumps: 0 });
///         if let TallyEvent::Bumped { .. } = event {
///             view.bumps += 1;
///         }
///         Some(view)
///     }
/// }
/// ```
pub trait Projection: Send + Sync + 'static {
    /// The events it reads (of streams of [`Projection::CATEGORY`] and any
    /// [`Projection::OTHER_CATEGORIES`]).
    type Event: Event;
    /// What it keeps per stream.
    type View: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync;
    /// Its name, part of the view's table key: no `#`, no control characters.
    const NAME: &'static str;
    /// The stream category it follows (the category of `GET /views/{name}/{id}`).
    const CATEGORY: &'static str;
    /// Other categories it follows, for a read model over the streams of several aggregates: its
    /// `Event` decodes theirs too (`Either<AccountEvent, TransferEvent>`, see [`crate::Either`]).
    /// Default none.
    const OTHER_CATEGORIES: &'static [&'static str] = &[];
    /// Version of the view's shape. A stored view of another version is rebuilt from the stream.
    const SCHEMA_VERSION: u32 = 1;

    /// Folds one event into the view (`None` before the stream's first relevant event). Returning
    /// `None` keeps no view for the stream, only the checkpoint.
    fn apply(
        &self,
        view: Option<Self::View>,
        event: &Self::Event,
        envelope: &EventEnvelope,
    ) -> Option<Self::View>;

    /// Whose personal data the view holds and where (JSON pointers into the serialized view): those
    /// fields are sealed at rest under the subject's existing key and read as redacted once the
    /// subject is forgotten.
    fn personal_data(&self, view: &Self::View) -> Option<PersonalData> {
        let _ = view;
        None
    }

    /// Where the view is listed besides its stream: views sharing a lookup partition are read
    /// together, ordered by the sort key (e.g. a customer's orders by placement time).
    fn lookup(&self, view: &Self::View) -> Option<Lookup> {
        let _ = view;
        None
    }
}

/// A secondary listing of a view: a partition (validated like a key part) and a sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Lookup {
    /// Views with the same partition are listed together, e.g. a customer id.
    pub partition: String,
    /// Order within the partition, e.g. `2026-11-23T10:00:00Z#o-1`.
    pub sort: String,
}

/// A view as stored: sealed JSON plus the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredView {
    /// The projection's name.
    pub projection: String,
    /// The stream it folds.
    pub stream: StreamId,
    /// The last stream version applied: the checkpoint.
    pub version: u64,
    /// The projection's schema version when written.
    pub schema_version: u32,
    /// The view (personal fields sealed), or `None` when the projection keeps none for the stream.
    pub state: Option<Value>,
    /// Its lookup listing, if any.
    pub lookup: Option<Lookup>,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
}

/// Storage of views next to the streams they fold.
pub trait ViewStore: Send + Sync {
    /// The stored view of `stream` in `projection`, with a strongly consistent read.
    fn get_view(
        &self,
        projection: &str,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<StoredView>, Error>> + Send;

    /// Writes a view if the stored one is still at `expected` (`None`: there is none), so that two
    /// projectors racing on one stream cannot both apply; otherwise [`Error::Conflict`].
    fn put_view(
        &self,
        view: StoredView,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Up to `limit` views of `projection` listed under a lookup partition whose
    /// [`lookup_position`] is after `after` (exclusive), in position order. May lag the newest writes slightly (a secondary index
    /// is eventually consistent).
    fn lookup_views(
        &self,
        tenant: &str,
        projection: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredView>, Error>> + Send;
}

/// Where a view sits in its lookup listing: its sort key, then its stream, so positions are unique
/// even when sort keys repeat (stream ids hold no `#`, so the last `#` ends the sort key).
pub fn lookup_position(lookup: &Lookup, stream: &StreamId) -> String {
    format!("{}#{}-{}", lookup.sort, stream.category(), stream.id())
}

/// What sealed fields of a view are bound to: its projection and stream.
pub(crate) fn view_context(projection: &str, stream: &StreamId) -> String {
    format!("view:{projection}:{stream}")
}
