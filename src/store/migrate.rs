//! Schema versions. A new database starts at [`CURRENT`]; an older one is
//! brought forward one step at a time inside one transaction; a newer one is
//! refused rather than misread.

use redb::{Database, ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::file::def;
use super::tables::{self, ALL, META, Table};
use super::{Error, Result};

/// 1: records as JSON. 2: records in the binary format ([`codec::BINARY`]).
/// 3: times in the binary records as integers ([`codec::stamp`]).
pub const CURRENT: u64 = 3;
/// Where the META table keeps the schema version.
pub const VERSION_KEY: &[u8] = b"schema_version";
const KEY: &[u8] = VERSION_KEY;

/// Step `i` brings a database from version `i + 1` to `i + 2`.
type Step = fn(&WriteTransaction) -> Result<()>;
const STEPS: &[Step] = &[to_binary, integer_times];

/// Schema 1 → 2: every record and stored value from JSON to the binary
/// format, decoded as its own type and encoded again. Values the step does
/// not know stay JSON, which every read still understands.
fn to_binary(txn: &WriteTransaction) -> Result<()> {
    use crate::accounts::model::{Agent, Invite, Organization, RefreshToken, Team};
    use crate::integrations::model::{ApiToken, Member, SigningKey};
    use crate::push::model::{Push, PushSubscription};
    use crate::reports::model::{Cell, Facts};
    use crate::webhooks::model::{Delivery, Webhook};
    let mut n = 0;
    n += rewrite::<Organization>(txn, tables::ORGS)?;
    n += rewrite::<Agent>(txn, tables::AGENTS)?;
    n += rewrite::<Team>(txn, tables::TEAMS)?;
    n += rewrite::<crate::spaces::model::ChatSpace>(txn, tables::SPACES)?;
    n += rewrite::<crate::visitors::model::Visitor>(txn, tables::VISITORS)?;
    n += rewrite::<crate::threads::model::Thread>(txn, tables::THREADS)?;
    n += rewrite::<crate::messages::model::Message>(txn, tables::MESSAGES)?;
    n += rewrite::<crate::templates::model::Template>(txn, tables::TEMPLATES)?;
    n += rewrite::<RefreshToken>(txn, tables::REFRESH_TOKENS)?;
    n += rewrite::<Invite>(txn, tables::INVITES)?;
    n += rewrite::<crate::attachments::model::Attachment>(txn, tables::ATTACHMENTS)?;
    n += rewrite::<ApiToken>(txn, tables::API_TOKENS)?;
    n += rewrite::<SigningKey>(txn, tables::SIGNING_KEYS)?;
    n += rewrite::<Member>(txn, tables::MEMBERS)?;
    n += rewrite::<Webhook>(txn, tables::WEBHOOKS)?;
    n += rewrite::<Delivery>(txn, tables::DELIVERIES)?;
    n += rewrite::<PushSubscription>(txn, tables::PUSH_SUBSCRIPTIONS)?;
    n += rewrite::<Push>(txn, tables::PUSHES)?;
    n += rewrite::<crate::audit::model::AuditEvent>(txn, tables::AUDIT)?;
    n += rewrite::<crate::email::model::Mail>(txn, tables::MAILS)?;
    n += rewrite::<crate::labels::model::Label>(txn, tables::LABELS)?;
    n += rewrite::<Facts>(txn, tables::REPORT_THREADS)?;
    n += rewrite::<Cell>(txn, tables::REPORT_CELLS)?;
    if n > 0 {
        tracing::info!(records = n, "records moved to the binary format");
    }
    Ok(())
}

/// Schema 2 → 3: nothing to rewrite, as a binary record written with
/// string times still reads. The version moves so that a server of
/// schema 2, which would misread the integer times written from now on,
/// refuses the file instead.
fn integer_times(_: &WriteTransaction) -> Result<()> {
    Ok(())
}

/// Rewrites the JSON values of one table in the binary format, a chunk of
/// keys at a time (a long history does not sit in memory at once).
fn rewrite<T: Serialize + DeserializeOwned>(txn: &WriteTransaction, table: Table) -> Result<usize> {
    const CHUNK: usize = 4096;
    let mut t = txn.open_table(def(table))?;
    let mut after: Option<Vec<u8>> = None;
    let mut done = 0;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        {
            let range = match &after {
                Some(k) => t.range::<&[u8]>((
                    std::ops::Bound::Excluded(k.as_slice()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => t.range::<&[u8]>(..)?,
            };
            for entry in range.take(CHUNK) {
                let (k, v) = entry?;
                chunk.push((k.value().to_vec(), v.value().to_vec()));
            }
        }
        let Some((last, _)) = chunk.last() else {
            return Ok(done);
        };
        after = Some(last.clone());
        let full = chunk.len() == CHUNK;
        for (key, value) in chunk.iter().filter(|(_, v)| codec::is_json(v)) {
            let record: T = codec::decode(value)?;
            t.insert(key.as_slice(), codec::encode(&record)?.as_slice())?;
            done += 1;
        }
        if !full {
            return Ok(done);
        }
    }
}

/// The schema version a database records, if any.
pub fn version(txn: &ReadTransaction) -> Result<Option<u64>> {
    let meta = txn.open_table(def(META))?;
    let v = meta.get(KEY)?.map(|v| v.value().to_vec());
    Ok(v.and_then(|b| b.try_into().ok().map(u64::from_be_bytes)))
}

pub fn run(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    for table in ALL {
        txn.open_table(def(*table))?;
    }
    let found = {
        let meta = txn.open_table(def(META))?;
        let v = meta.get(KEY)?.map(|v| v.value().to_vec());
        v.and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
    };
    let version = match found {
        Some(v) => v,
        None => {
            let orgs = txn.open_table(def(tables::ORGS))?;
            if orgs.is_empty()? { CURRENT } else { 1 }
        }
    };
    if version > CURRENT {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: CURRENT,
        });
    }
    for step in STEPS.iter().skip((version - 1) as usize) {
        step(&txn)?;
    }
    debug_assert_eq!(STEPS.len() as u64, CURRENT - 1);
    txn.open_table(def(META))?
        .insert(KEY, CURRENT.to_be_bytes().as_slice())?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file as schema `version` left it, holding `records`
    /// (table, key, stored bytes).
    fn written_at(path: &std::path::Path, version: u64, records: &[(Table, u128, Vec<u8>)]) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        for table in ALL {
            txn.open_table(def(*table)).unwrap();
        }
        txn.open_table(def(META))
            .unwrap()
            .insert(KEY, version.to_be_bytes().as_slice())
            .unwrap();
        for (table, key, bytes) in records {
            txn.open_table(def(*table))
                .unwrap()
                .insert(key.to_be_bytes().as_slice(), bytes.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    /// A database of schema 1 (JSON records) opens, moves to the binary
    /// format, and reads back the same records.
    #[test]
    fn json_records_of_schema_1_are_migrated() {
        use crate::store::{Reader, Store};
        use crate::threads::model::Thread;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let mut thread = crate::threads::rules::new_thread(
            crate::ids::SpaceId::new(),
            crate::ids::VisitorId::new(),
        );
        thread.subject = Some("Where is my order?".into());
        let org = crate::accounts::model::Organization {
            id: crate::ids::OrgId::new(),
            name: "Acme".into(),
            created_at: chrono::Utc::now(),
        };
        // Written as version 1 wrote it: JSON values, schema_version 1.
        written_at(
            &path,
            1,
            &[
                (
                    tables::THREADS,
                    thread.id.as_u128(),
                    serde_json::to_vec(&thread).unwrap(),
                ),
                (
                    tables::ORGS,
                    org.id.as_u128(),
                    serde_json::to_vec(&org).unwrap(),
                ),
            ],
        );
        let store = Store::open(&path, 16).unwrap();
        let read = store.read().unwrap();
        let back: Thread = read.thread(thread.id).unwrap().expect("the thread");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&thread).unwrap()
        );
        assert_eq!(read.org(org.id).unwrap().expect("the org").name, "Acme");
        let raw = read
            .get_raw(tables::THREADS, &thread.id.as_u128().to_be_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(raw[0], codec::BINARY, "stored in the binary format now");
        let version = read.get_raw(META, KEY).unwrap().unwrap();
        assert_eq!(version, CURRENT.to_be_bytes());
    }

    /// A database of schema 2 (binary records, times as strings) opens
    /// at 3 without a rewrite: its records read as they were.
    #[test]
    fn binary_records_of_schema_2_read_on_at_schema_3() {
        use crate::ids::{OrgId, SpaceId};
        use crate::reports::model::Facts;
        use crate::store::{Reader, Store};
        /// A conversation's report facts as schema 2 wrote them: the same
        /// fields, the time as chrono's string.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Schema2Facts {
            org: OrgId,
            space: SpaceId,
            team: Option<crate::ids::TeamId>,
            agent: Option<crate::ids::AgentId>,
            day: u32,
            messages: u64,
            first_visitor_at: Option<chrono::DateTime<chrono::Utc>>,
            first_response: Option<u32>,
            resolution: Option<u32>,
            csat: Option<u8>,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let at: chrono::DateTime<chrono::Utc> = "2026-11-30T10:00:00.123456789Z".parse().unwrap();
        let old = Schema2Facts {
            org: OrgId::new(),
            space: SpaceId::new(),
            team: None,
            agent: None,
            day: 20_422,
            messages: 4,
            first_visitor_at: Some(at),
            first_response: Some(30),
            resolution: None,
            csat: Some(5),
        };
        let bytes = codec::encode(&old).unwrap();
        assert!(bytes.windows(4).any(|w| w == b"2026"), "a string time");
        written_at(&path, 2, &[(tables::REPORT_THREADS, 7, bytes.clone())]);
        let key = 7u128.to_be_bytes();
        let store = Store::open(&path, 16).unwrap();
        let read = store.read().unwrap();
        let facts: Facts = read
            .value(tables::REPORT_THREADS, &key)
            .unwrap()
            .expect("the facts");
        assert_eq!(
            (
                facts.org,
                facts.messages,
                facts.first_visitor_at,
                facts.csat
            ),
            (old.org, 4, Some(at), Some(5))
        );
        let raw = read.get_raw(tables::REPORT_THREADS, &key).unwrap();
        assert_eq!(raw.as_deref(), Some(bytes.as_slice()), "not rewritten");
        assert_eq!(
            read.get_raw(META, KEY).unwrap().unwrap(),
            3u64.to_be_bytes()
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let db = Database::create(&path).unwrap();
        run(&db).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(def(META))
            .unwrap()
            .insert(KEY, (CURRENT + 1).to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert!(matches!(run(&db), Err(Error::SchemaTooNew { .. })));
    }
}
