//! Rate limits keyed by client IP, account or visitor (governor's GCRA).
//! A refused call is a 429 with `Retry-After`.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::error::{AppError, AppResult};

pub struct Limiter {
    inner: DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    pub fn per_minute(n: u32) -> Limiter {
        let n = NonZeroU32::new(n.max(1)).expect("at least one");
        Limiter {
            inner: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    pub fn check(&self, key: &str) -> AppResult<()> {
        self.inner.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// Forgets keys whose limit has fully recovered, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

pub struct RateLimits {
    pub login_per_ip: Limiter,
    pub login_per_account: Limiter,
    pub sessions_per_ip: Limiter,
    pub visitor_messages: Limiter,
    pub ws_connects_per_ip: Limiter,
    /// Keyed by uploader ("visitor:<id>", "agent:<id>").
    pub uploads: Limiter,
}

impl RateLimits {
    pub fn new(config: &LimitsConfig) -> RateLimits {
        RateLimits {
            login_per_ip: Limiter::per_minute(config.login_per_ip_per_minute),
            login_per_account: Limiter::per_minute(config.login_per_account_per_minute),
            sessions_per_ip: Limiter::per_minute(config.sessions_per_ip_per_minute),
            visitor_messages: Limiter::per_minute(config.visitor_messages_per_minute),
            ws_connects_per_ip: Limiter::per_minute(config.ws_connects_per_ip_per_minute),
            uploads: Limiter::per_minute(config.uploads_per_minute),
        }
    }

    pub fn forget_idle(&self) {
        self.login_per_ip.forget_idle();
        self.login_per_account.forget_idle();
        self.sessions_per_ip.forget_idle();
        self.visitor_messages.forget_idle();
        self.ws_connects_per_ip.forget_idle();
        self.uploads.forget_idle();
    }
}
