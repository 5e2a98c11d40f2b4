//! "Usually replies within N min": the median time from a visitor's first
//! message to the first answer anyone gave, over the space's most recent
//! answered conversations. Computed from storage at most every few
//! minutes per space (the widget's config is read on every page view).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::SpaceId;
use crate::messages::model::SenderType;
use crate::store::Reader;
use crate::threads::model::ThreadStatus;

/// Conversations looked at: the most recent ones.
const RECENT: usize = 100;
/// Fewer answered ones than this say nothing worth showing.
const AT_LEAST: usize = 3;
/// How long a computed figure is used before it is computed again.
const FRESH_FOR: Duration = Duration::from_secs(300);

/// Per space: when the figure was computed, and the figure.
type Computed = HashMap<SpaceId, (Instant, Option<u32>)>;

static CACHE: Mutex<Option<Computed>> = Mutex::new(None);

/// Whole minutes (at least 1), or None without enough answered conversations.
pub fn minutes<R: Reader + ?Sized>(read: &R, space: SpaceId) -> Option<u32> {
    if let Some((at, value)) = CACHE
        .lock()
        .expect("reply time cache")
        .get_or_insert_with(HashMap::new)
        .get(&space)
        && at.elapsed() < FRESH_FOR
    {
        return *value;
    }
    let value = compute(read, space);
    CACHE
        .lock()
        .expect("reply time cache")
        .get_or_insert_with(HashMap::new)
        .insert(space, (Instant::now(), value));
    value
}

fn compute<R: Reader + ?Sized>(read: &R, space: SpaceId) -> Option<u32> {
    let statuses = [
        ThreadStatus::Active,
        ThreadStatus::Pending,
        ThreadStatus::Closed,
        ThreadStatus::Expired,
    ];
    let threads = read
        .threads_in_spaces(&[space], &statuses, None, RECENT, &|t| !t.is_object_bound())
        .ok()?;
    let mut waits: Vec<i64> = Vec::new();
    for t in &threads.items {
        let Ok(messages) = read.messages(t.id, None, false, 50) else {
            continue;
        };
        let shown = || messages.iter().filter(|m| !m.internal);
        let Some(asked) = shown().find(|m| m.sender_type == SenderType::Visitor) else {
            continue;
        };
        let answered = shown().find(|m| {
            m.id > asked.id && matches!(m.sender_type, SenderType::Agent | SenderType::Integration)
        });
        if let Some(answer) = answered {
            waits.push((answer.created_at - asked.created_at).num_seconds().max(0));
        }
    }
    if waits.len() < AT_LEAST {
        return None;
    }
    waits.sort_unstable();
    let median = waits[waits.len() / 2];
    Some(u32::try_from(((median + 59) / 60).max(1)).unwrap_or(u32::MAX))
}
