//! A ledger: accounts, and transfers of money between them. A second domain built only from the
//! public Strata kit (nothing of the orders example), to prove that a team's own aggregates and read
//! models run on the same functions.
//!
//! - [`Account`] (category `account`): opened for a holder (personal data: the holder's name),
//!   credited and debited, never below zero.
//! - [`Transfer`] (category `transfer`): asks to move an amount from one account to another, then
//!   records the debit and the credit (or the failure) as they happen.
//! - [`Balances`] and [`TransferStatuses`]: read models of each; [`Activity`]: one over both (an
//!   account and the transfers it sent, listed together).
//! - [`TransferProcess`]: a consumer of transfer events that moves the money between accounts.
//! - [`service`]: the aggregates and read models, listed once for the functions.

mod account;
mod process;
mod transfer;
mod views;

pub use account::{Account, AccountCommand, AccountError, AccountEvent};
pub use process::{TransferProcess, step_key};
pub use transfer::{Transfer, TransferCommand, TransferError, TransferEvent, TransferStatus};
pub use views::{Activity, ActivityView, Balance, Balances, TransferStatuses, TransferView};

/// The ledger service: both aggregates and their three read models.
pub fn service<S: strata_lambda::service::Store>(store: S) -> strata_lambda::Service<S> {
    strata_lambda::Service::new(store)
        .aggregate::<Account>()
        .aggregate::<Transfer>()
        .projection(Balances)
        .projection(TransferStatuses)
        .projection(Activity)
}

/// Everything one ledger binary serves (`strata_lambda::runtime::serve`): the service and the
/// transfer process, over the deployed table and cipher.
pub fn functions(deployed: &strata_lambda::runtime::Deployment) -> strata_lambda::runtime::Functions {
    let (store, cipher) = (&deployed.store, &deployed.cipher);
    let process = TransferProcess::new(
        strata_core::Repository::new(store.clone()).with_cipher(cipher.clone()),
        strata_core::Repository::new(store.clone()).with_cipher(cipher.clone()),
    );
    let effects = strata_eventbridge::Effects::new(process, store.clone()).with_cipher(cipher.clone());
    strata_lambda::runtime::Functions::new(service(store.clone()).with_cipher(cipher.clone()))
        .consumer(effects)
}

/// Refuses an empty or over-long text field.
fn text(value: &str, max: usize) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        Err("must not be empty")
    } else if value.len() > max {
        Err("is too long")
    } else {
        Ok(())
    }
}
