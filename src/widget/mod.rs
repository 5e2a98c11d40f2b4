//! The widget's public REST side.

pub mod http;
