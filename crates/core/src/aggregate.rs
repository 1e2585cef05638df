//! What a domain implements: aggregates and their commands.

use std::fmt::Debug;

use serde::{Serialize, de::DeserializeOwned};

use crate::Event;

/// A consistency boundary: decides what happens for a command, and evolves by applying events.
///
/// `decide` is pure: it reads the state and returns the events to record, or a domain error. It
/// never performs I/O, so it can be retried after a concurrency conflict and tested in memory.
/// `evolve` cannot fail: events are facts that already happened.
///
/// The state is `Serialize` + `DeserializeOwned` so it can be snapshotted; raise
/// [`Aggregate::STATE_SCHEMA_VERSION`] when its shape changes and older snapshots are ignored.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stream category, e.g. `order`. No `-`, no `#`.
    const CATEGORY: &'static str;
    /// Version of the serialized state; snapshots of any other version are ignored.
    const STATE_SCHEMA_VERSION: u32 = 1;

    /// The commands this aggregate accepts.
    type Command: Command;
    /// The events it records.
    type Event: Event;
    /// Why it rejects a command (a domain rule, not an infrastructure failure).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides which events a command produces, given the current state.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one event to the state.
    fn evolve(&mut self, event: &Self::Event);

    /// Whose personal data the state holds, and where in its serialized form: sealed in snapshots
    /// (and read models), so forgetting the subject reaches them too.
    fn personal_data(&self) -> Option<crate::PersonalData> {
        None
    }
}

/// A request to change an aggregate.
///
/// Commands are `Serialize` so an idempotency key can be bound to the exact request: the same key
/// with a different body is refused. Serialize them deterministically (structs and ordered maps,
/// not `HashMap`).
pub trait Command: Serialize + DeserializeOwned + Debug + Send + Sync {
    /// Names of the commands only the service's own code sends (a process manager's steps): the
    /// HTTP API answers them as unknown (404) and its OpenAPI document leaves them out.
    const INTERNAL: &'static [&'static str] = &[];

    /// The command's name, e.g. `add_item`, as routed by the HTTP API.
    fn command_name(&self) -> &'static str;

    /// Whether the repository may reload and decide again after a concurrency conflict. Commands
    /// whose outcome must be judged against the exact state the caller saw return `false`.
    fn retry_on_conflict(&self) -> bool {
        true
    }
}

/// How a domain rejection is reported to callers: a stable machine-readable code, and whether the
/// command was malformed (an HTTP API answers 400) rather than refused by a rule of the current state
/// (422).
pub trait Rejection: std::error::Error {
    /// A stable code in snake case, e.g. `not_paid`.
    fn code(&self) -> &'static str;

    /// Whether the command itself is malformed (a bad field), whatever the state.
    fn is_invalid_input(&self) -> bool {
        false
    }
}
