//! threads.

pub mod assignment;
pub mod http;
pub mod model;
pub mod rules;
pub mod service;
