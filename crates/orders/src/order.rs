//! The order aggregate: its state, its rules, and how events change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_core::{Aggregate, MAX_ID_LEN, Personal, PersonalData, validate_key_part};

use crate::{Address, OrderCommand, OrderError, OrderEvent};

/// Most lines one order holds.
pub const MAX_LINES: usize = 100;
const MAX_TEXT: usize = 500;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not placed yet (no events).
    #[default]
    New,
    /// Placed; items may change.
    Placed,
    /// Paid; waiting to ship.
    Paid,
    /// Shipped: final.
    Shipped,
    /// Cancelled: final.
    Cancelled,
}

/// One product line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Units.
    pub quantity: u32,
    /// Price of one unit in minor units.
    pub unit_price_minor: u64,
}

/// The customer an order belongs to. All of it but the id is personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The data subject's id.
    pub id: String,
    /// Name (redacted once the customer is forgotten).
    pub name: Personal<String>,
    /// Email.
    pub email: Personal<String>,
    /// Shipping address.
    pub shipping_address: Personal<Address>,
}

/// An order: the aggregate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Life-cycle status.
    pub status: OrderStatus,
    /// The customer, once placed.
    pub customer: Option<Customer>,
    /// ISO 4217 currency of all amounts.
    pub currency: String,
    /// Lines by product code.
    pub lines: BTreeMap<String, Line>,
    /// Amount paid in minor units.
    pub paid_minor: u64,
    /// Carrier and tracking number, once shipped.
    pub shipment: Option<(String, String)>,
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), OrderError> {
    if value.trim().is_empty() {
        return Err(OrderError::InvalidInput { field, reason: "must not be empty" });
    }
    if value.len() > max {
        return Err(OrderError::InvalidInput { field, reason: "is too long" });
    }
    if value.chars().any(char::is_control) {
        return Err(OrderError::InvalidInput { field, reason: "must not contain control characters" });
    }
    Ok(())
}

fn email(value: &str) -> Result<(), OrderError> {
    text("customer_email", value, 254)?;
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') => Ok(()),
        _ => Err(OrderError::InvalidInput { field: "customer_email", reason: "is not an email address" }),
    }
}

fn currency(value: &str) -> Result<(), OrderError> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(OrderError::InvalidInput { field: "currency", reason: "must be a 3-letter ISO 4217 code" })
    }
}

impl Order {
    /// The total in minor units. Kept in range by `add_item`, which refuses overflowing lines.
    pub fn total_minor(&self) -> u64 {
        self.lines.values().fold(0u64, |total, line| {
            total.saturating_add(u64::from(line.quantity).saturating_mul(line.unit_price_minor))
        })
    }

    /// Items may change only while the order is placed and unpaid.
    fn check_open(&self) -> Result<(), OrderError> {
        match self.status {
            OrderStatus::New => Err(OrderError::NotPlaced),
            OrderStatus::Placed => Ok(()),
            OrderStatus::Paid => Err(OrderError::AlreadyPaid),
            OrderStatus::Shipped => Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
        }
    }

    fn add_item(
        &self,
        sku: &str,
        quantity: u32,
        unit_price_minor: u64,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.check_open()?;
        text("sku", sku, 64)?;
        if quantity == 0 {
            return Err(OrderError::InvalidInput { field: "quantity", reason: "must be at least 1" });
        }
        let new_quantity = match self.lines.get(sku) {
            Some(line) if line.unit_price_minor != unit_price_minor => {
                return Err(OrderError::PriceMismatch {
                    sku: sku.to_owned(),
                    existing: line.unit_price_minor,
                    given: unit_price_minor,
                });
            }
            Some(line) => line.quantity.checked_add(quantity).ok_or(OrderError::TotalOverflow)?,
            None if self.lines.len() >= MAX_LINES => return Err(OrderError::TooManyLines { max: MAX_LINES }),
            None => quantity,
        };
        // The whole order total must stay representable, not just this line.
        let others =
            self.lines.iter().filter(|(s, _)| s.as_str() != sku).try_fold(0u64, |total, (_, line)| {
                total.checked_add(u64::from(line.quantity).checked_mul(line.unit_price_minor)?)
            });
        others
            .and_then(|others| others.checked_add(u64::from(new_quantity).checked_mul(unit_price_minor)?))
            .ok_or(OrderError::TotalOverflow)?;
        Ok(vec![OrderEvent::ItemAdded { sku: sku.to_owned(), quantity, unit_price_minor }])
    }

