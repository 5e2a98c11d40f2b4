//! A frame from any of the three sockets: parsed or refused with a code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychat::realtime::protocol::{self, AgentIn, MemberIn, WidgetIn};

fuzz_target!(|text: &str| {
    for (code, _) in [
        protocol::parse::<WidgetIn>(text).err(),
        protocol::parse::<AgentIn>(text).err(),
        protocol::parse::<MemberIn>(text).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(["invalid_json", "invalid_frame", "unknown_type"].contains(&code));
    }
});
