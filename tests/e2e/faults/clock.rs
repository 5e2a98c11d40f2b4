//! Wall-clock jumps, through the appliance's clock (`AppState::clock`,
//! where thread expiry reads the time): a step back never expires a
//! thread early, a step forward expires it early by at most the jump.
//! (Ids and access tokens under jumps: unit tests in `ids` and
//! `auth::jwt`.)

use chrono::Duration;
use mychat::spaces::model::SpaceSettings;
use mychat::threads::service::expire_inactive;

use crate::harness::{TestServer, fixtures};

#[tokio::test]
async fn a_clock_jump_moves_thread_expiry_by_at_most_the_jump() {
    let server = TestServer::start().await;
    let owner = server.register("Clock Co", "owner@clock.test").await;
    let settings = SpaceSettings {
        expire_after_minutes: 60,
        ..SpaceSettings::default()
    };
    let space = fixtures::space_with(&server, &owner, "Clock", &["site.test"], settings).await;
    let visitor = fixtures::visitor(&server, &space).await;
    let sent = fixtures::visitor_says(&server, &visitor, "hello").await;
    let thread = sent.message.thread_id;
    let clock = &server.app_state.clock;
    let status = |server: &TestServer| {
        let read = server.app_state.store.read().unwrap();
        mychat::store::Reader::thread(&read, thread)
            .unwrap()
            .unwrap()
            .status
    };

    // Two hours back: the thread looks younger, nothing expires.
    clock.advance(Duration::hours(-2));
    assert!(expire_inactive(&server.app_state).await.unwrap().is_empty());
    // Back to the real time and 59 minutes on: still inside its hour.
    clock.advance(Duration::hours(2) + Duration::minutes(59));
    assert!(expire_inactive(&server.app_state).await.unwrap().is_empty());
    assert!(status(&server).is_open());
    // Past the hour (a jump of 61 minutes forward): expired now, early by
    // the jump and no more.
    clock.advance(Duration::minutes(2));
    let expired = expire_inactive(&server.app_state).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, thread);
    assert!(!status(&server).is_open());
}
