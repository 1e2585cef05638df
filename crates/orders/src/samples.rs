//! Sample commands with recognisable personal data, for tests, benches and demos.

use crate::{Address, OrderCommand};

/// Personal strings a sample order carries; none may appear in stored bytes.
pub const PERSONAL_STRINGS: &[&str] =
    &["Ada Lovelace", "ada@example.com", "12 St James's Square", "SW1Y 4JH", "London"];

/// The sample shipping address.
pub fn address() -> Address {
    Address {
        line1: "12 St James's Square".into(),
        line2: None,
        city: "London".into(),
        postal_code: "SW1Y 4JH".into(),
        country: "GB".into(),
    }
}

/// Places an order for `customer_id` with the sample personal data.
pub fn place_order(customer_id: &str) -> OrderCommand {
    OrderCommand::PlaceOrder {
        customer_id: customer_id.into(),
        customer_name: "Ada Lovelace".into(),
        customer_email: "ada@example.com".into(),
        shipping_address: address(),
        currency: "GBP".into(),
    }
}

/// An `ItemAdded` event ready to append (correlation id `sample`), as one `AddItem` command records
/// it: for seeding long streams in benches and load tests without deciding each command.
pub fn item_added_event(
    sku: &str,
    quantity: u32,
    unit_price_minor: u64,
) -> Result<strata_core::NewEvent, strata_core::Error> {
    let encoded = strata_core::encode_event(&crate::OrderEvent::ItemAdded {
        sku: sku.into(),
        quantity,
        unit_price_minor,
    })?;
    Ok(strata_core::NewEvent::new(
        encoded.event_type,
        encoded.schema_version,
        encoded.payload,
        strata_core::Metadata::new("sample"),
    ))
}
