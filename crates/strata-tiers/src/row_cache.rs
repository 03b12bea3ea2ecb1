//! Decoded cold rows, kept for the primary-key reads that find them again.
//!
//! A cold row read by key costs a Parquet page per column fetched and
//! decompressed (the profile of a cold point SELECT is mostly ZSTD). Cold
//! files never change, so the decoded row at (file, position) is valid for as
//! long as the table's definition is the one it was decoded by: the key
//! carries the table's version, and a row a writer supersedes is simply no
//! longer what the primary-key index points at. The cache is bounded in bytes
//! and emptied when full (it refills from the reads that matter).

use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// (table id, table version, file id, position in the file).
pub type RowKey = (u32, u64, u64, u32);

/// Bytes of decoded rows kept at most.
pub const ROW_CACHE_BYTES: usize = 64 << 20;

/// The rows, and the bytes they take.
type Rows = (HashMap<RowKey, Arc<Vec<ScalarValue>>>, usize);

#[derive(Debug, Default)]
pub struct RowCache {
    rows: Mutex<Rows>,
}

impl RowCache {
    pub fn get(&self, key: &RowKey) -> Option<Arc<Vec<ScalarValue>>> {
        self.rows.lock().0.get(key).cloned()
    }

    pub fn insert(&self, key: RowKey, row: Arc<Vec<ScalarValue>>) {
        let size = row.iter().map(ScalarValue::size).sum::<usize>() + 64;
        if size > ROW_CACHE_BYTES / 16 {
            return;
        }
        let mut rows = self.rows.lock();
        if rows.1 + size > ROW_CACHE_BYTES {
            rows.0.clear();
            rows.1 = 0;
        }
        if rows.0.insert(key, row).is_none() {
            rows.1 += size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_kept_by_key_and_the_cache_stays_bounded() {
        let cache = RowCache::default();
        let row = Arc::new(vec![
            ScalarValue::Int64(Some(1)),
            ScalarValue::Utf8(Some("a".into())),
        ]);
        cache.insert((1, 1, 7, 0), row.clone());
        assert_eq!(cache.get(&(1, 1, 7, 0)), Some(row));
        // Another version of the table is another row.
        assert_eq!(cache.get(&(1, 2, 7, 0)), None);
        let big = Arc::new(vec![ScalarValue::Utf8(Some("x".repeat(1 << 20)))]);
        for i in 0..200 {
            cache.insert((2, 1, 1, i), big.clone());
        }
        assert!(cache.rows.lock().1 <= ROW_CACHE_BYTES);
    }
}
