//! Read models of orders: a summary per order, listed per customer.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use strata_core::projection::{Lookup, Projection};
use strata_core::{Aggregate, EventEnvelope, PersonalData};

use crate::{Order, OrderEvent};

/// One order as the query side shows it. Its customer's name, email and address are personal data:
/// sealed at rest, redacted once the customer is forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// The order's id (its stream id).
    pub order_id: String,
    /// When it was placed (commit time of its first event).
    pub placed_at: DateTime<Utc>,
    /// Commit time of the newest event applied.
    pub updated_at: DateTime<Utc>,
    /// The order as its events fold (the aggregate's own `evolve`).
    pub order: Order,
    /// Its total in minor units.
    pub total_minor: u64,
}

/// The projection `order-summary`: a summary per order, also listed by customer, newest last.
///
/// Read one order with `Projector::view(stream)`, a customer's orders with
/// `Projector::lookup(tenant, customer_id)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderSummaries;

impl Projection for OrderSummaries {
    type Event = OrderEvent;
    type View = OrderSummary;
    const NAME: &'static str = "order-summary";
    const CATEGORY: &'static str = Order::CATEGORY;

    fn apply(
        &self,
        view: Option<OrderSummary>,
        event: &OrderEvent,
        envelope: &EventEnvelope,
    ) -> Option<OrderSummary> {
        let at = envelope.metadata.committed_at;
        let mut view = view.unwrap_or_else(|| OrderSummary {
            order_id: envelope.stream.id().to_owned(),
            placed_at: at,
            updated_at: at,
            order: Order::default(),
            total_minor: 0,
        });
        view.order.evolve(event);
        view.total_minor = view.order.total_minor();
        view.updated_at = at;
        Some(view)
    }

    fn personal_data(&self, view: &OrderSummary) -> Option<PersonalData> {
        view.order.customer.as_ref().map(|customer| {
            PersonalData::new(
                customer.id.clone(),
                ["/order/customer/name", "/order/customer/email", "/order/customer/shipping_address"],
            )
        })
    }

    fn lookup(&self, view: &OrderSummary) -> Option<Lookup> {
        view.order.customer.as_ref().map(|customer| Lookup {
            partition: customer.id.clone(),
            sort: format!(
                "{}#{}",
                view.placed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                view.order_id
            ),
        })
    }
}
