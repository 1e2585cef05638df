//! A tiny aggregate for exercising the repository: a tally whose commands record 0..n events.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use strata_core::{Aggregate, Command, Event};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    /// Every `n` seen, in order: replays that skip or repeat an event show here.
    pub seen: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TallyCommand {
    /// Records `times` events (0 records nothing).
    Bump { times: u32 },
    /// Like `Bump { times: 1 }`, but never retried on conflict.
    BumpStrict,
    /// Always rejected.
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TallyEvent {
    Bumped { n: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused")]
pub struct Refused;

impl Command for TallyCommand {
    fn command_name(&self) -> &'static str {
        match self {
            Self::Bump { .. } => "bump",
            Self::BumpStrict => "bump_strict",
            Self::Refuse => "refuse",
        }
    }
    fn retry_on_conflict(&self) -> bool {
        !matches!(self, Self::BumpStrict)
    }
}

impl Event for TallyEvent {
    fn event_type(&self) -> &'static str {
        "Bumped"
    }
}

impl Aggregate for Tally {
    const CATEGORY: &'static str = "tally";
    type Command = TallyCommand;
    type Event = TallyEvent;
    type Error = Refused;

    fn decide(&self, command: &TallyCommand) -> Result<Vec<TallyEvent>, Refused> {
        let times = match command {
            TallyCommand::Bump { times } => u64::from(*times),
            TallyCommand::BumpStrict => 1,
            TallyCommand::Refuse => return Err(Refused),
        };
        Ok((1..=times).map(|i| TallyEvent::Bumped { n: self.count + i }).collect())
    }

    fn evolve(&mut self, event: &TallyEvent) {
        let TallyEvent::Bumped { n } = event;
        self.count += 1;
        self.seen.push(*n);
    }
}
