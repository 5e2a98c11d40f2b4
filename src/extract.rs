//! Request extractors whose rejections are the JSON error envelope.

use axum::extract::{FromRequest, FromRequestParts};
use serde::{Deserialize, Deserializer};

use crate::error::AppError;
use crate::state::AppState;

/// `Json<T>` that answers malformed bodies with a 400 envelope.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` that answers malformed query strings with a 400 envelope.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>`: a malformed id is a 404, like an id that names nothing.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

/// The client's address: the peer's, or the one a trusted proxy forwarded
/// (`http.trusted_proxies`, see [`crate::net::client_ip`]).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let http = &state.config.http;
        Ok(ClientIp(crate::net::client_ip(
            peer,
            &http.trusted_proxies,
            http.forwarded_header,
            &parts.headers,
        )))
    }
}

/// For `#[serde(default, deserialize_with = "crate::extract::present")]`:
/// tells a field sent as `null` (`Some(None)`) from one left out (`None`).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
