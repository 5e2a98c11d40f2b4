//! Visitor use cases for agents: look a visitor up, record who they are,
//! list their conversations. A visitor belongs to an organization through
//! its chat space, and every lookup goes through [`owned`].

use serde::Serialize;

use crate::error::{AppError, AppResult};
use crate::ids::{OrgId, VisitorId};
use crate::state::AppState;
use crate::store::Reader;
use crate::threads::model::Thread;
use crate::threads::rules::Access;
use crate::visitors::attributes::AttributesPatch;
use crate::visitors::model::Visitor;

pub const MAX_DISPLAY_NAME: usize = 100;
pub const MAX_PHONE: usize = 40;
pub const MAX_EXTERNAL_ID: usize = 200;

/// A visitor as agents see it: the stored fields plus the label the UIs
/// show. The session token is never part of it: only its hash exists, and
/// that lives in an index, not on the record.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VisitorView {
    #[serde(flatten)]
    pub visitor: Visitor,
    pub label: String,
}

impl From<Visitor> for VisitorView {
    fn from(visitor: Visitor) -> Self {
        VisitorView {
            label: visitor.label(),
            visitor,
        }
    }
}

/// A change to a visitor's identity, already validated. For each field,
/// `None` leaves it, `Some(None)` clears it, `Some(Some(v))` sets it.
#[derive(Clone, Debug, Default)]
pub struct VisitorPatch {
    pub display_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    /// Custom attributes to set (`null` removes one).
    pub attributes: Option<AttributesPatch>,
}

/// Longest contact note, in characters.
pub const MAX_NOTES: usize = 5000;

impl VisitorPatch {
    /// Adds the agents' notes and custom attributes to the change.
    pub fn with_notes_and_attributes(
        mut self,
        notes: Option<Option<&str>>,
        attributes: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> AppResult<VisitorPatch> {
        self.notes = match notes {
            Some(Some(n)) if !n.trim().is_empty() => {
                crate::validate::bounded("notes", n, MAX_NOTES)?;
                Some(Some(n.trim_end().to_owned()))
            }
            Some(_) => Some(None),
            None => None,
        };
        self.attributes = attributes.map(AttributesPatch::parse).transpose()?;
        Ok(self)
    }

    /// Validates raw fields; an empty text clears the field like `null` does.
    pub fn parse(
        display_name: Option<Option<&str>>,
        email: Option<Option<&str>>,
        phone: Option<Option<&str>>,
        external_id: Option<Option<&str>>,
    ) -> AppResult<VisitorPatch> {
        Ok(VisitorPatch {
            display_name: display_name
                .map(|v| crate::validate::optional_name("displayName", v, MAX_DISPLAY_NAME))
                .transpose()?,
            email: email.map(crate::validate::optional_email).transpose()?,
            phone: phone.map(parse_phone).transpose()?,
            external_id: external_id
                .map(|v| crate::validate::optional_name("externalId", v, MAX_EXTERNAL_ID))
                .transpose()?,
            notes: None,
            attributes: None,
        })
    }
}

/// A phone number as people type it: digits with spaces, `+`, `-` and
/// brackets; at most 40 characters and at least one digit.
pub fn parse_phone(value: Option<&str>) -> AppResult<Option<String>> {
    let v = match value.map(str::trim) {
        None | Some("") => return Ok(None),
        Some(v) => v,
    };
    let valid = v.chars().count() <= MAX_PHONE
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')'));
    if !valid {
        return Err(AppError::validation(format!(
            "phone must be up to {MAX_PHONE} characters of digits, spaces, + - ( )"
        )));
    }
    Ok(Some(v.to_owned()))
}

/// A visitor of one of the organization's spaces; anyone else's is a 404.
pub fn get(state: &AppState, org: OrgId, access: &Access, id: VisitorId) -> AppResult<Visitor> {
    owned(&state.store.read()?, org, access, id)
}

pub async fn update(
    state: &AppState,
    org: OrgId,
    access: Access,
    id: VisitorId,
    patch: VisitorPatch,
) -> AppResult<Visitor> {
    let visitor = state
        .write(move |tx| {
            // Re-read inside the transaction: the widget updates the same
            // record (page, last seen) and its changes must survive.
            let mut v = owned(tx, org, &access, id)?;
            if let Some(x) = &patch.display_name {
                v.display_name = x.clone();
            }
            if let Some(x) = &patch.email {
                v.email = x.clone();
            }
            if let Some(x) = &patch.phone {
                v.phone = x.clone();
            }
            if let Some(x) = &patch.external_id {
                // Only an identity token vouches for an external id.
                if *x != v.external_id {
                    v.verified = false;
                }
                v.external_id = x.clone();
            }
            if let Some(x) = &patch.notes {
                v.notes = x.clone();
            }
            if let Some(a) = &patch.attributes {
                v.attributes = a.apply(&v.attributes)?;
            }
            tx.put(&v)?;
            Ok(v)
        })
        .await?;
    state.search.visitor_changed(id);
    Ok(visitor)
}

/// The visitor's threads the agent sees, newest first.
pub fn threads(
    state: &AppState,
    org: OrgId,
    access: &Access,
    id: VisitorId,
) -> AppResult<Vec<Thread>> {
    let read = state.store.read()?;
    owned(&read, org, access, id)?;
    let mut threads = read.threads_of_visitor(id)?;
    threads.retain(|t| access.sees(t));
    Ok(threads)
}

/// A visitor of a space of `org` that `access` works in.
fn owned<R: Reader + ?Sized>(
    read: &R,
    org: OrgId,
    access: &Access,
    id: VisitorId,
) -> AppResult<Visitor> {
    let not_found = || AppError::NotFound("visitor");
    let visitor = read.visitor(id)?.ok_or_else(not_found)?;
    match read.space(visitor.chat_space_id)? {
        Some(space) if space.organization_id == org && access.works_in(space.id) => Ok(visitor),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_digits_and_punctuation() {
        assert_eq!(
            parse_phone(Some(" +48 (22) 123-45-67 "))
                .unwrap()
                .as_deref(),
            Some("+48 (22) 123-45-67")
        );
        assert_eq!(parse_phone(Some("")).unwrap(), None);
        assert!(parse_phone(Some("call me")).is_err());
        assert!(parse_phone(Some("+-()")).is_err());
        assert!(parse_phone(Some(&"1".repeat(41))).is_err());
    }
}
