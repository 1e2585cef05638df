#![doc = include_str!("../README.md")]

mod command;
pub mod conformance;
mod error;
mod event;
mod order;
pub mod samples;
pub mod views;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_core::{BoxError, UpcasterChain};

pub use command::OrderCommand;
pub use error::OrderError;
pub use event::OrderEvent;
pub use order::{Customer, Line, MAX_LINES, Order, OrderStatus};
pub use views::{OrderSummaries, OrderSummary};

/// A postal address (personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// Optional second line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166 alpha-2 country code.
    pub country: String,
}

impl Address {
    fn validate(&self) -> Result<(), OrderError> {
        let invalid =
            |field| OrderError::InvalidInput { field, reason: "must be 1 to 200 printable characters" };
        let ok = |s: &str| !s.trim().is_empty() && s.len() <= 200 && !s.chars().any(char::is_control);
        for (field, value) in [
            ("shipping_address.line1", &self.line1),
            ("shipping_address.city", &self.city),
            ("shipping_address.postal_code", &self.postal_code),
        ] {
            if !ok(value) {
                return Err(invalid(field));
            }
        }
        if self.line2.as_deref().is_some_and(|l| !ok(l)) {
            return Err(invalid("shipping_address.line2"));
        }
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(OrderError::InvalidInput {
                field: "shipping_address.country",
                reason: "must be a 2-letter ISO 3166 code",
            });
        }
        Ok(())
    }
}

/// The upcasters for stored order events.
///
/// `ItemAdded` v1 stored the unit price as a decimal string with at most two decimals
/// (`"unit_price": "12.30"`); v2 stores integer minor units (`"unit_price_minor": 1230`), so totals
/// never meet floating point.
pub fn upcasters() -> UpcasterChain {
    let chain = UpcasterChain::builder().upcast("ItemAdded", 1, "ItemAdded", 2, item_added_v1_to_v2).build();
    // The chain above is fixed and valid (tested); an invalid one would be a bug caught by the tests.
    chain.unwrap_or_default()
}

fn item_added_v1_to_v2(mut payload: Value) -> Result<Value, BoxError> {
    let object = payload.as_object_mut().ok_or("ItemAdded v1 payload is not an object")?;
    let price = object.remove("unit_price").ok_or("ItemAdded v1 has no unit_price")?;
    let price = price.as_str().ok_or("ItemAdded v1 unit_price is not a string")?;
    object.insert("unit_price_minor".to_owned(), Value::from(parse_minor_units(price)?));
    Ok(payload)
}

/// Parses `"12"`, `"12.3"` or `"12.30"` into minor units (1230), refusing anything else.
fn parse_minor_units(decimal: &str) -> Result<u64, BoxError> {
    let (units, cents) = decimal.split_once('.').unwrap_or((decimal, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let dotted = decimal.contains('.');
    if !digits(units) || cents.len() > 2 || (dotted && !digits(cents)) {
        return Err(format!("{decimal:?} is not a price with at most two decimals").into());
    }
    let cents = format!("{cents:0<2}");
    units
        .parse::<u64>()?
        .checked_mul(100)
        .and_then(|minor| minor.checked_add(cents.parse().ok()?))
        .ok_or_else(|| format!("{decimal:?} overflows minor units").into())
}

/// The orders service, listed once: the [`Order`] aggregate and the [`OrderSummaries`] read model,
/// with the upcasters of both. Each function builds its part from it (feature `service`).
#[cfg(feature = "service")]
pub fn service<S: strata_lambda::service::Store>(store: S) -> strata_lambda::Service<S> {
    strata_lambda::Service::new(store)
        .with_upcasters(upcasters())
        .aggregate::<Order>()
        .projection(OrderSummaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_prices() {
        assert_eq!(parse_minor_units("12.30").unwrap(), 1230);
        assert_eq!(parse_minor_units("12.3").unwrap(), 1230);
        assert_eq!(parse_minor_units("12").unwrap(), 1200);
        assert_eq!(parse_minor_units("0.05").unwrap(), 5);
        for bad in ["", ".5", "1.234", "-1", "1,5", "1.", "99999999999999999999"] {
            assert!(parse_minor_units(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