    fn pay(&self, amount_minor: u64, payment_reference: &str) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::New => return Err(OrderError::NotPlaced),
            OrderStatus::Paid => return Err(OrderError::AlreadyPaid),
            OrderStatus::Shipped => return Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => return Err(OrderError::Cancelled),
            OrderStatus::Placed => {}
        }
        text("payment_reference", payment_reference, 128)?;
        if self.lines.is_empty() {
            return Err(OrderError::EmptyOrder);
        }
        let expected = self.total_minor();
        if amount_minor != expected {
            return Err(OrderError::AmountMismatch { expected, given: amount_minor });
        }
        Ok(vec![OrderEvent::OrderPaid { amount_minor, payment_reference: payment_reference.to_owned() }])
    }

    fn ship(&self, carrier: &str, tracking_number: &str) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::New => return Err(OrderError::NotPlaced),
            OrderStatus::Placed => return Err(OrderError::NotPaid),
            OrderStatus::Shipped => return Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => return Err(OrderError::Cancelled),
            OrderStatus::Paid => {}
        }
        text("carrier", carrier, 64)?;
        text("tracking_number", tracking_number, 128)?;
        Ok(vec![OrderEvent::OrderShipped {
            carrier: carrier.to_owned(),
            tracking_number: tracking_number.to_owned(),
        }])
    }

    fn cancel(&self, reason: &str) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::New => return Err(OrderError::NotPlaced),
            OrderStatus::Shipped => return Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => return Err(OrderError::Cancelled),
            OrderStatus::Placed | OrderStatus::Paid => {}
        }
        text("reason", reason, MAX_TEXT)?;
        Ok(vec![OrderEvent::OrderCancelled { reason: reason.to_owned() }])
    }
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::PlaceOrder {
                customer_id,
                customer_name,
                customer_email,
                shipping_address,
                currency: cur,
            } => {
                if self.status != OrderStatus::New {
                    return Err(OrderError::AlreadyPlaced);
                }
                validate_key_part("customer_id", customer_id, MAX_ID_LEN).map_err(|_| {
                    OrderError::InvalidInput { field: "customer_id", reason: "is not a valid id" }
                })?;
                text("customer_name", customer_name, 200)?;
                email(customer_email)?;
                shipping_address.validate()?;
                currency(cur)?;
                Ok(vec![OrderEvent::OrderPlaced {
                    customer_id: customer_id.clone(),
                    customer_name: customer_name.clone().into(),
                    customer_email: customer_email.clone().into(),
                    shipping_address: shipping_address.clone().into(),
                    currency: cur.clone(),
                }])
            }
            OrderCommand::AddItem { sku, quantity, unit_price_minor } => {
                self.add_item(sku, *quantity, *unit_price_minor)
            }
            OrderCommand::RemoveItem { sku } => {
                self.check_open()?;
                if !self.lines.contains_key(sku) {
                    return Err(OrderError::ItemNotInOrder { sku: sku.clone() });
                }
                Ok(vec![OrderEvent::ItemRemoved { sku: sku.clone() }])
            }
            OrderCommand::Pay { amount_minor, payment_reference } => {
                self.pay(*amount_minor, payment_reference)
            }
            OrderCommand::Ship { carrier, tracking_number } => self.ship(carrier, tracking_number),
            OrderCommand::Cancel { reason } => self.cancel(reason),
        }
    }

    fn personal_data(&self) -> Option<PersonalData> {
        self.customer.as_ref().map(|c| {
            PersonalData::new(
                c.id.clone(),
                ["/customer/name", "/customer/email", "/customer/shipping_address"],
            )
        })
    }

    fn evolve(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderPlaced {
                customer_id,
                customer_name,
                customer_email,
                shipping_address,
                currency,
            } => {
                self.status = OrderStatus::Placed;
                self.currency = currency.clone();
                self.customer = Some(Customer {
                    id: customer_id.clone(),
                    name: customer_name.clone(),
                    email: customer_email.clone(),
                    shipping_address: shipping_address.clone(),
                });
            }
            OrderEvent::ItemAdded { sku, quantity, unit_price_minor } => {
                let line = self
                    .lines
                    .entry(sku.clone())
                    .or_insert(Line { quantity: 0, unit_price_minor: *unit_price_minor });
                line.quantity = line.quantity.saturating_add(*quantity);
            }
            OrderEvent::ItemRemoved { sku } => {
                self.lines.remove(sku);
            }
            OrderEvent::OrderPaid { amount_minor, .. } => {
                self.status = OrderStatus::Paid;
                self.paid_minor = *amount_minor;
            }
            OrderEvent::OrderShipped { carrier, tracking_number } => {
                self.status = OrderStatus::Shipped;
                self.shipment = Some((carrier.clone(), tracking_number.clone()));
            }
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
        }
    }
}
