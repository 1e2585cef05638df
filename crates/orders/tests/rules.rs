//! Given/when/then tests for every order rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_core::fixture::{given, given_no_events};
use strata_orders::{Address, MAX_LINES, Order, OrderCommand, OrderError, OrderEvent, OrderStatus};

const CUSTOMER_ID: &str = "c-1";
const NAME: &str = "Ada Lovelace";
const EMAIL: &str = "ada@example.com";

fn address() -> Address {
    Address {
        line1: "1 Main Street".to_owned(),
        line2: None,
        city: "Berlin".to_owned(),
        postal_code: "10115".to_owned(),
        country: "DE".to_owned(),
    }
}

fn place_cmd(customer_id: &str, name: &str, email: &str, address: Address, currency: &str) -> OrderCommand {
    OrderCommand::PlaceOrder {
        customer_id: customer_id.to_owned(),
        customer_name: name.to_owned(),
        customer_email: email.to_owned(),
        shipping_address: address,
        currency: currency.to_owned(),
    }
}

fn place() -> OrderCommand {
    place_cmd(CUSTOMER_ID, NAME, EMAIL, address(), "EUR")
}

fn placed() -> OrderEvent {
    OrderEvent::OrderPlaced {
        customer_id: CUSTOMER_ID.to_owned(),
        customer_name: NAME.into(),
        customer_email: EMAIL.into(),
        shipping_address: address().into(),
        currency: "EUR".to_owned(),
    }
}

fn item(sku: &str, quantity: u32, unit_price_minor: u64) -> OrderEvent {
    OrderEvent::ItemAdded { sku: sku.to_owned(), quantity, unit_price_minor }
}

fn add(sku: &str, quantity: u32, unit_price_minor: u64) -> OrderCommand {
    OrderCommand::AddItem { sku: sku.to_owned(), quantity, unit_price_minor }
}

fn remove(sku: &str) -> OrderCommand {
    OrderCommand::RemoveItem { sku: sku.to_owned() }
}

fn paid(amount_minor: u64) -> OrderEvent {
    OrderEvent::OrderPaid { amount_minor, payment_reference: "pay-1".to_owned() }
}

fn pay(amount_minor: u64) -> OrderCommand {
    OrderCommand::Pay { amount_minor, payment_reference: "pay-1".to_owned() }
}

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped { carrier: "DHL".to_owned(), tracking_number: "TRACK-1".to_owned() }
}

fn ship() -> OrderCommand {
    OrderCommand::Ship { carrier: "DHL".to_owned(), tracking_number: "TRACK-1".to_owned() }
}

fn cancelled() -> OrderEvent {
    OrderEvent::OrderCancelled { reason: "changed my mind".to_owned() }
}

fn cancel() -> OrderCommand {
    OrderCommand::Cancel { reason: "changed my mind".to_owned() }
}

fn invalid(field: &'static str, reason: &'static str) -> OrderError {
    OrderError::InvalidInput { field, reason }
}

/// Placed with one line of 2 × 500: total 1000.
fn filled() -> Vec<OrderEvent> {
    vec![placed(), item("A-1", 2, 500)]
}

fn paid_order() -> Vec<OrderEvent> {
    let mut events = filled();
    events.push(paid(1000));
    events
}

fn shipped_order() -> Vec<OrderEvent> {
    let mut events = paid_order();
    events.push(shipped());
    events
}

fn cancelled_order() -> Vec<OrderEvent> {
    let mut events = filled();
    events.push(cancelled());
    events
}

// --- place ---

#[test]
fn place_opens_the_order() {
    let state = given_no_events::<Order>().when(place()).then_expect([placed()]);
    assert_eq!(state.status, OrderStatus::Placed);
    assert_eq!(state.currency, "EUR");
    let customer = state.customer.expect("customer set");
    assert_eq!(customer.id, CUSTOMER_ID);
    assert_eq!(customer.shipping_address, address().into());
}

