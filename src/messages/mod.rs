//! messages.

pub mod history;
pub mod http;
pub mod model;
pub mod send;
pub mod service;
