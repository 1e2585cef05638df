//! Upcasting: turning stored payloads of old schema versions into the current shape on read.
//!
//! Stored events are never rewritten. Each upcaster maps one `(event type, schema version)` to the
//! next, and the chain is checked once, when it is built: no two upcasters from the same version,
//! no cycles, and no gaps (every chain of one event type must end at the same version).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
    sync::Arc,
};

use serde_json::Value;

use crate::{BoxError, Error};

type UpcastFn = Arc<dyn Fn(Value) -> Result<Value, BoxError> + Send + Sync>;

/// One schema version of one event type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaKey {
    /// Stable event type name.
    pub event_type: String,
    /// Schema version.
    pub version: u32,
}

impl fmt::Display for SchemaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.event_type, self.version)
    }
}

/// Why an upcaster chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastChainError {
    /// Two upcasters start from the same type and version.
    #[error("two upcasters start from {0}")]
    Duplicate(SchemaKey),
    /// An upcaster keeps the type and does not raise the version.
    #[error("upcaster from {from} to {to} must raise the schema version")]
    NotForward {
        /// Source.
        from: SchemaKey,
        /// Target.
        to: SchemaKey,
    },
    /// Following upcasters from a version comes back to it.
    #[error("upcasters form a cycle through {0}")]
    Cycle(SchemaKey),
    /// Chains of one event type end at different versions: the lower end is a missing step.
    #[error("no upcaster from {gap}, so {event_type} events stop there instead of reaching {end}")]
    Gap {
        /// The event type whose chains diverge.
        event_type: String,
        /// Where one chain stops short.
        gap: SchemaKey,
        /// Where the longest chain ends.
        end: SchemaKey,
    },
}

struct Step {
    to: SchemaKey,
    upcast: UpcastFn,
}

/// Collects upcasters; [`UpcasterChainBuilder::build`] checks them.
#[derive(Default)]
pub struct UpcasterChainBuilder {
    steps: Vec<(SchemaKey, Step)>,
}

impl UpcasterChainBuilder {
    /// Adds an upcaster from `event_type` at `from_version` to `to_type` at `to_version`.
    pub fn upcast<F>(
        mut self,
        event_type: &str,
        from_version: u32,
        to_type: &str,
        to_version: u32,
        upcast: F,
    ) -> Self
    where
        F: Fn(Value) -> Result<Value, BoxError> + Send + Sync + 'static,
    {
        let from = SchemaKey { event_type: event_type.to_owned(), version: from_version };
        let to = SchemaKey { event_type: to_type.to_owned(), version: to_version };
        self.steps.push((from, Step { to, upcast: Arc::new(upcast) }));
        self
    }

    /// Checks the chain: no duplicates, only forward steps within a type, no cycles, no gaps.
    pub fn build(self) -> Result<UpcasterChain, UpcastChainError> {
        let mut steps: HashMap<SchemaKey, Step> = HashMap::with_capacity(self.steps.len());
        for (from, step) in self.steps {
            if from.event_type == step.to.event_type && step.to.version <= from.version {
                return Err(UpcastChainError::NotForward { from, to: step.to });
            }
            if steps.contains_key(&from) {
                return Err(UpcastChainError::Duplicate(from));
            }
            steps.insert(from, step);
        }
        // Follow every chain to its end; record the end reached from each event type's sources.
        let mut ends: HashMap<&str, BTreeSet<SchemaKey>> = HashMap::new();
        let mut sources: Vec<&SchemaKey> = steps.keys().collect();
        sources.sort();
        for start in sources {
            let mut seen = HashSet::from([start]);
            let mut at = &steps[start].to;
            while let Some(step) = steps.get(at) {
                if !seen.insert(at) {
                    return Err(UpcastChainError::Cycle(at.clone()));
                }
                at = &step.to;
            }
            // Group by where chains end, so a rename into a type with a missing step is a gap too.
            ends.entry(at.event_type.as_str()).or_default().insert(at.clone());
        }
        for (event_type, reached) in ends {
            if let (Some(gap), Some(end)) = (reached.first(), reached.last())
                && gap != end
            {
                return Err(UpcastChainError::Gap {
                    event_type: event_type.to_owned(),
                    gap: gap.clone(),
                    end: end.clone(),
                });
            }
        }
        Ok(UpcasterChain { steps })
    }
}

