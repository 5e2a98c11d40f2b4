//! Every test that runs the server in-process: one test binary, one harness.
//!
//! `harness` starts a real server on port 0 with a temporary data dir and
//! speaks its REST API, its sockets and a real browser; `api` covers the
//! REST API, `realtime` the WebSockets, `browser` the widget and the agent
//! app in headless Chromium, `tls` HTTPS with certificates from Pebble and
//! from files, `http2` HTTP/2 over it. Tests that run the `mychat`
//! executable itself are in `tests/exe`.

mod api;
mod browser;
mod faults;
mod harness;
mod http2;
mod realtime;
mod tls;
