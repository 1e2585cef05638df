//! The transfer process: a consumer of transfer events that moves the money. It drives each
//! transfer by its recorded status, one step at a time: Requested → debit the source (refused: the
//! transfer fails); Debited → credit the destination (refused: the refusal is recorded, then the
//! debit refunded and the transfer failed); Completed or Failed → nothing left to do.
//!
//! Running it again for the same transfer (a crash mid-way, a redelivery, a replay after the
//! effect records expired, two runs at once) repeats nothing: each step is chosen from the
//! transfer's status; the account commands carry reserved idempotency keys derived from the
//! transfer (kept 90 days), and a refused step is written under its key before the refusal is
//! recorded, so the first answer sticks (a later run of the step reads the refusal, never commits);
//! the transfer's own steps change nothing when repeated. The steps are internal commands
//! (`TransferCommand::INTERNAL`): no HTTP caller can record them.

use sha2::{Digest, Sha256};
use strata_core::{
    BoxError, CommandContext, CommandError, Error, EventStore, IdempotencyRecord, IdempotencyStore,
    RESERVED_KEY_PREFIX, Rejection, Repository, SnapshotStore, StreamId,
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
                match self
                    .move_money(transfer, delivery, "debit", &account(&state.from)?, &movement(false))
                    .await?
                {
                    None => self.record(transfer, TransferCommand::RecordDebit).await?,
                    Some(reason) => self.record(transfer, TransferCommand::Fail { reason }).await?,
                }
                Ok(true)
            }
            TransferStatus::Debited => {
                match self
                    .move_money(transfer, delivery, "credit", &account(&state.to)?, &movement(true))
                    .await?
                {
                    None => self.record(transfer, TransferCommand::RecordCredit).await?,
                    Some(reason) => self.record(transfer, TransferCommand::RefuseCredit { reason }).await?,
                }
                Ok(true)
            }
            TransferStatus::Refunding => {
                if let Some(reason) = self
                    .move_money(transfer, delivery, "refund", &account(&state.from)?, &movement(true))
                    .await?
                {
                    // A credit back to the account just debited is refused only by a bug or an
                    // overflow: leave the transfer in Refunding, to be seen and settled by hand.
                    return Err(format!("the refund of {transfer} was refused: {reason}").into());
                }
                let reason = state.failure.clone().unwrap_or_else(|| "credit_refused".to_owned());
                self.record(transfer, TransferCommand::Fail { reason }).await?;
                Ok(true)
            }
            TransferStatus::Completed | TransferStatus::Failed => Ok(false),
        }
    }

    /// Runs one account step under its reserved key: `None` when it is done (now or before),
    /// `Some(code)` when it was refused (now or before). A refusal is written under the key first, so
    /// no later run of the step commits it.
    async fn move_money(
        &self,
        transfer: &StreamId,
        delivery: &Delivery,
        step: &str,
        account: &StreamId,
        command: &AccountCommand,
    ) -> Result<Option<String>, BoxError> {
        let key = step_key(transfer, step);
        let context = CommandContext {
            idempotency_key: Some(key.clone()),
            causation_id: Some(delivery.event_id.to_string()),
            correlation_id: Some(delivery.metadata.correlation_id.clone()),
            ..CommandContext::default()
        };
        match self.accounts.execute(account, command, context).await {
            Ok(_) => Ok(None),
            Err(CommandError::Rejected(refused)) => {
                let code = refused.code().to_owned();
                let refusal = IdempotencyRecord {
                    tenant: transfer.tenant().to_owned(),
                    key: key.clone(),
                    request_hash: format!("refused:{code}"),
                    outcome: serde_json::json!({ "refused": code }),
                    expires_at: chrono::Utc::now() + chrono::Duration::days(STEP_KEYS_DAYS),
                };
                match self.accounts.store().put_record(refusal).await {
                    Ok(()) => Ok(Some(code)),
                    // Another run committed the step meanwhile: its answer stands.
                    Err(Error::IdempotencyKeyExists { .. }) => self.earlier_answer(transfer, &key).await,
                    Err(other) => Err(other.into()),
                }
            }
            // The key holds an earlier answer of another shape: a refusal written by an earlier run.
            Err(CommandError::Failed(Error::IdempotencyKeyReused { .. })) => {
                self.earlier_answer(transfer, &key).await
            }
            Err(CommandError::Failed(error)) => Err(error.into()),
        }
    }

    /// What an earlier run of a step answered, from its key's record.
    async fn earlier_answer(&self, transfer: &StreamId, key: &str) -> Result<Option<String>, BoxError> {
        let record = self.accounts.store().get_record(transfer.tenant(), key).await?;
        let Some(record) = record else { return Err(format!("{key}: its record is gone; retry").into()) };
        Ok(record.outcome.get("refused").and_then(|code| code.as_str()).map(str::to_owned))
    }

    async fn record(&self, transfer: &StreamId, command: TransferCommand) -> Result<(), BoxError> {
        self.transfers.execute(transfer, &command, CommandContext::default()).await?;
        Ok(())
    }
}

/// `strata:transfer/{sha256 of the transfer's id, 32 hex digits}/{step}` (`debit`, `credit`,
/// `refund`): the idempotency key of a transfer's account step; reserved (no request can take it)
/// and short whatever the id's length.
pub fn step_key(transfer: &StreamId, step: &str) -> String {
    let digest = Sha256::digest(transfer.id().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{RESERVED_KEY_PREFIX}transfer/{hex}/{step}")
}
