//! Key encoding and record codec. Keys are big-endian so that byte order is
//! numeric order; timestamps have their sign bit flipped for the same reason.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;

/// Builds a composite key from parts, in order.
#[derive(Default)]
pub struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub fn new() -> Self {
        KeyBuf(Vec::with_capacity(64))
    }

    pub fn id(mut self, id: u128) -> Self {
        self.0.extend_from_slice(&id.to_be_bytes());
        self
    }

    pub fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }

    pub fn time(mut self, t: DateTime<Utc>) -> Self {
        self.0.extend_from_slice(&time_key(t));
        self
    }

    /// A string part; terminated by a zero byte so prefixes stay distinct.
    pub fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    pub fn done(self) -> Vec<u8> {
        self.0
    }
}

pub fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    let micros = t.timestamp_micros();
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// Reads a time written by [`time_key`] at `offset` of a key.
pub fn time_at(key: &[u8], offset: usize) -> Option<DateTime<Utc>> {
    let bytes: [u8; 8] = key.get(offset..offset + 8)?.try_into().ok()?;
    DateTime::from_timestamp_micros((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

pub fn id_key(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

/// Reads a big-endian id at `offset` of a key.
pub fn id_at(key: &[u8], offset: usize) -> Option<u128> {
    key.get(offset..offset + 16)
        .map(|b| u128::from_be_bytes(b.try_into().expect("16 bytes")))
}

/// The smallest key greater than every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The first byte of a record in the binary format (schema 2 on): the
/// record follows as MessagePack with named fields. A record of schema 1
/// is JSON and starts with `{`, so both are told apart by their first byte.
///
/// MessagePack rather than a positional format (postcard, bincode): the
/// models also serve the API and use serde attributes that need a
/// self-describing format (fields skipped when empty, untagged and
/// flattened enums, legacy shapes read through `deserialize_with`).
pub const BINARY: u8 = 0x01;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(384);
    out.push(BINARY);
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
        .map_err(|e| Error::Codec(e.to_string()))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.split_first() {
        Some((&BINARY, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| Error::Codec(e.to_string()))
        }
        _ => serde_json::from_slice(bytes).map_err(|e| Error::Codec(e.to_string())),
    }
}

/// Whether a stored value is in the JSON format of schema 1.
pub fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let a: DateTime<Utc> = "1960-01-01T00:00:00Z".parse().unwrap();
        let b: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let c: DateTime<Utc> = "2026-01-01T00:00:00.000001Z".parse().unwrap();
        assert!(time_key(a) < time_key(b));
        assert!(time_key(b) < time_key(c));
        assert_eq!(time_at(&time_key(a), 0), Some(a));
        assert_eq!(time_at(&time_key(c), 0), Some(c));
    }

    #[test]
    fn records_read_back_in_both_formats() {
        use crate::threads::model::Thread;
        let mut thread = crate::threads::rules::new_thread(
            crate::ids::SpaceId::new(),
            crate::ids::VisitorId::new(),
        );
        thread.subject = Some("Order 12345".into());
        let binary = encode(&thread).unwrap();
        assert_eq!(binary[0], BINARY);
        let json = serde_json::to_vec(&thread).unwrap();
        assert!(is_json(&json) && !is_json(&binary));
        assert!(
            binary.len() < json.len(),
            "{} < {}",
            binary.len(),
            json.len()
        );
        let from_binary: Thread = decode(&binary).unwrap();
        let from_json: Thread = decode(&json).unwrap();
        assert_eq!(
            serde_json::to_value(&from_binary).unwrap(),
            serde_json::to_value(&thread).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&from_json).unwrap(),
            serde_json::to_value(&thread).unwrap()
        );
        assert!(decode::<Thread>(&[BINARY, 0xc1]).is_err());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255]), None);
    }
}
