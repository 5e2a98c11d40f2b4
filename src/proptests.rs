//! Property tests of every parser of untrusted input: socket frames,
//! JSON bodies, cursors, tokens, `Range` headers, uploaded files and their
//! names, config files and inbound mail. Each runs a bounded number of
//! cases in the normal test run; `fuzz/` runs the same parsers for as
//! long as one likes.

use mail_parser::MimeHeaders;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::attachments::http::{ByteRange, parse_range};
use crate::attachments::policy::{self, Kind};
use crate::ids::ThreadId;
use crate::realtime::protocol::{self, AgentIn, MemberIn, WidgetIn};
use crate::store::ThreadCursor;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a few levels, with the numbers and strings
/// serde finds hardest: huge and negative integers, floats, empty and
/// non-ASCII strings, escapes.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        "[0-9a-f-]{36}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names: the real ones of the frames and bodies, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "threadId",
            "dialogId",
            "clientMsgId",
            "content",
            "replyToId",
            "attachmentIds",
            "upTo",
            "after",
            "isTyping",
            "token",
            "internal",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_]{1,12}",
    ]
}

/// Frame types the three sockets know, and some they do not.
fn frame_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "auth",
            "ping",
            "resume",
            "visitor:send_message",
            "visitor:typing",
            "visitor:read",
            "agent:send_message",
            "agent:typing",
            "agent:read",
            "agent:claim",
            "member:send_message",
            "member:typing",
            "member:read",
            "subscribe",
        ])
        .prop_map(|t| json!(t)),
        any_json(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn socket_frames_of_any_text_are_parsed_or_refused_with_a_code(text in ".{0,200}") {
        for (code, _) in [
            protocol::parse::<WidgetIn>(&text).err(),
            protocol::parse::<AgentIn>(&text).err(),
            protocol::parse::<MemberIn>(&text).err(),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert!(["invalid_json", "invalid_frame", "unknown_type"].contains(&code));
        }
    }

    #[test]
    fn socket_frames_of_any_json_are_parsed_or_refused_with_a_code(
        kind in frame_type(),
        fields in prop::collection::vec((key(), any_json()), 0..6),
    ) {
        let mut frame: Map<String, Value> = fields.into_iter().collect();
        frame.insert("type".into(), kind);
        let text = Value::Object(frame).to_string();
        for code in [
            protocol::parse::<WidgetIn>(&text).err().map(|e| e.0),
            protocol::parse::<AgentIn>(&text).err().map(|e| e.0),
            protocol::parse::<MemberIn>(&text).err().map(|e| e.0),
        ].into_iter().flatten() {
            prop_assert!(["invalid_frame", "unknown_type"].contains(&code), "{code} for {text}");
        }
    }

    #[test]
    fn thread_cursors_survive_a_round_trip_and_any_text_is_refused_quietly(
        micros in any::<i64>(),
        id in any::<u128>(),
        junk in ".{0,80}",
    ) {
        let cursor = ThreadCursor { micros, id: ThreadId::from_u128(id) };
        prop_assert_eq!(ThreadCursor::parse(&cursor.encode()), Some(cursor));
        let _ = ThreadCursor::parse(&junk);
    }

    #[test]
    fn range_headers_give_a_part_inside_the_file_or_none(
        value in prop_oneof![
            ".{0,40}",
            "bytes=[0-9]{0,21}-[0-9]{0,21}",
            "bytes= ?-?[0-9]{0,5} ?- ?[0-9]{0,5},?[0-9-]{0,5}",
        ],
        size in prop_oneof![Just(0u64), Just(1u64), any::<u64>(), 0u64..10_000],
    ) {
        match parse_range(&value, size) {
            ByteRange::Part { start, end } => {
                prop_assert!(start <= end, "{value} of {size}: {start}-{end}");
                prop_assert!(end < size, "{value} of {size}: {start}-{end}");
            }
            ByteRange::Full | ByteRange::Unsatisfiable => {}
        }
    }

    #[test]
    fn well_formed_ranges_are_honoured(size in 1u64..1_000_000, a in any::<u64>(), b in any::<u64>()) {
        let (start, end) = (a % size, b % size);
        let (start, end) = (start.min(end), start.max(end));
        prop_assert_eq!(
            parse_range(&format!("bytes={start}-{end}"), size),
            ByteRange::Part { start, end }
        );
    }

    #[test]
    fn uploaded_bytes_of_any_kind_are_judged_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        prefix in prop::sample::select(vec![
            &b""[..],
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"GIF89a",
            b"RIFF\0\0\0\0WEBP",
            b"%PDF-1.7",
            b"PK\x03\x04",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
            b"MZ",
            b"\x7fELF",
            b"<svg",
        ]),
        ext in prop::sample::select(vec![
            "png", "jpg", "jpeg", "gif", "webp", "pdf", "txt", "csv", "docx", "xlsx", "doc", "zip", "exe",
        ]),
    ) {
        let mut file = prefix.to_vec();
        file.extend_from_slice(&bytes);
        if let Some(kind) = Kind::from_extension(ext) {
            let _ = policy::verify(kind, &file);
        }
    }

    #[test]
    fn file_names_are_made_safe(raw in ".{0,400}") {
        let name = policy::sanitize_name(&raw);
        prop_assert!(!name.is_empty());
        prop_assert!(name.chars().count() <= policy::MAX_NAME_CHARS + 17, "{name}");
        prop_assert!(!name.contains(['/', '\\']), "{name}");
        prop_assert!(!name.chars().any(char::is_control), "{name}");
        prop_assert!(name != "." && name != "..");
        let _ = policy::content_disposition(&name, true);
    }

    #[test]
    fn agent_tokens_of_any_text_are_refused(junk in ".{0,300}", parts in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 3)) {
        let keys = jwt_keys();
        prop_assert!(keys.verify(&junk).is_none());
        prop_assert!(keys.verify(&parts.join(".")).is_none());
    }

    #[test]
    fn inbound_mail_of_any_bytes_is_parsed_or_refused(
        raw in prop::collection::vec(any::<u8>(), 0..1024),
        header in prop::sample::select(vec![
            "",
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\n",
            "Content-Type: text/html; charset=iso-8859-2\r\n\r\n",
            "Subject: =?utf-8?B?",
        ]),
    ) {
        let mut mail = header.as_bytes().to_vec();
        mail.extend_from_slice(&raw);
        if let Some(parsed) = mail_parser::MessageParser::default().parse(&mail[..]) {
            let body = parsed.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
            let _ = crate::email::inbound::reply_text(&body);
            for a in parsed.attachments() {
                let _ = policy::sanitize_name(a.attachment_name().unwrap_or("attachment"));
            }
        }
        let _ = crate::email::inbound::reply_text(&String::from_utf8_lossy(&raw));
    }

    #[test]
    fn config_files_of_any_text_load_or_are_refused(text in prop_oneof![
        ".{0,200}",
        "\\[(http|limits|store|auth|email|tls)\\]\n[a-z_]{1,20} = (\"[^\"\n]{0,20}\"|-?[0-9]{1,20}|true|\\[\\])\n",
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mychat.toml");
        std::fs::write(&file, &text).unwrap();
        if let Ok(config) = crate::Config::load(Some(&file), &Default::default()) {
            let _ = config.validate();
        }
    }
}

