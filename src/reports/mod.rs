//! Reports (`GET /reports/summary`): conversations, messages, first
//! response and resolution times (median, p90), CSAT, by day, for a space,
//! team or agent. Counted in the write path by the store's reports hook
//! (`outbox`), so a report reads a few cells per day (`service`).

pub mod http;
pub mod model;
pub mod outbox;
pub mod service;
