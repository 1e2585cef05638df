//! Finding streams without knowing their ids, for operator tooling (rebuilding a read model, listing
//! streams): a Scan, in parallel segments, for the first commit of each stream. A Scan reads the whole
//! table and is billed for it; nothing on a request path calls this.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use strata_core::{Error, StreamId};

use crate::DynamoStore;
use crate::error::backend;
use crate::item::kind;
use crate::keys::{parse_stream_pk, version_sk};

/// Where a scan segment stopped: the key of the last item it evaluated (resume after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPosition {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

/// One page of a scan segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamsPage {
    /// The streams whose first commit the page met.
    pub streams: Vec<StreamId>,
    /// Where to go on, or `None` when the segment is done.
    pub next: Option<ScanPosition>,
}

impl DynamoStore {
    /// One page (up to `page_items` items evaluated) of segment `segment` of `segments` of a Scan
    /// for streams: items that are the first commit of a stream. Resumes after `after`.
    pub async fn scan_streams(
        &self,
        segment: u32,
        segments: u32,
        after: Option<&ScanPosition>,
        page_items: i32,
    ) -> Result<StreamsPage, Error> {
        let (segment, segments) = (
            i32::try_from(segment).map_err(|_| Error::InvalidRequest("segment out of range".into()))?,
            i32::try_from(segments).map_err(|_| Error::InvalidRequest("segments out of range".into()))?,
        );
        if !(1..=1_000_000).contains(&segments) || !(0..segments).contains(&segment) {
            return Err(Error::InvalidRequest(format!("segment {segment} of {segments}")));
        }
        let out = self
            .client()
            .scan()
            .table_name(self.table())
            .segment(segment)
            .total_segments(segments)
            .limit(page_items.max(1))
            .filter_expression("#kind = :commit AND sk = :first")
            .projection_expression("pk")
            .expression_attribute_names("#kind", kind::ATTRIBUTE)
            .expression_attribute_values(":commit", AttributeValue::S(kind::COMMIT.into()))
            .expression_attribute_values(":first", AttributeValue::S(version_sk(1)))
            .set_exclusive_start_key(after.map(|p| {
                [
                    ("pk".to_owned(), AttributeValue::S(p.pk.clone())),
                    ("sk".to_owned(), AttributeValue::S(p.sk.clone())),
                ]
                .into()
            }))
            .send()
            .await
            .map_err(backend)?;
        let mut streams = Vec::with_capacity(out.items().len());
        for item in out.items() {
            // Keys are validated when written: a first commit whose key is not a stream's is damage,
            // reported rather than skipped (a rebuild must not end "complete" without it).
            let pk = item.get("pk").and_then(|v| v.as_s().ok());
            let stream = pk.and_then(|pk| parse_stream_pk(pk));
            streams.push(stream.ok_or_else(|| {
                Error::InvalidRequest(format!("a first commit has partition key {pk:?}, not a stream's"))
            })?);
        }
        let next = match out.last_evaluated_key() {
            None => None,
            Some(key) if key.is_empty() => None,
            Some(key) => {
                let part = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
                match (part("pk"), part("sk")) {
                    (Some(pk), Some(sk)) => Some(ScanPosition { pk, sk }),
                    _ => return Err(Error::InvalidRequest(format!("unexpected scan position {key:?}"))),
                }
            }
        };
        Ok(StreamsPage { streams, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_parse_back_and_others_do_not() {
        let stream = StreamId::new("acme", "order", "o-1-x").unwrap();
        assert_eq!(parse_stream_pk(&crate::keys::stream_pk(&stream)), Some(stream));
        for other in ["acme#K#cust-1", "acme#P#order-summary#order-o-1", "acme#I#k", "acme#S#nodash", "plain"]
        {
            assert_eq!(parse_stream_pk(other), None, "{other}");
        }
    }
}
