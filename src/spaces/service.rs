//! Chat space use cases.

use chrono::Utc;
use serde_json::{Map, Value};

use crate::attachments::model::Attachment;
use crate::audit::{self, Who, target};
use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{OrgId, SpaceId};
use crate::spaces::model::{ChatSpace, OpeningHours, SpaceSettings, parse_hhmm};
use crate::state::AppState;
use crate::store::{Reader, Record, id_key};
use crate::templates::model::Template;
use crate::threads::model::ThreadStatus;
use crate::visitors::model::Visitor;

pub const MAX_NAME: usize = 100;
pub const MAX_DOMAINS: usize = 50;

/// Checks one allowed-domain entry: `host`, `host:port` or `*.suffix`.
pub fn parse_domain(entry: &str) -> AppResult<String> {
    let e = entry.trim().to_ascii_lowercase();
    let bad = || {
        AppError::validation(format!(
            "allowedDomains: {entry:?} is not a host, host:port or *.domain"
        ))
    };
    let (host, port) = match e.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (e.as_str(), None),
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(bad());
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(bad());
    }
    Ok(e)
}

pub fn parse_domains(entries: &[String]) -> AppResult<Vec<String>> {
    crate::validate::list_len("allowedDomains", entries, MAX_DOMAINS)?;
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for e in entries {
        let d = parse_domain(e)?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Creates a chat space with default settings.
pub async fn create(
    state: &AppState,
    org: OrgId,
    name: &str,
    domains: Vec<String>,
) -> AppResult<ChatSpace> {
    create_with(state, org, name, domains, SpaceSettings::default()).await
}

/// Creates a chat space with the given settings, which are checked first.
pub async fn create_with(
    state: &AppState,
    org: OrgId,
    name: &str,
    domains: Vec<String>,
    settings: SpaceSettings,
) -> AppResult<ChatSpace> {
    validate_settings(&settings)?;
    let space = ChatSpace {
        id: SpaceId::new(),
        organization_id: org,
        name: crate::validate::name("name", name, MAX_NAME)?,
        widget_key: tokens::public_key(),
        allowed_domains: parse_domains(&domains)?,
        settings,
        created_at: Utc::now(),
    };
    let s = space.clone();
    state
        .write(move |tx| {
            if tx.org(org)?.is_none() {
                return Err(AppError::NotFound("organization"));
            }
            check_assignee(tx, &s)?;
            check_header_agents(tx, &s)?;
            Ok(tx.put(&s)?)
        })
        .await?;
    Ok(space)
}

/// A space of the caller's organization; another organization's is a 404.
pub fn get(state: &AppState, org: OrgId, id: SpaceId) -> AppResult<ChatSpace> {
    owned(&state.store.read()?, org, id)
}

/// The organization's spaces, oldest first.
pub fn list(state: &AppState, org: OrgId) -> AppResult<Vec<ChatSpace>> {
    Ok(state.store.read()?.spaces_of_org(org)?)
}

/// Looks a space up through any reader (a snapshot or a write transaction),
/// scoped to `org`, so every use case shares one notion of "yours".
fn owned<R: Reader + ?Sized>(read: &R, org: OrgId, id: SpaceId) -> AppResult<ChatSpace> {
    read.space(id)?
        .filter(|s| s.organization_id == org)
        .ok_or(AppError::NotFound("chat space"))
}

/// What a PATCH may change; `settings` is a partial settings object.
#[derive(Clone, Debug, Default)]
pub struct SpacePatch {
    pub name: Option<String>,
    pub allowed_domains: Option<Vec<String>>,
    pub settings: Option<Map<String, Value>>,
}

/// Applies a patch. The settings are merged into the space's settings as they
/// are inside the write transaction, so two admins editing different
/// settings at once do not undo each other.
pub async fn update(
    state: &AppState,
    org: OrgId,
    id: SpaceId,
    patch: SpacePatch,
    who: &Who,
) -> AppResult<ChatSpace> {
    let who = who.clone();
    // The parts that do not depend on the stored space are checked once, here.
    let name = patch
        .name
        .as_deref()
        .map(|n| crate::validate::name("name", n, MAX_NAME))
        .transpose()?;
    let domains = patch
        .allowed_domains
        .as_deref()
        .map(parse_domains)
        .transpose()?;
    let settings_patch = patch.settings;
    let space = state
        .write(move |tx| {
            let mut space = owned(tx, org, id)?;
            if let Some(p) = &settings_patch {
                space.settings = merge_settings(&space.settings, p)?;
                if p.contains_key("defaultAssignee") {
                    check_assignee(tx, &space)?;
                }
                // Checked when set; one that leaves later is passed over.
                if p.contains_key("headerAgents") {
                    check_header_agents(tx, &space)?;
                }
            }
            if let Some(n) = &name {
                space.name = n.clone();
            }
            if let Some(d) = &domains {
                space.allowed_domains = d.clone();
            }
            tx.put(&space)?;
            audit::record(tx, org, &who, "space.update", target("chat_space", id))?;
            Ok(space)
        })
        .await?;
    Ok(space)
}

/// A default assignee must be an enabled agent of the organization who
/// works in the space (checked when it is set; at assignment time an
/// assignee who has since been disabled or moved is passed over).
fn check_assignee<R: Reader + ?Sized>(read: &R, space: &ChatSpace) -> AppResult<()> {
    let Some(id) = space.settings.default_assignee else {
        return Ok(());
    };
    let fits = read
        .agent(id)?
        .is_some_and(|a| crate::threads::assignment::may_be_default_assignee(&a, space));
    if !fits {
        return Err(AppError::validation(
            "settings.defaultAssignee must be an enabled agent who works in this chat space",
        ));
    }
    Ok(())
}

/// The agents a space's widget header names: at most three, each an
/// enabled agent of the organization who works in the space, none twice.
fn check_header_agents<R: Reader + ?Sized>(read: &R, space: &ChatSpace) -> AppResult<()> {
    let Some(ids) = &space.settings.header_agents else {
        return Ok(());
    };
    if ids.len() > crate::spaces::model::MAX_HEADER_AGENTS {
        return Err(AppError::validation(
            "settings.headerAgents may name at most 3 agents",
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let fits = !ids[..i].contains(id)
            && read
                .agent(*id)?
                .is_some_and(|a| crate::threads::assignment::may_be_default_assignee(&a, space));
        if !fits {
            return Err(AppError::validation(
                "settings.headerAgents must name enabled agents who work in this chat space, once each",
            ));
        }
    }
    Ok(())
}

/// Removes a space and everything under it in one write: its visitors,
/// their threads, messages and attachments (the files once committed), its
/// templates, and the space from the agents who worked in it. Deleting the
/// record drops its widget-key index entry, so the key stops resolving in
/// the same commit; its widget sockets are closed right after.
pub async fn delete(state: &AppState, org: OrgId, id: SpaceId, who: &Who) -> AppResult<()> {
    let who = who.clone();
    crate::attachments::binding::write_then_remove(state, move |tx| {
        owned(tx, org, id)?;
        let mut files = Vec::new();
        let threads =
            tx.threads_in_spaces(&[id], &ThreadStatus::ALL, None, usize::MAX, &|_| true)?;
        for thread in &threads.items {
            files.extend(crate::threads::service::erase(tx, thread)?);
        }
        for visitor in tx.visitors_of_space(id)? {
            tx.delete::<Visitor>(&visitor.key())?;
        }
        for pending in tx.attachments_pending_in(id)? {
            if let Some(gone) = tx.delete::<Attachment>(&pending.key())? {
                files.extend(gone.file_keys());
            }
        }
        for template in tx.templates_of_org(org)? {
            if template.chat_space_id == Some(id) {
                tx.delete::<Template>(&template.key())?;
            }
        }
        for mut agent in tx.agents_of_org(org)? {
            if let Some(spaces) = agent.space_ids.as_mut()
                && spaces.contains(&id)
            {
                spaces.retain(|s| *s != id);
                tx.put(&agent)?;
                tx.emit(Event::AgentAccessChanged { agent });
            }
        }
        tx.delete::<ChatSpace>(&id_key(id.as_u128()))?;
        tx.emit(Event::WidgetsEnded { space: id });
        audit::record(tx, org, &who, "space.delete", target("chat_space", id))?;
        Ok(((), files))
    })
    .await?;
    state.search.space_deleted(id);
    Ok(())
}

/// Gives the space a new widget key; the old one stops resolving at once.
pub async fn rotate_key(
    state: &AppState,
    org: OrgId,
    id: SpaceId,
    who: &Who,
) -> AppResult<ChatSpace> {
    let who = who.clone();
    // Drawn outside the closure so a retried closure writes the same key.
    let key = tokens::public_key();
    let space = state
        .write(move |tx| {
            let mut space = owned(tx, org, id)?;
            space.widget_key = key.clone();
            tx.put(&space)?;
            // Pages with the old key lose their sockets now, not at their
            // next reconnect.
            tx.emit(Event::WidgetsEnded { space: id });
            audit::record(tx, org, &who, "space.rotate_key", target("chat_space", id))?;
            Ok(space)
        })
        .await?;
    Ok(space)
}

/// The `<script>` tag a site owner pastes into their pages.
pub fn embed_snippet(base_url: &str, widget_key: &str) -> String {
    format!(
        r#"<script src="{}/widget.js" data-widget-key="{}" async></script>"#,
        attr_escape(base_url),
        attr_escape(widget_key)
    )
}

/// The base URL comes from configuration; escaping keeps a stray quote in it
/// from breaking out of the attribute on the owner's page.
fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Merges a partial settings object into `current`: objects merge key by
/// key (so `{"attachments": {"maxCount": 5}}` keeps the other attachment
/// settings), anything else replaces. Keys that are not settings are
/// refused rather than silently dropped, and the result is validated.
pub fn merge_settings(
    current: &SpaceSettings,
    patch: &Map<String, Value>,
) -> AppResult<SpaceSettings> {
    let mut merged = serde_json::to_value(current)
        .map_err(|e| AppError::Internal(format!("settings do not serialize: {e}")))?;
    let Value::Object(target) = &mut merged else {
        return Err(AppError::Internal("settings are not an object".into()));
    };
    merge_object(target, patch, "settings")?;
    let settings: SpaceSettings = serde_json::from_value(merged)
        .map_err(|e| AppError::validation(format!("settings: {e}")))?;
    validate_settings(&settings)?;
    Ok(settings)
}

fn merge_object(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
) -> AppResult<()> {
    for (key, value) in patch {
        let Some(slot) = target.get_mut(key) else {
            return Err(AppError::validation(format!(
                "{path}.{key} is not a known setting"
            )));
        };
        match (slot, value) {
            // A map of the owner's keys: replaced whole, not merged.
            (slot, value) if path == "settings" && key == "translations" => *slot = value.clone(),
            (Value::Object(inner), Value::Object(part)) => {
                merge_object(inner, part, &format!("{path}.{key}"))?
            }
            (slot, value) => *slot = value.clone(),
        }
    }
    Ok(())
}

pub const MAX_TITLE: usize = 100;
pub const MAX_WELCOME: usize = 1000;
pub const MAX_DESCRIPTION: usize = 300;
pub const LOCALES: [&str; 4] = ["", "en", "pl", "ru"];
pub const MAX_OPENING_RANGES: usize = 50;
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
pub const MAX_ATTACHMENT_COUNT: u32 = 10;
/// A year.
pub const MAX_EXPIRE_MINUTES: u32 = 525_600;
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// Checks every rule of §3 on a whole settings object.
pub fn validate_settings(s: &SpaceSettings) -> AppResult<()> {
    crate::validate::bounded("settings.title", &s.title, MAX_TITLE)?;
    crate::validate::bounded("settings.welcomeMessage", &s.welcome_message, MAX_WELCOME)?;
    crate::validate::bounded("settings.description", &s.description, MAX_DESCRIPTION)?;
    if !crate::validate::is_hex_color(&s.accent_color) {
        return Err(AppError::validation(
            "settings.accentColor must look like #rrggbb",
        ));
    }
    if !LOCALES.contains(&s.locale.as_str()) {
        return Err(AppError::validation(
            "settings.locale must be one of \"\", \"en\", \"pl\", \"ru\"",
        ));
    }
    if let Some(hours) = &s.opening_hours {
        validate_hours(hours)?;
    }
    for (locale, words) in &s.translations {
        // The widget's languages; "" is the space's default, not a translation.
        if locale.is_empty() || !LOCALES.contains(&locale.as_str()) {
            return Err(AppError::validation(
                "settings.translations: a locale must be one of \"en\", \"pl\", \"ru\"",
            ));
        }
        let at = format!("settings.translations.{locale}");
        crate::validate::bounded(&format!("{at}.title"), &words.title, MAX_TITLE)?;
        crate::validate::bounded(
            &format!("{at}.welcomeMessage"),
            &words.welcome_message,
            MAX_WELCOME,
        )?;
    }
    let a = &s.attachments;
    if !(1..=MAX_ATTACHMENT_BYTES).contains(&a.max_size_bytes) {
        return Err(AppError::validation(format!(
            "settings.attachments.maxSizeBytes must be between 1 and {MAX_ATTACHMENT_BYTES}"
        )));
    }
    if !(1..=MAX_ATTACHMENT_COUNT).contains(&a.max_count) {
        return Err(AppError::validation(format!(
            "settings.attachments.maxCount must be between 1 and {MAX_ATTACHMENT_COUNT}"
        )));
    }
    if s.expire_after_minutes > MAX_EXPIRE_MINUTES {
        return Err(AppError::validation(format!(
            "settings.expireAfterMinutes must be at most {MAX_EXPIRE_MINUTES}"
        )));
    }
    if !(1..=MAX_RETENTION_DAYS).contains(&s.retention_days) {
        return Err(AppError::validation(format!(
            "settings.retentionDays must be between 1 and {MAX_RETENTION_DAYS}"
        )));
    }
    Ok(())
}

fn validate_hours(hours: &OpeningHours) -> AppResult<()> {
    if hours.timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(AppError::validation(format!(
            "settings.openingHours.timezone: {:?} is not an IANA time zone",
            hours.timezone
        )));
    }
    crate::validate::list_len(
        "settings.openingHours.ranges",
        &hours.ranges,
        MAX_OPENING_RANGES,
    )?;
    for r in &hours.ranges {
        if r.day > 6 {
            return Err(AppError::validation(
                "settings.openingHours.ranges: day must be 0 (Monday) to 6 (Sunday)",
            ));
        }
        match (parse_hhmm(&r.from), parse_hhmm(&r.to)) {
            (Some(from), Some(to)) if from < to => {}
            (Some(_), Some(_)) => {
                return Err(AppError::validation(
                    "settings.openingHours.ranges: from must be before to",
                ));
            }
            _ => {
                return Err(AppError::validation(
                    "settings.openingHours.ranges: from and to must be HH:MM",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn nested_objects_merge_and_other_values_replace() {
        let base = SpaceSettings::default();
        let merged = merge_settings(
            &base,
            &patch(json!({"title": "Hi", "attachments": {"maxCount": 5}})),
        )
        .unwrap();
        assert_eq!(merged.title, "Hi");
        assert_eq!(merged.attachments.max_count, 5);
        assert_eq!(
            merged.attachments.max_size_bytes,
            base.attachments.max_size_bytes
        );
        assert_eq!(merged.welcome_message, base.welcome_message);
    }

    #[test]
    fn unknown_keys_are_refused_at_any_depth() {
        let base = SpaceSettings::default();
        assert!(merge_settings(&base, &patch(json!({"colour": "#000000"}))).is_err());
        assert!(merge_settings(&base, &patch(json!({"attachments": {"max": 1}}))).is_err());
    }

    #[test]
    fn hex_colours_need_six_digits() {
        assert!(crate::validate::is_hex_color("#A0b1C2"));
        assert!(!crate::validate::is_hex_color("#abc"));
        assert!(!crate::validate::is_hex_color("a0b1c2f"));
        assert!(!crate::validate::is_hex_color("#ggg000"));
        assert!(!crate::validate::is_hex_color("#ééé"));
    }

    #[test]
    fn embed_snippet_escapes_the_base_url() {
        let s = embed_snippet("https://x.test/\"a", "KEY");
        assert!(s.contains("https://x.test/&quot;a/widget.js"));
        assert!(s.contains(r#"data-widget-key="KEY""#));
    }
}
