//! Email over a real SMTP server (aiosmtpd, started by each test): agents
//! hear about offline and unanswered messages as their preferences say,
//! visitors who left get the replies they missed (batched, with one-click
//! unsubscribe), transcripts on request — and nothing a visitor typed can
//! add a header or a recipient.

use crate::harness::fixtures::{self, Agent};
use crate::harness::smtp::SmtpSink;
use crate::harness::{FROM_SITE, Owner, Reply, TestServer, WAIT, eventually};
use mychat::accounts::model::Role;
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use reqwest::Method;
use serde_json::{Value, json};

struct Setup {
    sink: SmtpSink,
    server: TestServer,
    owner: Owner,
    space: ChatSpace,
}

async fn setup() -> Setup {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let server = TestServer::start_with(move |c| {
        c.email.smtp_url = url;
        c.email.from = "Acme Chat <chat@acme.test>".into();
        c.email.unanswered_minutes = 5;
        c.email.visitor_delay_minutes = 3;
    })
    .await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space_with(
        &server,
        &owner,
        "Acme Shop",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await;
    Setup {
        sink,
        server,
        owner,
        space,
    }
}

async fn widget_call(s: &Setup, method: Method, path: &str, token: &str, body: Value) -> Reply {
    s.server
        .call_with(
            method,
            &format!("/api/v1/widget{path}"),
            Some(token),
            Some(body),
            FROM_SITE,
        )
        .await
}

async fn session(s: &Setup) -> String {
    let body = json!({ "key": s.space.widget_key });
    fixtures::visitor_session(&s.server, FROM_SITE, body)
        .await
        .0
}

/// Waits until no mail is due (every one is sent, skipped, failed or
/// waiting for a later time); every mail.
async fn settled(s: &Setup) -> Vec<Value> {
    s.server.app_state.mailer.due.notify_one();
    eventually(WAIT, "the outbox to settle", || async {
        let now = s.server.app_state.clock.now();
        let r = s
            .server
            .get("/api/v1/email/outbox?limit=100", &s.owner.token)
            .await;
        let items = r.ok()["items"].as_array().unwrap().clone();
        let due = |m: &Value| {
            let at: chrono::DateTime<chrono::Utc> =
                m["nextAttemptAt"].as_str().unwrap().parse().unwrap();
            m["status"] == "pending" && at <= now
        };
        (!items.iter().any(due)).then_some(items)
    })
    .await
}

/// Moves the appliance's clock on and wakes the email worker.
fn later(s: &Setup, minutes: i64) {
    s.server
        .app_state
        .clock
        .advance(chrono::Duration::minutes(minutes));
    s.server.app_state.mailer.due.notify_one();
}

async fn agent_with(s: &Setup, name: &str, body: Value) -> Agent {
    let a = fixtures::agent(&s.server, &s.owner, name, Role::Agent).await;
    s.server
        .patch(&format!("/api/v1/agents/{}", a.id), &s.owner.token, body)
        .await
        .ok();
    a
}

#[tokio::test]
async fn an_offline_message_emails_the_agents_who_want_it() {
    let s = setup().await;
    agent_with(&s, "Kim", json!({})).await;
    agent_with(&s, "Ned", json!({ "notify": { "scope": "none" } })).await;
    let other = fixtures::space_with(
        &s.server,
        &s.owner,
        "Other",
        &["other.test"],
        SpaceSettings::default(),
    )
    .await;
    agent_with(&s, "Oli", json!({ "spaceIds": [other.id] })).await;

    let token = session(&s).await;
    let r = widget_call(
        &s,
        Method::POST,
        "/offline",
        &token,
        json!({ "name": "Bob <b>", "email": "bob@example.com", "content": "Call me <back> please" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let mails = s.sink.wait_for(2).await;
    let statuses = settled(&s).await;
    assert!(
        statuses.iter().all(|m| m["status"] == "sent"),
        "{statuses:?}"
    );
    let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    to.sort();
    let kim = format!("kim@{}.test", s.owner.org_id);
    assert_eq!(to, vec!["ann@acme.test", kim.as_str()]);
    for m in &mails {
        assert_eq!(m.from, "chat@acme.test");
        assert_eq!(m.subject, "[Acme Shop] New offline message from Bob <b>");
        assert!(m.text.contains("Call me <back> please"), "{}", m.text);
        assert!(m.text.contains("bob@example.com"));
        assert!(m.html.contains("Call me &lt;back&gt; please"), "{}", m.html);
        assert!(m.text.contains("/app/#/inbox/available/"));
    }
    // Exactly those two: nothing else was waiting.
    assert_eq!(s.sink.mails().len(), 2);
}

#[tokio::test]
async fn an_unanswered_message_is_emailed_after_the_delay_and_an_answer_cancels_it() {
    let s = setup().await;
    let waiting = fixtures::visitor(&s.server, &s.space).await;
    let waits = fixtures::visitor_says(&s.server, &waiting, "Is anyone there?").await;
    fixtures::visitor_says(&s.server, &waiting, "Hello??").await;
    let answered = fixtures::visitor(&s.server, &s.space).await;
    let sent = fixtures::visitor_says(&s.server, &answered, "Quick question").await;
    fixtures::agent_message(
        &s.server,
        &s.owner.token,
        &sent.thread.id.to_string(),
        "Sure!",
        false,
    )
    .await;

    // Before the delay nothing goes; after it, one mail about the waiting
    // thread (both of its messages), none about the answered one.
    later(&s, 6);
    let mails = s.sink.wait_for(1).await;
    let outbox = settled(&s).await;
    assert_eq!(s.sink.mails().len(), 1, "{outbox:?}");
    let m = &mails[0];
    assert_eq!(m.to, "ann@acme.test");
    assert!(
        m.subject.contains("is waiting for an answer"),
        "{}",
        m.subject
    );
    assert!(
        m.text.contains("Is anyone there?") && m.text.contains("Hello??"),
        "{}",
        m.text
    );
    assert!(m.text.contains(&waits.thread.id.to_string()));
    let skipped: Vec<&Value> = outbox.iter().filter(|m| m["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "{outbox:?}");
    assert_eq!(skipped[0]["kind"]["thread"], sent.thread.id.to_string());
    assert_eq!(skipped[0]["lastError"], "answered");
}

#[tokio::test]
async fn replies_reach_a_visitor_who_left_in_one_mail_until_they_unsubscribe() {
    let s = setup().await;
    let token = session(&s).await;
    let r = widget_call(
        &s,
        Method::POST,
        "/messages",
        &token,
        json!({ "content": "Where is my order?", "clientMsgId": "v-1" }),
    )
    .await;
    let thread = r.created()["thread"]["id"].as_str().unwrap().to_owned();
    widget_call(
        &s,
        Method::PATCH,
        "/visitor",
        &token,
        json!({ "displayName": "Ola", "email": "ola@example.com" }),
    )
    .await
    .ok();
    for (i, text) in ["It ships today.", "Tracking: AB<123>"].iter().enumerate() {
        let body = json!({ "content": text, "clientMsgId": format!("a-{i}") });
        s.server
            .post(
                &format!("/api/v1/threads/{thread}/messages"),
                &s.owner.token,
                body,
            )
            .await
            .created();
    }
    let note = json!({ "content": "secret note", "internal": true, "clientMsgId": "n-1" });
    s.server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &s.owner.token,
            note,
        )
        .await
        .created();

    later(&s, 4);
    let mails = s.sink.wait_for(1).await;
    let m = mails
        .iter()
        .find(|m| m.to == "ola@example.com")
        .expect("the visitor's mail");
    assert_eq!(m.subject, "New reply from Acme Shop");
    assert!(
        m.text.contains("It ships today.") && m.text.contains("Tracking: AB<123>"),
        "{}",
        m.text
    );
    assert!(!m.raw.contains("secret note"));
    assert!(m.html.contains("AB&lt;123&gt;"));
    let unsubscribe = m.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert_eq!(
        m.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let url = unsubscribe
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    assert!(url.starts_with(&s.server.base), "{url}");

    // A forged link does nothing; the real one unsubscribes in one POST.
    let forged = format!("{}&t=00", url.split("&t=").next().unwrap());
    let r = s.server.client.post(&forged).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let page = s.server.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let r = s
        .server
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let body = json!({ "content": "One more thing", "clientMsgId": "a-9" });
    s.server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &s.owner.token,
            body,
        )
        .await
        .created();
    later(&s, 4);
    settled(&s).await;
    assert!(
        !s.sink
            .mails()
            .iter()
            .any(|m| m.text.contains("One more thing")),
        "an unsubscribed visitor got mail"
    );
}

#[tokio::test]
async fn transcripts_go_to_the_visitor_on_request() {
    let s = setup().await;
    let token = session(&s).await;
    let r = widget_call(
        &s,
        Method::POST,
        "/messages",
        &token,
        json!({ "content": "Hi", "clientMsgId": "v-1" }),
    )
    .await;
    let thread = r.created()["thread"]["id"].as_str().unwrap().to_owned();
    let reply = json!({ "content": "Hello, how can I help?", "clientMsgId": "a-1" });
    s.server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &s.owner.token,
            reply,
        )
        .await
        .created();
    let note = json!({ "content": "internal only", "internal": true, "clientMsgId": "n-1" });
    s.server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &s.owner.token,
            note,
        )
        .await
        .created();

    // An agent cannot send it before the visitor gave an address.
    let path = format!("/api/v1/threads/{thread}/transcript");
    let r = s.server.post(&path, &s.owner.token, json!({})).await;
    assert_eq!(r.err(409), "no_email");
    // Bad addresses are refused and change nothing.
    for bad in [
        "nope",
        "a@b.c\r\nBcc: x@evil.test",
        "a@example.com, b@example.com",
    ] {
        let r = widget_call(
            &s,
            Method::POST,
            "/transcript",
            &token,
            json!({ "email": bad }),
        )
        .await;
        assert_eq!(r.err(400), "invalid_email", "{bad:?}");
    }
    let r = widget_call(
        &s,
        Method::POST,
        "/transcript",
        &token,
        json!({ "email": "Vi@Example.com" }),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let mails = s.sink.wait_for(1).await;
    let m = &mails[0];
    assert_eq!(m.to, "vi@example.com");
    assert_eq!(m.rcpt, "vi@example.com");
    assert_eq!(m.subject, "Your conversation with Acme Shop");
    assert!(m.text.contains("Hi") && m.text.contains("Hello, how can I help?"));
    assert!(!m.raw.contains("internal only"));

    let r = s.server.post(&path, &s.owner.token, json!({})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    s.sink.wait_for(2).await;
}

#[tokio::test]
async fn nothing_a_visitor_types_adds_a_header_or_a_recipient() {
    let s = setup().await;
    let names = [
        "Eve\r\nBcc: bcc@evil.test",
        "=?utf-8?q?Eve=0D=0ABcc=3A_bcc@evil.test?=",
        "Eve, other@evil.test",
        "\"Eve\" <eve@evil.test>",
    ];
    for (i, name) in names.iter().enumerate() {
        let token = session(&s).await;
        let r = widget_call(
            &s,
            Method::POST,
            "/messages",
            &token,
            json!({ "content": "x", "clientMsgId": format!("v-{i}") }),
        )
        .await;
        let thread = r.created()["thread"]["id"].as_str().unwrap().to_owned();
        let r = widget_call(
            &s,
            Method::PATCH,
            "/visitor",
            &token,
            json!({ "displayName": name, "email": format!("v{i}@example.com") }),
        )
        .await;
        if r.status != 200 {
            // Refused at the door is fine too: nothing changed.
            assert_eq!(r.status, 400, "{}", r.body);
            continue;
        }
        let path = format!("/api/v1/threads/{thread}/transcript");
        s.server.post(&path, &s.owner.token, json!({})).await;
    }
    let outbox = settled(&s).await;
    let mails = s.sink.mails();
    assert!(
        mails.len() >= 2,
        "names that pass the door must be tried: {outbox:?}"
    );
    for m in mails {
        assert!(
            m.rcpt.starts_with('v') && m.rcpt.ends_with("@example.com"),
            "{}",
            m.rcpt
        );
        assert!(!m.rcpt.contains(','), "{}", m.rcpt);
        assert!(m.header("Bcc").is_none(), "{}", m.raw);
        assert!(!m.raw.to_lowercase().contains("\nbcc:"), "{}", m.raw);
        assert!(!m.raw.contains("other@evil.test\r\n") || m.to.starts_with('v'));
    }
    assert!(
        outbox
            .iter()
            .all(|m| m["status"] == "sent" || m["kind"]["type"] == "unanswered"),
        "{outbox:?}"
    );
}

#[tokio::test]
async fn without_a_relay_nothing_is_queued_and_requests_say_so() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let body = json!({ "key": space.widget_key });
    let (token, _) = fixtures::visitor_session(&server, FROM_SITE, body).await;
    let r = server
        .call_with(
            Method::POST,
            "/api/v1/widget/offline",
            Some(&token),
            Some(json!({ "name": "Bob", "email": "bob@example.com", "content": "Hello" })),
            FROM_SITE,
        )
        .await;
    assert_eq!(r.status, 201);
    let r = server.get("/api/v1/email/outbox", &owner.token).await;
    assert_eq!(r.ok()["items"], json!([]));
    let r = server
        .call_with(
            Method::POST,
            "/api/v1/widget/transcript",
            Some(&token),
            Some(json!({ "email": "bob@example.com" })),
            FROM_SITE,
        )
        .await;
    assert_eq!(r.err(409), "email_off");
}

/// Sends a raw mail with Python's smtplib (a client nobody here wrote);
/// the SMTP reply code of the first refusal, or 250.
async fn smtp_send(port: u16, rcpt: &str, raw: &str) -> u16 {
    let (rcpt, raw) = (rcpt.to_owned(), raw.to_owned());
    tokio::task::spawn_blocking(move || smtplib(port, &rcpt, &raw))
        .await
        .unwrap()
}

fn smtplib(port: u16, rcpt: &str, raw: &str) -> u16 {
    let script = r#"
import smtplib, sys
port, rcpt = int(sys.argv[1]), sys.argv[2]
raw = sys.stdin.buffer.read()
try:
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("client.test")
    s.sendmail("ola@example.com", [rcpt], raw)
    s.quit()
    print(250)
except smtplib.SMTPRecipientsRefused as e:
    print(list(e.recipients.values())[0][0])
except smtplib.SMTPResponseException as e:
    print(e.smtp_code)
"#;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script, &port.to_string(), rcpt])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("smtplib said {:?}", out))
}

#[tokio::test]
async fn a_visitor_answers_by_email_and_the_answer_lands_in_the_thread() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let server = TestServer::start_with(move |c| {
        c.email.smtp_url = url;
        c.email.from = "chat@acme.test".into();
        c.email.visitor_delay_minutes = 3;
        c.email.reply_domain = "reply.acme.test".into();
        c.email.inbound_listen = Some("127.0.0.1:0".parse().unwrap());
        c.email.inbound_max_bytes = 64 * 1024;
    })
    .await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space_with(
        &server,
        &owner,
        "Acme Shop",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await;
    let s = Setup {
        sink,
        server,
        owner,
        space,
    };
    let port = s
        .server
        .app_state
        .mailer
        .inbound_addr
        .get()
        .expect("inbound listener")
        .port();

    let token = session(&s).await;
    let r = widget_call(
        &s,
        Method::POST,
        "/messages",
        &token,
        json!({ "content": "Where is it?", "clientMsgId": "v-1" }),
    )
    .await;
    let thread = r.created()["thread"]["id"].as_str().unwrap().to_owned();
    widget_call(
        &s,
        Method::PATCH,
        "/visitor",
        &token,
        json!({ "email": "ola@example.com" }),
    )
    .await
    .ok();
    let body = json!({ "content": "It ships today.", "clientMsgId": "a-1" });
    s.server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &s.owner.token,
            body,
        )
        .await
        .created();
    later(&s, 4);
    let mail = s.sink.wait_for(1).await.remove(0);
    let reply_to = mail.header("Reply-To").expect("a Reply-To");
    let address = reply_to
        .rsplit('<')
        .next()
        .unwrap()
        .trim_end_matches('>')
        .to_owned();
    assert!(
        address.starts_with("reply+") && address.ends_with("@reply.acme.test"),
        "{reply_to}"
    );

    let mut agent = crate::harness::ws::connect_agent(s.server.addr, &s.owner.token, &[])
        .await
        .expect("agent socket");
    agent.expect("ready").await;
    agent
        .send(json!({ "type": "agent:join_space", "chatSpaceId": s.space.id }))
        .await;
    agent.wait_for("joined").await;

    let answer = format!(
        "From: Ola <ola@example.com>\r\nTo: {address}\r\nSubject: Re: New reply\r\nMessage-ID: <answer-1@example.com>\r\n\r\nGreat, thanks!\r\n\r\nOn Mon, 1 Dec 2026 at 10:00, Acme Shop <chat@acme.test> wrote:\r\n> It ships today.\r\n"
    );
    assert_eq!(smtp_send(port, &address, &answer).await, 250);
    let (frame, _) = agent
        .until(|f| f["type"] == "visitor:message" && f["message"]["content"] == "Great, thanks!")
        .await;
    assert_eq!(frame["message"]["threadId"], thread.as_str());
    // The same mail delivered again is the same message.
    assert_eq!(smtp_send(port, &address, &answer).await, 250);
    let messages = s.server.all_messages(&s.owner.token, &thread).await;
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        vec!["Where is it?", "It ships today.", "Great, thanks!"]
    );

    // Files come through the file policy: the photo is kept, the program is not.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let exe =
        "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==";
    let with_files = format!(
        "From: ola@example.com\r\nTo: {address}\r\nSubject: Re\r\nMessage-ID: <answer-2@example.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nHere is the photo\r\n\
--b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=photo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n{png}\r\n\
--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=setup.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n{exe}\r\n\
--b1--\r\n"
    );
    assert_eq!(smtp_send(port, &address, &with_files).await, 250);
    let messages = s.server.all_messages(&s.owner.token, &thread).await;
    let last = messages.last().unwrap();
    assert_eq!(last["content"], "Here is the photo");
    let names: Vec<&str> = last["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["photo.png"]);

    // Anything but a genuine reply address is refused and changes nothing.
    let forged = format!("reply+{}@reply.acme.test", "0".repeat(48));
    let at = address.find('@').unwrap();
    let last = if address[..at].ends_with('0') {
        '1'
    } else {
        '0'
    };
    let tampered = format!("{}{last}@reply.acme.test", &address[..at - 1]);
    for rcpt in [
        forged.as_str(),
        tampered.as_str(),
        "postmaster@reply.acme.test",
        "ann@acme.test",
    ] {
        assert_eq!(
            smtp_send(port, rcpt, &answer.replace("answer-1", "answer-x")).await,
            550,
            "{rcpt}"
        );
    }
    let big = format!("{answer}{}\r\n", "x".repeat(70 * 1024)).replace("answer-1", "answer-big");
    assert_eq!(smtp_send(port, &address, &big).await, 552);
    let only_quoted = "Subject: Re\r\nMessage-ID: <q@example.com>\r\n\r\n> It ships today.\r\n";
    assert_eq!(smtp_send(port, &address, only_quoted).await, 554);
    assert_eq!(
        s.server.all_messages(&s.owner.token, &thread).await.len(),
        4
    );
}
