//! `mychat-load history`: what a long history costs the reports and the
//! search. Seeds `--threads` closed conversations over `--days` past days
//! (three messages, an answer, a close and a rating each) straight into
//! the store — past timestamps cannot be sent through the API — in writes
//! that emit the same events as real ones, so the reports hook counts
//! them; then times `reports::service::summary` for several ranges and
//! filters, the search index's rebuild from that store, and searches.

use std::time::Instant;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use mychat::AppState;
use mychat::events::Event;
use mychat::ids::{MessageId, SpaceId};
use mychat::messages::model::{Message, SenderType};
use mychat::reports::service::{Query, summary};
use mychat::threads::model::{Rating, ThreadStatus};
use mychat::visitors::model::{Visitor, VisitorMetadata};

use super::{Fallible, ScratchDir, build_app, library_org, library_space};

#[derive(Args)]
pub struct HistoryArgs {
    /// Conversations to seed.
    #[arg(long, default_value_t = 100_000)]
    threads: usize,
    /// Days they are spread over, ending today.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Where the temporary data dir is created.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Timing {
    what: String,
    /// Median of the runs, in milliseconds.
    ms: f64,
}

/// The median of `runs` timed calls of `f`, in milliseconds.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

const WORDS: &[&str] = &[
    "order", "parcel", "invoice", "refund", "delivery", "address", "payment", "discount",
];

pub async fn history(args: &HistoryArgs, json: bool) -> Fallible<()> {
    let dir = ScratchDir::new(args.data_dir.as_deref())?;
    let app = build_app(&dir).await?;
    let state = app.state().clone();
    let (caller, first) = library_org(&state).await?;
    let org = caller.agent.organization_id;
    let mut spaces = vec![first.id];
    for _ in 0..2 {
        spaces.push(library_space(&state, org).await?.id);
    }
    let started = Instant::now();
    let chunk = 500;
    let mut seeded = 0;
    while seeded < args.threads {
        let n = chunk.min(args.threads - seeded);
        seed(&state, &spaces, caller.agent.id, seeded, n, args.days).await?;
        seeded += n;
    }
    let seed_secs = started.elapsed().as_secs_f64();

    let today = Utc::now().date_naive();
    let range = |days: u64| Query {
        from: today - chrono::Days::new(days - 1),
        to: today,
        space: None,
        team: None,
        agent: None,
    };
    let mut timings = Vec::new();
    for (what, q) in [
        ("summary, 1 day", range(1)),
        ("summary, 30 days", range(30)),
        ("summary, 90 days", range(args.days.max(1) as u64)),
        (
            "summary, 90 days, one space",
            Query {
                space: Some(spaces[1]),
                ..range(args.days.max(1) as u64)
            },
        ),
        ("summary, 366 days", range(366)),
    ] {
        let ms = time(9, || {
            summary(&state, org, &q).map(|s| s.numbers.conversations)
        });
        timings.push(Timing {
            what: what.to_owned(),
            ms,
        });
    }
    let check = summary(&state, org, &range(args.days.max(1) as u64)).map_err(|e| e.to_string())?;

    // The search index, rebuilt from this store as after a crash or restore.
    let rebuild = Instant::now();
    state
        .search
        .start(state.store.clone())
        .map_err(|e| e.to_string())?;
    state.search.flush().await;
    let rebuild_secs = rebuild.elapsed().as_secs_f64();
    for (what, q) in [
        ("search, a word in every 8th message", "refund"),
        ("search, a prefix", "deliv"),
        ("search, two words", "order parcel"),
        ("search, a rare word", "t4242"),
    ] {
        let ms = time(9, || state.search.find(org, q, true, 1000).len());
        timings.push(Timing {
            what: what.to_owned(),
            ms,
        });
    }
    let documents = state.search.documents();
    state.search.stop().await;
    state.store.shutdown().await;

    if json {
        println!(
            "{}",
            serde_json::json!({
                "threads": args.threads, "days": args.days, "seedSeconds": seed_secs,
                "counted": check.numbers.conversations, "rebuildSeconds": rebuild_secs,
                "indexDocuments": documents, "timings": timings,
            })
        );
    } else {
        println!(
            "{} conversations over {} days seeded in {seed_secs:.1} s ({:.0}/s, reports hook included); the report counts {}",
            args.threads,
            args.days,
            args.threads as f64 / seed_secs,
            check.numbers.conversations
        );
        println!(
            "search index rebuilt from the store in {rebuild_secs:.1} s ({documents} documents)"
        );
        for t in &timings {
            println!("{:<40} {:>8.2} ms", t.what, t.ms);
        }
    }
    Ok(())
}

/// `n` closed, rated conversations, numbered from `from`, in one write.
async fn seed(
    state: &AppState,
    spaces: &[SpaceId],
    agent: mychat::ids::AgentId,
    from: usize,
    n: usize,
    days: u32,
) -> Fallible<()> {
    let spaces = spaces.to_vec();
    state
        .write(move |tx| {
            for i in from..from + n {
                let space = spaces[i % spaces.len()];
                let start = Utc::now()
                    - chrono::Duration::days((i % days.max(1) as usize) as i64)
                    - chrono::Duration::minutes(30);
                let visitor = Visitor {
                    id: mychat::ids::VisitorId::new(),
                    chat_space_id: space,
                    number: i as u64 + 1,
                    display_name: Some(format!("Visitor {i}")),
                    email: None,
                    phone: None,
                    external_id: None,
                    verified: false,
                    attributes: Default::default(),
                    metadata: VisitorMetadata::default(),
                    created_at: start,
                    email_opt_out: false,
                    notes: None,
                };
                tx.put(&visitor)?;
                let mut thread = mychat::threads::rules::new_thread(space, visitor.id);
                thread.created_at = start;
                thread.last_activity_at = start;
                tx.put(&thread)?;
                tx.emit(Event::ThreadNew {
                    thread: thread.clone(),
                });
                let texts = [
                    format!("Hello, my {} t{i} is late", WORDS[i % WORDS.len()]),
                    format!("Sorry about your {}", WORDS[(i + 3) % WORDS.len()]),
                    "Thank you".to_owned(),
                ];
                for (k, text) in texts.into_iter().enumerate() {
                    let at =
                        start + chrono::Duration::seconds(20 + 90 * k as i64 + (i % 600) as i64);
                    let from_agent = k == 1;
                    let message = Message {
                        id: MessageId::new(),
                        thread_id: thread.id,
                        sender_type: if from_agent {
                            SenderType::Agent
                        } else {
                            SenderType::Visitor
                        },
                        sender_id: if from_agent { agent.0 } else { visitor.id.0 },
                        sender_name: None,
                        content: text,
                        internal: false,
                        reply_to_id: None,
                        attachments: Vec::new(),
                        client_msg_id: None,
                        created_at: at,
                        edited_at: None,
                        deleted_at: None,
                        event: None,
                    };
                    if from_agent {
                        mychat::threads::rules::assign(&mut thread, agent);
                    }
                    thread.last_activity_at = at;
                    tx.put(&message)?;
                    tx.emit(Event::MessageNew {
                        message,
                        thread: thread.clone(),
                    });
                }
                let closed = thread.last_activity_at + chrono::Duration::minutes(5);
                thread.status = ThreadStatus::Closed;
                thread.closed_at = Some(closed);
                thread.rating = Some(Rating {
                    score: 3 + (i % 3) as u8,
                    comment: None,
                    at: closed,
                });
                tx.put(&thread)?;
                tx.emit(Event::ThreadUpdated { thread });
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("seeding: {e}"))
}
