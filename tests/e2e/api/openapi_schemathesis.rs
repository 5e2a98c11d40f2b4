//! schemathesis (PyPI) against a live server: it reads the served OpenAPI
//! document, generates requests (valid and invalid ones) for every
//! operation and checks each answer: no 5xx, a documented status, the
//! documented content type and a body that matches the documented schema.
//! Each credential is exercised on the operations it opens, over a seeded
//! world (`openapi_world`) whose ids it is given, so that most operations
//! are reached on their success path and their bodies are checked.
//!
//! Each run prints how many answers were 2xx, 4xx and 5xx (counted from
//! the server's `/metrics`) and how many operations answered 2xx at least
//! once; docs/BENCHMARKS.md has the figures of a run.

use std::collections::{BTreeMap, BTreeSet};

use super::openapi::python_tool;
use super::openapi_world::{World, seed};
use crate::harness::TestServer;

/// Requests per operation in the fuzzing phase (the coverage phase adds
/// its boundary and negative cases): enough to find the usual mistakes,
/// few enough that the four runs take about a minute on two cores.
const EXAMPLES: &str = "12";

/// Answers counted by (method, route, status) from `/metrics`.
type Counts = BTreeMap<(String, String, u16), u64>;

async fn counts(server: &TestServer) -> Counts {
    let text = crate::harness::text(server.client.get(server.url("/metrics"))).await;
    let mut out = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("mychat_http_requests_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("a sample");
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).expect("a label") + name.len() + 2;
            labels[start..start + labels[start..].find('"').unwrap()].to_owned()
        };
        out.insert(
            (
                label("method"),
                label("route"),
                label("code").parse().unwrap(),
            ),
            value.trim().parse().unwrap(),
        );
    }
    out
}

/// What one run did: answers per status class, and the operations that
/// answered 2xx at least once.
#[derive(Default)]
struct Tally {
    by_class: BTreeMap<u16, u64>,
    succeeded: BTreeSet<(String, String)>,
}

fn tally(before: &Counts, after: &Counts, into: &mut Tally) -> Tally {
    let mut run = Tally::default();
    for (key, n) in after {
        let n = n - before.get(key).copied().unwrap_or(0);
        if n == 0 || key.1 == "/metrics" {
            continue;
        }
        let class = key.2 / 100;
        *run.by_class.entry(class).or_default() += n;
        *into.by_class.entry(class).or_default() += n;
        if class == 2 {
            run.succeeded.insert((key.0.clone(), key.1.clone()));
            into.succeeded.insert((key.0.clone(), key.1.clone()));
        }
    }
    run
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = |c: u16| self.by_class.get(&c).copied().unwrap_or(0);
        write!(
            f,
            "{} answers: {} 2xx, {} 4xx, {} 5xx; {} routes answered 2xx",
            self.by_class.values().sum::<u64>(),
            class(2),
            class(4),
            class(5),
            self.succeeded.len()
        )
    }
}

/// Runs schemathesis on the operations `filter` picks, with `headers`
/// on every request and the world's ids; fails with schemathesis's
/// report when a check fails.
async fn schemathesis(
    server: &TestServer,
    world: &World,
    name: &str,
    filter: &[&str],
    headers: &[String],
    total: &mut Tally,
) {
    let report = server.data_dir().join(format!("schemathesis-{name}"));
    let config = server.data_dir().join("schemathesis.toml");
    std::fs::write(&config, world.config()).expect("config written");
    let before = counts(server).await;
    let mut cmd = tokio::process::Command::new(python_tool("schemathesis"));
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--url", &server.base])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", EXAMPLES])
        .args(["--seed", "19"])
        // One worker: with two, hypothesis' lambda descriptions call
        // `ast.parse` from two threads at once, which CPython 3.11 before
        // 3.11.8 can fail with a spurious "AST constructor recursion depth
        // mismatch" SystemError (python/cpython#106905).
        .args(["--workers", "1"])
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
    let run = tally(&before, &counts(server).await, total);
    eprintln!(
        "schemathesis ({name}):\n{}\n{name}: {run}",
        tail(&stdout, 3_000)
    );
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
    // The world's webhooks point at a closed port of this machine.
    let server = TestServer::start_with(|c| c.webhooks.allow_private_targets = true).await;
    let world = seed(&server).await;
    let mut total = Tally::default();

    // An agent's JWT on the agent API (what it does to its own session
    // and password is left out: a lucky guess would end the run's login;
    // the management API takes API tokens only).
    schemathesis(
        &server,
        &world,
        "agent",
        &[
            "--exclude-path-regex",
            "^/api/v1/(widget/|dialogs|management/|auth/(logout|password)$)",
        ],
        &[format!("Authorization: Bearer {}", world.org.owner.token)],
        &mut total,
    )
    .await;
    // An API token on the management API and the agent API it opens.
    schemathesis(
        &server,
        &world,
        "api-token",
        &[
            "--include-tag-regex",
            "^(management|threads|messages|visitors|integrations)$",
        ],
        &[format!("Authorization: Bearer {}", world.api_token)],
        &mut total,
    )
    .await;
    // A widget session from the allowed site on the widget's API.
    schemathesis(
        &server,
        &world,
        "visitor",
        &["--include-path-regex", "^/api/v1/widget/"],
        &[
            format!("Authorization: Bearer {}", world.visitor_token),
            format!("Origin: {}", crate::harness::SITE),
        ],
        &mut total,
    )
    .await;
    // A member of the object-bound conversation on the member chat API.
    schemathesis(
        &server,
        &world,
        "member",
        &["--include-path-regex", "^/api/v1/dialogs"],
        &[format!("Authorization: Bearer {}", world.member_token)],
        &mut total,
    )
    .await;

    // How many documented operations answered 2xx at least once.
    let doc = super::openapi::served_document(&server).await;
    let mut documented = 0;
    let mut never = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            documented += 1;
            let key = (method.to_uppercase(), path.clone());
            if !total.succeeded.contains(&key) {
                never.push(format!("{} {path}", key.0));
            }
        }
    }
    let reached = documented - never.len();
    eprintln!(
        "schemathesis, all runs: {total}\n\
         {reached} of {documented} documented operations answered 2xx; never: {}",
        never.join(", ")
    );
    assert_eq!(total.by_class.get(&5), None, "server errors: {total}");
    // The world's ids reach the success paths: without them most
    // operations only ever answer 401, 404 or 400.
    assert!(
        reached >= 95,
        "only {reached} of {documented} operations answered 2xx; never: {never:?}"
    );
}
