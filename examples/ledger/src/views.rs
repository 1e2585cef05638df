//! Read models of the ledger: each account's balance (listed by holder), each transfer's status
//! (listed by the account it debits), and each account's activity (the account and the transfers it
//! sent: a read model over both aggregates' streams).

use serde::{Deserialize, Serialize};
use strata_core::projection::{Lookup, Projection};
use strata_core::{Aggregate, Either, EventEnvelope, Personal, PersonalData};

use crate::{Account, AccountEvent, Transfer, TransferEvent, TransferStatus};

/// Balances of accounts, listed under their holder (`?lookup=<holder id>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Balances;

/// One account's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// The account id.
    pub account_id: String,
    /// The holder's id.
    pub holder_id: String,
    /// The holder's name (personal data, sealed at rest).
    pub holder_name: Personal<String>,
    /// Minor units.
    pub balance_minor: u64,
    /// Credits and debits so far.
    pub movements: u64,
}

impl Projection for Balances {
    type Event = AccountEvent;
    type View = Balance;
    const NAME: &'static str = "balance";
    const CATEGORY: &'static str = Account::CATEGORY;

    fn apply(
        &self,
        view: Option<Balance>,
        event: &AccountEvent,
        envelope: &EventEnvelope,
    ) -> Option<Balance> {
        match (view, event) {
            (None, AccountEvent::AccountOpened { holder_id, holder_name }) => Some(Balance {
                account_id: envelope.stream.id().to_owned(),
                holder_id: holder_id.clone(),
                holder_name: holder_name.clone(),
                balance_minor: 0,
                movements: 0,
            }),
            (Some(mut view), AccountEvent::Credited { amount_minor, .. }) => {
                view.balance_minor = view.balance_minor.saturating_add(*amount_minor);
                view.movements += 1;
                Some(view)
            }
            (Some(mut view), AccountEvent::Debited { amount_minor, .. }) => {
                view.balance_minor = view.balance_minor.saturating_sub(*amount_minor);
                view.movements += 1;
                Some(view)
            }
            (view, _) => view,
        }
    }

    fn personal_data(&self, view: &Balance) -> Option<PersonalData> {
        Some(PersonalData::new(view.holder_id.clone(), ["/holder_name"]))
    }

    fn lookup(&self, view: &Balance) -> Option<Lookup> {
        Some(Lookup { partition: view.holder_id.clone(), sort: view.account_id.clone() })
    }
}

/// Transfers' statuses, listed under the account they debit (`?lookup=<account id>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferStatuses;

/// One transfer as a client follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    /// The transfer id.
    pub transfer_id: String,
    /// Debited account id.
    pub from: String,
    /// Credited account id.
    pub to: String,
    /// Minor units.
    pub amount_minor: u64,
    /// Where it is.
    pub status: TransferStatus,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Projection for TransferStatuses {
    type Event = TransferEvent;
    type View = TransferView;
    const NAME: &'static str = "transfer-status";
    const CATEGORY: &'static str = Transfer::CATEGORY;

    fn apply(
        &self,
        view: Option<TransferView>,
        event: &TransferEvent,
        envelope: &EventEnvelope,
    ) -> Option<TransferView> {
        match (view, event) {
            (None, TransferEvent::TransferRequested { from, to, amount_minor }) => Some(TransferView {
                transfer_id: envelope.stream.id().to_owned(),
                from: from.clone(),
                to: to.clone(),
                amount_minor: *amount_minor,
                status: TransferStatus::Requested,
                failure: None,
            }),
            (Some(mut view), event) => {
                match event {
                    TransferEvent::TransferRequested { .. } => {}
                    TransferEvent::TransferDebited => view.status = TransferStatus::Debited,
                    TransferEvent::TransferCreditRefused { reason } => {
                        view.status = TransferStatus::Refunding;
                        view.failure = Some(reason.clone());
                    }
                    TransferEvent::TransferCompleted => view.status = TransferStatus::Completed,
                    TransferEvent::TransferFailed { reason } => {
                        view.status = TransferStatus::Failed;
                        view.failure = Some(reason.clone());
                    }
                }
                Some(view)
            }
            (None, _) => None,
        }
    }

    fn lookup(&self, view: &TransferView) -> Option<Lookup> {
        Some(Lookup { partition: view.from.clone(), sort: view.transfer_id.clone() })
    }
}

