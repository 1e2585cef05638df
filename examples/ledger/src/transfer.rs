//! A transfer: asks to move an amount from one account to another, then records what happened.
//! The accounts move the money; a process manager (the ledger's consumer) runs the debit and the
//! credit and reports back here.

use serde::{Deserialize, Serialize};
use strata_core::{Aggregate, Command, Event, Rejection};

/// What callers (and the process manager) ask a transfer to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferCommand {
    /// Asks to move `amount_minor` from account `from` to account `to`.
    Request {
        /// The id of the account debited.
        from: String,
        /// The id of the account credited.
        to: String,
        /// Minor units, at least 1.
        amount_minor: u64,
    },
    /// The source account was debited.
    RecordDebit,
    /// The destination account was credited: the transfer is complete.
    RecordCredit,
    /// The debit or the credit was refused (`reason` is the account's rule code): nothing moved (a
    /// debit made is refunded first).
    Fail {
        /// Why.
        reason: String,
    },
}

impl Command for TransferCommand {
    fn command_name(&self) -> &'static str {
        match self {
            Self::Request { .. } => "request",
            Self::RecordDebit => "record_debit",
            Self::RecordCredit => "record_credit",
            Self::Fail { .. } => "fail",
        }
    }
}

/// What happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferEvent {
    /// Asked for.
    TransferRequested {
        /// Debited account id.
        from: String,
        /// Credited account id.
        to: String,
        /// Minor units.
        amount_minor: u64,
    },
    /// The source account was debited.
    TransferDebited,
    /// The destination account was credited.
    TransferCompleted,
    /// Nothing moved.
    TransferFailed {
        /// The account's rule code.
        reason: String,
    },
}

impl Event for TransferEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::TransferRequested { .. } => "TransferRequested",
            Self::TransferDebited => "TransferDebited",
            Self::TransferCompleted => "TransferCompleted",
            Self::TransferFailed { .. } => "TransferFailed",
        }
    }
}

/// Why a transfer refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// A field is malformed.
    #[error("{field} {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Requested already.
    #[error("the transfer was requested already")]
    AlreadyRequested,
    /// The step does not follow from the transfer's status.
    #[error("the transfer is {status:?}")]
    WrongStatus {
        /// Where it is.
        status: TransferStatus,
    },
}

impl Rejection for TransferError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::AlreadyRequested => "already_requested",
            Self::WrongStatus { .. } => "wrong_status",
        }
    }

    fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. })
    }
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Not requested.
    #[default]
    New,
    /// Requested; the debit is next.
    Requested,
    /// Debited; the credit is next.
    Debited,
    /// Done.
    Completed,
    /// Refused; nothing moved.
    Failed,
}

/// A transfer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Where it is.
    pub status: TransferStatus,
    /// Debited account id.
    pub from: String,
    /// Credited account id.
    pub to: String,
    /// Minor units.
    pub amount_minor: u64,
}

impl Aggregate for Transfer {
    const CATEGORY: &'static str = "transfer";
    type Command = TransferCommand;
    type Event = TransferEvent;
    type Error = TransferError;

    fn decide(&self, command: &TransferCommand) -> Result<Vec<TransferEvent>, TransferError> {
        let invalid = |field, reason| TransferError::InvalidInput { field, reason };
        let expect = |status: TransferStatus| {
            if self.status == status {
                Ok(())
            } else {
                Err(TransferError::WrongStatus { status: self.status })
            }
        };
        match command {
            TransferCommand::Request { from, to, amount_minor } => {
                crate::text("from", from, 256).map_err(|r| invalid("from", r))?;
                crate::text("to", to, 256).map_err(|r| invalid("to", r))?;
                if from == to {
                    return Err(invalid("to", "must differ from from"));
                }
                if *amount_minor == 0 {
                    return Err(invalid("amount_minor", "must be at least 1"));
                }
                if self.status != TransferStatus::New {
                    return Err(TransferError::AlreadyRequested);
                }
                Ok(vec![TransferEvent::TransferRequested {
                    from: from.clone(),
                    to: to.clone(),
                    amount_minor: *amount_minor,
                }])
            }
            // Repeats of a step already recorded change nothing (at-least-once delivery).
            TransferCommand::RecordDebit if self.status == TransferStatus::Debited => Ok(vec![]),
            TransferCommand::RecordDebit => {
                expect(TransferStatus::Requested).map(|()| vec![TransferEvent::TransferDebited])
            }
            TransferCommand::RecordCredit if self.status == TransferStatus::Completed => Ok(vec![]),
            TransferCommand::RecordCredit => {
                expect(TransferStatus::Debited).map(|()| vec![TransferEvent::TransferCompleted])
            }
            TransferCommand::Fail { .. } if self.status == TransferStatus::Failed => Ok(vec![]),
            // From Debited: the credit was refused and the debit refunded.
            TransferCommand::Fail { reason } => {
                crate::text("reason", reason, 256).map_err(|r| invalid("reason", r))?;
                match self.status {
                    TransferStatus::Requested | TransferStatus::Debited => {
                        Ok(vec![TransferEvent::TransferFailed { reason: reason.clone() }])
                    }
                    status => Err(TransferError::WrongStatus { status }),
                }
            }
        }
    }

    fn evolve(&mut self, event: &TransferEvent) {
        match event {
            TransferEvent::TransferRequested { from, to, amount_minor } => {
                self.status = TransferStatus::Requested;
                self.from = from.clone();
                self.to = to.clone();
                self.amount_minor = *amount_minor;
            }
            TransferEvent::TransferDebited => self.status = TransferStatus::Debited,
            TransferEvent::TransferCompleted => self.status = TransferStatus::Completed,
            TransferEvent::TransferFailed { .. } => self.status = TransferStatus::Failed,
        }
    }
}
