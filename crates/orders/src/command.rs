//! What callers ask an order to do.

use serde::{Deserialize, Serialize};
use strata_core::Command;

use crate::Address;

/// A command for an [`Order`](crate::Order).
///
/// Serialized externally tagged in snake case, e.g. `{"add_item": {"sku": "A-1", ...}}`: the tag is
/// the command name the HTTP API routes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OrderCommand {
    /// Opens the order for a customer.
    PlaceOrder {
        /// The customer's id: the data subject whose personal data the order holds.
        customer_id: String,
        /// The customer's name (personal data).
        customer_name: String,
        /// The customer's email (personal data).
        customer_email: String,
        /// Where to ship (personal data).
        shipping_address: Address,
        /// ISO 4217 currency code, e.g. `EUR`.
        currency: String,
    },
    /// Adds units of a product (or more units of a product already in the order).
    AddItem {
        /// Product code.
        sku: String,
        /// Units to add, at least 1.
        quantity: u32,
        /// Price of one unit in minor units (cents).
        unit_price_minor: u64,
    },
    /// Removes a product line.
    RemoveItem {
        /// Product code.
        sku: String,
    },
    /// Records payment of the full total.
    Pay {
        /// Amount paid in minor units; must equal the total.
        amount_minor: u64,
        /// The payment provider's reference.
        payment_reference: String,
    },
    /// Hands a paid order to a carrier.
    Ship {
        /// Carrier name.
        carrier: String,
        /// Carrier's tracking number.
        tracking_number: String,
    },
    /// Cancels an order that has not shipped.
    Cancel {
        /// Why.
        reason: String,
    },
}

impl Command for OrderCommand {
    fn command_name(&self) -> &'static str {
        match self {
            Self::PlaceOrder { .. } => "place_order",
            Self::AddItem { .. } => "add_item",
            Self::RemoveItem { .. } => "remove_item",
            Self::Pay { .. } => "pay",
            Self::Ship { .. } => "ship",
            Self::Cancel { .. } => "cancel",
        }
    }
}
