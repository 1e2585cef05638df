//! The transfer process: a consumer of transfer events that moves the money. On `TransferRequested`
//! it debits the source account, records the debit, credits the destination and records the credit;
//! a refused debit fails the transfer, a refused credit refunds the debit and fails it.
//!
//! Every step is safe to run again (the effects runner runs it once per event, but a function that
//! dies mid-way runs it again): the account commands carry idempotency keys derived from the
//! transfer, and the transfer's own steps change nothing when repeated.

use strata_core::{
    BoxError, CommandContext, CommandError, EventStore, IdempotencyStore, Repository, SnapshotStore, StreamId,
};
use strata_eventbridge::effects::{Consumer, Delivery};

use crate::{Account, AccountCommand, AccountError, Transfer, TransferCommand, TransferEvent};

/// Moves the money of requested transfers.
pub struct TransferProcess<S> {
    accounts: Repository<Account, S>,
    transfers: Repository<Transfer, S>,
}

impl<S> TransferProcess<S> {
    /// The process over the two aggregates' repositories (with the service's cipher).
    pub fn new(accounts: Repository<Account, S>, transfers: Repository<Transfer, S>) -> Self {
        Self { accounts, transfers }
    }
}

impl<S> Consumer for TransferProcess<S>
where
    S: EventStore + SnapshotStore + IdempotencyStore + 'static,
{
    type Event = TransferEvent;
    const NAME: &'static str = "transfer-process";
    const CATEGORY: &'static str = "transfer";

    async fn handle(&self, event: TransferEvent, delivery: &Delivery) -> Result<(), BoxError> {
        let TransferEvent::TransferRequested { from, to, amount_minor } = event else { return Ok(()) };
        let transfer = &delivery.stream;
        let tenant = transfer.tenant();
        let account = |id: &str| StreamId::new(tenant, "account", id);
        let reference = transfer.id().to_owned();
        let step = |what: &str| CommandContext {
            idempotency_key: Some(format!("transfer/{}/{what}", transfer.id())),
            causation_id: Some(delivery.event_id.to_string()),
            correlation_id: Some(delivery.metadata.correlation_id.clone()),
            ..CommandContext::default()
        };

        let debit = AccountCommand::Debit { amount_minor, reference: reference.clone() };
        match self.accounts.execute(&account(&from)?, &debit, step("debit")).await {
            Ok(_) => {}
            Err(CommandError::Rejected(rejection)) => return self.fail(transfer, &rejection).await,
            Err(CommandError::Failed(error)) => return Err(error.into()),
        }
        self.record(transfer, &TransferCommand::RecordDebit).await?;

        let credit = AccountCommand::Credit { amount_minor, reference: reference.clone() };
        match self.accounts.execute(&account(&to)?, &credit, step("credit")).await {
            Ok(_) => {}
            Err(CommandError::Rejected(rejection)) => {
                let refund = AccountCommand::Credit { amount_minor, reference };
                self.accounts.execute(&account(&from)?, &refund, step("refund")).await?;
                return self.fail(transfer, &rejection).await;
            }
            Err(CommandError::Failed(error)) => return Err(error.into()),
        }
        self.record(transfer, &TransferCommand::RecordCredit).await
    }
}

impl<S> TransferProcess<S>
where
    S: EventStore + SnapshotStore + IdempotencyStore,
{
    async fn record(&self, transfer: &StreamId, command: &TransferCommand) -> Result<(), BoxError> {
        self.transfers.execute(transfer, command, CommandContext::default()).await?;
        Ok(())
    }

    async fn fail(&self, transfer: &StreamId, why: &AccountError) -> Result<(), BoxError> {
        let reason = strata_core::Rejection::code(why).to_owned();
        self.record(transfer, &TransferCommand::Fail { reason }).await
    }
}
