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

/// Timestamps of the records written per message (threads, messages,
/// report facts) and read per request (agents, spaces, visitors), for
/// `#[serde(with = "crate::store::stamp")]`: in the binary records an
/// integer, nanoseconds since 1970 (exact for 1677–2262; a time outside
/// that stays a string); in JSON, chrono's RFC 3339 string as before.
/// Formatting and parsing the string took about a twentieth of the
/// writer's time per message. Both forms read back, so records of schema 2
/// keep working and no migration rewrites them (schema 3 only marks the
/// file, see `migrate`).
pub mod stamp {
    use chrono::{DateTime, Utc};
    use serde::de::{self, Deserialize, Deserializer, Visitor};
    use serde::ser::{Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        match t.timestamp_nanos_opt() {
            Some(nanos) if !s.is_human_readable() => s.serialize_i64(nanos),
            _ => t.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::deserialize(d)
        } else {
            d.deserialize_any(StampVisitor)
        }
    }

    struct StampVisitor;

    impl Visitor<'_> for StampVisitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a time: nanoseconds since 1970 or an RFC 3339 string")
        }

        fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Self::Value, E> {
            Ok(DateTime::from_timestamp_nanos(nanos))
        }

        fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Self::Value, E> {
            i64::try_from(nanos)
                .map(DateTime::from_timestamp_nanos)
                .map_err(|_| E::custom("time out of range"))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(E::custom)
        }
    }

    /// A time through [`serialize`] and [`deserialize`].
    struct Stamp(DateTime<Utc>);

    impl Serialize for Stamp {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for Stamp {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
            deserialize(d).map(Stamp)
        }
    }

    /// For `Option<DateTime<Utc>>` fields (with `#[serde(default)]`).
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&Stamp(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Ok(Option::<Stamp>::deserialize(d)?.map(|s| s.0))
        }
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

    /// Two times as the hot records hold them, and as they were written
    /// before (chrono's strings in the binary records too).
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Stamped {
        #[serde(with = "stamp")]
        at: DateTime<Utc>,
        #[serde(default, with = "stamp::option")]
        closed: Option<DateTime<Utc>>,
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Before {
        at: DateTime<Utc>,
        closed: Option<DateTime<Utc>>,
    }

    #[derive(serde::Deserialize)]
    struct Raw {
        at: i64,
        closed: Option<i64>,
    }

    #[test]
    fn times_are_integers_in_binary_records_and_strings_in_json() {
        let stamped = Stamped {
            at: "2026-12-02T05:31:42.123456789Z".parse().unwrap(),
            closed: Some("1969-07-20T20:17:40Z".parse().unwrap()),
        };
        let binary = encode(&stamped).unwrap();
        // Nanoseconds, exactly, before 1970 too.
        let raw: Raw = decode(&binary).unwrap();
        assert_eq!(raw.at, 1_796_189_502_123_456_789);
        assert_eq!(raw.closed, Some(-14_182_940_000_000_000));
        assert!(decode::<Before>(&binary).is_err(), "not strings any more");
        assert_eq!(decode::<Stamped>(&binary).unwrap(), stamped);
        // JSON (the API, schema 1's records) keeps chrono's strings.
        let json = serde_json::to_value(&stamped).unwrap();
        assert_eq!(json["at"], "2026-12-02T05:31:42.123456789Z");
        assert_eq!(json["closed"], "1969-07-20T20:17:40Z");
        let bytes = serde_json::to_vec(&stamped).unwrap();
        assert_eq!(decode::<Stamped>(&bytes).unwrap(), stamped);
        // An empty one stays empty, and a missing one reads as empty.
        let none = Stamped {
            closed: None,
            ..stamped
        };
        assert_eq!(decode::<Stamped>(&encode(&none).unwrap()).unwrap(), none);
        let at = encode(&std::collections::BTreeMap::from([("at", 5_i64)])).unwrap();
        assert_eq!(decode::<Stamped>(&at).unwrap().closed, None);
        // A whole thread reads back equal, nanoseconds and all.
        let mut thread = crate::threads::rules::new_thread(
            crate::ids::SpaceId::new(),
            crate::ids::VisitorId::new(),
        );
        thread.closed_at = Some(stamped.at);
        let back: crate::threads::model::Thread = decode(&encode(&thread).unwrap()).unwrap();
        assert_eq!(back, thread);
    }

    #[test]
    fn binary_records_written_with_string_times_still_read() {
        let before = Before {
            at: "2026-01-01T00:00:00.5Z".parse().unwrap(),
            closed: Some("2026-01-02T00:00:00Z".parse().unwrap()),
        };
        let old = encode(&before).unwrap();
        assert!(old.windows(4).any(|w| w == b"2026"), "strings inside");
        let read: Stamped = decode(&old).unwrap();
        assert_eq!((read.at, read.closed), (before.at, before.closed));
        // A model as it was stored before: a read marker with a string time.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct OldMarker {
            up_to: crate::ids::MessageId,
            seen: u64,
            at: DateTime<Utc>,
        }
        let marker = OldMarker {
            up_to: crate::ids::MessageId::new(),
            seen: 3,
            at: before.at,
        };
        let read: crate::threads::model::ReadMarker = decode(&encode(&marker).unwrap()).unwrap();
        assert_eq!(
            (read.up_to, read.seen, read.at),
            (marker.up_to, 3, before.at)
        );
        // A time that is neither refuses the record.
        let bad = encode(&std::collections::BTreeMap::from([("at", true)])).unwrap();
        assert!(decode::<Stamped>(&bad).is_err());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255]), None);
    }
}
