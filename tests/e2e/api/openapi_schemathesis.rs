//! schemathesis (PyPI) against a live server: it reads the served OpenAPI
//! document, generates requests (valid and invalid ones) for every
//! operation and checks each answer: no 5xx, a documented status, the
//! documented content type and a body that matches the documented schema.
//! Each credential is exercised on the operations it opens.

use serde_json::json;

use super::openapi::python_tool;
use crate::harness::{FROM_SITE, TestServer, fixtures};

/// Requests per operation and phase: enough to find the usual mistakes,
/// few enough that the three runs take a few minutes on two cores.
const EXAMPLES: &str = "12";

/// Runs schemathesis on the operations `filter` picks, with `headers`
/// on every request; fails with schemathesis's report when a check fails.
async fn schemathesis(server: &TestServer, name: &str, filter: &[&str], headers: &[String]) {
    let report = server.data_dir().join(format!("schemathesis-{name}"));
    let mut cmd = tokio::process::Command::new(python_tool("schemathesis"));
    cmd.arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--url", &server.base])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,fuzzing"])
        .args(["--max-examples", EXAMPLES])
        .args(["--seed", "19"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "20"])
        .args(["--suppress-health-check", "all"])
        .args(["--generation-database", "none"])
        .args(["--generation-with-security-parameters", "false"])
        .args(["--no-color", "--output-truncate", "true"])
        .arg("--report-dir")
        .arg(&report)
        .args(filter);
    for header in headers {
        cmd.args(["--header", header]);
    }
    // Its caches go to the working directory: the server's temp dir.
    cmd.env("SCHEMATHESIS_HOOKS", "")
        .current_dir(server.data_dir())
        .kill_on_drop(true);
    let out = cmd.output().await.expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis ({name}) found problems:\n{}\n{}",
        tail(&stdout, 20_000),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("schemathesis ({name}):\n{}", tail(&stdout, 3_000));
    // A run that tested nothing would pass as well.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis ({name}) ran no test:\n{stdout}"
    );
}

fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    &text[start..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_problem_with_any_credential() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let token = server
        .post(
            "/api/v1/api-tokens",
            &owner.token,
            json!({"name": "CRM", "scopes": ["agent", "management"]}),
        )
        .await;
    let api_token = token.created()["token"].as_str().unwrap().to_owned();
    let (visitor_token, _) =
        fixtures::visitor_session(&server, FROM_SITE, json!({"key": space.widget_key.clone()}))
            .await;

    // An agent's JWT on the agent API (what it does to its own session
    // and password is left out: a lucky guess would end the run's login).
    schemathesis(
        &server,
        "agent",
        &[
            "--exclude-path-regex",
            "^/api/v1/(widget/|dialogs|auth/(logout|password)$)",
        ],
        &[format!("Authorization: Bearer {}", owner.token)],
    )
    .await;
    // An API token on the management API and the agent API it opens.
    schemathesis(
        &server,
        "api-token",
        &[
            "--include-tag-regex",
            "^(management|threads|messages|visitors|integrations)$",
        ],
        &[format!("Authorization: Bearer {api_token}")],
    )
    .await;
    // A widget session from the allowed site on the widget's API.
    schemathesis(
        &server,
        "visitor",
        &["--include-path-regex", "^/api/v1/widget/"],
        &[
            format!("Authorization: Bearer {visitor_token}"),
            format!("Origin: {}", crate::harness::SITE),
        ],
    )
    .await;
}
