//! The store's reports hook: inside the write that changes a conversation,
//! moves that conversation's numbers in the report cells. A report is then
//! a read of a few cells per day, whatever the number of messages.

use super::model::{Cell, Facts};
use crate::events::Event;
use crate::messages::model::SenderType;
use crate::store::tables::{REPORT_CELLS, REPORT_THREADS};
use crate::store::{KeyBuf, Reader, Result, WriteTx, id_key};
use crate::threads::model::ThreadStatus;

pub fn cell_key(f: &Facts) -> Vec<u8> {
    KeyBuf::new()
        .id(f.org.as_u128())
        .bytes(&f.day.to_be_bytes())
        .id(f.space.as_u128())
        .id(f.team.map_or(0, |t| t.as_u128()))
        .id(f.agent.map_or(0, |a| a.as_u128()))
        .done()
}

/// Takes `from`'s numbers out of their cell and adds `to`'s to theirs: one
/// read and one write when both are the same cell (a message in a
/// conversation whose day, space, team and agent did not change).
fn move_cells(tx: &mut WriteTx<'_>, from: Option<&Facts>, to: &Facts) -> Result<()> {
    let key = cell_key(to);
    match from {
        Some(old) if cell_key(old) == key => {
            let mut cell: Cell = tx.kept(REPORT_CELLS, &key)?.unwrap_or_default();
            cell.apply(old, -1);
            cell.apply(to, 1);
            store_cell(tx, &key, cell)
        }
        Some(old) => {
            move_cell(tx, old, -1)?;
            move_cell(tx, to, 1)
        }
        None => move_cell(tx, to, 1),
    }
}

fn move_cell(tx: &mut WriteTx<'_>, f: &Facts, n: i64) -> Result<()> {
    let key = cell_key(f);
    let mut cell: Cell = tx.kept(REPORT_CELLS, &key)?.unwrap_or_default();
    cell.apply(f, n);
    store_cell(tx, &key, cell)
}

/// Cells and conversations' numbers are kept values: a batch of messages
/// into conversations of one cell writes that cell once.
fn store_cell(tx: &mut WriteTx<'_>, key: &[u8], cell: Cell) -> Result<()> {
    let cell = (!cell.is_empty()).then_some(cell);
    tx.keep(REPORT_CELLS, key, cell)
}

pub fn count(tx: &mut WriteTx<'_>, events: &[Event]) -> Result<()> {
    for event in events {
        let (thread, message) = match event {
            Event::ThreadNew { thread } | Event::ThreadUpdated { thread } => (thread, None),
            Event::MessageNew { thread, message } => (thread, Some(message)),
            _ => continue,
        };
        // Conversations with visitors; an integrator's object threads are not.
        if thread.is_object_bound() {
            continue;
        }
        let key = id_key(thread.id.as_u128());
        let old: Option<Facts> = tx.kept(REPORT_THREADS, &key)?;
        let mut new = match &old {
            Some(f) => f.clone(),
            None => match tx.space(thread.chat_space_id)? {
                Some(space) => Facts::start(space.organization_id, thread),
                None => continue,
            },
        };
        new.space = thread.chat_space_id;
        new.team = thread.team_id;
        new.agent = thread.assigned_agent_id;
        if let Some(m) = message.filter(|m| !m.internal) {
            match m.sender_type {
                SenderType::Visitor => {
                    new.messages += 1;
                    new.first_visitor_at.get_or_insert(m.created_at);
                }
                SenderType::Agent | SenderType::Integration => {
                    new.messages += 1;
                    if let (None, Some(asked)) = (new.first_response, new.first_visitor_at) {
                        new.first_response =
                            Some((m.created_at - asked).num_seconds().max(0) as u32);
                    }
                }
                _ => {}
            }
        }
        new.resolution = match (thread.status, thread.closed_at) {
            (ThreadStatus::Closed, Some(at)) => {
                Some((at - thread.created_at).num_seconds().max(0) as u32)
            }
            _ => None,
        };
        new.csat = thread.rating.as_ref().map(|r| r.score);
        if old.as_ref() == Some(&new) {
            continue;
        }
        move_cells(tx, old.as_ref(), &new)?;
        tx.keep(REPORT_THREADS, &key, Some(new))?;
    }
    Ok(())
}

/// Forgets the conversations' own records (an erasure); the counts they
/// added stay, as they name nobody.
pub fn forget(tx: &mut WriteTx<'_>, threads: &[crate::ids::ThreadId]) -> Result<()> {
    for t in threads {
        tx.delete_raw(REPORT_THREADS, &id_key(t.as_u128()))?;
    }
    Ok(())
}
