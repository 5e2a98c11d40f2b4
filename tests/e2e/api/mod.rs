//! The REST API over a real server.

mod abuse;
mod access;
mod accounts;
mod attach_later;
mod attachments;
mod audit;
mod auth;
mod avatars;
mod email;
mod gdpr;
mod identity;
mod integrations;
mod labels;
mod messages;
mod ops;
mod push;
mod ratings;
mod reports;
mod search;
mod spaces;
mod templates;
mod threads;
mod visitors;
mod webhooks;
mod widget;
mod widget_assets;