/// Each account and the transfers it sent, listed together under the account
/// (`?lookup=<account id>`): one read model over the streams of both aggregates (a view per stream,
/// as every read model keeps, listed across categories).
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity;

/// One line of an account's activity: the account itself, or a transfer it sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActivityView {
    /// The account (a stream of `account`).
    Account {
        /// The account id.
        account_id: String,
        /// Minor units.
        balance_minor: u64,
    },
    /// A transfer out of the account (a stream of `transfer`).
    TransferSent {
        /// The transfer id.
        transfer_id: String,
        /// The debited account: the listing's partition.
        from: String,
        /// The credited account.
        to: String,
        /// Minor units.
        amount_minor: u64,
        /// Where it is.
        status: TransferStatus,
    },
}

impl Projection for Activity {
    type Event = Either<AccountEvent, TransferEvent>;
    type View = ActivityView;
    const NAME: &'static str = "activity";
    const CATEGORY: &'static str = Account::CATEGORY;
    const OTHER_CATEGORIES: &'static [&'static str] = &[Transfer::CATEGORY];

    fn apply(
        &self,
        view: Option<ActivityView>,
        event: &Either<AccountEvent, TransferEvent>,
        envelope: &EventEnvelope,
    ) -> Option<ActivityView> {
        use ActivityView::{Account as Line, TransferSent};
        let id = envelope.stream.id().to_owned();
        match (view, event) {
            (None, Either::Left(AccountEvent::AccountOpened { .. })) => {
                Some(Line { account_id: id, balance_minor: 0 })
            }
            (
                Some(Line { account_id, balance_minor }),
                Either::Left(AccountEvent::Credited { amount_minor, .. }),
            ) => Some(Line { account_id, balance_minor: balance_minor.saturating_add(*amount_minor) }),
            (
                Some(Line { account_id, balance_minor }),
                Either::Left(AccountEvent::Debited { amount_minor, .. }),
            ) => Some(Line { account_id, balance_minor: balance_minor.saturating_sub(*amount_minor) }),
            (None, Either::Right(TransferEvent::TransferRequested { from, to, amount_minor })) => {
                Some(TransferSent {
                    transfer_id: id,
                    from: from.clone(),
                    to: to.clone(),
                    amount_minor: *amount_minor,
                    status: TransferStatus::Requested,
                })
            }
            (Some(TransferSent { transfer_id, from, to, amount_minor, status }), Either::Right(event)) => {
                let status = match event {
                    TransferEvent::TransferRequested { .. } => status,
                    TransferEvent::TransferDebited => TransferStatus::Debited,
                    TransferEvent::TransferCreditRefused { .. } => TransferStatus::Refunding,
                    TransferEvent::TransferCompleted => TransferStatus::Completed,
                    TransferEvent::TransferFailed { .. } => TransferStatus::Failed,
                };
                Some(TransferSent { transfer_id, from, to, amount_minor, status })
            }
            (view, _) => view,
        }
    }

    fn lookup(&self, view: &ActivityView) -> Option<Lookup> {
        Some(match view {
            // The account first, then its transfers by id.
            ActivityView::Account { account_id, .. } => {
                Lookup { partition: account_id.clone(), sort: "0".into() }
            }
            ActivityView::TransferSent { from, transfer_id, .. } => {
                Lookup { partition: from.clone(), sort: format!("1#{transfer_id}") }
            }
        })
    }
}
