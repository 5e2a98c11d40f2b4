//! Schema versions. A new database starts at [`CURRENT`]; an older one is
//! brought forward one step at a time inside one transaction; a newer one is
//! refused rather than misread.

use redb::{Database, ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::tables::{self, ALL, META};
use super::{Error, Result};

pub const CURRENT: u64 = 1;
const KEY: &[u8] = b"schema_version";

/// Step `i` brings a database from version `i + 1` to `i + 2`.
type Step = fn(&WriteTransaction) -> Result<()>;
const STEPS: &[Step] = &[];

/// The schema version a database records, if any.
pub fn version(txn: &ReadTransaction) -> Result<Option<u64>> {
    let meta = txn.open_table(META)?;
    let v = meta.get(KEY)?.map(|v| v.value().to_vec());
    Ok(v.and_then(|b| b.try_into().ok().map(u64::from_be_bytes)))
}

pub fn run(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    for table in ALL {
        txn.open_table(*table)?;
    }
    let found = {
        let meta = txn.open_table(META)?;
        let v = meta.get(KEY)?.map(|v| v.value().to_vec());
        v.and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
    };
    let version = match found {
        Some(v) => v,
        None => {
            let orgs = txn.open_table(tables::ORGS)?;
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
    txn.open_table(META)?
        .insert(KEY, CURRENT.to_be_bytes().as_slice())?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let db = Database::create(&path).unwrap();
        run(&db).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(KEY, (CURRENT + 1).to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert!(matches!(run(&db), Err(Error::SchemaTooNew { .. })));
    }
}
