//! Attachments: multipart uploads streamed to a temporary file and kept only
//! when they pass the space's file policy; the guarded download route;
//! thumbnails of images; retention. Metadata lives in the store, bytes
//! under `data_dir/attachments/` by random names.

pub mod binding;
pub mod files;
pub mod http;
pub mod model;
pub mod policy;
pub mod retention;
pub mod service;
pub mod thumbs;
