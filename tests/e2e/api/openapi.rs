//! The OpenAPI document at `/api/v1/openapi.json`: it lists every route
//! the server serves and no other, and it is valid OpenAPI 3.1 as
//! `openapi-spec-validator` (PyPI) judges it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;

/// Served routes that are not REST operations: pages, scripts, sockets
/// (their frames are PRODUCT.md §5) and the ACME challenge of the HTTP
/// listener. Everything else must be in the document.
const NOT_REST: &[&str] = &[
    "/",
    "/demo",
    "/app",
    "/app/",
    "/app/{*path}",
    "/widget.js",
    "/widget/panel.js",
    "/widget/words/{file}",
    "/embed.js",
    "/ws/widget",
    "/ws/agent",
    "/ws/member",
    "/api/docs",
    "/api/docs/{file}",
    "/.well-known/acme-challenge/{token}",
    "/email/unsubscribe",
];

/// The document as served.
pub async fn served_document(server: &TestServer) -> Value {
    let resp = server
        .client
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    resp.json().await.expect("the document is JSON")
}

/// (method, path) of every operation of the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// (method, path) of every `.route(path, method(handler)…)` in the
/// sources, as written (without the `/api/v1` a router may be nested in).
fn routes_in_sources() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = balanced(rest);
            let Some(path) = call.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = &path[..path.find('"').unwrap()];
            let methods = &call[call.find(',').map_or(call.len(), |i| i + 1)..];
            for method in ["get", "post", "put", "patch", "delete"] {
                let named = methods
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| i == 0 || !methods.as_bytes()[i - 1].is_ascii_alphanumeric());
                if named {
                    out.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
    }
    out
}

/// The text up to the parenthesis that closes the one just opened.
fn balanced(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A documented path with each parameter filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push_str("00000000-0000-7000-8000-000000000000");
        rest = &rest[open + rest[open..].find('}').unwrap() + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_one_is_served() {
    let server = TestServer::start().await;
    let doc = served_document(&server).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented = documented(&doc);

    // Served but not documented: every route of the sources is in the
    // document, at the root or under `/api/v1`.
    let undocumented: Vec<_> = routes_in_sources()
        .into_iter()
        .filter(|(_, path)| !NOT_REST.contains(&path.as_str()))
        .filter(|(method, path)| {
            !documented.contains(&(method.clone(), path.clone()))
                && !documented.contains(&(method.clone(), format!("/api/v1{path}")))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );

    // Documented but not served: the server answers each operation with
    // something other than "no such route" or "method not allowed".
    let mut unserved = Vec::new();
    for (method, path) in &documented {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = server
            .call(method.clone(), &concrete(path), None, None)
            .await;
        let no_route = reply.status == 404 && reply.body["error"]["message"] == "route not found";
        if no_route || reply.status == 405 {
            unserved.push(format!("{method} {path}: {}", reply.status));
        }
    }
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn every_operation_has_its_errors_security_and_a_unique_id() {
    let server = TestServer::start().await;
    let doc = served_document(&server).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in [
        "agentJwt",
        "apiToken",
        "apiTokenQuery",
        "memberToken",
        "visitorSession",
    ] {
        assert!(schemes.contains_key(scheme), "no {scheme}");
    }
    assert_eq!(schemes["apiTokenQuery"]["in"], "query");
    assert_eq!(schemes["apiTokenQuery"]["name"], "api_token");
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            assert!(ids.insert(id.clone()), "operationId {id} twice");
            if !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json" {
                continue;
            }
            assert!(
                op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("/ErrorBody")),
                "{method} {path} does not document the error envelope"
            );
        }
    }
    // A route of each credential names its schemes.
    let security = |method: &str, path: &str| -> BTreeSet<String> {
        doc["paths"][path][method]["security"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect()
    };
    assert_eq!(
        security("get", "/api/v1/threads"),
        ["agentJwt", "apiToken", "apiTokenQuery"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        security("get", "/api/v1/dialogs"),
        ["memberToken".to_owned()].into()
    );
    assert_eq!(
        security("post", "/api/v1/widget/messages"),
        ["visitorSession".to_owned()].into()
    );
    assert!(security("post", "/api/v1/auth/login").is_empty());
}

/// The Python tools the API checks run (`openapi-spec-validator`,
/// `schemathesis`), in a virtualenv under `target/` that `.ci/run`
/// creates; made here too when a plain `cargo test` runs first.
pub fn python_tool(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = root.join("target/openapi-venv/bin").join(name);
    if !tool.exists() {
        let made = Command::new("sh")
            .arg(root.join(".ci/openapi-venv"))
            .status()
            .expect(".ci/openapi-venv runs");
        assert!(made.success(), ".ci/openapi-venv failed");
    }
    tool
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let server = TestServer::start().await;
    let doc = served_document(&server).await;
    let file = server.data_dir().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(python_tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator: {:.3000}{:.3000}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The query parameters an operation takes.
fn query_params(op: &Value) -> BTreeSet<String> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_list_that_returns_a_next_cursor_takes_it_back_as_cursor() {
    let server = TestServer::start().await;
    let doc = served_document(&server).await;
    let mut paginated = Vec::new();
    let mut refused = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        // A paginated list answers a `store::Page`; a whole list a
        // `WholeList` (its `nextCursor` always null).
        if !schema
            .as_str()
            .is_some_and(|r| r.starts_with("#/components/schemas/Page_"))
        {
            continue;
        }
        paginated.push(path.clone());
        if !query_params(op).contains("cursor") {
            refused.push(path.clone());
        }
    }
    assert!(paginated.len() >= 5, "paginated lists: {paginated:?}");
    assert!(
        refused.is_empty(),
        "lists that return nextCursor but take no cursor: {refused:?}"
    );
}

/// The same error is the same status on every route: no credentials is
/// 401, and an unknown or malformed id is 404 (a malformed id names no
/// object, as an unknown one does), whichever operation is asked.
#[tokio::test]
async fn the_same_error_has_the_same_status_on_every_route() {
    let (server, owner) = TestServer::with_owner().await;
    let doc = served_document(&server).await;
    let mut odd = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let agent = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("agentJwt").is_some()));
            // Downloads answer a missing token like any refusal (404), so
            // that a file's existence is never told.
            let download = path.starts_with("/api/v1/attachments/{id}");
            if op["security"].is_array() && !download {
                let reply = server
                    .call(method.clone(), &concrete(path), None, None)
                    .await;
                if reply.status != 401 || reply.body["error"]["code"] != "unauthorized" {
                    odd.push(format!(
                        "{method} {path} without credentials: {} {}",
                        reply.status, reply.body
                    ));
                }
            }
            if !agent || !path.contains("{id}") {
                continue;
            }
            let reply = server
                .call(
                    method.clone(),
                    &concrete(path),
                    Some(&owner.token),
                    Some(json!({})),
                )
                .await;
            // Transcripts say first that this appliance sends no email.
            let email_off = reply.status == 409 && reply.body["error"]["code"] == "email_off";
            // `{}` is not a valid body everywhere: that is said first.
            let bad_body = reply.status == 400 && reply.body["error"]["code"] == "invalid_json";
            if reply.status != 404 && !email_off && !bad_body {
                odd.push(format!(
                    "{method} {path} unknown id: {} {}",
                    reply.status, reply.body
                ));
            }
            let malformed = path.replacen("{id}", "not-an-id", 1);
            let reply = server
                .call(
                    method.clone(),
                    &concrete(&malformed),
                    Some(&owner.token),
                    Some(json!({})),
                )
                .await;
            if reply.status != 404 && !email_off {
                odd.push(format!(
                    "{method} {path} malformed id: {} {}",
                    reply.status, reply.body
                ));
            }
        }
    }
    assert!(odd.is_empty(), "{}", odd.join("\n"));
}

