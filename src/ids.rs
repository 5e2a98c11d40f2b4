//! Typed identifiers. Every entity has its own id type so a `ThreadId` can
//! never be passed where a `MessageId` is expected. All ids are UUIDv7:
//! time-ordered, so sorting by id is sorting by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id as a big number; its order is the id's time order.
            pub fn as_u128(self) -> u128 {
                self.0.as_u128()
            }

            pub fn from_u128(v: u128) -> Self {
                Self(Uuid::from_u128(v))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )+};
}

typed_id!(
    OrgId,
    AgentId,
    TeamId,
    SpaceId,
    VisitorId,
    ThreadId,
    MessageId,
    TemplateId,
    AttachmentId,
    ApiTokenId,
    SigningKeyId,
    MemberId,
    WebhookId,
    PushId,
    DeliveryId,
    AuditId,
    MailId,
    LabelId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
        assert!(a.as_u128() < b.as_u128());
        assert_eq!(MessageId::from_u128(a.as_u128()), a);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = ThreadId::new();
        let parsed: ThreadId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("not-a-uuid".parse::<ThreadId>().is_err());
    }
}
