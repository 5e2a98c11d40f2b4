//! Attachments: a file a visitor or an agent uploaded, and the part of it a
//! message carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AttachmentId, MessageId, OrgId, SpaceId, ThreadId};

/// Who uploaded a file. Only they may attach it to a message.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Uploader {
    pub kind: UploaderKind,
    pub id: uuid::Uuid,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UploaderKind {
    Visitor,
    Agent,
    Member,
}

impl Uploader {
    /// The key uploads are rate limited by.
    pub fn limit_key(&self) -> String {
        match self.kind {
            UploaderKind::Visitor => format!("visitor:{}", self.id),
            UploaderKind::Agent => format!("agent:{}", self.id),
            UploaderKind::Member => format!("member:{}", self.id),
        }
    }
}

/// A stored file's metadata. The bytes live under
/// `data_dir/attachments/` by a random storage key, never by their name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub id: AttachmentId,
    pub organization_id: OrgId,
    pub chat_space_id: SpaceId,
    pub uploader: Uploader,
    /// Set at upload for agents (the thread it is for), at sending for visitors.
    pub thread_id: Option<ThreadId>,
    /// Set once, by the message that carries it.
    pub message_id: Option<MessageId>,
    /// The client's file name, sanitised; shown and used for downloads.
    pub original_name: String,
    /// Decided by the content, never by the client.
    pub mime_type: String,
    pub size_bytes: u64,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    /// Pixel size of raster images (after EXIF orientation).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Hex sha256 of the bytes; also the download's ETag.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    /// The space's retention removed the file.
    pub expired_at: Option<DateTime<Utc>>,
    /// Its message was deleted, and the file with it.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Attachment {
    /// The file is still on disk and may be downloaded.
    pub fn is_live(&self) -> bool {
        self.expired_at.is_none() && self.deleted_at.is_none()
    }

    /// Storage keys of every file this attachment owns.
    pub fn file_keys(&self) -> Vec<String> {
        std::iter::once(self.storage_key.clone())
            .chain(self.thumbnail_key.clone())
            .collect()
    }

    /// What a message carries of it.
    pub fn to_ref(&self) -> AttachmentRef {
        AttachmentRef {
            id: self.id,
            name: self.original_name.clone(),
            mime_type: self.mime_type.clone(),
            size_bytes: self.size_bytes,
            width: self.width,
            height: self.height,
            thumbnail: self.thumbnail_key.is_some(),
            expired: !self.is_live(),
        }
    }

    pub fn view(&self) -> AttachmentView {
        AttachmentView {
            file: self.to_ref(),
            url: download_url(self.id),
            thumbnail_url: self
                .thumbnail_key
                .as_ref()
                .map(|_| format!("{}/thumbnail", download_url(self.id))),
            sha256: self.sha256.clone(),
            thread_id: self.thread_id,
            message_id: self.message_id,
            created_at: self.created_at,
        }
    }
}

/// An attachment as a message carries it: enough to draw a file chip or an
/// image preview without another request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRef {
    pub id: AttachmentId,
    pub name: String,
    pub mime_type: String,
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `GET /api/v1/attachments/:id/thumbnail` exists.
    #[serde(default)]
    pub thumbnail: bool,
    /// Removed by retention; the download is gone.
    #[serde(default)]
    pub expired: bool,
}

/// The answer to an upload.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentView {
    #[serde(flatten)]
    pub file: AttachmentRef,
    pub url: String,
    pub thumbnail_url: Option<String>,
    pub sha256: String,
    pub thread_id: Option<ThreadId>,
    pub message_id: Option<MessageId>,
    pub created_at: DateTime<Utc>,
}

/// The guarded download route of an attachment, relative to the server.
pub fn download_url(id: AttachmentId) -> String {
    format!("/api/v1/attachments/{id}")
}

/// Reads a message's attachments. Messages stored before attachments were
/// bound held bare ids that named no stored file; they read as expired
/// files, so no schema migration is needed.
pub fn refs_or_legacy_ids<'de, D>(d: D) -> Result<Vec<AttachmentRef>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Ref(AttachmentRef),
        Id(AttachmentId),
    }
    let stored = Vec::<Stored>::deserialize(d)?;
    Ok(stored
        .into_iter()
        .map(|s| match s {
            Stored::Ref(r) => r,
            Stored::Id(id) => AttachmentRef {
                id,
                name: "attachment".into(),
                mime_type: "application/octet-stream".into(),
                size_bytes: 0,
                width: None,
                height: None,
                thumbnail: false,
                expired: true,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_bare_ids_read_as_expired_files() {
        #[derive(Deserialize)]
        struct M {
            #[serde(deserialize_with = "refs_or_legacy_ids")]
            attachments: Vec<AttachmentRef>,
        }
        let id = AttachmentId::new();
        let json = format!(
            r#"{{"attachments": ["{id}", {{"id": "{id}", "name": "a.png", "mimeType": "image/png", "sizeBytes": 3}}]}}"#
        );
        let m: M = serde_json::from_str(&json).unwrap();
        assert_eq!(m.attachments.len(), 2);
        assert!(m.attachments[0].expired);
        assert_eq!(m.attachments[1].name, "a.png");
        assert!(!m.attachments[1].expired);
    }
}
