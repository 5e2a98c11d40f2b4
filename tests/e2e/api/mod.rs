//! The REST API over a real server.

mod accounts;
mod attachments;
mod auth;
mod messages;
mod spaces;
mod templates;
mod threads;
mod visitors;
mod widget;
mod widget_assets;
