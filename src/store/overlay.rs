//! The embedded store's batches that the redb file does not hold yet.
//!
//! A batch is durable once its record is in the write-ahead log. Its
//! writes then go into an [`Overlay`], an ordered map in memory, instead
//! of a redb transaction: readers see the overlay over the file, and the
//! file takes the overlay's writes at a checkpoint, in one transaction
//! and on a thread of its own, while new batches go on into a fresh
//! overlay. So a batch costs a log append and some map inserts, and the
//! file's pages are rewritten once per checkpoint, not once per batch.
//!
//! The map is persistent (`imbl::OrdSet` of items that hold a key and its
//! value together): a copy costs a pointer, and a change copies only the
//! nodes on its path. The writer changes its own
//! copy and publishes it after the log sync; a reader keeps the copy it
//! started with for as long as it reads, so every read is of one
//! consistent state.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::iter::Peekable;
use std::sync::Arc;

use equivalent::{Comparable, Equivalent};
use imbl::OrdSet;

use super::tables::Table;
use super::{Result, Scan, bound_ref};

/// One write in an overlay, in one allocation: whether it holds a value
/// (1) or removes the key (0), the key's length (u32, little-endian),
/// the key, then the value.
///
/// The key is the table's name, a zero byte, then the table's key: table
/// names hold no zero byte, so one table's keys are one range, in the
/// order of their keys. Items compare by key alone. A change to the map
/// copies the nodes on its path, and with them a pointer per item: one
/// reference count per item (not a key's and a value's) is what the
/// writer's inserts copy and what dropping an older version releases.
#[derive(Clone)]
struct Item(Arc<[u8]>);

/// The tag and the key's length.
const HEAD: usize = 5;

impl Item {
    fn new(table: Table, key: &[u8], value: Option<&[u8]>) -> Item {
        Item::with_key(&table.qualified(key), value)
    }

    /// An item whose key is `parts`, one after the other.
    fn with_key(parts: &[&[u8]], value: Option<&[u8]>) -> Item {
        let key_len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(HEAD + key_len + value.map_or(0, <[u8]>::len));
        out.push(u8::from(value.is_some()));
        out.extend_from_slice(
            &u32::try_from(key_len)
                .expect("keys are small")
                .to_le_bytes(),
        );
        for part in parts {
            out.extend_from_slice(part);
        }
        out.extend_from_slice(value.unwrap_or_default());
        Item(out.into())
    }

    fn key_len(&self) -> usize {
        u32::from_le_bytes(self.0[1..HEAD].try_into().expect("4 bytes")) as usize
    }

    fn key(&self) -> &[u8] {
        &self.0[HEAD..HEAD + self.key_len()]
    }

    /// The value, or `None` for a removal.
    fn value(&self) -> Option<&[u8]> {
        (self.0[0] == 1).then(|| &self.0[HEAD + self.key_len()..])
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

/// Scans look items up by their whole key.
impl Borrow<[u8]> for Item {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

/// A qualified key to look up, in its parts ([`Table::qualified`]),
/// compared with the items' keys without putting the parts together.
struct Lookup<'a> {
    parts: [&'a [u8]; 3],
}

impl Equivalent<Item> for Lookup<'_> {
    fn equivalent(&self, item: &Item) -> bool {
        self.compare(item) == Ordering::Equal
    }
}

impl Comparable<Item> for Lookup<'_> {
    fn compare(&self, item: &Item) -> Ordering {
        let mut rest = item.key();
        for part in self.parts {
            let n = part.len().min(rest.len());
            match part[..n].cmp(&rest[..n]) {
                // The item's key ends within this part.
                Ordering::Equal if n < part.len() => return Ordering::Greater,
                Ordering::Equal => rest = &rest[n..],
                other => return other,
            }
        }
        if rest.is_empty() {
            Ordering::Equal
        } else {
            Ordering::Less
        }
    }
}

/// Writes not yet in the file: each key's last value, or its removal.
#[derive(Clone, Default)]
pub struct Overlay {
    items: OrdSet<Item>,
    /// Bytes of keys and values held, for the checkpoint's trigger.
    bytes: usize,
}

/// A key and what the layers above the file say of it.
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

impl Overlay {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `Some` when the overlay decides the key: `Some(None)` is a removal.
    pub fn get(&self, table: Table, key: &[u8]) -> Option<Option<&[u8]>> {
        let lookup = Lookup {
            parts: table.qualified(key),
        };
        self.items.get(&lookup).map(Item::value)
    }

