//! Packing entries into one call: in arrival order, up to the entry and
//! byte limits. The first entry always fits, so an entry above the byte
//! limit of a batch (but within SQS's message limit) goes alone rather
//! than never.

use crate::limits::BatchLimits;

#[derive(Debug)]
pub(crate) struct Batch<T> {
    items: Vec<T>,
    bytes: usize,
    limits: BatchLimits,
}

impl<T> Batch<T> {
    pub(crate) fn new(first: T, size: usize, limits: BatchLimits) -> Batch<T> {
        let mut items = Vec::with_capacity(limits.max_entries);
        items.push(first);
        Batch {
            items,
            bytes: size,
            limits,
        }
    }

    /// Adds `item` if it fits; otherwise hands it back, to start the next
    /// batch (an entry is never reordered past another).
    pub(crate) fn push(&mut self, item: T, size: usize) -> Result<(), T> {
        if self.is_full() || self.bytes + size > self.limits.max_bytes {
            return Err(item);
        }
        self.bytes += size;
        self.items.push(item);
        Ok(())
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.limits.max_entries
    }

    pub(crate) fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};

    /// Packs `sizes` the way the batcher does; returns the sizes per call.
    fn pack(sizes: &[usize], limits: BatchLimits) -> Vec<Vec<usize>> {
        let mut calls = Vec::new();
        let mut current: Option<Batch<usize>> = None;
        for &size in sizes {
            current = Some(match current.take() {
                None => Batch::new(size, size, limits),
                Some(mut batch) => match batch.push(size, size) {
                    Ok(()) => batch,
                    Err(carried) => {
                        calls.push(batch.into_items());
                        Batch::new(carried, carried, limits)
                    }
                },
            });
        }
        calls.extend(current.map(Batch::into_items));
        calls
    }

    #[test]
    fn ten_entries_per_call() {
        let calls = pack(&[100; 25], BatchLimits::default());
        let counts: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(counts, [10, 10, 5]);
    }

    #[test]
    fn the_byte_limit_closes_a_batch_and_order_is_kept() {
        let limits = BatchLimits::within_sqs(MAX_BATCH_ENTRIES, 1000);
        let calls = pack(&[400, 400, 300, 100, 900, 50], limits);
        assert_eq!(calls, [vec![400, 400], vec![300, 100], vec![900, 50]]);
    }

    #[test]
    fn sqs_limits_hold_for_messages_of_the_largest_size() {
        // Four messages of 300 KiB: SQS's 1 MiB batch takes three.
        let calls = pack(&[300 * 1024; 4], BatchLimits::default());
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
        for call in &calls {
            assert!(call.iter().sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn an_entry_above_the_batch_limit_goes_alone() {
        let limits = BatchLimits::within_sqs(MAX_BATCH_ENTRIES, 1024);
        let calls = pack(&[10, 5000, 10, 10], limits);
        assert_eq!(calls, [vec![10], vec![5000], vec![10, 10]]);
    }

    #[test]
    fn one_entry_per_call_when_asked() {
        let calls = pack(&[1, 1, 1], BatchLimits::within_sqs(1, MAX_BATCH_BYTES));
        assert_eq!(calls, [vec![1], vec![1], vec![1]]);
    }
}
