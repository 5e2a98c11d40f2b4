//! Which operations the document lists, and how it is finished: paths
//! under `/api/v1`, unique operation ids, security schemes.

use utoipa::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, OpenApi as Document};

/// The REST API under `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "My-Chat API",
        description = "The REST API of a My-Chat appliance: the agent API, the widget's \
                       public API, the management API of integrations and the member chat \
                       API. JSON in and out; every error is `{\"error\": {\"code\", \"message\"}}`. \
                       Lists are cursor-paginated: a `nextCursor` in a page is passed back as \
                       `cursor`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        super::openapi_json,
        crate::accounts::http::register,
        crate::accounts::http::login,
        crate::accounts::http::refresh,
        crate::accounts::http::logout,
        crate::accounts::http::me,
        crate::accounts::http::change_password,
        crate::accounts::http::accept_invite,
        crate::accounts::http::registration,
        crate::templates::http::list,
        crate::templates::http::show,
        crate::templates::http::create,
        crate::templates::http::update,
        crate::templates::http::remove,
        crate::accounts::admin::get_organization,
        crate::accounts::admin::patch_organization,
        crate::accounts::admin::list_agents,
        crate::accounts::admin::create_agent,
        crate::accounts::admin::get_agent,
        crate::accounts::avatar::set,
        crate::accounts::avatar::remove,
        crate::accounts::avatar::show,
        crate::accounts::admin::patch_agent,
        crate::accounts::admin::delete_agent,
        crate::accounts::admin::invite_agent,
        crate::accounts::admin::list_teams,
        crate::accounts::admin::create_team,
        crate::accounts::admin::get_team,
        crate::accounts::admin::patch_team,
        crate::accounts::admin::delete_team,
        crate::spaces::http::list,
        crate::spaces::http::create,
        crate::spaces::http::show,
        crate::spaces::http::update,
        crate::spaces::http::remove,
        crate::spaces::http::rotate_key,
        crate::spaces::http::embed,
        crate::threads::http::space_threads,
        crate::threads::http::threads,
        crate::threads::http::start,
        crate::threads::http::one,
        crate::threads::http::update,
        crate::threads::http::remove,
        crate::threads::http::claim,
        crate::threads::http::release,
        crate::threads::http::close,
        crate::threads::http::reopen,
        crate::threads::http::transfer,
        crate::threads::http::read,
        crate::threads::http::unread,
        crate::messages::http::list,
        crate::messages::http::send,
        crate::messages::http::edit,
        crate::messages::http::remove,
        crate::messages::http::attach,
        crate::visitors::http::show,
        crate::visitors::http::update,
        crate::visitors::http::erase,
        crate::visitors::http::threads,
        crate::visitors::http::export,
        crate::reports::http::summary,
        crate::labels::http::list,
        crate::labels::http::create,
        crate::labels::http::update,
        crate::labels::http::remove,
        crate::widget::http::config,
        crate::widget::http::session,
        crate::widget::http::list,
        crate::widget::http::threads,
        crate::widget::http::send,
        crate::widget::http::update_visitor,
        crate::widget::http::identify,
        crate::widget::http::offline,
        crate::widget::http::close,
        crate::widget::http::read,
        crate::widget::http::rate,
        crate::integrations::http::list_tokens,
        crate::integrations::http::create_token,
        crate::integrations::http::delete_token,
        crate::integrations::http::list_keys,
        crate::integrations::http::create_key,
        crate::integrations::http::delete_key,
        crate::integrations::http::list_members,
        crate::integrations::http::show_member,
        crate::integrations::http::create_thread,
        crate::integrations::http::thread_by_ref,
        crate::integrations::http::show_thread,
        crate::integrations::http::patch_thread,
        crate::integrations::http::delete_thread,
        crate::integrations::http::add_participant,
        crate::integrations::http::remove_participant,
        crate::integrations::http::post_message,
        crate::integrations::http::list_dialogs,
        crate::integrations::http::dialog_by_object,
        crate::integrations::http::show_dialog,
        crate::integrations::http::join,
        crate::integrations::http::leave,
        crate::integrations::http::dialog_messages,
        crate::integrations::http::send_dialog_message,
        crate::integrations::http::read,
        crate::webhooks::http::list,
        crate::webhooks::http::create,
        crate::webhooks::http::show,
        crate::webhooks::http::update,
        crate::webhooks::http::remove,
        crate::webhooks::http::rotate,
        crate::webhooks::http::test,
        crate::webhooks::http::deliveries,
        crate::webhooks::http::retry,
        crate::audit::http::list,
        crate::push::http::vapid_key,
        crate::push::http::subscribe,
        crate::push::http::unsubscribe,
        crate::email::http::agent_transcript,
        crate::email::http::outbox,
        crate::email::http::widget_transcript,
        crate::attachments::http::agent_upload,
        crate::attachments::http::visitor_upload,
        crate::attachments::http::member_upload,
        crate::attachments::http::download,
        crate::attachments::http::thumbnail,
    ),
    components(schemas(
        super::ErrorBody,
        crate::ids::OrgId,
        crate::ids::AgentId,
        crate::ids::TeamId,
        crate::ids::SpaceId,
        crate::ids::VisitorId,
        crate::ids::ThreadId,
        crate::ids::MessageId,
        crate::ids::TemplateId,
        crate::ids::AttachmentId,
        crate::ids::ApiTokenId,
        crate::ids::SigningKeyId,
        crate::ids::MemberId,
        crate::ids::WebhookId,
        crate::ids::PushId,
        crate::ids::DeliveryId,
        crate::ids::AuditId,
        crate::ids::MailId,
        crate::ids::LabelId,
    )),
    tags(
        (name = "auth", description = "Sign-up, login, tokens of agents"),
        (name = "organization", description = "The organization, its agents and teams"),
        (name = "chat-spaces", description = "Chat spaces (one per site or widget)"),
        (name = "threads", description = "Conversations"),
        (name = "messages", description = "Messages of conversations"),
        (name = "attachments", description = "Files"),
        (name = "templates", description = "Canned responses"),
        (name = "labels", description = "Labels of conversations"),
        (name = "visitors", description = "Visitors, their data and its erasure"),
        (name = "reports", description = "Reports (admin)"),
        (name = "widget", description = "The widget's public API (visitor session token)"),
        (name = "integrations", description = "API tokens, signing keys, members"),
        (name = "management", description = "Object-bound conversations (management scope)"),
        (name = "dialogs", description = "The member chat API (member token)"),
        (name = "webhooks", description = "Webhooks and their deliveries (admin)"),
        (name = "audit", description = "The audit log (admin)"),
        (name = "push", description = "Web Push subscriptions of agents"),
        (name = "email", description = "Email transcripts and the mail outbox"),
        (name = "system", description = "Health, readiness, metrics and this document")
    )
)]
struct Api;