    pub fn insert(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        let item = Item::new(table, key, value);
        let size = |item: &Item| item.0.len() - HEAD;
        self.bytes += size(&item);
        if let Some(old) = self.items.insert(item) {
            self.bytes -= size(&old);
        }
    }

    /// Every write, in key order, as (table, key, value or removal).
    pub fn writes(&self) -> impl Iterator<Item = (&str, &[u8], Option<&[u8]>)> {
        self.items.iter().map(|item| {
            let k = item.key();
            let at = k
                .iter()
                .position(|b| *b == 0)
                .expect("a table name ends in a zero");
            let name = std::str::from_utf8(&k[..at]).expect("table names are UTF-8");
            (name, &k[at + 1..], item.value())
        })
    }

    /// The overlay's entries of `table` that `scan` covers, in its order.
    pub fn range<'a>(&'a self, table: Table, scan: &Scan) -> Box<dyn Iterator<Item = Entry> + 'a> {
        let name_len = table.name().len() + 1;
        let (lower, upper) = scan.bounds(|key| table.qualify(key));
        let range = self
            .items
            .range::<_, [u8]>((bound_ref(&lower), bound_ref(&upper)));
        let strip = move |item: &Item| -> Entry {
            (
                item.key()[name_len..].to_vec(),
                item.value().map(<[u8]>::to_vec),
            )
        };
        if scan.reverse {
            Box::new(range.rev().map(strip))
        } else {
            Box::new(range.map(strip))
        }
    }
}

/// Two ordered streams of entries as one: where both hold a key, the
/// upper one's entry wins. `reverse`: both run in descending order.
pub struct Merge<U: Iterator, L: Iterator> {
    upper: Peekable<U>,
    lower: Peekable<L>,
    reverse: bool,
}

impl<U, L> Merge<U, L>
where
    U: Iterator<Item = Result<Entry>>,
    L: Iterator<Item = Result<Entry>>,
{
    pub fn new(upper: U, lower: L, reverse: bool) -> Self {
        Merge {
            upper: upper.peekable(),
            lower: lower.peekable(),
            reverse,
        }
    }
}

impl<U, L> Iterator for Merge<U, L>
where
    U: Iterator<Item = Result<Entry>>,
    L: Iterator<Item = Result<Entry>>,
{
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        let order = match (self.upper.peek(), self.lower.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            // An error goes first, whichever side it is on.
            (Some(Err(_)), _) => Ordering::Less,
            (_, Some(Err(_))) => Ordering::Greater,
            (Some(Ok(u)), Some(Ok(l))) => {
                let order = u.0.cmp(&l.0);
                if self.reverse { order.reverse() } else { order }
            }
        };
        match order {
            Ordering::Less => self.upper.next(),
            Ordering::Greater => self.lower.next(),
            Ordering::Equal => {
                self.lower.next();
                self.upper.next()
            }
        }
    }
}

