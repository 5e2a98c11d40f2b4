//! An inbound mail (MIME from any client): parsed, and its answer cut
//! above the quoted text, as the inbound SMTP listener does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail_parser::MimeHeaders;

fuzz_target!(|raw: &[u8]| {
    if let Some(parsed) = mail_parser::MessageParser::default().parse(raw) {
        let body = parsed
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default();
        let _ = mychat::email::inbound::reply_text(&body);
        for a in parsed.attachments() {
            let _ = mychat::attachments::policy::sanitize_name(
                a.attachment_name().unwrap_or("attachment"),
            );
        }
    }
});
