//! Attachments over a real server: uploads by visitors and agents, the file
//! policy, binding to messages, the guarded download with its headers,
//! deletion and retention — and that nothing refused leaves a file behind.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use crate::harness::fixtures::{self, space_with};
use crate::harness::{FROM_SITE, Owner, Reply, SITE, TestServer};
use mychat::accounts::model::Role;
use mychat::ids::AttachmentId;
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use mychat::store::Reader;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEN_MIB: usize = 10 * 1024 * 1024;

async fn server() -> TestServer {
    TestServer::start_with(|c| c.limits.uploads_per_minute = 10_000).await
}

async fn org_with_space(
    server: &TestServer,
    name: &str,
    settings: SpaceSettings,
) -> (Owner, ChatSpace) {
    let owner = server
        .register(name, &format!("owner@{}.test", name.to_lowercase()))
        .await;
    let space = space_with(server, &owner, "Site", &["site.test"], settings).await;
    (owner, space)
}

/// A new visitor of `space`: its session token.
async fn visitor(server: &TestServer, space: &ChatSpace) -> String {
    let body = json!({"key": space.widget_key});
    fixtures::visitor_session(server, FROM_SITE, body).await.0
}

/// A multipart body with one file field.
fn form(field: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----mychat-test-boundary-7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_to(
    server: &TestServer,
    path: &str,
    token: &str,
    name: &str,
    bytes: &[u8],
) -> Reply {
    let (content_type, body) = form("file", name, bytes);
    let resp = server
        .client
        .post(server.url(path))
        .header("origin", SITE)
        .header("content-type", content_type)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("upload sent");
    Reply::read(resp).await
}

async fn visitor_upload(server: &TestServer, token: &str, name: &str, bytes: &[u8]) -> Reply {
    upload_to(server, "/api/v1/widget/attachments", token, name, bytes).await
}

async fn agent_upload(
    server: &TestServer,
    token: &str,
    thread: &str,
    name: &str,
    bytes: &[u8],
) -> Reply {
    let path = format!("/api/v1/attachments?threadId={thread}");
    upload_to(server, &path, token, name, bytes).await
}

async fn visitor_says(server: &TestServer, token: &str, content: &str, files: &[&str]) -> Reply {
    let body = json!({
        "content": content,
        "clientMsgId": uuid::Uuid::new_v4().to_string(),
        "attachmentIds": files,
    });
    fixtures::visitor_posts(server, token, body).await
}

/// A download's status, headers and raw bytes.
struct Download {
    status: u16,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

async fn download(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> Download {
    let mut req = server.client.get(server.url(path)).header("origin", SITE);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("download sent");
    Download {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        bytes: resp.bytes().await.unwrap_or_default().to_vec(),
    }
}

fn header<'a>(d: &'a Download, name: &str) -> &'a str {
    d.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// A Windows executable's first bytes: the DOS header pointing at "PE".
fn pe_executable() -> Vec<u8> {
    let mut pe = vec![0u8; 512];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3c] = 0x80;
    pe[0x80..0x84].copy_from_slice(b"PE\0\0");
    pe
}

/// Every file under the data dir's attachments folder, temp files included.
fn stored_files(server: &TestServer) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.data_dir().join("attachments"), &mut out);
    out
}

fn file_path(server: &TestServer, key: &str) -> PathBuf {
    server
        .data_dir()
        .join("attachments")
        .join(&key[..2])
        .join(key)
}