/// Whether `served` is one of the media types `content` documents
/// (`*/*` and `type/*` match as in HTTP).
fn documented_type(content: &Value, served: &str) -> bool {
    let served = served.split(';').next().unwrap_or_default().trim();
    content.as_object().into_iter().flatten().any(|(media, _)| {
        media == "*/*"
            || media == served
            || media
                .strip_suffix("/*")
                .is_some_and(|kind| served.starts_with(&format!("{kind}/")))
    })
}

/// A file is served as the type it was stored with and its thumbnail as
/// PNG or JPEG; the document says so (it once said
/// `application/octet-stream` for both, which schemathesis caught).
#[tokio::test]
async fn downloads_are_documented_with_the_types_they_are_served_as() {
    let (server, owner) = TestServer::with_owner().await;
    let space = crate::harness::fixtures::space(&server, &owner).await;
    let (_, _, thread) =
        super::openapi_world::talking_visitor(&server, &space.widget_key, "a photo").await;
    let file = super::openapi_world::upload(
        &server,
        &format!("/api/v1/attachments?threadId={thread}"),
        &owner.token,
        "photo.png",
        &super::openapi_world::png(),
    )
    .await;
    let id = file.created()["id"].as_str().unwrap().to_owned();
    let doc = served_document(&server).await;
    for (path, expected) in [
        ("/api/v1/attachments/{id}", "image/png"),
        ("/api/v1/attachments/{id}/thumbnail", "image/"),
    ] {
        let resp = server
            .client
            .get(server.url(&path.replace("{id}", &id)))
            .bearer_auth(&owner.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let served = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(served.starts_with(expected), "{path}: {served}");
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        assert!(
            documented_type(content, &served),
            "{path} is served as {served}, documented as {content}"
        );
    }
}