fn jwt_keys() -> crate::auth::jwt::JwtKeys {
    use std::sync::OnceLock;
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| process_dir("jwt"));
    crate::auth::jwt::JwtKeys::load(dir, "", 900).unwrap()
}

/// An appliance's state on a fresh data dir (no listener), for the parsers
/// that look keys up in the store; one per test process.
fn state() -> &'static crate::AppState {
    use std::sync::OnceLock;
    static STATE: OnceLock<(tokio::runtime::Runtime, crate::AppState)> = OnceLock::new();
    let (_, state) = STATE.get_or_init(|| {
        let dir = process_dir("state");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = crate::Config {
            data_dir: dir,
            demo: false,
            ..crate::Config::default()
        };
        let app = runtime.block_on(crate::App::build(config)).unwrap();
        let state = app.state().clone();
        (runtime, state)
    });
    state
}

/// A dir for state this test process shares between its tests, kept for
/// the life of the process (a static is never dropped, so a temp dir of
/// its own would never be removed). The dirs of the test processes that
/// have ended are removed here instead.
fn process_dir(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join("mychat-unit-tests");
    std::fs::create_dir_all(&root).unwrap();
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let ended = entry
            .file_name()
            .to_str()
            .and_then(|n| n.split('-').next()?.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if ended {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A JWT whose three parts are any JSON the strategy makes, signed or not.
fn token_of(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..config() })]

    #[test]
    fn member_and_visitor_tokens_of_any_shape_are_refused_with_401(
        alg in prop::sample::select(vec!["HS256", "none", "RS256", "HS512", ""]),
        kid in prop_oneof![Just(Value::Null), "[0-9a-f-]{36}".prop_map(Value::String), any_json()],
        claims in any_json(),
        signature in "[A-Za-z0-9_-]{0,64}",
        junk in ".{0,200}",
    ) {
        let state = state();
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        for token in [token_of(&header, &claims, &signature), junk] {
            for refused in [
                crate::integrations::identity::verify_member_token(state, &token).err(),
                crate::integrations::identity::verify_visitor_token(state, &token).err(),
            ] {
                let status = refused.expect("refused").status().as_u16();
                prop_assert_eq!(status, 401, "{}", token);
            }
        }
    }

    #[test]
    fn json_bodies_of_any_bytes_are_read_or_refused_with_a_4xx(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            any_json().prop_map(|v| v.to_string().into_bytes()),
            Just(b"{\"a\":".to_vec()),
            Just(b"1e999999".to_vec()),
            Just("[".repeat(300).into_bytes()),
        ],
        content_type in prop::sample::select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "",
        ]),
    ) {
        use axum::extract::FromRequest;
        let mut request = axum::http::Request::builder().method("POST").uri("/");
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let request = request.body(axum::body::Body::from(body)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Send {
            content: String,
            client_msg_id: Option<String>,
            reply_to_id: Option<crate::ids::MessageId>,
            #[serde(default)]
            attachment_ids: Vec<crate::ids::AttachmentId>,
        }
        let read = runtime.block_on(crate::extract::ApiJson::<Send>::from_request(request, &()));
        if let Err(e) = read {
            let status = e.status().as_u16();
            prop_assert!([400, 413, 415].contains(&status), "{}", status);
        }
    }
}
