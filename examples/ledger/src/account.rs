//! An account: opened for a holder, credited and debited, never below zero.

use serde::{Deserialize, Serialize};
use strata_core::{Aggregate, Command, Event, Personal, PersonalData, Rejection};

/// What callers ask an account to do (`POST /account/{id}/commands/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountCommand {
    /// Opens the account for a holder.
    Open {
        /// The holder's id: the data subject.
        holder_id: String,
        /// The holder's name (personal data).
        holder_name: String,
    },
    /// Adds money.
    Credit {
        /// Minor units (cents), at least 1.
        amount_minor: u64,
        /// Why (a transfer id, a deposit slip).
        reference: String,
    },
    /// Takes money out; refused when the balance is short.
    Debit {
        /// Minor units (cents), at least 1.
        amount_minor: u64,
        /// Why (a transfer id, a withdrawal).
        reference: String,
    },
}

impl Command for AccountCommand {
    fn command_name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Credit { .. } => "credit",
            Self::Debit { .. } => "debit",
        }
    }

    /// A debit decided on a stale balance could overdraw: decided again on a conflict like the
    /// rest, since the rule is re-checked on the fresh state.
    fn retry_on_conflict(&self) -> bool {
        true
    }
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AccountEvent {
    /// Opened; `holder_name` is personal data of `holder_id`.
    AccountOpened {
        /// The data subject.
        holder_id: String,
        /// Sealed at rest.
        holder_name: Personal<String>,
    },
    /// Money added.
    Credited {
        /// Minor units.
        amount_minor: u64,
        /// Why.
        reference: String,
    },
    /// Money taken out.
    Debited {
        /// Minor units.
        amount_minor: u64,
        /// Why.
        reference: String,
    },
}

impl Event for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::AccountOpened { .. } => "AccountOpened",
            Self::Credited { .. } => "Credited",
            Self::Debited { .. } => "Debited",
        }
    }

    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            Self::AccountOpened { holder_id, .. } => {
                Some(PersonalData::new(holder_id.clone(), ["/holder_name"]))
            }
            _ => None,
        }
    }
}

/// Why an account refuses a command (422, or 400 for malformed input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A field is malformed.
    #[error("{field} {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Opened already.
    #[error("the account is open already")]
    AlreadyOpen,
    /// Not opened yet.
    #[error("the account is not open")]
    NotOpen,
    /// The balance is short of the debit.
    #[error("the balance is short by {short_minor}")]
    InsufficientFunds {
        /// How much is missing.
        short_minor: u64,
    },
    /// The balance would overflow.
    #[error("the balance would overflow")]
    Overflow,
}

impl Rejection for AccountError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::AlreadyOpen => "already_open",
            Self::NotOpen => "not_open",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::Overflow => "overflow",
        }
    }

    fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. })
    }
}

/// An account's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The holder's id, once opened.
    pub holder_id: Option<String>,
    /// The holder's name (redacted once the holder is forgotten).
    pub holder_name: Option<Personal<String>>,
    /// Minor units.
    pub balance_minor: u64,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        let invalid = |field, reason| AccountError::InvalidInput { field, reason };
        match command {
            AccountCommand::Open { holder_id, holder_name } => {
                crate::text(holder_id, 256).map_err(|r| invalid("holder_id", r))?;
                crate::text(holder_name, 256).map_err(|r| invalid("holder_name", r))?;
                if self.holder_id.is_some() {
                    return Err(AccountError::AlreadyOpen);
                }
                Ok(vec![AccountEvent::AccountOpened {
                    holder_id: holder_id.clone(),
                    holder_name: Personal::Known(holder_name.clone()),
                }])
            }
            AccountCommand::Credit { amount_minor, reference } => {
                self.check_movement(*amount_minor, reference)?;
                self.balance_minor.checked_add(*amount_minor).ok_or(AccountError::Overflow)?;
                Ok(vec![AccountEvent::Credited { amount_minor: *amount_minor, reference: reference.clone() }])
            }
            AccountCommand::Debit { amount_minor, reference } => {
                self.check_movement(*amount_minor, reference)?;
                if *amount_minor > self.balance_minor {
                    return Err(AccountError::InsufficientFunds {
                        short_minor: amount_minor - self.balance_minor,
                    });
                }
                Ok(vec![AccountEvent::Debited { amount_minor: *amount_minor, reference: reference.clone() }])
            }
        }
    }

    fn evolve(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened { holder_id, holder_name } => {
                self.holder_id = Some(holder_id.clone());
                self.holder_name = Some(holder_name.clone());
            }
            AccountEvent::Credited { amount_minor, .. } => {
                self.balance_minor = self.balance_minor.saturating_add(*amount_minor);
            }
            AccountEvent::Debited { amount_minor, .. } => {
                self.balance_minor = self.balance_minor.saturating_sub(*amount_minor);
            }
        }
    }

    fn personal_data(&self) -> Option<PersonalData> {
        self.holder_id.as_ref().map(|holder| PersonalData::new(holder.clone(), ["/holder_name"]))
    }
}

impl Account {
    fn check_movement(&self, amount_minor: u64, reference: &str) -> Result<(), AccountError> {
        if self.holder_id.is_none() {
            return Err(AccountError::NotOpen);
        }
        if amount_minor == 0 {
            return Err(AccountError::InvalidInput { field: "amount_minor", reason: "must be at least 1" });
        }
        crate::text(reference, 256)
            .map_err(|reason| AccountError::InvalidInput { field: "reference", reason })
    }
}
