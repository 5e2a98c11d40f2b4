//! The widget and the agent app in a real browser: headless Chromium
//! driven through chromedriver (WebDriver).

mod apidocs;
mod app;
mod attachments;
mod desk;
mod embed;
mod helpdesk;
mod identity;
mod inbox;
mod polish;
mod profile;
mod screenshots;
mod smoke;
mod widget;
mod widget_api;
mod widget_emoji;
mod widget_history;
mod widget_load;
mod widget_locales;
mod widget_team;
