//! Labels: the organization's own tags for conversations ("billing",
//! "bug"), each with a colour; agents put them on threads and filter
//! lists by them.

pub mod http;
pub mod model;
pub mod service;
