//! Why an order refuses a command.

/// A domain rule the command breaks. Each maps to HTTP 422 at the API (or 400 for `InvalidInput`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// A field is malformed.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The order was placed already.
    #[error("the order has already been placed")]
    AlreadyPlaced,
    /// The order has not been placed yet.
    #[error("the order has not been placed")]
    NotPlaced,
    /// The order is paid; its items can no longer change.
    #[error("the order is already paid")]
    AlreadyPaid,
    /// Shipping needs payment first.
    #[error("the order is not paid yet")]
    NotPaid,
    /// Nothing changes after shipping.
    #[error("the order has already shipped")]
    AlreadyShipped,
    /// Nothing changes after cancellation.
    #[error("the order is cancelled")]
    Cancelled,
    /// The product is not in the order.
    #[error("{sku} is not in the order")]
    ItemNotInOrder {
        /// Product code.
        sku: String,
    },
    /// The product is in the order at another unit price.
    #[error("{sku} is in the order at {existing}, not {given}")]
    PriceMismatch {
        /// Product code.
        sku: String,
        /// Price in the order.
        existing: u64,
        /// Price in the command.
        given: u64,
    },
    /// An order needs at least one line.
    #[error("the order has no items")]
    EmptyOrder,
    /// The payment does not cover exactly the total.
    #[error("payment of {given} does not match the total of {expected}")]
    AmountMismatch {
        /// The total.
        expected: u64,
        /// What was paid.
        given: u64,
    },
    /// Quantities or totals would exceed what the order can represent.
    #[error("the order total would overflow")]
    TotalOverflow,
    /// An order holds a bounded number of lines (it must fit a snapshot and a 256 KB event).
    #[error("an order holds at most {max} lines")]
    TooManyLines {
        /// The bound.
        max: usize,
    },
}

impl strata_core::Rejection for OrderError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::AlreadyPlaced => "already_placed",
            Self::NotPlaced => "not_placed",
            Self::AlreadyPaid => "already_paid",
            Self::NotPaid => "not_paid",
            Self::AlreadyShipped => "already_shipped",
            Self::Cancelled => "cancelled",
            Self::ItemNotInOrder { .. } => "item_not_in_order",
            Self::PriceMismatch { .. } => "price_mismatch",
            Self::EmptyOrder => "empty_order",
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::TotalOverflow => "total_overflow",
            Self::TooManyLines { .. } => "too_many_lines",
        }
    }

    fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. })
    }
}
