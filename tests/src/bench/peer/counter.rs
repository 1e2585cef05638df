//! The workload's aggregate, one domain for both libraries: a counter whose one command records one
//! event carrying a note of about 200 bytes (the payload issue 21 measured by hand).

use std::convert::Infallible;

use serde::{Deserialize, Serialize};

/// The state: how many events were applied. Small on purpose, so snapshots weigh the same in both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Events applied.
    pub count: u64,
}

/// The one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterCommand {
    /// Records one [`CounterEvent::Incremented`] with this note.
    Increment {
        /// Carried into the event as it is.
        note: String,
    },
}

/// The one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterEvent {
    /// The counter went up by one.
    Incremented {
        /// About 200 bytes of text.
        note: String,
    },
}

/// The command every workload sends: a 200-byte note.
pub fn increment() -> CounterCommand {
    CounterCommand::Increment { note: NOTE.repeat(200 / NOTE.len()) }
}

const NOTE: &str = "counter note ";

impl strata_core::Command for CounterCommand {
    fn command_name(&self) -> &'static str {
        "increment"
    }
}

impl strata_core::Event for CounterEvent {
    fn event_type(&self) -> &'static str {
        "Incremented"
    }
}

impl strata_core::Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Infallible;

    fn decide(&self, command: &CounterCommand) -> Result<Vec<CounterEvent>, Infallible> {
        let CounterCommand::Increment { note } = command;
        Ok(vec![CounterEvent::Incremented { note: note.clone() }])
    }

    fn evolve(&mut self, _: &CounterEvent) {
        self.count += 1;
    }
}

impl cqrs_es::DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Incremented".into()
    }

    fn event_version(&self) -> String {
        "1".into()
    }
}

impl cqrs_es::Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Infallible;
    type Services = ();

    async fn handle(
        &mut self,
        command: CounterCommand,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Infallible> {
        let CounterCommand::Increment { note } = command;
        sink.write(CounterEvent::Incremented { note }, self).await;
        Ok(())
    }

    fn apply(&mut self, _: CounterEvent) {
        self.count += 1;
    }
}
