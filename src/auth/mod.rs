//! Authentication: password hashing, access tokens, opaque tokens, rate
//! limits, and the extractors that turn a request into a verified caller.

pub mod extract;
pub mod jwt;
pub mod limits;
pub mod password;
pub mod tokens;

pub use extract::{AdminAuth, AgentAuth, Caller, OwnerAuth, VisitorAuth};
