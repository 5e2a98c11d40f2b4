//! visitors.

pub mod attributes;
pub mod http;
pub mod model;
pub mod service;
