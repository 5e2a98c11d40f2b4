//! The widget and the agent app in a real browser: headless Chromium
//! driven through chromedriver (WebDriver).

mod app;
mod attachments;
mod identity;
mod smoke;
mod widget;
