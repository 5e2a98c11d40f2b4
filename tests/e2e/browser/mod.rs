//! The widget and the agent app in a real browser: headless Chromium
//! driven through chromedriver (WebDriver).

mod app;
mod attachments;
mod embed;
mod helpdesk;
mod identity;
mod smoke;
mod widget;
mod widget_api;
