//! Interned, reference-counted byte strings: the contact templates, Path values and AOR
//! tails (`@host:port`) that many bindings of a stripe share. Each item is freed with its last
//! user and its id reused.

use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

#[derive(Debug, Default)]
pub(super) struct Interner {
    index: HashTable<u32>,
    items: Vec<Entry>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct Entry {
    bytes: Box<[u8]>,
    /// Users; 0 for a free item.
    refs: u32,
}

impl Interner {
    /// One more user of `bytes`; its id.
    pub(super) fn acquire(&mut self, bytes: &[u8], hasher: &RandomState) -> u32 {
        let h = hasher.hash_one(bytes);
        let Interner { index, items, free } = self;
        if let Some(&id) = index.find(h, |&id| &*items[id as usize].bytes == bytes) {
            items[id as usize].refs += 1;
            return id;
        }
        let item = Entry {
            bytes: bytes.into(),
            refs: 1,
        };
        let id = match free.pop() {
            Some(id) => {
                items[id as usize] = item;
                id
            }
            None => {
                items.push(item);
                (items.len() - 1) as u32
            }
        };
        index.insert_unique(h, id, |&id| hasher.hash_one(&*items[id as usize].bytes));
        id
    }

    /// The id of `bytes`, when interned.
    pub(super) fn find(&self, bytes: &[u8], hasher: &RandomState) -> Option<u32> {
        let items = &self.items;
        self.index
            .find(hasher.hash_one(bytes), |&id| {
                &*items[id as usize].bytes == bytes
            })
            .copied()
    }

    /// One user fewer; the last one frees the item.
    pub(super) fn release(&mut self, id: u32, hasher: &RandomState) {
        let item = &mut self.items[id as usize];
        item.refs -= 1;
        if item.refs == 0 {
            let bytes = std::mem::take(&mut item.bytes);
            if let Ok(e) = self
                .index
                .find_entry(hasher.hash_one(&*bytes), |&other| other == id)
            {
                e.remove();
            }
            self.free.push(id);
        }
    }

    pub(super) fn get(&self, id: u32) -> &[u8] {
        &self.items[id as usize].bytes
    }

    /// Items in use.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// References held over every item (the stripe's invariant check counts them).
    #[cfg(test)]
    pub(super) fn references(&self) -> usize {
        self.items.iter().map(|t| t.refs as usize).sum()
    }
}
