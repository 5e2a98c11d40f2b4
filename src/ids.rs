//! Typed identifiers. Every entity has its own id type so a `ThreadId` can
//! never be passed where a `MessageId` is expected. All ids are UUIDv7:
//! time-ordered, so sorting by id is sorting by creation time.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::timestamp::context::ContextV7;
use uuid::{Timestamp, Uuid};

/// The process's one UUIDv7 sequence. Its time never goes back: when the
/// wall clock steps back, ids keep the newest time seen (with a counter
/// below it) until the clock passes it again, so ids — and the messages of
/// a thread keyed by them — stay in creation order.
static SEQUENCE: Mutex<ContextV7> = Mutex::new(ContextV7::new());

/// A fresh UUIDv7 from the wall clock.
pub fn v7_now() -> Uuid {
    v7_at(&SEQUENCE, SystemTime::now())
}

/// A UUIDv7 of `sequence` at wall-clock time `at` (tests pass their own).
fn v7_at(sequence: &Mutex<ContextV7>, at: SystemTime) -> Uuid {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let context = sequence.lock().unwrap_or_else(|e| e.into_inner());
    Uuid::new_v7(Timestamp::from_unix(
        &*context,
        since.as_secs(),
        since.subsec_nanos(),
    ))
}

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(v7_now())
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

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::openapi::schemas::uuid_schema()
            }
        }

        impl utoipa::ToSchema for $name {}

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
    fn ids_stay_in_order_when_the_wall_clock_steps_back_or_forward() {
        use std::time::Duration;
        let sequence = Mutex::new(ContextV7::new());
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hour = Duration::from_secs(3600);
        // Forward, an hour back (NTP stepping a fast clock), a second
        // back, a day forward, and back to where it began.
        let times = [t, t + hour, t, t - Duration::from_secs(1), t + 24 * hour, t];
        let mut last = v7_at(&sequence, t - hour);
        for at in times {
            for _ in 0..1000 {
                let id = v7_at(&sequence, at);
                assert!(id > last, "{id} after {last} at {at:?}");
                last = id;
            }
        }
        // After a step back the ids keep the newest time seen, not the
        // clock's earlier one: the jump shows in no id.
        let (seconds, _) = last.get_timestamp().unwrap().to_unix();
        assert_eq!(
            seconds,
            (t + 24 * hour)
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        );
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = ThreadId::new();
        let parsed: ThreadId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("not-a-uuid".parse::<ThreadId>().is_err());
    }
}
