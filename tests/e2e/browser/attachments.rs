//! Files in a real browser, both ways: headless Chromium driven through
//! chromedriver (WebDriver). A visitor attaches in the widget on a host page
//! of another origin and the agent sees and downloads it in the agent app;
//! an agent attaches in the app and the visitor gets the file chip; the
//! widget explains refused files and does not let an upload lost to a
//! reload block the messages after it.

use std::path::{Path, PathBuf};

use crate::harness::browser::{
    Browser, ROOT, chat_only, click_in_widget, js_str, open_app, open_thread, open_widget, press,
    shown, type_in_widget, wait_row, widget_el, widget_site,
};
use crate::harness::{Owner, TestServer, fixtures};
use fantoccini::Locator;
use mychat::spaces::model::{AttachmentPolicy, ChatSpace, SpaceSettings};
use serde_json::{Value, json};

// Files on disk for the browser to pick.

/// A small valid PNG (8×8, a gradient).
fn png(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 200]))
        .save(&path)
        .expect("png written");
    path
}

/// A minimal valid PDF.
fn pdf(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let body = b"%PDF-1.4\n\
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n\
trailer << /Root 1 0 R >>\n\
%%EOF\n";
    std::fs::write(&path, body).expect("pdf written");
    path
}

fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("file written");
    path
}

// The host site and the widget.

/// A space whose allowed domains hold a host site's origin, and that site,
/// serving a page with the snippet. Returns the space and the site's URL.
async fn site(server: &TestServer, owner: &Owner, settings: SpaceSettings) -> (ChatSpace, String) {
    widget_site(server, owner, settings, |space| {
        format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host shop</title></head>
<body><p>Our products</p>
<script src="{base}/widget.js" data-widget-key="{key}" async></script></body></html>"#,
            base = server.base,
            key = space.widget_key,
        )
    })
    .await
}

/// Opens the widget on the host site and waits for the chat.
async fn open_chat(browser: &Browser, site: &str) {
    open_widget(browser, site).await;
    browser.wait_for("the chat", &shown("form.compose")).await;
}

/// Chooses files in the widget's (hidden) file input, as the attach button
/// would; several paths go one per line.
async fn attach_in_widget(browser: &Browser, paths: &[&Path]) {
    let list: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    widget_el(browser, "input[type=file]")
        .await
        .send_keys(&list.join("\n"))
        .await
        .expect("files chosen");
}

async fn widget_wait(browser: &Browser, what: &str, body: &str) -> Value {
    browser
        .wait_for(what, &format!("const r = {ROOT}; {body}"))
        .await
}

// The agent app.

/// Opens the thread whose list row has `text`; returns its id.
async fn open_row(browser: &Browser, text: &str) -> String {
    let id = wait_row(browser, text).await;
    open_thread(browser, &id).await;
    id
}

