//! Projectors with their projection's types erased, so a service keeps several in one list.

use serde_json::Value;

use super::{Delivered, Lookup, LookupPage, Projected, Projection, Projector, ViewStore};
use crate::crypto::BoxFuture;
use crate::{Error, EventStore, StreamId};

/// A [`Projector`] seen through its projection's name and category, with views as JSON: what a
/// service that keeps several read models lists (one projector function applies each of them, one
/// query function serves each of them). Every `Projector<P, S>` is one.
pub trait AnyProjector: Send + Sync {
    /// The projection's name ([`Projection::NAME`]).
    fn name(&self) -> &'static str;

    /// The stream category it follows ([`Projection::CATEGORY`]).
    fn category(&self) -> &'static str;

    /// Every category it follows: [`Projection::CATEGORY`], then [`Projection::OTHER_CATEGORIES`].
    fn categories(&self) -> Vec<&'static str> {
        vec![self.category()]
    }

    /// Whether it follows `stream`.
    fn follows(&self, stream: &StreamId) -> bool {
        self.categories().contains(&stream.category())
    }

    /// [`Projector::project`].
    fn project<'a>(
        &'a self,
        stream: &'a StreamId,
        delivered: Vec<Delivered>,
    ) -> BoxFuture<'a, Result<Projected, Error>>;

    /// [`Projector::rebuild`].
    fn rebuild<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, Result<Projected, Error>>;

    /// [`Projector::view`], the view as JSON.
    fn view_json<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, Result<Option<(Value, u64)>, Error>>;

    /// [`Projector::lookup`], the views as JSON.
    fn lookup_json<'a>(
        &'a self,
        tenant: &'a str,
        partition: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<LookupPage<Value>, Error>>;
}

impl<P, S> AnyProjector for Projector<P, S>
where
    P: Projection,
    S: EventStore + ViewStore,
{
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn category(&self) -> &'static str {
        P::CATEGORY
    }

    fn categories(&self) -> Vec<&'static str> {
        std::iter::once(P::CATEGORY).chain(P::OTHER_CATEGORIES.iter().copied()).collect()
    }

    fn follows(&self, stream: &StreamId) -> bool {
        Projector::follows(self, stream)
    }

    fn project<'a>(
        &'a self,
        stream: &'a StreamId,
        delivered: Vec<Delivered>,
    ) -> BoxFuture<'a, Result<Projected, Error>> {
        Box::pin(Projector::project(self, stream, delivered))
    }

    fn rebuild<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, Result<Projected, Error>> {
        Box::pin(Projector::rebuild(self, stream))
    }

    fn view_json<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, Result<Option<(Value, u64)>, Error>> {
        Box::pin(async move {
            match self.view(stream).await? {
                Some((view, version)) => Ok(Some((to_json::<P>(&view)?, version))),
                None => Ok(None),
            }
        })
    }

    fn lookup_json<'a>(
        &'a self,
        tenant: &'a str,
        partition: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<LookupPage<Value>, Error>> {
        Box::pin(async move {
            let page = self.lookup(tenant, partition, after, limit).await?;
            let views = page
                .views
                .into_iter()
                .map(|(stream, lookup, view): (StreamId, Lookup, P::View)| {
                    let view = to_json::<P>(&view)?;
                    Ok((stream, lookup, view))
                })
                .collect::<Result<_, Error>>()?;
            Ok(LookupPage { views, next: page.next })
        })
    }
}

fn to_json<P: Projection>(view: &P::View) -> Result<Value, Error> {
    serde_json::to_value(view)
        .map_err(|error| Error::Serialize { what: "a view", source: crate::without_values(&error) })
}
