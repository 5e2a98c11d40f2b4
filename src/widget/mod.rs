//! The widget's public REST side: configuration and sessions keyed by the
//! space's widget key, and everything else by the visitor's session token.
//! Every call is Origin-checked against the space's allowed domains.

pub mod cors;
pub mod http;
pub mod identity;
pub mod reply_time;
pub mod service;
