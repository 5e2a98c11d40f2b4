//! The socket side of `mychat-load`: idle widget sockets and what each
//! costs the server in memory (`idle`), visitor → agent delivery latency
//! at a paced rate with durable commits (`deliver`), and one space watched
//! by many agent sockets (`fanout`), and hours of churn compressed into
//! minutes with exactly-once, resume and leak checks (`soak`).
//!
//! The clients are tokio-tungstenite sockets with small buffers, so one
//! process can hold tens of thousands of them. Every measured message
//! carries its send time in its content (`t=<µs since start>;`), so the
//! socket that receives it works out the latency without a shared table.
//! Sends are open loop: each visitor sends on its own clock whether or not
//! earlier messages were answered, so a slow server shows up as latency,
//! not as a lower send rate.
//!
//! `server` starts (or finds) the server under load, `client` sets it up
//! over REST and opens sockets, `procfs` reads memory and CPU from /proc;
//! `idle` and `traffic` (deliver and fanout) are the scenarios.

mod client;
mod idle;
mod procfs;
mod server;
mod soak;
mod traffic;

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

pub use idle::{IdleArgs, idle};
pub use soak::{SoakArgs, soak};
pub use traffic::{DeliverArgs, FanoutArgs, deliver, fanout};

type Fallible<T> = Result<T, String>;
type Socket = WebSocketStream<TcpStream>;
