//! Key formats of the single table (see the crate docs for the layout).
//!
//! Every key starts with the tenant, so IAM `dynamodb:LeadingKeys` can confine a tenant's
//! credentials. Key parts are validated by [`StreamId`] (no `#`, no control characters), so the
//! formats below never need escaping.

use strata_core::StreamId;

/// Tag of stream partitions (commits and snapshots): `{tenant}#S#...`.
pub const STREAM_TAG: &str = "S";
/// Tag of data key partitions: `{tenant}#K#...`.
pub const DATA_KEY_TAG: &str = "K";
/// Tag of idempotency record partitions: `{tenant}#I#...`.
pub const IDEMPOTENCY_TAG: &str = "I";
/// Tag of a data subject's audit trail (exports, erasures): `{tenant}#A#{subject}`. A class of its
/// own, so that no role that writes or deletes data keys can touch it.
pub const AUDIT_TAG: &str = "A";
/// Tag of read-model view partitions (and of lookup partitions of the `lookup` index): `{tenant}#P#...`.
pub const VIEW_TAG: &str = "P";

/// Sort key of the idempotency record item.
pub const IDEMPOTENCY_SK: &str = "IDEM";
/// Suffix that makes a snapshot's sort key sort right after the version it covers.
pub const SNAPSHOT_SUFFIX: &str = "#SNAP";

/// `{tenant}#S#{category}-{id}`: the partition of a stream's commits and snapshots.
pub fn stream_pk(stream: &StreamId) -> String {
    format!("{}#{STREAM_TAG}#{}-{}", stream.tenant(), stream.category(), stream.id())
}

/// The stream of a partition key `{tenant}#S#{category}-{id}`, if it is one (and `None`, never a
/// panic, for anything else).
pub fn parse_stream_pk(pk: &str) -> Option<StreamId> {
    let (tenant, rest) = pk.split_once('#')?;
    let rest = rest.strip_prefix(STREAM_TAG)?.strip_prefix('#')?;
    // Categories hold no `-` (StreamId refuses them), so the first `-` ends the category.
    let (category, id) = rest.split_once('-')?;
    StreamId::new(tenant, category, id).ok()
}

/// `{version:020}`: zero-padded so that string order is version order.
pub fn version_sk(version: u64) -> String {
    format!("{version:020}")
}

/// `{version:020}#SNAP`: sorts after the commit starting at `version` and before the next one, so a
/// descending Query meets a snapshot right after the newer commits it does not cover.
pub fn snapshot_sk(version: u64) -> String {
    format!("{version:020}{SNAPSHOT_SUFFIX}")
}

/// `{tenant}#I#{key}`: the partition of an idempotency record. The tenant holds no `#`, so the
/// first `#I#` ends it whatever the key contains.
pub fn idempotency_pk(tenant: &str, key: &str) -> String {
    format!("{tenant}#{IDEMPOTENCY_TAG}#{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_commit_and_snapshot_sort_key_starts_with_the_immutable_prefix_the_publisher_watches() {
        // Versions below 10^19 (a stream of ten quintillion events would be the first exception).
        let prefixes = crate::TableSpec::strata().immutable_sort_key_prefixes;
        for version in [1, 99, 10_u64.pow(12), 10_u64.pow(19) - 1] {
            for sk in [version_sk(version), snapshot_sk(version)] {
                assert!(prefixes.iter().any(|p| sk.starts_with(p.as_str())), "{sk}");
            }
        }
        // Nothing else in the table starts with them but audit records.
        for sk in [IDEMPOTENCY_SK, crate::keys_store::KEY_SK, "S#acme/order-o-1", crate::views::VIEW_SK] {
            assert!(!prefixes.iter().any(|p| sk.starts_with(p.as_str())), "{sk}");
        }
    }

    #[test]
    fn a_snapshot_sorts_between_the_commit_it_covers_and_the_next_one() {
        // Commits 1..=3 (sk 1) and 4..=6 (sk 4); a snapshot after version 3.
        let mut keys = vec![version_sk(4), snapshot_sk(3), version_sk(1)];
        keys.sort();
        assert_eq!(keys, vec![version_sk(1), snapshot_sk(3), version_sk(4)]);
        // A single-event commit at 7 and its snapshot, then commit 8.
        let mut keys = vec![version_sk(8), snapshot_sk(7), version_sk(7)];
        keys.sort();
        assert_eq!(keys, vec![version_sk(7), snapshot_sk(7), version_sk(8)]);
        assert!(version_sk(u64::MAX) > snapshot_sk(u64::MAX - 1));
    }

    #[test]
    fn keys_are_tenant_first() -> Result<(), strata_core::KeyError> {
        let stream = StreamId::new("acme", "order", "o-1")?;
        assert_eq!(stream_pk(&stream), "acme#S#order-o-1");
        assert_eq!(idempotency_pk("acme", "k#1"), "acme#I#k#1");
        assert_eq!(version_sk(42), "00000000000000000042");
        Ok(())
    }
}