/// The bytes the guarded download route gives the owner.
async fn download(server: &TestServer, owner: &Owner, id: &str) -> Vec<u8> {
    let r = server
        .client
        .get(server.url(&format!("/api/v1/attachments/{id}")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

/// Keeps every blob the page turns into a URL from now on.
const KEEP_BLOBS: &str = "window.__blobs = []; const make = URL.createObjectURL; \
     URL.createObjectURL = b => { window.__blobs.push(b); return make(b); }; return true;";

/// The bytes of the first blob kept.
const FIRST_BLOB: &str =
    "return window.__blobs[0].arrayBuffer().then(b => Array.from(new Uint8Array(b)))";

fn as_bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("an array of bytes")
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect()
}

// The tests.

#[tokio::test]
async fn a_visitor_attaches_an_image_and_the_agent_sees_and_downloads_it() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only()).await;
    let dir = crate::harness::scratch::temp_dir();
    let photo = png(dir.path(), "photo.png");
    let agent = Browser::start().await;
    open_app(&server, &agent, &owner.token, &owner.refresh).await;

    let visitor = Browser::start().await;
    open_chat(&visitor, &site).await;
    assert_eq!(
        visitor
            .js(&format!(
                "return {ROOT}.querySelector('.compose .att').getClientRects().length > 0"
            ))
            .await,
        json!(true),
        "the attach button shows where files are allowed"
    );
    attach_in_widget(&visitor, &[&photo]).await;
    // Sent at once: the message waits for its upload if it has to.
    type_in_widget(&visitor, ".compose textarea", "Here is a photo\u{E007}").await;
    widget_wait(
        &visitor,
        "the message sent with its thumbnail",
        "const m = [...r.querySelectorAll('.log .msg.out')].find(m => m.querySelector('.bubble').textContent === 'Here is a photo'); \
         const img = m?.querySelector('.files .thumb img'); \
         return m?.dataset.state === 'sent' && !!img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0",
    )
    .await;
    assert_eq!(
        visitor
            .js(&format!(
                "return {ROOT}.querySelector('.tray').children.length"
            ))
            .await,
        json!(0),
        "the composer is empty again"
    );

    // A click on the thumbnail opens the full image in a viewer over the
    // panel; Escape closes the viewer, not the chat.
    click_in_widget(&visitor, ".log .msg.out .thumb").await;
    widget_wait(
        &visitor,
        "the full image in the viewer",
        "const i = r.querySelector('.panel .box img'); return !!i && i.src.startsWith('blob:') && i.naturalWidth === 8 && r.activeElement === r.querySelector('.box')",
    )
    .await;
    press(&visitor, '\u{E00C}').await;
    widget_wait(
        &visitor,
        "the viewer closed, the panel open",
        "return !r.querySelector('.box') && r.querySelector('.panel').getClientRects().length > 0",
    )
    .await;

    // The agent sees the thumbnail, fetched with the token as a blob.
    let thread = open_row(&agent, "Here is a photo").await;
    agent
        .wait_for(
            "the thumbnail in the agent app",
            "return [...document.querySelectorAll('.msg--visitor .file__thumb')].some(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0)",
        )
        .await;

    let stored = server.all_messages(&owner.token, &thread).await;
    let sent = stored
        .iter()
        .find(|m| m["content"] == "Here is a photo")
        .expect("the message is stored");
    let files = sent["attachments"].as_array().expect("attachments");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["name"], "photo.png");
    assert_eq!(files[0]["mimeType"], "image/png");
    assert_eq!(files[0]["thumbnail"], true);
    let id = files[0]["id"].as_str().unwrap();
    let original = std::fs::read(&photo).unwrap();
    assert_eq!(download(&server, &owner, id).await, original);

    // A click opens the full image; what the app fetched is the file
    // itself. (The blob is caught as it is made: the app's CSP lets no
    // script fetch a blob: URL back.)
    agent.js(KEEP_BLOBS).await;
    agent
        .js("document.querySelector('.msg--visitor .file--image').click(); return true;")
        .await;
    agent
        .wait_for(
            "the full image",
            "const i = document.querySelector('.viewer__img'); return !!i && i.src.startsWith('blob:') && i.complete && i.naturalWidth === 8",
        )
        .await;
    let fetched = agent.js(FIRST_BLOB).await;
    assert_eq!(as_bytes(&fetched), original);
    agent.close().await;
    visitor.close().await;
}