#[tokio::test]
async fn upload_send_download_returns_the_same_bytes_with_safe_headers() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let picture = png(640, 480);

    let up = visitor_upload(&server, &token, "holiday photo.png", &picture).await;
    assert_eq!(up.status, 201, "{}", up.body);
    let a = &up.body;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["name"], "holiday photo.png");
    assert_eq!(a["mimeType"], "image/png");
    assert_eq!(a["sizeBytes"], picture.len());
    assert_eq!(a["width"], 640);
    assert_eq!(a["height"], 480);
    assert_eq!(a["thumbnail"], true);
    assert_eq!(a["url"], format!("/api/v1/attachments/{id}"));
    assert_eq!(
        a["thumbnailUrl"],
        format!("/api/v1/attachments/{id}/thumbnail")
    );
    let sha = hex::encode(Sha256::digest(&picture));
    assert_eq!(a["sha256"], sha);
    // Stored under a random name, never the client's.
    let stored = fixtures::attachment(&server, &id);
    assert!(!stored.storage_key.contains("holiday"));
    assert_eq!(
        std::fs::read(file_path(&server, &stored.storage_key)).unwrap(),
        picture
    );

    // An attachment-only message is fine.
    let sent = visitor_says(&server, &token, "", &[&id]).await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let m = &sent.body["message"];
    assert_eq!(m["content"], "");
    assert_eq!(m["attachments"][0]["id"], id.as_str());
    assert_eq!(m["attachments"][0]["name"], "holiday photo.png");
    assert_eq!(m["attachments"][0]["thumbnail"], true);
    let thread = sent.body["thread"]["id"].as_str().unwrap().to_owned();

    // Agents see it in the thread, with a preview naming the file.
    let t = server
        .get(&format!("/api/v1/threads/{thread}"), &owner.token)
        .await;
    assert_eq!(t.ok()["lastMessage"]["preview"], "📎 holiday photo.png");
    let history = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    assert_eq!(
        history.ok()["items"][0]["attachments"][0]["id"],
        id.as_str()
    );

    let path = format!("/api/v1/attachments/{id}");
    for who in [&owner.token, &token] {
        let d = download(&server, &path, Some(who), &[]).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.bytes, picture);
        assert_eq!(header(&d, "content-type"), "image/png");
        assert_eq!(
            header(&d, "content-disposition"),
            "inline; filename=\"holiday photo.png\"; filename*=UTF-8''holiday%20photo.png"
        );
        assert_eq!(header(&d, "x-content-type-options"), "nosniff");
        assert_eq!(header(&d, "content-security-policy"), "sandbox");
        assert_eq!(header(&d, "etag"), format!("\"{sha}\""));
        assert_eq!(header(&d, "accept-ranges"), "bytes");
        assert_eq!(header(&d, "content-length"), picture.len().to_string());
    }

    // Ranges and revalidation.
    let d = download(
        &server,
        &path,
        Some(&owner.token),
        &[("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(d.status, 206);
    assert_eq!(d.bytes, &picture[10..20]);
    assert_eq!(
        header(&d, "content-range"),
        format!("bytes 10-19/{}", picture.len())
    );
    let d = download(&server, &path, Some(&owner.token), &[("range", "bytes=-5")]).await;
    assert_eq!(d.status, 206);
    assert_eq!(d.bytes, &picture[picture.len() - 5..]);
    let past = format!("bytes={}-", picture.len());
    let d = download(
        &server,
        &path,
        Some(&owner.token),
        &[("range", past.as_str())],
    )
    .await;
    assert_eq!(d.status, 416);
    assert_eq!(
        header(&d, "content-range"),
        format!("bytes */{}", picture.len())
    );
    let etag = format!("\"{sha}\"");
    let d = download(
        &server,
        &path,
        Some(&owner.token),
        &[("if-none-match", etag.as_str())],
    )
    .await;
    assert_eq!(d.status, 304);
    assert!(d.bytes.is_empty());

    // The thumbnail is a small image of its own.
    let d = download(&server, &format!("{path}/thumbnail"), Some(&token), &[]).await;
    assert_eq!(d.status, 200);
    assert_eq!(header(&d, "content-type"), "image/jpeg");
    assert_eq!(header(&d, "x-content-type-options"), "nosniff");
    let thumb = image::load_from_memory(&d.bytes).expect("thumbnail decodes");
    assert_eq!((thumb.width(), thumb.height()), (320, 240));
}

#[tokio::test]
async fn documents_download_as_attachments_with_their_exact_names() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let up = visitor_upload(&server, &token, "Счёт №5.pdf", PDF).await;
    assert_eq!(up.status, 201, "{}", up.body);
    assert_eq!(up.body["mimeType"], "application/pdf");
    assert_eq!(up.body["thumbnail"], false);
    assert_eq!(up.body["thumbnailUrl"], Value::Null);
    let id = up.body["id"].as_str().unwrap();
    let d = download(
        &server,
        &format!("/api/v1/attachments/{id}"),
        Some(&owner.token),
        &[],
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.bytes, PDF);
    assert_eq!(header(&d, "content-type"), "application/pdf");
    let cd = header(&d, "content-disposition");
    assert!(cd.starts_with("attachment; filename=\""), "{cd}");
    assert!(
        cd.ends_with("filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82%20%E2%84%965.pdf"),
        "{cd}"
    );
    let d = download(
        &server,
        &format!("/api/v1/attachments/{id}/thumbnail"),
        Some(&owner.token),
        &[],
    )
    .await;
    assert_eq!(d.status, 404);

    let text = "plain <b>text</b>, zażółć\n".as_bytes();
    let up = visitor_upload(&server, &token, "notes.txt", text).await;
    assert_eq!(up.status, 201, "{}", up.body);
    assert_eq!(up.body["mimeType"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn downloads_are_404_for_anonymous_other_organizations_and_other_visitors() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let (other_owner, _) = org_with_space(&server, "Globex", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let stranger = visitor(&server, &space).await;
    let up = visitor_upload(&server, &token, "cv.pdf", PDF).await;
    let id = up.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/attachments/{id}");

    // Before it is sent, only its uploader and the organization's agents.
    assert_eq!(
        download(&server, &path, Some(&token), &[]).await.status,
        200
    );
    assert_eq!(
        download(&server, &path, Some(&stranger), &[]).await.status,
        404
    );
    assert_eq!(
        download(&server, &path, Some(&owner.token), &[])
            .await
            .status,
        200
    );

    visitor_says(&server, &token, "my cv", &[&id]).await.ok();
    for (who, token) in [
        ("anonymous", None),
        (
            "another organization's agent",
            Some(other_owner.token.as_str()),
        ),
        ("another visitor of the same space", Some(stranger.as_str())),
    ] {
        let d = download(&server, &path, token, &[]).await;
        assert_eq!(d.status, 404, "{who}");
        let t = download(&server, &format!("{path}/thumbnail"), token, &[]).await;
        assert_eq!(t.status, 404, "{who}");
    }
    // A random id is a 404 even for the organization.
    let random = format!("/api/v1/attachments/{}", uuid::Uuid::now_v7());
    assert_eq!(
        download(&server, &random, Some(&owner.token), &[])
            .await
            .status,
        404
    );
    // A session token from a site the space does not allow is refused too.
    let d = server
        .client
        .get(server.url(&path))
        .header("origin", "https://evil.test")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 404);
    // A stale token is told so (clients refresh on 401), without a hint.
    let d = download(&server, &path, Some("not-a-token"), &[]).await;
    assert_eq!(d.status, 401);
}

#[tokio::test]
async fn executables_markup_scripts_and_fake_pdfs_are_refused() {
    let server = server().await;
    let (_, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(128, 0);
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>"#;
    let html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>";
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an executable renamed .png", pe_executable(), 415),
        ("an ELF binary renamed .jpg", elf.clone(), 415),
        ("an executable as .exe", pe_executable(), 415),
        ("HTML", html.to_vec(), 415),
        ("HTML renamed .png", html.to_vec(), 415),
        ("SVG", svg.to_vec(), 415),
        ("SVG renamed .png", svg.to_vec(), 415),
        ("a script", b"alert(document.cookie)".to_vec(), 415),
        (
            "a shell script renamed .pdf",
            b"#!/bin/sh\nrm -rf ~\n".to_vec(),
            415,
        ),
        (
            "a PDF that is not a PDF",
            b"Invoice 42: pay now".to_vec(),
            422,
        ),
        ("a PNG named .jpg", png(8, 8), 422),
        ("a binary named .txt", vec![0, 159, 146, 150, 0], 422),
    ];
    let names = [
        "cat.png",
        "cat.jpg",
        "setup.exe",
        "page.html",
        "page.png",
        "logo.svg",
        "logo.png",
        "app.js",
        "invoice.pdf",
        "invoice.pdf",
        "photo.jpg",
        "notes.txt",
    ];
    for ((what, bytes, status), name) in cases.iter().zip(names) {
        let r = visitor_upload(&server, &token, name, bytes).await;
        assert_eq!(r.status.as_u16(), *status, "{what} ({name}): {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{what}: {}", r.body);
    }
    assert_eq!(
        stored_files(&server),
        Vec::<PathBuf>::new(),
        "refused uploads left files"
    );
}

#[tokio::test]
async fn ten_mib_and_one_byte_is_413_and_leaves_no_file() {
    let server = server().await;
    let (_, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let too_big = vec![b'a'; TEN_MIB + 1];
    let r = visitor_upload(&server, &token, "big.txt", &too_big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "too_large");
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
    // Exactly the limit is fine.
    let r = visitor_upload(&server, &token, "big.txt", &too_big[..TEN_MIB]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["sizeBytes"], TEN_MIB);
}

/// The space's limit is enforced as the bytes arrive: a client that sends
/// more than the limit and then stalls gets its 413 without ever finishing
/// the body, and the partial file is gone by then.
#[tokio::test]
async fn the_size_limit_is_enforced_while_streaming() {
    let server = server().await;
    let mut settings = SpaceSettings::default();
    settings.attachments.max_size_bytes = 1024 * 1024;
    let (_, space) = org_with_space(&server, "Acme", settings).await;
    let token = visitor(&server, &space).await;

    let (content_type, body) = form("file", "huge.txt", &vec![b'x'; 8 * 1024 * 1024]);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/widget/attachments HTTP/1.1\r\nHost: {}\r\nOrigin: {SITE}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // Two of the eight MiB, then nothing more.
    tcp.write_all(&body[..2 * 1024 * 1024]).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was unfinished");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn four_files_on_one_message_are_refused() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = visitor_upload(&server, &token, &format!("page{i}.pdf"), PDF).await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let r = visitor_says(&server, &token, "four", &all).await;
    assert_eq!(r.err(400), "validation_failed");
    // Nothing was bound: three of them still go on one message.
    let r = visitor_says(&server, &token, "three", &all[..3]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let thread = r.body["thread"]["id"].as_str().unwrap();

    // Agents are held to the space's count too.
    let mut agent_ids = Vec::new();
    for i in 0..4 {
        let r = agent_upload(&server, &owner.token, thread, &format!("a{i}.pdf"), PDF).await;
        assert_eq!(r.status, 201, "{}", r.body);
        agent_ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let r = server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &owner.token,
            json!({"content": "four", "attachmentIds": agent_ids}),
        )
        .await;
    assert_eq!(r.err(400), "validation_failed");
}

#[tokio::test]
async fn an_attachment_goes_on_one_message_only() {
    let server = server().await;
    let (_, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let r = visitor_upload(&server, &token, "a.pdf", PDF).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    visitor_says(&server, &token, "first", &[&id]).await.ok();
    let again = visitor_says(&server, &token, "second", &[&id]).await;
    assert_eq!(again.err(409), "attachment_already_attached");
    assert!(fixtures::attachment(&server, &id).message_id.is_some());
}

#[tokio::test]
async fn another_visitor_cannot_attach_your_upload() {
    let server = server().await;
    let (_, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let (_, other_space) = org_with_space(&server, "Globex", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let thief = visitor(&server, &space).await;
    let far_thief = visitor(&server, &other_space).await;
    let r = visitor_upload(&server, &token, "a.pdf", PDF).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        visitor_says(&server, &thief, "mine", &[&id]).await.err(404),
        "not_found"
    );
    assert_eq!(
        visitor_says(&server, &far_thief, "mine", &[&id])
            .await
            .err(404),
        "not_found"
    );
    // Still free for its uploader.
    assert_eq!(
        visitor_says(&server, &token, "mine", &[&id]).await.status,
        201
    );
}

#[tokio::test]
async fn agents_attach_files_to_their_thread_and_notes_stay_private() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let (other_owner, _) = org_with_space(&server, "Globex", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let first = visitor_says(&server, &token, "hello", &[]).await;
    let thread = first.body["thread"]["id"].as_str().unwrap().to_owned();

    // Another organization cannot upload into the thread.
    let r = agent_upload(&server, &other_owner.token, &thread, "x.pdf", PDF).await;
    assert_eq!(r.err(404), "not_found");
    // An upload names its thread (or space).
    let r = upload_to(&server, "/api/v1/attachments", &owner.token, "x.pdf", PDF).await;
    assert_eq!(r.err(400), "validation_failed");

    let reply = agent_upload(&server, &owner.token, &thread, "price list.pdf", PDF).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply_id = reply.body["id"].as_str().unwrap().to_owned();
    let note = agent_upload(&server, &owner.token, &thread, "internal.pdf", PDF).await;
    let note_id = note.body["id"].as_str().unwrap().to_owned();

    // The visitor cannot attach an agent's upload.
    assert_eq!(
        visitor_says(&server, &token, "x", &[&reply_id])
            .await
            .err(404),
        "not_found"
    );
    let r = server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &owner.token,
            json!({"content": "", "attachmentIds": [reply_id]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &owner.token,
            json!({"content": "for us", "attachmentIds": [note_id], "internal": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let file = |id: &str| format!("/api/v1/attachments/{id}");
    let d = download(&server, &file(&reply_id), Some(&token), &[]).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.bytes, PDF);
    assert_eq!(
        download(&server, &file(&note_id), Some(&token), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        download(&server, &file(&note_id), Some(&owner.token), &[])
            .await
            .status,
        200
    );

    // An upload for one thread cannot go into another.
    let other_visitor = visitor(&server, &space).await;
    let other = visitor_says(&server, &other_visitor, "hi", &[]).await;
    let other_thread = other.body["thread"]["id"].as_str().unwrap();
    let stray = agent_upload(&server, &owner.token, &thread, "stray.pdf", PDF).await;
    let r = server
        .post(
            &format!("/api/v1/threads/{other_thread}/messages"),
            &owner.token,
            json!({"content": "x", "attachmentIds": [stray.body["id"]]}),
        )
        .await;
    assert_eq!(r.err(404), "not_found");
}

#[tokio::test]
async fn an_agent_starts_a_conversation_with_a_file() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let body = json!({"key": space.widget_key});
    let (token, visitor_id) = fixtures::visitor_session(&server, FROM_SITE, body).await;
    let path = format!("/api/v1/attachments?chatSpaceId={}", space.id);
    let up = upload_to(&server, &path, &owner.token, "offer.pdf", PDF).await;
    assert_eq!(up.status, 201, "{}", up.body);
    let id = up.body["id"].as_str().unwrap().to_owned();
    let r = server
        .post(
            "/api/v1/threads",
            &owner.token,
            json!({"visitorId": visitor_id, "attachmentIds": [id]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["lastMessage"]["preview"], "📎 offer.pdf");
    let d = download(
        &server,
        &format!("/api/v1/attachments/{id}"),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.bytes, PDF);
}

#[tokio::test]
async fn a_space_without_attachments_refuses_uploads() {
    let server = server().await;
    let mut settings = SpaceSettings::default();
    settings.attachments.allowed = false;
    let (_, space) = org_with_space(&server, "Acme", settings).await;
    let token = visitor(&server, &space).await;
    let r = visitor_upload(&server, &token, "a.pdf", PDF).await;
    assert_eq!(r.err(403), "forbidden");
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn uploads_are_rate_limited() {
    let server = TestServer::start_with(|c| c.limits.uploads_per_minute = 2).await;
    let (_, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    for _ in 0..2 {
        assert_eq!(
            visitor_upload(&server, &token, "a.pdf", PDF).await.status,
            201
        );
    }
    let r = visitor_upload(&server, &token, "a.pdf", PDF).await;
    assert_eq!(r.err(429), "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn widget_uploads_answer_cors_preflights() {
    let server = server().await;
    for path in ["/api/v1/widget/attachments", "/api/v1/attachments/x"] {
        let r = server
            .client
            .request(Method::OPTIONS, server.url(path))
            .header("origin", SITE)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], SITE);
    }
}

#[tokio::test]
async fn deleting_a_message_or_a_thread_deletes_its_files() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let up = visitor_upload(&server, &token, "photo.png", &png(400, 400)).await;
    let id = up.body["id"].as_str().unwrap().to_owned();
    let sent = visitor_says(&server, &token, "look", &[&id]).await;
    let message = sent.body["message"]["id"].as_str().unwrap().to_owned();
    let thread = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let a = fixtures::attachment(&server, &id);
    let files = [
        file_path(&server, &a.storage_key),
        file_path(&server, a.thumbnail_key.as_deref().unwrap()),
    ];
    assert!(files.iter().all(|f| f.exists()));

    let r = server
        .delete(&format!("/api/v1/messages/{message}"), &owner.token)
        .await;
    assert_eq!(r.ok()["attachments"], json!([]));
    assert!(
        files.iter().all(|f| !f.exists()),
        "files outlived their message"
    );
    assert!(fixtures::attachment(&server, &id).deleted_at.is_some());
    let d = download(
        &server,
        &format!("/api/v1/attachments/{id}"),
        Some(&owner.token),
        &[],
    )
    .await;
    assert_eq!(d.status, 404);

    // A whole thread goes with its files (admins only).
    let up = visitor_upload(&server, &token, "cv.pdf", PDF).await;
    let id = up.body["id"].as_str().unwrap().to_owned();
    visitor_says(&server, &token, "cv", &[&id]).await.ok();
    let path = file_path(&server, &fixtures::attachment(&server, &id).storage_key);
    assert!(path.exists());
    let agent_token = fixtures::agent(&server, &owner, "Bob", Role::Agent)
        .await
        .token;
    let r = server
        .delete(&format!("/api/v1/threads/{thread}"), &agent_token)
        .await;
    assert_eq!(r.err(403), "forbidden");
    let r = server
        .delete(&format!("/api/v1/threads/{thread}"), &owner.token)
        .await;
    assert_eq!(r.status, 204);
    assert!(!path.exists(), "files outlived their thread");
    let t = server
        .get(&format!("/api/v1/threads/{thread}"), &owner.token)
        .await;
    assert_eq!(t.err(404), "not_found");
    let m = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    assert_eq!(m.err(404), "not_found");
    let id: AttachmentId = id.parse().unwrap();
    assert!(
        server
            .app_state
            .store
            .read()
            .unwrap()
            .attachment(id)
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn deleting_a_space_removes_everything_under_it() {
    let server = server().await;
    let (owner, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    let up = visitor_upload(&server, &token, "photo.png", &png(40, 40)).await;
    let sent_file = up.body["id"].as_str().unwrap().to_owned();
    let sent = visitor_says(&server, &token, "look", &[&sent_file]).await;
    let thread = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let visitor_id = sent.body["message"]["senderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = visitor_upload(&server, &token, "later.pdf", PDF).await;
    let pending = up.body["id"].as_str().unwrap().to_owned();
    let template = server
        .post(
            "/api/v1/templates",
            &owner.token,
            json!({ "shortcut": "hi", "title": "Hi", "body": "Hello!", "chatSpaceId": space.id }),
        )
        .await;
    let template = template.created()["id"].as_str().unwrap().to_owned();
    let kim = fixtures::agent(&server, &owner, "Kim", Role::Agent).await;
    server
        .patch(
            &format!("/api/v1/agents/{}", kim.id),
            &owner.token,
            json!({ "spaceIds": [space.id] }),
        )
        .await
        .ok();
    assert!(!stored_files(&server).is_empty());

    let r = server
        .delete(&format!("/api/v1/chat-spaces/{}", space.id), &owner.token)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);

    assert_eq!(
        stored_files(&server),
        Vec::<PathBuf>::new(),
        "files outlived their space"
    );
    let read = server.app_state.store.read().unwrap();
    for id in [&sent_file, &pending] {
        let id: AttachmentId = id.parse().unwrap();
        assert!(read.attachment(id).unwrap().is_none());
    }
    assert!(read.thread(thread.parse().unwrap()).unwrap().is_none());
    assert!(read.visitor(visitor_id.parse().unwrap()).unwrap().is_none());
    assert!(read.template(template.parse().unwrap()).unwrap().is_none());
    let kim_now = read.agent(kim.id.parse().unwrap()).unwrap().unwrap();
    assert_eq!(kim_now.space_ids, Some(Vec::new()));
    drop(read);
    // The visitor's session went with it.
    let r = visitor_says(&server, &token, "still there?", &[]).await;
    assert_eq!(r.err(401), "unauthorized");
}

/// Moves an attachment's creation back in time, as if uploaded `days` ago.
async fn age(server: &TestServer, id: &str, days: i64) {
    let mut a = fixtures::attachment(server, id);
    a.created_at -= chrono::Duration::days(days);
    server.put(&a).await;
}

#[tokio::test]
async fn retention_removes_old_files_and_keeps_new_ones() {
    let server = server().await;
    let settings = SpaceSettings {
        retention_days: 30,
        ..SpaceSettings::default()
    };
    let (owner, space) = org_with_space(&server, "Acme", settings).await;
    let token = visitor(&server, &space).await;
    let old = visitor_upload(&server, &token, "old scan.pdf", PDF).await;
    let old_id = old.body["id"].as_str().unwrap().to_owned();
    let new = visitor_upload(&server, &token, "new.png", &png(32, 32)).await;
    let new_id = new.body["id"].as_str().unwrap().to_owned();
    let sent = visitor_says(&server, &token, "two files", &[&old_id, &new_id]).await;
    let thread = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    // An upload never sent is dropped after a day.
    let orphan = visitor_upload(&server, &token, "forgotten.pdf", PDF).await;
    let orphan_id = orphan.body["id"].as_str().unwrap().to_owned();
    let orphan_path = file_path(
        &server,
        &fixtures::attachment(&server, &orphan_id).storage_key,
    );

    age(&server, &old_id, 31).await;
    age(&server, &new_id, 29).await;
    age(&server, &orphan_id, 2).await;
    let old_path = file_path(&server, &fixtures::attachment(&server, &old_id).storage_key);
    let new_path = file_path(&server, &fixtures::attachment(&server, &new_id).storage_key);

    let report = mychat::attachments::retention::run_retention(&server.app_state)
        .await
        .unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(report.abandoned, 1);
    assert!(!old_path.exists(), "an old file survived");
    assert!(!orphan_path.exists(), "an abandoned upload survived");
    assert!(new_path.exists(), "a new file was removed");
    assert!(fixtures::attachment(&server, &old_id).expired_at.is_some());

    let file = |id: &str| format!("/api/v1/attachments/{id}");
    assert_eq!(
        download(&server, &file(&old_id), Some(&owner.token), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        download(&server, &file(&new_id), Some(&owner.token), &[])
            .await
            .status,
        200
    );

    // The thread says so, and the message marks the file expired.
    let history = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    let items = history.ok()["items"].as_array().unwrap().clone();
    let files = &items[0]["attachments"];
    assert_eq!(files[0]["expired"], true);
    assert_eq!(files[1]["expired"], false);
    let notice = items.last().unwrap();
    assert_eq!(notice["senderType"], "system");
    assert_eq!(notice["content"], "File expired: old scan.pdf");
    // Running again finds nothing more to do.
    let again = mychat::attachments::retention::run_retention(&server.app_state)
        .await
        .unwrap();
    assert_eq!(again, Default::default());
}

#[tokio::test]
async fn a_failed_upload_leaves_no_file_behind() {
    let server = server().await;
    let (_, space) = org_with_space(&server, "Acme", SpaceSettings::default()).await;
    let token = visitor(&server, &space).await;
    // Refused by name before a byte is stored, by content after all of it,
    // and an image too large to decode.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    for (name, bytes, status) in [
        ("run.bat", b"echo hi".to_vec(), 415),
        ("scan.pdf", b"not a pdf at all".to_vec(), 422),
        ("bomb.png", bomb, 422),
        ("empty.txt", Vec::new(), 400),
    ] {
        let r = visitor_upload(&server, &token, name, &bytes).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.body);
    }
    // A malformed form and a client that gives up half-way.
    let r = server
        .client
        .post(server.url("/api/v1/widget/attachments"))
        .header("origin", SITE)
        .header("content-type", "application/json")
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (content_type, body) = form("file", "cut.txt", &vec![b'x'; 512 * 1024]);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/widget/attachments HTTP/1.1\r\nHost: {}\r\nOrigin: {SITE}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..256 * 1024]).await.unwrap();
    drop(tcp);
    // The server notices the hang-up on its own time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !stored_files(&server).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
}

/// Two nodes over one PostgreSQL database: a file uploaded through one
/// downloads through the other, whole and by range, with its thumbnail
/// (its bytes are kept in the database).
#[tokio::test]
async fn a_file_uploaded_on_one_node_downloads_from_another() {
    let mut nodes = TestServer::cluster(2, |c| c.limits.uploads_per_minute = 10_000).await;
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    let (owner, space) = org_with_space(&a, "Acme", SpaceSettings::default()).await;
    let token = visitor(&a, &space).await;
    let picture = png(320, 200);
    let up = visitor_upload(&a, &token, "photo.png", &picture).await;
    assert_eq!(up.status, 201, "{}", up.body);
    let id = up.body["id"].as_str().unwrap().to_owned();
    let sent = visitor_says(&a, &token, "see", &[&id]).await;
    assert_eq!(sent.status, 201, "{}", sent.body);

    let got = download(
        &b,
        &format!("/api/v1/attachments/{id}"),
        Some(&owner.token),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, picture);
    let thumb = download(
        &b,
        &format!("/api/v1/attachments/{id}/thumbnail"),
        Some(&owner.token),
        &[],
    )
    .await;
    assert_eq!(thumb.status, 200);
    let thumb_on_a = download(
        &a,
        &format!("/api/v1/attachments/{id}/thumbnail"),
        Some(&owner.token),
        &[],
    )
    .await;
    assert_eq!(thumb.bytes, thumb_on_a.bytes);
    let part = download(
        &b,
        &format!("/api/v1/attachments/{id}"),
        Some(&owner.token),
        &[("range", "bytes=0-99")],
    )
    .await;
    assert_eq!((part.status, part.bytes.as_slice()), (206, &picture[..100]));
}