/// Reads through the overlays (the newest first) to the file's entries:
/// the live ones, at most `limit`.
pub fn scan<'a>(
    layers: &[&'a Overlay],
    table: Table,
    scan: &Scan,
    file: Box<dyn Iterator<Item = Result<Entry>> + 'a>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut merged = file;
    for layer in layers.iter().rev() {
        let upper = layer.range(table, scan).map(Ok);
        merged = Box::new(Merge::new(upper, merged, scan.reverse));
    }
    let mut out = Vec::new();
    for entry in merged {
        let (key, value) = entry?;
        if let Some(value) = value {
            out.push((key, value));
            if out.len() >= scan.limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The overlays' answer for one key, newest first, if any decides it.
pub fn get<'a>(layers: &[&'a Overlay], table: Table, key: &[u8]) -> Option<Option<&'a [u8]>> {
    layers.iter().find_map(|layer| layer.get(table, key))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::store::tables;

    const TABLE: Table = tables::MESSAGES;
    /// A table whose name sorts next to the one scanned, so a scan that
    /// strays out of its table shows.
    const NEIGHBOUR: Table = tables::META;

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    /// A write: key, and value or removal.
    fn write() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
        (
            prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 254, 255]), 0..4),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..3)),
        )
    }

    fn layer(writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Overlay {
        let mut overlay = Overlay::default();
        for (key, value) in writes {
            overlay.insert(TABLE, key, value.as_deref());
            overlay.insert(NEIGHBOUR, key, Some(b"other"));
        }
        overlay
    }

    fn apply(model: &mut Model, writes: &[(Vec<u8>, Option<Vec<u8>>)]) {
        for (key, value) in writes {
            match value {
                Some(value) => model.insert(key.clone(), value.clone()),
                None => model.remove(key),
            };
        }
    }

    /// What a scan of the model gives.
    fn expected(model: &Model, scan: &Scan) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter(|(k, _)| k.starts_with(&scan.prefix))
            .filter(|(k, _)| match &scan.after {
                Some(after) if scan.reverse => k.as_slice() < after.as_slice(),
                Some(after) => k.as_slice() > after.as_slice(),
                None => true,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if scan.reverse {
            out.reverse();
        }
        out.truncate(scan.limit.max(1));
        out
    }

    proptest! {
        /// Two overlays over a file's entries read as the writes applied
        /// in order: the newest write of a key wins, removals hide it,
        /// and scans keep their prefix, start, direction and limit.
        #[test]
        fn overlays_over_a_file_read_as_the_writes_applied_in_order(
            file in prop::collection::vec(write(), 0..12),
            older in prop::collection::vec(write(), 0..12),
            newer in prop::collection::vec(write(), 0..12),
            prefix in prop::collection::vec(prop::sample::select(vec![0u8, 1, 255]), 0..2),
            // A cursor, as callers pass it: a key under the prefix.
            after in prop::option::of(prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 255]), 0..3)),
            reverse in any::<bool>(),
            limit in 1usize..8,
        ) {
            let mut base = Model::new();
            apply(&mut base, &file);
            let (frozen, active) = (layer(&older), layer(&newer));
            let mut model = base.clone();
            apply(&mut model, &older);
            apply(&mut model, &newer);

            for key in model.keys().chain(base.keys()) {
                let decided = get(&[&active, &frozen], TABLE, key);
                let read = match decided {
                    Some(value) => value.map(<[u8]>::to_vec),
                    None => base.get(key).cloned(),
                };
                prop_assert_eq!(read.as_ref(), model.get(key));
            }

            let after = after.map(|rest| [prefix.as_slice(), &rest].concat());
            let scan = Scan { prefix, after, reverse, limit };
            let in_file: Vec<Result<Entry>> = expected(&base, &Scan { limit: usize::MAX, ..scan.clone() })
                .into_iter()
                .map(|(k, v)| Ok((k, Some(v))))
                .collect();
            let got = super::scan(&[&active, &frozen], TABLE, &scan, Box::new(in_file.into_iter()))
                .unwrap();
            prop_assert_eq!(got, expected(&model, &scan));
        }
    }

    proptest! {
        /// A lookup orders against an item as its table's name, a zero
        /// byte and its key put together would.
        #[test]
        fn a_lookup_compares_as_its_qualified_key(
            name in prop::collection::vec(prop::sample::select(vec![1u8, 2, b'm', 255]), 0..4),
            key in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 255]), 0..4),
            stored in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, b'm', 255]), 0..7),
        ) {
            let lookup = Lookup { parts: [&name, &[0], &key] };
            let item = Item::with_key(&[&stored], None);
            let qualified = [name.as_slice(), &[0], &key].concat();
            prop_assert_eq!(lookup.compare(&item), qualified.as_slice().cmp(&stored));
            prop_assert_eq!(lookup.equivalent(&item), qualified == stored);
        }
    }

    #[test]
    fn bytes_count_what_is_held_once_per_key() {
        let mut overlay = Overlay::default();
        overlay.insert(TABLE, b"k", Some(b"12345"));
        overlay.insert(TABLE, b"k", Some(b"12"));
        overlay.insert(TABLE, b"j", None);
        let key = TABLE.name().len() + 2;
        assert_eq!(overlay.bytes(), key + 2 + key);
    }

    #[test]
    fn writes_name_their_table_in_key_order() {
        let mut overlay = Overlay::default();
        overlay.insert(TABLE, b"\x00b", Some(b"2"));
        overlay.insert(NEIGHBOUR, b"a", None);
        overlay.insert(TABLE, b"\x00a", Some(b"1"));
        let writes: Vec<_> = overlay.writes().collect();
        assert_eq!(
            writes,
            vec![
                (TABLE.name(), &b"\x00a"[..], Some(&b"1"[..])),
                (TABLE.name(), &b"\x00b"[..], Some(&b"2"[..])),
                (NEIGHBOUR.name(), &b"a"[..], None),
            ]
        );
    }
}
