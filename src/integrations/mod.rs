//! The integrator's half (PRODUCT.md §4a): API tokens, signing keys and
//! the member tokens they sign, members, object-bound conversations with
//! access scopes (the management API), and the member chat API.

pub mod auth;
pub mod credentials;
pub mod dialogs;
pub mod http;
pub mod identity;
pub mod members;
pub mod model;
pub mod objects;
pub mod views;
