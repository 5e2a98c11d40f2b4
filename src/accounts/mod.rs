//! Organizations, agents, teams; registration and login.

pub mod admin;
pub mod avatar;
pub mod http;
pub mod model;
pub mod people;
pub mod service;