#[test]
fn place_twice_is_refused() {
    given::<Order>([placed()]).when(place()).then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn place_with_invalid_customer_id_is_refused() {
    for id in ["a#b", ""] {
        given_no_events::<Order>()
            .when(place_cmd(id, NAME, EMAIL, address(), "EUR"))
            .then_expect_error(invalid("customer_id", "is not a valid id"));
    }
}

#[test]
fn place_with_empty_name_is_refused() {
    given_no_events::<Order>()
        .when(place_cmd(CUSTOMER_ID, "  ", EMAIL, address(), "EUR"))
        .then_expect_error(invalid("customer_name", "must not be empty"));
}

#[test]
fn place_with_overlong_or_control_character_name_is_refused() {
    given_no_events::<Order>()
        .when(place_cmd(CUSTOMER_ID, &"x".repeat(201), EMAIL, address(), "EUR"))
        .then_expect_error(invalid("customer_name", "is too long"));
    given_no_events::<Order>()
        .when(place_cmd(CUSTOMER_ID, "Ada\nLovelace", EMAIL, address(), "EUR"))
        .then_expect_error(invalid("customer_name", "must not contain control characters"));
}

#[test]
fn place_with_bad_email_is_refused() {
    for email in ["ada.example.com", "@example.com", "ada@localhost", "ada@ex@ample.com"] {
        given_no_events::<Order>()
            .when(place_cmd(CUSTOMER_ID, NAME, email, address(), "EUR"))
            .then_expect_error(invalid("customer_email", "is not an email address"));
    }
    given_no_events::<Order>()
        .when(place_cmd(CUSTOMER_ID, NAME, "", address(), "EUR"))
        .then_expect_error(invalid("customer_email", "must not be empty"));
}

#[test]
fn place_with_bad_currency_is_refused() {
    for currency in ["eur", "EU", "EURO", "E1R", ""] {
        given_no_events::<Order>()
            .when(place_cmd(CUSTOMER_ID, NAME, EMAIL, address(), currency))
            .then_expect_error(invalid("currency", "must be a 3-letter ISO 4217 code"));
    }
}

#[test]
fn place_with_bad_country_code_is_refused() {
    for country in ["de", "DEU", "D1", ""] {
        let address = Address { country: country.to_owned(), ..address() };
        given_no_events::<Order>()
            .when(place_cmd(CUSTOMER_ID, NAME, EMAIL, address, "EUR"))
            .then_expect_error(invalid("shipping_address.country", "must be a 2-letter ISO 3166 code"));
    }
}

#[test]
fn place_with_blank_address_lines_is_refused() {
    let reason = "must be 1 to 200 printable characters";
    let cases = [
        (Address { line1: " ".to_owned(), ..address() }, "shipping_address.line1"),
        (Address { city: String::new(), ..address() }, "shipping_address.city"),
        (Address { postal_code: "x".repeat(201), ..address() }, "shipping_address.postal_code"),
        (Address { line2: Some(String::new()), ..address() }, "shipping_address.line2"),
    ];
    for (address, field) in cases {
        given_no_events::<Order>()
            .when(place_cmd(CUSTOMER_ID, NAME, EMAIL, address, "EUR"))
            .then_expect_error(invalid(field, reason));
    }
}

// --- add item ---

#[test]
fn add_item_adds_a_line() {
    let state = given::<Order>([placed()]).when(add("A-1", 2, 500)).then_expect([item("A-1", 2, 500)]);
    assert_eq!(state.lines["A-1"].quantity, 2);
    assert_eq!(state.lines["A-1"].unit_price_minor, 500);
}

#[test]
fn add_item_with_zero_quantity_is_refused() {
    given::<Order>([placed()])
        .when(add("A-1", 0, 500))
        .then_expect_error(invalid("quantity", "must be at least 1"));
}

#[test]
fn add_item_with_empty_sku_is_refused() {
    given::<Order>([placed()]).when(add("", 1, 500)).then_expect_error(invalid("sku", "must not be empty"));
}

#[test]
fn add_same_sku_at_same_price_merges_quantities() {
    let state = given::<Order>(filled()).when(add("A-1", 3, 500)).then_expect([item("A-1", 3, 500)]);
    assert_eq!(state.lines.len(), 1);
    assert_eq!(state.lines["A-1"].quantity, 5);
    assert_eq!(state.total_minor(), 2500);
}

#[test]
fn add_same_sku_at_other_price_is_refused() {
    given::<Order>(filled()).when(add("A-1", 1, 600)).then_expect_error(OrderError::PriceMismatch {
        sku: "A-1".to_owned(),
        existing: 500,
        given: 600,
    });
}

#[test]
fn add_item_beyond_max_lines_is_refused() {
    let mut history = vec![placed()];
    history.extend((0..MAX_LINES).map(|i| item(&format!("SKU-{i}"), 1, 100)));
    given::<Order>(history.clone())
        .when(add("ONE-MORE", 1, 100))
        .then_expect_error(OrderError::TooManyLines { max: MAX_LINES });
    // Merging into an existing line adds no line, so it is still allowed at the limit.
    given::<Order>(history).when(add("SKU-0", 1, 100)).then_expect([item("SKU-0", 1, 100)]);
}

#[test]
fn add_item_overflowing_the_total_is_refused() {
    given::<Order>([placed()]).when(add("BIG", 3, u64::MAX / 2)).then_expect_error(OrderError::TotalOverflow);
    given::<Order>([placed(), item("BIG", 1, u64::MAX / 2)])
        .when(add("OTHER", 1, u64::MAX / 2 + 2))
        .then_expect_error(OrderError::TotalOverflow);
}

#[test]
fn add_item_overflowing_the_quantity_is_refused() {
    given::<Order>([placed(), item("A-1", u32::MAX, 1)])
        .when(add("A-1", 1, 1))
        .then_expect_error(OrderError::TotalOverflow);
}

#[test]
fn add_item_before_placing_is_refused() {
    given_no_events::<Order>().when(add("A-1", 1, 500)).then_expect_error(OrderError::NotPlaced);
}

#[test]
fn add_item_after_payment_is_refused() {
    given::<Order>(paid_order()).when(add("B-2", 1, 500)).then_expect_error(OrderError::AlreadyPaid);
}

#[test]
fn add_item_after_shipping_is_refused() {
    given::<Order>(shipped_order()).when(add("B-2", 1, 500)).then_expect_error(OrderError::AlreadyShipped);
}

#[test]
fn add_item_after_cancellation_is_refused() {
    given::<Order>(cancelled_order()).when(add("B-2", 1, 500)).then_expect_error(OrderError::Cancelled);
}

// --- remove item ---

#[test]
fn remove_item_removes_the_line() {
    let mut history = filled();
    history.push(item("B-2", 1, 300));
    let removed = OrderEvent::ItemRemoved { sku: "A-1".to_owned() };
    let state = given::<Order>(history).when(remove("A-1")).then_expect([removed]);
    assert!(!state.lines.contains_key("A-1"));
    assert_eq!(state.total_minor(), 300);
}

#[test]
fn remove_unknown_item_is_refused() {
    given::<Order>(filled())
        .when(remove("NOPE"))
        .then_expect_error(OrderError::ItemNotInOrder { sku: "NOPE".to_owned() });
}

#[test]
fn remove_item_before_placing_is_refused() {
    given_no_events::<Order>().when(remove("A-1")).then_expect_error(OrderError::NotPlaced);
}

#[test]
fn remove_item_after_payment_is_refused() {
    given::<Order>(paid_order()).when(remove("A-1")).then_expect_error(OrderError::AlreadyPaid);
}

// --- pay ---

#[test]
fn pay_the_exact_total_marks_the_order_paid() {
    let state = given::<Order>(filled()).when(pay(1000)).then_expect([paid(1000)]);
    assert_eq!(state.status, OrderStatus::Paid);
    assert_eq!(state.paid_minor, 1000);
}

#[test]
fn pay_an_empty_order_is_refused() {
    given::<Order>([placed()]).when(pay(0)).then_expect_error(OrderError::EmptyOrder);
}

#[test]
fn pay_the_wrong_amount_is_refused() {
    given::<Order>(filled())
        .when(pay(999))
        .then_expect_error(OrderError::AmountMismatch { expected: 1000, given: 999 });
}

#[test]
fn pay_twice_is_refused() {
    given::<Order>(paid_order()).when(pay(1000)).then_expect_error(OrderError::AlreadyPaid);
}

#[test]
fn pay_before_placing_is_refused() {
    given_no_events::<Order>().when(pay(1000)).then_expect_error(OrderError::NotPlaced);
}

#[test]
fn pay_after_shipping_is_refused() {
    given::<Order>(shipped_order()).when(pay(1000)).then_expect_error(OrderError::AlreadyShipped);
}

#[test]
fn pay_after_cancellation_is_refused() {
    given::<Order>(cancelled_order()).when(pay(1000)).then_expect_error(OrderError::Cancelled);
}

#[test]
fn pay_with_empty_payment_reference_is_refused() {
    given::<Order>(filled())
        .when(OrderCommand::Pay { amount_minor: 1000, payment_reference: String::new() })
        .then_expect_error(invalid("payment_reference", "must not be empty"));
}

// --- ship ---

#[test]
fn ship_after_payment_marks_the_order_shipped() {
    let state = given::<Order>(paid_order()).when(ship()).then_expect([shipped()]);
    assert_eq!(state.status, OrderStatus::Shipped);
    assert_eq!(state.shipment, Some(("DHL".to_owned(), "TRACK-1".to_owned())));
}

#[test]
fn ship_before_payment_is_refused() {
    given::<Order>(filled()).when(ship()).then_expect_error(OrderError::NotPaid);
}

#[test]
fn ship_twice_is_refused() {
    given::<Order>(shipped_order()).when(ship()).then_expect_error(OrderError::AlreadyShipped);
}

#[test]
fn ship_before_placing_is_refused() {
    given_no_events::<Order>().when(ship()).then_expect_error(OrderError::NotPlaced);
}

#[test]
fn ship_after_cancellation_is_refused() {
    given::<Order>(cancelled_order()).when(ship()).then_expect_error(OrderError::Cancelled);
}

#[test]
fn ship_with_empty_carrier_or_tracking_number_is_refused() {
    given::<Order>(paid_order())
        .when(OrderCommand::Ship { carrier: String::new(), tracking_number: "TRACK-1".to_owned() })
        .then_expect_error(invalid("carrier", "must not be empty"));
    given::<Order>(paid_order())
        .when(OrderCommand::Ship { carrier: "DHL".to_owned(), tracking_number: " ".to_owned() })
        .then_expect_error(invalid("tracking_number", "must not be empty"));
}

// --- cancel ---

#[test]
fn cancel_before_payment_cancels_the_order() {
    let state = given::<Order>(filled()).when(cancel()).then_expect([cancelled()]);
    assert_eq!(state.status, OrderStatus::Cancelled);
}

#[test]
fn cancel_after_payment_is_allowed() {
    let state = given::<Order>(paid_order()).when(cancel()).then_expect([cancelled()]);
    assert_eq!(state.status, OrderStatus::Cancelled);
}

#[test]
fn cancel_after_shipping_is_refused() {
    given::<Order>(shipped_order()).when(cancel()).then_expect_error(OrderError::AlreadyShipped);
}

#[test]
fn cancel_twice_is_refused() {
    given::<Order>(cancelled_order()).when(cancel()).then_expect_error(OrderError::Cancelled);
}

#[test]
fn cancel_before_placing_is_refused() {
    given_no_events::<Order>().when(cancel()).then_expect_error(OrderError::NotPlaced);
}

#[test]
fn cancel_with_empty_reason_is_refused() {
    given::<Order>(filled())
        .when(OrderCommand::Cancel { reason: String::new() })
        .then_expect_error(invalid("reason", "must not be empty"));
}

// --- total ---

#[test]
fn total_sums_every_line() {
    let state = given::<Order>(filled()).when(add("B-2", 3, 250)).then_expect([item("B-2", 3, 250)]);
    assert_eq!(state.lines.len(), 2);
    assert_eq!(state.total_minor(), 2 * 500 + 3 * 250);
}
