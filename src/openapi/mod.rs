//! The OpenAPI 3.1 document of the REST API, generated from the handlers'
//! `#[utoipa::path]` annotations and the request types' schemas, served at
//! `GET /api/v1/openapi.json` and rendered by the reference page at
//! `/api/docs` (`assets/apidocs/`).
//!
//! Annotations name a credential; [`document`] turns each into the
//! security schemes that carry it (`agent`: an agent's JWT or an API token
//! in the header or the `api_token` query; `management`: an API token
//! only; `member`: a member token; `visitor`: a widget session token).
//! An operation without one is public.

mod doc;
pub mod schemas;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoResponses, ToSchema};

use crate::state::AppState;

pub use doc::document;

/// `{"error": {"code", "message"}}`: every failure a client can see.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "thread not found"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable; clients switch on it (`validation_failed`, `unauthorized`,
    /// `forbidden`, `not_found`, `already_claimed`, `rate_limited`, …).
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

/// A whole list in one answer, written as a `store::Page` whose
/// `nextCursor` is always null (paginated lists answer `store::Page`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct WholeList<T> {
    pub items: Vec<T>,
    #[schema(schema_with = null_schema)]
    pub next_cursor: Option<()>,
}

fn null_schema() -> Schema {
    ObjectBuilder::new().schema_type(Type::Null).into()
}

/// A JSON object; its fields are described on the operation.
#[derive(Serialize, ToSchema)]
#[schema(as = Object)]
pub struct JsonObject(serde_json::Map<String, serde_json::Value>);

/// A file upload: `multipart/form-data` with one file in the field `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The bytes of a file.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Binary(Vec<u8>);

/// Every error status a request can end in, each with the error envelope
/// (`error::AppError` decides which).
pub struct Errors;

impl IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        use utoipa::openapi::ResponseBuilder;
        use utoipa::openapi::content::ContentBuilder;
        let statuses: [(&str, &str); 12] = [
            ("400", "The request is malformed or a field is invalid"),
            ("401", "No credentials, or bad or expired ones"),
            (
                "403",
                "Authenticated, but not allowed (role, scope, origin)",
            ),
            (
                "404",
                "Absent, or belonging to another organization (never told apart)",
            ),
            ("409", "The object's state does not allow it"),
            ("413", "The body or file is too large"),
            ("415", "The content type or file type is not accepted"),
            ("422", "Understood but refused"),
            (
                "429",
                "Too many requests (`Retry-After` says how long to wait)",
            ),
            ("500", "Internal error (logged; never detailed)"),
            (
                "503",
                "Not ready, shutting down, or the request took too long",
            ),
            ("507", "The disk is too full to take more"),
        ];
        statuses
            .into_iter()
            .map(|(status, description)| {
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                "ErrorBody",
                            ))))
                            .build(),
                    )
                    .build();
                (status.to_owned(), RefOr::T(response))
            })
            .collect()
    }
}

/// `/openapi.json`, nested under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The reference page `/api/docs`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs", get(page))
        .route("/api/docs/{file}", get(page_file))
}

/// The document, rendered once.
fn rendered() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().expect("the document serializes"))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "system",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = crate::openapi::JsonObject))
)]
pub(crate) async fn openapi_json() -> Response {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-cache"),
        ],
        rendered(),
    )
        .into_response()
}

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn page() -> Response {
    asset("index.html")
}

async fn page_file(crate::extract::ApiPath(file): crate::extract::ApiPath<String>) -> Response {
    asset(&file)
}

/// A file of the reference page (`assets/apidocs/`).
fn asset(file: &str) -> Response {
    let kind = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => return crate::error::AppError::NotFound("file").into_response(),
    };
    match crate::web::Assets::get(&format!("apidocs/{file}")) {
        Some(found) => (
            [
                (CONTENT_TYPE, kind),
                (CACHE_CONTROL, "no-cache"),
                (CONTENT_SECURITY_POLICY, PAGE_CSP),
            ],
            found.data.into_owned(),
        )
            .into_response(),
        None => crate::error::AppError::NotFound("file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Operations whose success body is free-form on purpose.
    const FREE_FORM: &[(&str, &str)] = &[
        // The document itself: its shape is OpenAPI 3.1's, described by
        // that specification rather than by this one.
        ("get", "/api/v1/openapi.json"),
    ];

    /// A schema that says no more than "some JSON object" (or nothing).
    fn is_generic(schema: &Value, schemas: &Value) -> bool {
        if let Some(name) = schema["$ref"].as_str() {
            let name = name.rsplit('/').next().unwrap_or_default();
            return name == "Object" || is_generic(&schemas[name], schemas);
        }
        if schema["type"] == "array" {
            return is_generic(&schema["items"], schemas);
        }
        let composed = ["allOf", "oneOf", "anyOf"]
            .iter()
            .any(|k| schema.get(k).is_some());
        let typed = schema.get("type").is_some_and(|t| t != "object");
        let described = schema["properties"]
            .as_object()
            .is_some_and(|p| !p.is_empty());
        !(composed || typed || described)
    }

    #[test]
    fn every_success_body_has_its_own_schema() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let mut generic = Vec::new();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op["responses"].as_object() else {
                    continue;
                };
                for (status, response) in responses {
                    if !status.starts_with('2') {
                        continue;
                    }
                    let json = response["content"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(media, _)| media.contains("json"));
                    for (media, content) in json {
                        checked += 1;
                        let free = FREE_FORM.contains(&(method.as_str(), path.as_str()));
                        if is_generic(&content["schema"], schemas) != free {
                            generic.push(format!("{method} {path} {status} {media}"));
                        }
                    }
                }
            }
        }
        assert!(checked > 90, "only {checked} success bodies");
        assert!(
            generic.is_empty(),
            "success bodies documented as a bare object (or allowed as free-form \
             but no longer one):\n{}",
            generic.join("\n")
        );
    }

    /// `WholeList` documents a `store::Page`: the same fields.
    #[test]
    fn a_whole_list_has_the_fields_of_a_page() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let fields = |name: &str| {
            let schema = &doc["components"]["schemas"][name];
            let mut keys: Vec<String> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(fields("WholeList_Label"), fields("Page_ThreadView"));
    }
    #[test]
    fn a_whole_list_never_has_a_next_cursor() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let schema = &doc["components"]["schemas"]["WholeList_Label"]["properties"]["nextCursor"];
        assert_eq!(schema["type"], "null", "{schema}");
    }
}
