//! Rate limits keyed by client address, account or visitor, and byte
//! budgets (governor's GCRA). A refused call is a 429 with `Retry-After`.
//! Every limit keyed by an address goes through [`crate::net::limit_key`],
//! so an IPv6 client counts by its /64.

use std::net::IpAddr;
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

    /// Checks the limit of a client address.
    pub fn check_ip(&self, ip: IpAddr) -> AppResult<()> {
        self.check(&crate::net::limit_key(ip))
    }

    /// Forgets keys whose limit has fully recovered, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// Bytes per hour per key, counted in whole KiB: the whole budget may be
/// spent at once, and it refills evenly over the hour.
pub struct ByteBudget {
    inner: DefaultKeyedRateLimiter<String>,
}

impl ByteBudget {
    pub fn per_hour(bytes: u64) -> ByteBudget {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let kib = NonZeroU32::new(kib.max(1)).expect("at least one");
        ByteBudget {
            inner: RateLimiter::keyed(Quota::per_hour(kib)),
        }
    }

    /// Takes `kib` KiB from the budget of `key`, or refuses without taking
    /// anything.
    pub fn spend(&self, key: &str, kib: u32) -> AppResult<()> {
        let Some(n) = NonZeroU32::new(kib) else {
            return Ok(());
        };
        match self.inner.check_key_n(&key.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(AppError::RateLimited {
                    retry_after_secs: wait.as_secs() + 1,
                })
            }
            // More than a whole hour's budget at once.
            Err(_) => Err(AppError::RateLimited {
                retry_after_secs: 3600,
            }),
        }
    }

    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

pub struct RateLimits {
    pub login_per_ip: Limiter,
    /// Keyed by account and address: [`RateLimits::check_login`].
    pub login_per_account: Limiter,
    pub sessions_per_ip: Limiter,
    pub visitor_messages: Limiter,
    pub ws_connects_per_ip: Limiter,
    /// Keyed by uploader ("visitor:<id>", "agent:<id>").
    pub uploads: Limiter,
    /// Keyed by client address.
    pub upload_bytes_per_ip: ByteBudget,
    /// Keyed by chat space.
    pub upload_bytes_per_space: ByteBudget,
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
            upload_bytes_per_ip: ByteBudget::per_hour(config.upload_bytes_per_ip_per_hour),
            upload_bytes_per_space: ByteBudget::per_hour(config.upload_bytes_per_space_per_hour),
        }
    }

    /// A login attempt for `email` from `ip`: the address's own limit, then
    /// the account's limit *at that address*, so an address that keeps
    /// guessing is held back while the owner, elsewhere, still gets in.
    pub fn check_login(&self, email: &str, ip: IpAddr) -> AppResult<()> {
        self.login_per_ip.check_ip(ip)?;
        self.login_per_account.check(&login_key(email, ip))
    }

    pub fn forget_idle(&self) {
        self.login_per_ip.forget_idle();
        self.login_per_account.forget_idle();
        self.sessions_per_ip.forget_idle();
        self.visitor_messages.forget_idle();
        self.ws_connects_per_ip.forget_idle();
        self.uploads.forget_idle();
        self.upload_bytes_per_ip.forget_idle();
        self.upload_bytes_per_space.forget_idle();
    }
}

/// The key a login attempt is counted under per account: the account and
/// the address, so a guesser never locks the owner out.
fn login_key(email: &str, ip: IpAddr) -> String {
    format!(
        "{} {}",
        email.trim().to_lowercase(),
        crate::net::limit_key(ip)
    )
}

/// With several nodes over one database, login attempts are counted for
/// all of them together (each node's own limiter alone would give a
/// guesser one allowance per node).
pub fn check_login_shared(
    store: &crate::store::Store,
    config: &LimitsConfig,
    email: Option<&str>,
    ip: IpAddr,
) -> AppResult<()> {
    let check = |key: String, limit: u32| -> AppResult<()> {
        if let Some((n, left)) = store.count_shared(&key, 60)?
            && n > limit.max(1)
        {
            return Err(AppError::RateLimited {
                retry_after_secs: left.max(1),
            });
        }
        Ok(())
    };
    check(
        format!("login-ip {}", crate::net::limit_key(ip)),
        config.login_per_ip_per_minute,
    )?;
    if let Some(email) = email {
        check(
            format!("login-account {}", login_key(email, ip)),
            config.login_per_account_per_minute,
        )?;
    }
    Ok(())
}