#[tokio::test]
async fn an_agent_attaches_a_pdf_and_the_visitor_gets_the_file_chip() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only()).await;
    let dir = crate::harness::scratch::temp_dir();
    let invoice = pdf(dir.path(), "invoice-2024.pdf");
    let original = std::fs::read(&invoice).unwrap();

    let visitor = Browser::start().await;
    open_chat(&visitor, &site).await;
    type_in_widget(
        &visitor,
        ".compose textarea",
        "Can I have my invoice?\u{E007}",
    )
    .await;
    widget_wait(
        &visitor,
        "the question sent",
        "return [...r.querySelectorAll('.log .msg.out')].some(m => m.dataset.state === 'sent')",
    )
    .await;

    let agent = Browser::start().await;
    open_app(&server, &agent, &owner.token, &owner.refresh).await;
    open_row(&agent, "Can I have my invoice?").await;
    agent
        .client
        .find(Locator::Css(".composer input[type=file]"))
        .await
        .expect("the app's file input")
        .send_keys(invoice.to_str().unwrap())
        .await
        .expect("file chosen");
    agent
        .wait_for(
            "the upload",
            "return document.querySelector('.chip-file--done') !== null",
        )
        .await;
    agent
        .client
        .find(Locator::Css(".composer__input"))
        .await
        .unwrap()
        .send_keys("Here you are\u{E007}")
        .await
        .unwrap();

    // Live in the widget: the text and a chip with the name and the size.
    let chip = widget_wait(
        &visitor,
        "the file chip",
        "const m = [...r.querySelectorAll('.log .msg.in')].find(m => m.querySelector('.bubble').textContent === 'Here you are'); \
         const c = m?.querySelector('.files button.file'); \
         return c ? [c.querySelector('span').textContent, c.querySelector('small').textContent] : null",
    )
    .await;
    assert_eq!(
        chip,
        json!(["invoice-2024.pdf", format!("{} B", original.len())])
    );

    // A click downloads it through a blob made from the guarded route.
    visitor.js(KEEP_BLOBS).await;
    visitor
        .js("HTMLAnchorElement.prototype.click = function () { window.__saved = [this.download, this.href]; }; return true;")
        .await;
    visitor
        .js(&format!(
            "{ROOT}.querySelector('.log .msg.in .files button.file').click(); return true;"
        ))
        .await;
    let saved = visitor
        .wait_for("the download", "return window.__saved")
        .await;
    assert_eq!(saved[0], "invoice-2024.pdf");
    assert!(saved[1].as_str().unwrap().starts_with("blob:"), "{saved}");
    let fetched = visitor.js(FIRST_BLOB).await;
    assert_eq!(as_bytes(&fetched), original);

    // When retention removes the file, the chip says so, live.
    let thread = server.get("/api/v1/threads?view=all", &owner.token).await;
    let thread = thread.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let stored = server.all_messages(&owner.token, &thread).await;
    let reply = stored
        .iter()
        .find(|m| m["content"] == "Here you are")
        .expect("the reply is stored");
    let mut a = fixtures::attachment(&server, reply["attachments"][0]["id"].as_str().unwrap());
    a.created_at -= chrono::Duration::days(365);
    server.put(&a).await;
    let report = mychat::attachments::retention::run_retention(&server.app_state)
        .await
        .unwrap();
    assert_eq!(report.expired, 1);
    let gone = widget_wait(
        &visitor,
        "the expired chip",
        "const c = r.querySelector('.log .msg.in .files .file.gone'); \
         return c ? [c.querySelector('span').textContent, c.querySelector('small').textContent] : null",
    )
    .await;
    assert_eq!(gone, json!(["invoice-2024.pdf", "file expired"]));
    agent.close().await;
    visitor.close().await;
}

