//! visitors.

pub mod attributes;
pub mod gdpr;
pub mod http;
pub mod model;
pub mod service;
