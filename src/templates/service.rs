//! Template use cases: canned responses of an organization, optionally tied
//! to one of its chat spaces.

use chrono::Utc;

use crate::error::{AppError, AppResult};
use crate::ids::{OrgId, SpaceId, TemplateId};
use crate::state::AppState;
use crate::store::{Reader, id_key};
use crate::templates::model::Template;

pub const MAX_SHORTCUT: usize = 32;
pub const MAX_TITLE: usize = 100;
pub const MAX_BODY: usize = 5000;

/// Normalises a shortcut to `/name`: a leading `/` is added when missing and
/// letters are lower-cased, so `Hello` and `/hello` are the same shortcut.
pub fn parse_shortcut(value: &str) -> AppResult<String> {
    let v = value.trim().to_lowercase();
    let name = v.strip_prefix('/').unwrap_or(&v);
    let valid = (1..=MAX_SHORTCUT).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(AppError::validation(format!(
            "shortcut must be / followed by 1 to {MAX_SHORTCUT} of a-z, 0-9, _ and -"
        )));
    }
    Ok(format!("/{name}"))
}

pub fn parse_title(value: &str) -> AppResult<String> {
    crate::validate::name("title", value, MAX_TITLE)
}

/// The body may span lines; surrounding blank space is dropped.
pub fn parse_body(value: &str) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::validation("body must not be empty"));
    }
    crate::validate::bounded("body", v, MAX_BODY)?;
    Ok(v.to_owned())
}

/// A new template's fields, already validated.
#[derive(Clone, Debug)]
pub struct NewTemplate {
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub chat_space_id: Option<SpaceId>,
}

impl NewTemplate {
    pub fn parse(
        shortcut: &str,
        title: &str,
        body: &str,
        chat_space_id: Option<SpaceId>,
    ) -> AppResult<NewTemplate> {
        Ok(NewTemplate {
            shortcut: parse_shortcut(shortcut)?,
            title: parse_title(title)?,
            body: parse_body(body)?,
            chat_space_id,
        })
    }
}

/// A change to a template, already validated. `chat_space_id: Some(None)`
/// makes the template organization-wide.
#[derive(Clone, Debug, Default)]
pub struct TemplatePatch {
    pub shortcut: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub chat_space_id: Option<Option<SpaceId>>,
}

/// Templates of the organization, by shortcut; with `space`, only the
/// organization-wide ones and that space's.
pub fn list(state: &AppState, org: OrgId, space: Option<SpaceId>) -> AppResult<Vec<Template>> {
    let read = state.store.read()?;
    if let Some(s) = space {
        check_space(&read, org, s)?;
    }
    let mut items: Vec<Template> = read
        .templates_of_org(org)?
        .into_iter()
        .filter(|t| space.is_none() || t.chat_space_id.is_none() || t.chat_space_id == space)
        .collect();
    items.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
    Ok(items)
}

/// A template of the caller's organization; another organization's is a 404.
pub fn get(state: &AppState, org: OrgId, id: TemplateId) -> AppResult<Template> {
    owned(&state.store.read()?, org, id)
}

pub async fn create(state: &AppState, org: OrgId, new: NewTemplate) -> AppResult<Template> {
    let template = Template {
        id: TemplateId::new(),
        organization_id: org,
        chat_space_id: new.chat_space_id,
        shortcut: new.shortcut,
        title: new.title,
        body: new.body,
        created_at: Utc::now(),
    };
    let t = template.clone();
    state
        .write(move |tx| {
            // Checked inside the transaction, which also sees the batch's
            // earlier writes, so two creations of one shortcut cannot both win.
            if let Some(s) = t.chat_space_id {
                check_space(tx, org, s)?;
            }
            check_shortcut_free(tx, org, &t.shortcut, t.id)?;
            Ok(tx.put(&t)?)
        })
        .await?;
    Ok(template)
}

pub async fn update(
    state: &AppState,
    org: OrgId,
    id: TemplateId,
    patch: TemplatePatch,
) -> AppResult<Template> {
    let template = state
        .write(move |tx| {
            let mut t = owned(tx, org, id)?;
            if let Some(shortcut) = &patch.shortcut {
                check_shortcut_free(tx, org, shortcut, id)?;
                t.shortcut = shortcut.clone();
            }
            if let Some(space) = patch.chat_space_id {
                if let Some(s) = space {
                    check_space(tx, org, s)?;
                }
                t.chat_space_id = space;
            }
            if let Some(title) = &patch.title {
                t.title = title.clone();
            }
            if let Some(body) = &patch.body {
                t.body = body.clone();
            }
            tx.put(&t)?;
            Ok(t)
        })
        .await?;
    Ok(template)
}

pub async fn delete(state: &AppState, org: OrgId, id: TemplateId) -> AppResult<()> {
    state
        .write(move |tx| {
            owned(tx, org, id)?;
            tx.delete::<Template>(&id_key(id.as_u128()))?;
            Ok(())
        })
        .await?;
    Ok(())
}

fn owned<R: Reader + ?Sized>(read: &R, org: OrgId, id: TemplateId) -> AppResult<Template> {
    read.template(id)?
        .filter(|t| t.organization_id == org)
        .ok_or(AppError::NotFound("template"))
}

/// A template may only point at a space of its own organization.
fn check_space<R: Reader + ?Sized>(read: &R, org: OrgId, space: SpaceId) -> AppResult<()> {
    match read.space(space)? {
        Some(s) if s.organization_id == org => Ok(()),
        _ => Err(AppError::NotFound("chat space")),
    }
}

/// Shortcuts are unique within an organization, whatever space they belong
/// to, so typing `/hello` never has two meanings.
fn check_shortcut_free<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    shortcut: &str,
    except: TemplateId,
) -> AppResult<()> {
    let taken = read
        .templates_of_org(org)?
        .iter()
        .any(|t| t.shortcut == shortcut && t.id != except);
    if taken {
        return Err(AppError::conflict(
            "shortcut_taken",
            format!("the shortcut {shortcut} is already in use"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_normalised() {
        assert_eq!(parse_shortcut("Hello").unwrap(), "/hello");
        assert_eq!(parse_shortcut(" /re_fund-2 ").unwrap(), "/re_fund-2");
        assert_eq!(parse_shortcut(&"a".repeat(32)).unwrap().len(), 33);
    }

    #[test]
    fn bad_shortcuts_are_refused() {
        for bad in ["", "/", "//a", "/a b", "/zażółć", "/a.b", &"a".repeat(33)] {
            assert!(parse_shortcut(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
