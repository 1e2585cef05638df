//! Given/when/then tests for aggregates, with no store at all.
//!
//! ```
//! # use strata_core::{Aggregate, fixture};
//! # fn check<A: Aggregate>(history: Vec<A::Event>, cmd: A::Command, expected: Vec<A::Event>)
//! # where A::Event: PartialEq {
//! fixture::given::<A>(history).when(cmd).then_expect(expected);
//! # }
//! ```

use std::fmt::Debug;

use crate::{Aggregate, decode_event, encode_event};

pub mod profile;
pub mod tally;

/// State built from past events, ready for a command.
#[must_use = "call .when(command)"]
pub struct Given<A: Aggregate> {
    state: A,
}

/// Starts a test from past events.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for event in events {
        state.evolve(&event);
    }
    Given { state }
}

/// Starts a test from a new stream.
pub fn given_no_events<A: Aggregate>() -> Given<A> {
    given::<A>([])
}

impl<A: Aggregate> Given<A> {
    /// Decides the command against the state.
    pub fn when(self, command: A::Command) -> When<A> {
        let result = self.state.decide(&command);
        When { state: self.state, result }
    }
}

/// The result of a command, to check.
#[must_use = "call .then_expect(..) or .then_expect_error(..)"]
pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A> {
    /// Asserts the command produced exactly these events, and that each survives encoding and
    /// decoding unchanged (so a test also catches an event that would not store).
    ///
    /// # Panics
    /// When the events differ, or the command was rejected.
    pub fn then_expect(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let events = match self.result {
            Ok(events) => events,
            Err(error) => panic!("expected events {expected:?}, but the command was rejected: {error}"),
        };
        assert_eq!(events, expected, "the command produced other events than expected");
        let mut state = self.state;
        for event in &events {
            let encoded = match encode_event(event) {
                Ok(encoded) => encoded,
                Err(error) => panic!("event {event:?} does not encode: {error}"),
            };
            match decode_event::<A::Event>(&encoded.event_type, encoded.schema_version, encoded.payload) {
                Ok(decoded) => assert_eq!(&decoded, event, "event does not round-trip through JSON"),
                Err(error) => panic!("event {event:?} does not decode: {error}"),
            }
            state.evolve(event);
        }
        state
    }

    /// Asserts the command was rejected with exactly this error.
    ///
    /// # Panics
    /// When it produced events, or another error.
    pub fn then_expect_error(self, expected: A::Error)
    where
        A::Error: PartialEq + Debug,
    {
        match self.result {
            Ok(events) => panic!("expected rejection {expected:?}, but the command produced {events:?}"),
            Err(error) => assert_eq!(error, expected, "the command was rejected for another reason"),
        }
    }

    /// The raw result, for checks the other methods do not cover.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