#[tokio::test]
async fn the_widget_explains_refused_files_before_and_after_uploading() {
    let (server, owner) = TestServer::with_owner().await;
    let settings = SpaceSettings {
        attachments: AttachmentPolicy {
            allowed: true,
            max_size_bytes: 2048,
            max_count: 2,
        },
        ..chat_only()
    };
    let (_, shop) = site(&server, &owner, settings).await;
    let dir = crate::harness::scratch::temp_dir();
    let big = file(dir.path(), "notes.txt", &[b'a'; 3000]);
    let page = file(
        dir.path(),
        "page.html",
        b"<html><script>alert(1)</script></html>",
    );
    let shots: Vec<PathBuf> = (1..=3)
        .map(|i| png(dir.path(), &format!("shot-{i}.png")))
        .collect();
    let browser = Browser::start().await;
    open_chat(&browser, &shop).await;
    let error = format!("return {ROOT}.querySelector('.compose .err').textContent");

    // Too large: refused before any byte is sent.
    attach_in_widget(&browser, &[&big]).await;
    widget_wait(
        &browser,
        "the size refusal",
        "return r.querySelector('.compose .err').textContent === 'notes.txt: Files may be at most 2 KB.'",
    )
    .await;
    assert_eq!(
        browser
            .js(&format!(
                "return {ROOT}.querySelectorAll('.tray .file').length"
            ))
            .await,
        json!(0)
    );

    // A type the server refuses: its reason, and no retry.
    attach_in_widget(&browser, &[&page]).await;
    let refusal = widget_wait(
        &browser,
        "the type refusal",
        "const f = r.querySelector('.tray .file.bad'); \
         return f ? [f.querySelector('small').textContent, f.querySelector('button[aria-label=Retry]').hidden] : null",
    )
    .await;
    let text = refusal[0].as_str().unwrap();
    assert!(
        text.starts_with("This type of file is not accepted. ") && text.contains(".html"),
        "{text}"
    );
    assert_eq!(refusal[1], json!(true));

    // Three at once where two are allowed: two are taken, and it says why.
    let paths: Vec<&Path> = shots.iter().map(PathBuf::as_path).collect();
    attach_in_widget(&browser, &paths).await;
    widget_wait(
        &browser,
        "two uploads done",
        "const done = [...r.querySelectorAll('.tray .file:not(.bad)')].filter(f => f.querySelector('progress').hidden); \
         return done.length === 2",
    )
    .await;
    assert_eq!(
        browser.js(&error).await,
        json!("Files per message: at most 2.")
    );
    // The refused file stays behind; the two images go, without text.
    type_in_widget(&browser, ".compose textarea", "\u{E007}").await;
    widget_wait(
        &browser,
        "the message with two images",
        "const m = r.querySelector('.log .msg.out'); \
         return m?.dataset.state === 'sent' && m.querySelectorAll('.files .thumb img').length === 2 && m.querySelector('.bubble').hidden",
    )
    .await;
    let names = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.log .msg.out .files .thumb img')].map(i => i.alt)"
        ))
        .await;
    assert_eq!(names, json!(["shot-1.png", "shot-2.png"]));

    // Dropped on the panel and pasted into the text box, files upload too.
    let bytes = serde_json::to_string(&std::fs::read(&shots[2]).unwrap()).unwrap();
    browser
        .js(&format!(
            "const r = {ROOT}; const files = name => {{ const d = new DataTransfer(); \
             d.items.add(new File([new Uint8Array({bytes})], name, {{type: 'image/png'}})); return d; }}; \
             r.querySelector('.panel').dispatchEvent(new DragEvent('drop', {{dataTransfer: files('dropped.png'), bubbles: true, cancelable: true}})); \
             r.querySelector('.compose textarea').dispatchEvent(new ClipboardEvent('paste', {{clipboardData: files('pasted.png'), bubbles: true, cancelable: true}})); \
             return true;"
        ))
        .await;
    let tray = widget_wait(
        &browser,
        "the dropped and pasted files uploaded",
        "const f = [...r.querySelectorAll('.tray .file')]; \
         return f.length === 2 && f.every(f => f.querySelector('progress').hidden && !f.classList.contains('bad')) \
           && f.map(f => f.querySelector('span').textContent)",
    )
    .await;
    assert_eq!(tray, json!(["dropped.png", "pasted.png"]));

    // Where the space takes no files, there is no attach button.
    let no_files = SpaceSettings {
        attachments: AttachmentPolicy {
            allowed: false,
            max_size_bytes: 2048,
            max_count: 2,
        },
        ..chat_only()
    };
    let (_, plain) = site(&server, &owner, no_files).await;
    open_chat(&browser, &plain).await;
    assert_eq!(
        browser
            .js(&format!(
                "const a = {ROOT}.querySelector('.compose .att'); return !!a && a.getClientRects().length === 0"
            ))
            .await,
        json!(true)
    );
    browser.close().await;
}

#[tokio::test]
async fn an_upload_lost_to_a_reload_is_dropped_and_does_not_block_the_queue() {
    let (server, owner) = TestServer::with_owner().await;
    let (space, site) = site(&server, &owner, chat_only()).await;
    let browser = Browser::start().await;
    open_chat(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "First\u{E007}").await;
    widget_wait(
        &browser,
        "the first message sent",
        "return r.querySelector('.log .msg.out')?.dataset.state === 'sent'",
    )
    .await;

    // As if the page went away while a file was uploading: a message still
    // waiting for its upload, and one queued after it. Nothing may write
    // the storage between this and the reload.
    let key = js_str(&format!("mychat:{}", space.widget_key));
    browser
        .js(&format!(
            "const s = JSON.parse(localStorage.getItem({key})); const at = new Date().toISOString(); \
             s.queue.push({{id: 'lost-1', content: 'With a file', at, wait: 1}}, {{id: 'next-1', content: 'After the file', at}}); \
             localStorage.setItem({key}, JSON.stringify(s)); \
             Storage.prototype.setItem = () => {{}}; location.reload(); return true;"
        ))
        .await;
    widget_wait(
        &browser,
        "the notice",
        "return r.querySelector('.compose .err')?.textContent === 'A message with files was not sent: its upload was interrupted.'",
    )
    .await;
    widget_wait(
        &browser,
        "the next message sent",
        "return [...r.querySelectorAll('.log .msg.out')].some(m => m.querySelector('.bubble').textContent === 'After the file' && m.dataset.state === 'sent')",
    )
    .await;
    let shown = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.log .msg.out .bubble')].map(b => b.textContent)"
        ))
        .await;
    assert_eq!(shown, json!(["First", "After the file"]));
    let threads = server.get("/api/v1/threads?view=all", &owner.token).await;
    let thread = threads.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let contents: Vec<Value> = server
        .all_messages(&owner.token, &thread)
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, [json!("First"), json!("After the file")]);
    browser.close().await;
}

