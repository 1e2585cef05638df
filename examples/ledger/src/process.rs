//! The transfer process: a consumer of transfer events that moves the money. It drives each
//! transfer by its recorded status, one step at a time: Requested → debit the source (refused: the
//! transfer fails); Debited → credit the destination (refused: the refusal is recorded, then the
//! debit refunded and the transfer failed); Completed or Failed → nothing left to do.
//!
//! Running it again for the same transfer (a crash mid-way, a redelivery, a replay after the
//! effect records expired) repeats nothing: each step is chosen from the transfer's status, the
//! account commands carry reserved idempotency keys derived from the transfer (kept 90 days), and
//! the transfer's own steps change nothing when repeated. The steps are internal commands
//! (`TransferCommand::INTERNAL`): no HTTP caller can record them.

use strata_core::{
    BoxError, CommandContext, CommandError, EventStore, IdempotencyStore, RESERVED_KEY_PREFIX, Rejection,
    Repository, SnapshotStore, StreamId,
};
use strata_eventbridge::effects::{Consumer, Delivery};

use crate::{Account, AccountCommand, Transfer, TransferCommand, TransferEvent, TransferStatus};

/// How long the account commands' idempotency records are kept: as long as the effect records.
const STEP_KEYS_DAYS: i64 = 90;

/// Moves the money of requested transfers.
pub struct TransferProcess<S> {
    accounts: Repository<Account, S>,
    transfers: Repository<Transfer, S>,
}

impl<S> TransferProcess<S> {
    /// The process over the two aggregates' repositories (with the service's cipher); the account
    /// repository keeps its idempotency records for 90 days.
    pub fn new(accounts: Repository<Account, S>, transfers: Repository<Transfer, S>) -> Self {
        Self { accounts: accounts.with_idempotency_ttl(chrono::Duration::days(STEP_KEYS_DAYS)), transfers }
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
        if !matches!(event, TransferEvent::TransferRequested { .. }) {
            return Ok(());
        }
        let transfer = &delivery.stream;
        // Four steps at most: debit, credit (or refusal), refund, failure.
        for _ in 0..5 {
            let state = self.transfers.load(transfer).await?.state;
            if !self.step(transfer, &state, delivery).await? {
                return Ok(());
            }
        }
        Err(format!("{transfer} did not settle in five steps").into())
    }
}

impl<S> TransferProcess<S>
where
    S: EventStore + SnapshotStore + IdempotencyStore,
{
    /// Takes the step the transfer's status calls for; `false` when there is none left.
    async fn step(
        &self,
        transfer: &StreamId,
        state: &Transfer,
        delivery: &Delivery,
    ) -> Result<bool, BoxError> {
        let account = |id: &str| StreamId::new(transfer.tenant(), "account", id);
        let context = |what: &str| CommandContext {
            idempotency_key: Some(format!("{RESERVED_KEY_PREFIX}transfer/{}/{what}", transfer.id())),
            causation_id: Some(delivery.event_id.to_string()),
            correlation_id: Some(delivery.metadata.correlation_id.clone()),
            ..CommandContext::default()
        };
        let movement = |credit: bool| {
            let (amount_minor, reference) = (state.amount_minor, transfer.id().to_owned());
            if credit {
                AccountCommand::Credit { amount_minor, reference }
            } else {
                AccountCommand::Debit { amount_minor, reference }
            }
        };
        match state.status {
            TransferStatus::New => Err(format!("{transfer} was never requested").into()),
            TransferStatus::Requested => {
                match self.accounts.execute(&account(&state.from)?, &movement(false), context("debit")).await
                {
                    Ok(_) => self.record(transfer, TransferCommand::RecordDebit).await?,
                    Err(CommandError::Rejected(refused)) => {
                        self.record(transfer, TransferCommand::Fail { reason: refused.code().to_owned() })
                            .await?;
                    }
                    Err(CommandError::Failed(error)) => return Err(error.into()),
                }
                Ok(true)
            }
            TransferStatus::Debited => {
                match self.accounts.execute(&account(&state.to)?, &movement(true), context("credit")).await {
                    Ok(_) => self.record(transfer, TransferCommand::RecordCredit).await?,
                    Err(CommandError::Rejected(refused)) => {
                        let reason = refused.code().to_owned();
                        self.record(transfer, TransferCommand::RefuseCredit { reason }).await?;
                    }
                    Err(CommandError::Failed(error)) => return Err(error.into()),
                }
                Ok(true)
            }
            TransferStatus::Refunding => {
                self.accounts.execute(&account(&state.from)?, &movement(true), context("refund")).await?;
                let reason = state.failure.clone().unwrap_or_else(|| "credit_refused".to_owned());
                self.record(transfer, TransferCommand::Fail { reason }).await?;
                Ok(true)
            }
            TransferStatus::Completed | TransferStatus::Failed => Ok(false),
        }
    }

    async fn record(&self, transfer: &StreamId, command: TransferCommand) -> Result<(), BoxError> {
        self.transfers.execute(transfer, &command, CommandContext::default()).await?;
        Ok(())
    }
}
