//! What happened to an order.

use serde::{Deserialize, Serialize};
use strata_core::{Event, Personal, PersonalData};

use crate::Address;

/// An event of an [`Order`](crate::Order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrderEvent {
    /// The order was opened. Name, email and address are personal data of `customer_id`.
    OrderPlaced {
        /// The data subject.
        customer_id: String,
        /// Personal data (sealed at rest).
        customer_name: Personal<String>,
        /// Personal data (sealed at rest).
        customer_email: Personal<String>,
        /// Personal data (sealed at rest).
        shipping_address: Personal<Address>,
        /// ISO 4217 code.
        currency: String,
    },
    /// Units of a product were added (schema v2: price in integer minor units; v1 stored a decimal
    /// string, see [`upcasters`](crate::upcasters)).
    ItemAdded {
        /// Product code.
        sku: String,
        /// Units added.
        quantity: u32,
        /// Price of one unit in minor units.
        unit_price_minor: u64,
    },
    /// A product line was removed.
    ItemRemoved {
        /// Product code.
        sku: String,
    },
    /// The total was paid.
    OrderPaid {
        /// Amount in minor units.
        amount_minor: u64,
        /// Payment provider's reference.
        payment_reference: String,
    },
    /// The order left with a carrier.
    OrderShipped {
        /// Carrier.
        carrier: String,
        /// Tracking number.
        tracking_number: String,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// Why.
        reason: String,
    },
}

impl Event for OrderEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::OrderPlaced { .. } => "OrderPlaced",
            Self::ItemAdded { .. } => "ItemAdded",
            Self::ItemRemoved { .. } => "ItemRemoved",
            Self::OrderPaid { .. } => "OrderPaid",
            Self::OrderShipped { .. } => "OrderShipped",
            Self::OrderCancelled { .. } => "OrderCancelled",
        }
    }

    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            Self::OrderPlaced { customer_id, .. } => Some(PersonalData::new(
                customer_id.clone(),
                ["/customer_name", "/customer_email", "/shipping_address"],
            )),
            _ => None,
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::ItemAdded { .. } => 2,
            _ => 1,
        }
    }
}