/// Routes at the root, outside `/api/v1`.
#[derive(OpenApi)]
#[openapi(paths(crate::ops::healthz, crate::ops::readyz, crate::ops::metrics))]
struct Root;

/// The credentials an annotation may name, and the schemes that carry each.
const CREDENTIALS: &[(&str, &[&str])] = &[
    ("agent", &["agentJwt", "apiToken", "apiTokenQuery"]),
    ("management", &["apiToken", "apiTokenQuery"]),
    ("member", &["memberToken"]),
    ("visitor", &["visitorSession"]),
];

/// The whole document.
pub fn document() -> Document {
    let mut doc = Root::openapi().nest("/api/v1", Api::openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = doc.components.get_or_insert_with(Components::new);
    add_schemes(components);
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        for (method, op) in operations {
            let Some(op) = op.as_mut() else { continue };
            op.operation_id = Some(operation_id(method, path));
            op.security = op.security.take().map(expand);
        }
    }
    doc
}

/// `get /api/v1/threads/{id}/messages` → `getThreadsIdMessages`: unique
/// because (method, path) is.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    for word in rest.split(['/', '-', '_', '{', '}', '.']) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.extend(chars);
        }
    }
    id
}

/// Each named credential becomes one alternative per scheme that carries it.
fn expand(requirements: Vec<SecurityRequirement>) -> Vec<SecurityRequirement> {
    let value = serde_json::to_value(&requirements).unwrap_or_default();
    let mut out = Vec::new();
    for requirement in value.as_array().into_iter().flatten() {
        let Some(map) = requirement.as_object() else {
            continue;
        };
        if map.is_empty() {
            out.push(SecurityRequirement::default());
        }
        for name in map.keys() {
            let schemes = CREDENTIALS
                .iter()
                .find(|(credential, _)| credential == name)
                .map(|(_, schemes)| *schemes)
                .unwrap_or_else(|| panic!("unknown credential {name} in an annotation"));
            for scheme in schemes {
                out.push(SecurityRequirement::new(*scheme, Vec::<String>::new()));
            }
        }
    }
    out
}

fn add_schemes(components: &mut Components) {
    let bearer = |format: Option<&str>, description: &str| {
        let mut http = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(description));
        if let Some(format) = format {
            http = http.bearer_format(format);
        }
        SecurityScheme::Http(http.build())
    };
    components.add_security_scheme(
        "agentJwt",
        bearer(
            Some("JWT"),
            "An agent's access token from `POST /api/v1/auth/login` (short-lived; \
             renewed with `POST /api/v1/auth/refresh`).",
        ),
    );
    components.add_security_scheme(
        "apiToken",
        bearer(
            None,
            "An API token (`mct_…`, from `POST /api/v1/api-tokens`) with the scope the \
             route needs: `agent` for the agent API, `management` for the management API.",
        ),
    );
    components.add_security_scheme(
        "apiTokenQuery",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "api_token",
            "An API token in the query string, as `?api_token=mct_…`.",
        ))),
    );
    components.add_security_scheme(
        "memberToken",
        bearer(
            Some("JWT"),
            "A member token: HS256, signed by the integrator's backend with a signing key \
             (`kid` = the key's id).",
        ),
    );
    components.add_security_scheme(
        "visitorSession",
        bearer(
            None,
            "A widget session token from `POST /api/v1/widget/session`.",
        ),
    );
}
