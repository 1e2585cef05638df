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
