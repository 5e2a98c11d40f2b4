//! Headless Chromium through chromedriver, for the widget and agent app
//! tests; a tiny host site on its own origin for embedding the widget; and
//! what the widget and the agent app tests do in the page.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::{Element, ElementRef};
use fantoccini::{Client, ClientBuilder, Locator};
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::fixtures::space_with;
use super::{Owner, TestServer, WAIT, free_port};

pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    pub async fn start() -> Browser {
        Self::start_sized(1280, 900).await
    }

    /// A browser whose window is `width` × `height` CSS pixels.
    pub async fn start_sized(width: u32, height: u32) -> Browser {
        Self::start_with(width, height, json!({})).await
    }

    /// A browser whose settings block notifications for every site.
    pub async fn start_blocking_notifications() -> Browser {
        let prefs = json!({"profile.default_content_setting_values.notifications": 2});
        Self::start_with(1280, 900, prefs).await
    }

    async fn start_with(width: u32, height: u32, prefs: Value) -> Browser {
        // WebDriver's client links two rustls providers; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (the test command installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let profile = super::scratch::temp_dir().keep();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--mute-audio",
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": prefs,
            }
        });
        let mut caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        // Chromium will not make a window narrower than 500 pixels; a phone's
        // viewport needs device emulation.
        if width < 500 {
            caps["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 }
            });
        }
        // chromedriver needs a moment to listen; retry until it answers.
        let mut last_err = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .expect("rustls connector")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser { client, driver };
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("could not start a browser session: {last_err:?}");
    }

    /// Runs `script` (a function body that returns a value) until it returns
    /// something truthy, and returns that. Panics after `WAIT`.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.client.execute(script, vec![]).await;
            match v {
                Ok(v) if truthy(&v) => return v,
                _ if tokio::time::Instant::now() > deadline => {
                    panic!("timed out waiting for {what}; last value: {v:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// A site on its own origin serving `html` at `/` (the host page that
/// embeds the widget). Returns its base URL; it stops when the test ends.
pub async fn host_site(html: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    host_site_on(listener, html).await;
    format!("http://{addr}")
}

/// A host site on a listener bound beforehand, for a site whose address
/// must be known in advance (to put it in a space's allowed domains before
/// the page exists).
pub async fn host_site_on(listener: TcpListener, html: String) {
    use axum::response::Html;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/",
        get(move || {
            let html = html.clone();
            async move { Html(html) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// A string as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Presses one key wherever the focus is.
pub async fn press(browser: &Browser, key: impl Into<char>) {
    let key = key.into();
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    browser
        .client
        .perform_actions(keys)
        .await
        .expect("key pressed");
}

// The widget on a host site.

/// The widget's shadow root, as page script.
pub const ROOT: &str = "document.querySelector('mychat-widget')?.shadowRoot";

/// A space named "Shop" whose allowed domains hold a host site's origin,
/// and that site, serving `page(space)`. Returns the space and the site's URL.
pub async fn widget_site(
    server: &TestServer,
    owner: &Owner,
    settings: SpaceSettings,
    page: impl FnOnce(&ChatSpace) -> String,
) -> (ChatSpace, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("127.0.0.1:{}", addr.port());
    let space = space_with(server, owner, "Shop", &[&origin], settings).await;
    host_site_on(listener, page(&space)).await;
    (space, format!("http://{addr}"))
}

/// Settings for a widget that shows the chat, not the offline form,
/// whoever is online.
pub fn chat_only() -> SpaceSettings {
    SpaceSettings {
        offline_messages: false,
        ..SpaceSettings::default()
    }
}

/// An element inside the widget's shadow root, once it exists, as a
/// WebDriver element.
pub async fn widget_el(browser: &Browser, selector: &str) -> Element {
    let found = browser
        .wait_for(
            selector,
            &format!("return {ROOT}?.querySelector({})", js_str(selector)),
        )
        .await;
    // A web element reference: {"element-6066-11e4-a52e-4f735466cecc": id}.
    let id = found
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .expect("a web element reference")
        .to_owned();
    Element::from_element_id(browser.client.clone(), ElementRef::from(id))
}

/// Types into an element of the widget the way a person does (real key
/// events; "\u{E007}" is Enter).
pub async fn type_in_widget(browser: &Browser, selector: &str, text: &str) {
    widget_el(browser, selector)
        .await
        .send_keys(text)
        .await
        .expect("typing");
}

/// Clicks an element of the widget.
pub async fn click_in_widget(browser: &Browser, selector: &str) {
    widget_el(browser, selector)
        .await
        .click()
        .await
        .expect("clicked");
}

/// Script: whether an element of the widget is displayed.
pub fn shown(selector: &str) -> String {
    format!(
        "const e = {ROOT}?.querySelector({}); return !!e && e.getClientRects().length > 0",
        js_str(selector)
    )
}

/// Script: whether an element of the widget exists and is not displayed.
pub fn hidden(selector: &str) -> String {
    format!(
        "const e = {ROOT}?.querySelector({}); return !!e && e.getClientRects().length === 0",
        js_str(selector)
    )
}

/// Goes to the host site and opens the widget's panel with its launcher.
pub async fn open_widget(browser: &Browser, site: &str) {
    browser.goto(site).await;
    click_in_widget(browser, ".launcher").await;
    browser.wait_for("the open panel", &shown(".panel")).await;
}

// The agent app.

/// Opens the app signed in with these tokens, and waits for the live socket.
pub async fn open_app(server: &TestServer, browser: &Browser, token: &str, refresh: &str) {
    // Any page of the origin will do to reach its localStorage.
    browser.goto(&server.url("/healthz")).await;
    let session = json!({"accessToken": token, "refreshToken": refresh}).to_string();
    browser
        .js(&format!(
            "localStorage.setItem('mychat.session', {}); return true;",
            js_str(&session)
        ))
        .await;
    browser.goto(&server.url("/app/#/inbox/available")).await;
    wait_live(browser).await;
}

/// Waits for the inbox with a live socket.
pub async fn wait_live(browser: &Browser) {
    browser
        .wait_for(
            "the inbox with a live socket",
            "return document.body.dataset.screen === 'inbox' && document.body.dataset.socket === 'open' && document.querySelector('.presence__agent') !== null",
        )
        .await;
}

/// Waits for the list row whose text has `text`; returns its thread id.
pub async fn wait_row(browser: &Browser, text: &str) -> String {
    let script = format!(
        "const r = [...document.querySelectorAll('.thread-list .row')].find(r => r.textContent.includes({})); return r ? r.dataset.id : null;",
        js_str(text)
    );
    browser
        .wait_for(&format!("a row with {text:?}"), &script)
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// Opens a thread from its list row and waits for the conversation.
pub async fn open_thread(browser: &Browser, id: &str) {
    browser
        .js(&format!(
            "document.querySelector('.thread-list .row[data-id=\"{id}\"]').click(); return true;"
        ))
        .await;
    browser
        .wait_for(
            "the conversation",
            &format!(
                "return document.querySelector('.conv[data-thread=\"{id}\"] .conv__holder') !== null"
            ),
        )
        .await;
}

/// Clicks the first element matching `selector` once it is there and enabled.
pub async fn click(browser: &Browser, selector: &str) {
    browser
        .wait_for(
            &format!("{selector} to click"),
            &format!(
                "const el = document.querySelector({}); if (!el || el.disabled) return false; el.click(); return true;",
                js_str(selector)
            ),
        )
        .await;
}

/// Waits until an element matching `selector` contains `text`.
pub async fn wait_text(browser: &Browser, selector: &str, text: &str) {
    browser
        .wait_for(
            &format!("{selector} to contain {text:?}"),
            &format!(
                "return [...document.querySelectorAll({})].some(e => e.textContent.includes({}))",
                js_str(selector),
                js_str(text)
            ),
        )
        .await;
}

/// Types into an element the way a person does (real key events), once
/// it is there and can take them: a view drawn again by a live event may
/// replace the element between finding it and typing, and then the new
/// one is typed into.
pub async fn type_into(browser: &Browser, selector: &str, text: &str) {
    super::eventually(WAIT, &format!("{selector} to type into"), || async {
        let el = browser.client.find(Locator::Css(selector)).await.ok()?;
        el.send_keys(text).await.ok()
    })
    .await
}
