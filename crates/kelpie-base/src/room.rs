//! Giving back a table's room once it emptied. A hash map keeps the capacity it grew to: after
//! 3 000 apps were deleted, each per-app table would go on holding room for 3 000, and its one
//! large block, made late in the burst, sits among the freed apps' memory, so the allocator
//! cannot return the pages around it either (docs/architecture.md, "Memory, and costs that grow
//! with the apps").

use std::collections::{HashMap, HashSet};

/// Below this capacity a table is left as it is: its room is small.
const SMALL: usize = 64;

/// A hash table whose room can be given back: `HashMap` and `HashSet`.
pub trait Table {
    fn entries(&self) -> usize;
    fn room(&self) -> usize;
    fn shrink_room_to(&mut self, room: usize);
}

impl<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher> Table for HashMap<K, V, S> {
    fn entries(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink_room_to(&mut self, room: usize) {
        self.shrink_to(room);
    }
}

impl<K: Eq + std::hash::Hash, S: std::hash::BuildHasher> Table for HashSet<K, S> {
    fn entries(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink_room_to(&mut self, room: usize) {
        self.shrink_to(room);
    }
}

/// Give back a table's room when it is less than a quarter full, keeping twice what it holds:
/// a table that shrinks a lot (a bulk delete) then holds little more than its entries need,
/// and one that goes up and down by a little is not reallocated each time. Call it after
/// removing entries: the check costs nothing, and the pass it may make (a move of what is
/// left) is paid for by the three quarters removed since the table was last this size.
pub fn shrink_if_sparse(table: &mut impl Table) {
    if is_sparse(table.entries(), table.room()) {
        table.shrink_room_to(table.entries() * 2);
    }
}

fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity > SMALL && len < capacity / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_table_is_shrunk_a_full_or_small_one_left_alone() {
        let mut map: HashMap<u32, u32> = (0..1000).map(|i| (i, i)).collect();
        let full = map.capacity();
        shrink_if_sparse(&mut map);
        assert_eq!(map.capacity(), full, "full: kept");
        map.retain(|k, _| *k < 100);
        shrink_if_sparse(&mut map);
        assert!(map.capacity() < full / 4 && map.capacity() >= 200);
        map.clear();
        shrink_if_sparse(&mut map);
        assert_eq!(map.capacity(), 0, "emptied: all given back");
        let mut set: HashSet<u32> = (0..1000).collect();
        set.retain(|k| *k < 10);
        shrink_if_sparse(&mut set);
        assert!(set.capacity() < 64, "a set too");
    }
}
