//! Signed webhooks (PRODUCT.md §4a, the Standard Webhooks specification):
//! the admin API, the outbox rows written in the same commit as the event
//! that caused them, and the worker that delivers them at least once.

pub mod http;
pub mod model;
pub mod outbox;
pub mod service;
pub mod target;
pub mod worker;
