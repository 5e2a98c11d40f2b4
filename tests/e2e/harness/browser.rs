//! Headless Chromium through chromedriver, for the widget and agent app
//! tests, and a tiny host site on its own origin for embedding the widget.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub async fn start() -> Browser {
        Self::start_sized(1280, 900).await
    }

    /// A browser whose window is `width` × `height` CSS pixels.
    pub async fn start_sized(width: u32, height: u32) -> Browser {
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
        let profile = tempfile::tempdir().unwrap().keep();
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
                ]
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
    /// something truthy, and returns that. Panics after `secs` seconds.
    pub async fn wait_for(&self, what: &str, script: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
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
    use axum::response::Html;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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
    format!("http://{addr}")
}

/// A free port for a host site whose address must be known in advance
/// (to put it in a space's allowed domains before the page exists).
pub async fn host_site_on(listener: tokio::net::TcpListener, html: String) {
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
