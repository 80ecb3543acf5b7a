//! Reading events back from segments: which block holds an event document, the block's payload, and the
//! full event (parsed again from its original text).

use crate::block::{self, BlockMeta, StoredEvent};
use crate::schema::Fields;
use crate::StoreError;
use parking_lot::Mutex;
use quarry_model::Event;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tantivy::index::SegmentId;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{
    DocAddress, DocId, DocSet, Searcher, SegmentReader, TantivyDocument, Term, TERMINATED,
};

type StartsCache = Mutex<HashMap<SegmentId, Arc<Vec<DocId>>>>;

fn cache() -> &'static StartsCache {
    static CACHE: OnceLock<StartsCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Doc ids of the block documents of a segment, ascending. Segments are immutable, so this is computed
/// once per segment.
pub fn block_starts(seg: &SegmentReader, fields: &Fields) -> Result<Arc<Vec<DocId>>, StoreError> {
    if let Some(s) = cache().lock().get(&seg.segment_id()) {
        return Ok(s.clone());
    }
    let mut starts = Vec::new();
    let inv = seg.inverted_index(fields.is_block)?;
    if let Some(mut postings) = inv.read_postings(
        &Term::from_field_u64(fields.is_block, 1),
        IndexRecordOption::Basic,
    )? {
        let mut d = postings.doc();
        while d != TERMINATED {
            starts.push(d);
            d = postings.advance();
        }
    }
    let starts = Arc::new(starts);
    let mut c = cache().lock();
    if c.len() > 65_536 {
        c.clear();
    }
    c.insert(seg.segment_id(), starts.clone());
    Ok(starts)
}

/// The block document holding event document `doc` and the event's index within the block.
pub fn block_of(starts: &[DocId], doc: DocId) -> Option<(DocId, usize)> {
    let i = starts.partition_point(|&s| s < doc);
    let start = *starts.get(i.checked_sub(1)?)?;
    Some((start, (doc - start - 1) as usize))
}

/// The event documents of the block starting at `start`: `start + 1 .. end`.
pub fn block_range(starts: &[DocId], start: DocId, max_doc: DocId) -> std::ops::Range<DocId> {
    let i = starts.partition_point(|&s| s <= start);
    start + 1..starts.get(i).copied().unwrap_or(max_doc)
}

/// Reads the payload of a block document.
pub fn read_block(
    searcher: &Searcher,
    fields: &Fields,
    segment_ord: u32,
    start: DocId,
) -> Result<(BlockMeta, Vec<StoredEvent>), StoreError> {
    let doc: TantivyDocument = searcher.doc(DocAddress::new(segment_ord, start))?;
    let bytes = doc
        .get_first(fields.block)
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "document {start} of segment {segment_ord} is not a block"
            ))
        })?;
    block::decode(bytes).map_err(|e| StoreError::Corrupt(format!("document {start}: {e}")))
}

/// The full event of a stored record at time `ts`: its text parsed again by the parser that first read it.
pub fn materialize(meta: &BlockMeta, stored: &StoredEvent, ts: i64) -> Event {
    let mut e = quarry_parse::reparse(&meta.format, &stored.raw, stored.hint.as_deref(), ts);
    e.ts = ts;
    e.hint = stored.hint.clone();
    if stored.parse_error.is_some() {
        e.parse_error = stored.parse_error.clone();
    }
    e
}