/// Holds the page's uploads (XMLHttpRequest sends) until the test lets
/// them fail or go.
const HOLD_UPLOADS: &str = "const send = XMLHttpRequest.prototype.send; window.__held = []; \
     XMLHttpRequest.prototype.send = function (body) { window.__held.push(this); }; \
     window.__failHeld = () => window.__held.splice(0).forEach(x => x.dispatchEvent(new ProgressEvent('error'))); \
     window.__stopHolding = () => { XMLHttpRequest.prototype.send = send; }; return true;";

#[tokio::test]
async fn a_message_waits_for_its_upload_and_a_failed_upload_can_be_retried() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only()).await;
    let dir = crate::harness::scratch::temp_dir();
    let photo = png(dir.path(), "photo.png");
    let browser = Browser::start().await;
    open_chat(&browser, &site).await;
    browser.js(HOLD_UPLOADS).await;

    attach_in_widget(&browser, &[&photo]).await;
    browser
        .wait_for("the upload to start", "return window.__held.length === 1")
        .await;
    let uploading = browser
        .js(&format!(
            "const f = {ROOT}.querySelector('.tray .file'); \
             return [f.querySelector('span').textContent, f.querySelector('progress').hidden]"
        ))
        .await;
    assert_eq!(uploading, json!(["photo.png", false]));

    // Both wait: the first for its file, the second behind it.
    type_in_widget(&browser, ".compose textarea", "Look at this\u{E007}").await;
    type_in_widget(&browser, ".compose textarea", "And one more thing\u{E007}").await;
    let states = "return [...r.querySelectorAll('.log .msg.out')].map(m => \
                  [m.querySelector('.bubble').textContent, m.dataset.state, m.querySelectorAll('.files .file progress').length])";
    let waiting = widget_wait(&browser, "both messages waiting", states).await;
    assert_eq!(
        waiting,
        json!([
            ["Look at this", "sending", 1],
            ["And one more thing", "sending", 0]
        ])
    );

    // The upload fails: the message says so and offers to try again.
    browser.js("window.__failHeld(); return true;").await;
    let failed = widget_wait(
        &browser,
        "the failed upload",
        "const f = r.querySelector('.log .msg.out .file.bad'); \
         return f ? [f.querySelector('small').textContent, f.querySelector('button[aria-label=Retry]').hidden] : null",
    )
    .await;
    assert_eq!(failed, json!(["Upload failed.", false]));
    assert_eq!(
        widget_wait(&browser, "still waiting", states).await,
        waiting
    );

    browser.js("window.__stopHolding(); return true;").await;
    browser
        .js(&format!(
            "{ROOT}.querySelector('.log .msg.out .file.bad button[aria-label=Retry]').click(); return true;"
        ))
        .await;
    widget_wait(
        &browser,
        "both messages sent, the first with its thumbnail",
        "const m = [...r.querySelectorAll('.log .msg.out')]; \
         return m.length === 2 && m.every(m => m.dataset.state === 'sent') && !!m[0].querySelector('.files .thumb img')",
    )
    .await;
    let threads = server.get("/api/v1/threads?view=all", &owner.token).await;
    let thread = threads.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let stored = server.all_messages(&owner.token, &thread).await;
    let summary: Vec<(String, usize)> = stored
        .iter()
        .map(|m| {
            (
                m["content"].as_str().unwrap().to_owned(),
                m["attachments"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Look at this".to_owned(), 1),
            ("And one more thing".to_owned(), 0)
        ]
    );
    browser.close().await;
}