/// A checked set of upcasters, applied to every event read.
#[derive(Default, Clone)]
pub struct UpcasterChain {
    steps: HashMap<SchemaKey, Step>,
}

impl Clone for Step {
    fn clone(&self) -> Self {
        Self { to: self.to.clone(), upcast: Arc::clone(&self.upcast) }
    }
}

impl fmt::Debug for UpcasterChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<String> = self.steps.iter().map(|(k, s)| format!("{k} -> {}", s.to)).collect();
        steps.sort();
        f.debug_struct("UpcasterChain").field("steps", &steps).finish()
    }
}

impl UpcasterChain {
    /// Starts a chain.
    pub fn builder() -> UpcasterChainBuilder {
        UpcasterChainBuilder::default()
    }

    /// A chain with no upcasters.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Brings a stored payload to the newest schema; returns the final type, version and payload.
    pub fn upcast(
        &self,
        event_type: &str,
        version: u32,
        payload: Value,
    ) -> Result<(String, u32, Value), Error> {
        let mut key = SchemaKey { event_type: event_type.to_owned(), version };
        let mut payload = payload;
        // The chain was checked for cycles when built, so this loop ends.
        while let Some(step) = self.steps.get(&key) {
            payload = (step.upcast)(payload).map_err(|source| Error::Upcast {
                event_type: key.event_type.clone(),
                version: key.version,
                source,
            })?;
            key = step.to.clone();
        }
        Ok((key.event_type, key.version, payload))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(v: Value) -> Result<Value, BoxError> {
        Ok(v)
    }

    #[test]
    fn applies_steps_in_order() {
        let chain = UpcasterChain::builder()
            .upcast("A", 1, "A", 2, |mut v| {
                v["b"] = json!(1);
                Ok(v)
            })
            .upcast("A", 2, "A", 3, |mut v| {
                v["c"] = json!(2);
                Ok(v)
            })
            .build()
            .unwrap();
        let (t, v, p) = chain.upcast("A", 1, json!({})).unwrap();
        assert_eq!((t.as_str(), v, p), ("A", 3, json!({"b": 1, "c": 2})));
        // Current versions pass through untouched.
        assert_eq!(chain.upcast("A", 3, json!({})).unwrap().1, 3);
    }

    #[test]
    fn refuses_bad_chains() {
        let dup = UpcasterChain::builder().upcast("A", 1, "A", 2, ok).upcast("A", 1, "A", 3, ok).build();
        assert!(matches!(dup, Err(UpcastChainError::Duplicate(k)) if k.version == 1));

        let backwards = UpcasterChain::builder().upcast("A", 2, "A", 1, ok).build();
        assert!(matches!(backwards, Err(UpcastChainError::NotForward { .. })));

        let cycle = UpcasterChain::builder().upcast("A", 1, "B", 1, ok).upcast("B", 1, "A", 1, ok).build();
        assert!(matches!(cycle, Err(UpcastChainError::Cycle(_))));

        let gap = UpcasterChain::builder().upcast("A", 1, "A", 2, ok).upcast("A", 3, "A", 4, ok).build();
        assert!(
            matches!(gap, Err(UpcastChainError::Gap { gap, end, .. }) if gap.version == 2 && end.version == 4)
        );
        let renamed = UpcasterChain::builder()
            .upcast("Counted", 1, "Bumped", 1, ok)
            .upcast("Bumped", 2, "Bumped", 3, ok)
            .build();
        assert!(
            matches!(renamed, Err(UpcastChainError::Gap { gap, .. }) if gap.event_type == "Bumped" && gap.version == 1)
        );
    }

    #[test]
    fn a_failing_upcaster_is_a_typed_error() {
        let chain = UpcasterChain::builder().upcast("A", 1, "A", 2, |_| Err("bad".into())).build().unwrap();
        assert!(matches!(chain.upcast("A", 1, json!({})), Err(Error::Upcast { version: 1, .. })));
    }
}
