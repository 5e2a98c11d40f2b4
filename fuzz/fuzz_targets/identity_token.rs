//! A member or visitor identity token signed with a live signing key:
//! whatever its header and claims hold, it is taken or refused with a
//! 401, never a panic or another status.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use mychat::audit::Who;
use mychat::audit::model::{Actor, ActorKind};
use mychat::ids::OrgId;
use mychat::integrations::{credentials, identity};

struct Appliance {
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
    state: mychat::AppState,
    kid: String,
    key: EncodingKey,
}

fn appliance() -> &'static Appliance {
    static APPLIANCE: OnceLock<Appliance> = OnceLock::new();
    APPLIANCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = mychat::Config {
            data_dir: dir.path().to_path_buf(),
            demo: false,
            ..mychat::Config::default()
        };
        let app = runtime.block_on(mychat::App::build(config)).unwrap();
        let state = app.state().clone();
        let who = Who {
            actor: Actor {
                kind: ActorKind::System,
                id: None,
                name: None,
            },
            ip: None,
        };
        let (key, secret) = runtime
            .block_on(credentials::create_key(
                &state,
                OrgId::new(),
                "fuzz".into(),
                &who,
            ))
            .unwrap();
        Appliance {
            _dir: dir,
            _runtime: runtime,
            state,
            kid: key.id.to_string(),
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    })
}

fuzz_target!(|input: (&[u8], &[u8])| {
    let (extra_header, claims) = input;
    let a = appliance();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    // The header names the live key (so the signature and the claims
    // are checked), with the fuzzer's bytes after it.
    let mut header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}""#, a.kid).into_bytes();
    header.extend_from_slice(extra_header);
    let message = format!("{}.{}", b64(&header), b64(claims));
    let Ok(signature) = jsonwebtoken::crypto::sign(message.as_bytes(), &a.key, Algorithm::HS256)
    else {
        return;
    };
    let token = format!("{message}.{signature}");
    for refused in [
        identity::verify_member_token(&a.state, &token).err(),
        identity::verify_visitor_token(&a.state, &token).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(refused.status().as_u16(), 401, "{token}");
    }
});
