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
    /// The source account was debited (the transfer process).
    RecordDebit,
    /// The destination account refused the credit (the transfer process): the debit is refunded
    /// next.
    RefuseCredit {
        /// The account's rule code.
        reason: String,
    },
    /// The destination account was credited: the transfer is complete (the transfer process).
    RecordCredit,
    /// Nothing moved (the transfer process): the debit was refused, or the credit was refused and
    /// the debit refunded.
    Fail {
        /// Why.
        reason: String,
    },
}

impl Command for TransferCommand {
    /// The process's steps: no caller may record a debit, a credit or a failure.
    const INTERNAL: &'static [&'static str] = &["record_debit", "refuse_credit", "record_credit", "fail"];

    fn command_name(&self) -> &'static str {
        match self {
            Self::Request { .. } => "request",
            Self::RecordDebit => "record_debit",
            Self::RefuseCredit { .. } => "refuse_credit",
            Self::RecordCredit => "record_credit",
            Self::Fail { .. } => "fail",
        }
    }
}

/// What happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The destination account refused the credit; the debit is being refunded.
    TransferCreditRefused {
        /// The account's rule code.
        reason: String,
    },
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
            Self::TransferCreditRefused { .. } => "TransferCreditRefused",
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
    /// The credit was refused; the refund of the debit is next.
    Refunding,
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
    /// Why it failed or is being refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Aggregate for Transfer {
    const CATEGORY: &'static str = "transfer";
    type Command = TransferCommand;
    type Event = TransferEvent;
    type Error = TransferError;

    fn decide(&self, command: &TransferCommand) -> Result<Vec<TransferEvent>, TransferError> {
        let invalid = |field, reason| TransferError::InvalidInput { field, reason };
        match command {
            TransferCommand::Request { from, to, amount_minor } => {
                crate::text(from, 256).map_err(|r| invalid("from", r))?;
                crate::text(to, 256).map_err(|r| invalid("to", r))?;
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
            // Each step is recorded once; repeating one already passed changes nothing (the process
            // may run again after a crash), a step out of order is refused.
            TransferCommand::RecordDebit => match self.status {
                TransferStatus::Requested => Ok(vec![TransferEvent::TransferDebited]),
                TransferStatus::Debited | TransferStatus::Refunding | TransferStatus::Completed => Ok(vec![]),
                status => Err(TransferError::WrongStatus { status }),
            },
            TransferCommand::RefuseCredit { reason } => {
                crate::text(reason, 256).map_err(|r| invalid("reason", r))?;
                match self.status {
                    TransferStatus::Debited => {
                        Ok(vec![TransferEvent::TransferCreditRefused { reason: reason.clone() }])
                    }
                    TransferStatus::Refunding => Ok(vec![]),
                    status => Err(TransferError::WrongStatus { status }),
                }
            }
            TransferCommand::RecordCredit => match self.status {
                TransferStatus::Debited => Ok(vec![TransferEvent::TransferCompleted]),
                TransferStatus::Completed => Ok(vec![]),
                status => Err(TransferError::WrongStatus { status }),
            },
            TransferCommand::Fail { reason } => {
                crate::text(reason, 256).map_err(|r| invalid("reason", r))?;
                match self.status {
                    TransferStatus::Requested | TransferStatus::Refunding => {
                        Ok(vec![TransferEvent::TransferFailed { reason: reason.clone() }])
                    }
                    TransferStatus::Failed => Ok(vec![]),
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
            TransferEvent::TransferCreditRefused { reason } => {
                self.status = TransferStatus::Refunding;
                self.failure = Some(reason.clone());
            }
            TransferEvent::TransferCompleted => self.status = TransferStatus::Completed,
            TransferEvent::TransferFailed { reason } => {
                self.status = TransferStatus::Failed;
                self.failure = Some(reason.clone());
            }
        }
    }
}
