//! What a mail says: a subject, plain text and simple HTML, in English,
//! Polish or Russian, with the space's name and accent colour. Everything
//! a visitor or agent wrote is escaped in HTML; nothing they wrote reaches
//! a header other than through [`super::one_line`] and lettre's encoding.

use chrono::{DateTime, Utc};

/// The languages mails are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Pl,
    Ru,
}

impl Lang {
    /// `pl`, `pl-PL`, `ru_RU`…; anything else is English.
    pub fn of(tag: &str) -> Lang {
        match tag.get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("pl") => Lang::Pl,
            Some("ru") => Lang::Ru,
            _ => Lang::En,
        }
    }
}

/// The words of one language.
struct Words {
    offline_subject: &'static str,
    offline_intro: &'static str,
    waiting_subject: &'static str,
    waiting_intro: &'static str,
    open_thread: &'static str,
    replies_subject: &'static str,
    replies_intro: &'static str,
    transcript_subject: &'static str,
    transcript_intro: &'static str,
    unsubscribe: &'static str,
    visitor_email: &'static str,
    test_subject: &'static str,
    test_body: &'static str,
}

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &Words {
            offline_subject: "New offline message from {who}",
            offline_intro: "{who} left a message while nobody was online:",
            waiting_subject: "{who} is waiting for an answer",
            waiting_intro: "{who} wrote and nobody has answered yet:",
            open_thread: "Open the conversation",
            replies_subject: "New reply from {space}",
            replies_intro: "You have a reply to your chat with {space}:",
            transcript_subject: "Your conversation with {space}",
            transcript_intro: "Here is your conversation with {space}:",
            unsubscribe: "Do not email me about this chat any more",
            visitor_email: "Their email:",
            test_subject: "My-Chat test mail",
            test_body: "Email from My-Chat works.",
        },
        Lang::Pl => &Words {
            offline_subject: "Nowa wiadomość offline od: {who}",
            offline_intro: "{who} zostawił(a) wiadomość, gdy nikt nie był dostępny:",
            waiting_subject: "{who} czeka na odpowiedź",
            waiting_intro: "{who} napisał(a) i nikt jeszcze nie odpowiedział:",
            open_thread: "Otwórz rozmowę",
            replies_subject: "Nowa odpowiedź od {space}",
            replies_intro: "Masz odpowiedź w rozmowie z {space}:",
            transcript_subject: "Twoja rozmowa z {space}",
            transcript_intro: "Oto Twoja rozmowa z {space}:",
            unsubscribe: "Nie wysyłaj mi więcej e-maili o tej rozmowie",
            visitor_email: "Jej/jego e-mail:",
            test_subject: "Wiadomość testowa My-Chat",
            test_body: "Poczta z My-Chat działa.",
        },
        Lang::Ru => &Words {
            offline_subject: "Новое сообщение офлайн от {who}",
            offline_intro: "{who} оставил(а) сообщение, когда никого не было в сети:",
            waiting_subject: "{who} ждёт ответа",
            waiting_intro: "{who} написал(а), и пока никто не ответил:",
            open_thread: "Открыть разговор",
            replies_subject: "Новый ответ от {space}",
            replies_intro: "Вам ответили в чате с {space}:",
            transcript_subject: "Ваш разговор с {space}",
            transcript_intro: "Ваш разговор с {space}:",
            unsubscribe: "Больше не присылать письма об этом чате",
            visitor_email: "Его/её e-mail:",
            test_subject: "Тестовое письмо My-Chat",
            test_body: "Почта из My-Chat работает.",
        },
    }
}

/// One line of a conversation as a mail shows it.
pub struct Line {
    pub who: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// The space a mail comes from.
pub struct Brand<'a> {
    pub space: &'a str,
    pub accent: &'a str,
    pub lang: Lang,
}

/// A rendered mail.
#[derive(Debug)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn fill(template: &str, who: &str, space: &str) -> String {
    template.replace("{who}", who).replace("{space}", space)
}

/// HTML-escapes text a person wrote.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A colour safe inside a style attribute: `#rgb` or `#rrggbb`, else the
/// default blue.
fn colour(accent: &str) -> &str {
    let hex = accent.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        accent
    } else {
        "#2563eb"
    }
}

fn page(
    brand: &Brand<'_>,
    intro: &str,
    lines: &[Line],
    link: Option<(&str, &str)>,
    footer: Option<(&str, &str)>,
) -> (String, String) {
    let mut text = format!("{intro}\n\n");
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;color:#111\">\
<div style=\"background:{};color:#fff;padding:12px 16px;font-weight:bold\">{}</div>\
<div style=\"padding:16px\"><p>{}</p>",
        colour(brand.accent),
        escape(brand.space),
        escape(intro)
    );
    for line in lines {
        let at = line.at.format("%Y-%m-%d %H:%M UTC");
        text.push_str(&format!("{} ({at}):\n{}\n\n", line.who, line.text));
        html.push_str(&format!(
            "<p><b>{}</b> <span style=\"color:#666\">{at}</span><br>{}</p>",
            escape(&line.who),
            escape(&line.text).replace('\n', "<br>")
        ));
    }
    if let Some((label, url)) = link {
        text.push_str(&format!("{label}: {url}\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\" style=\"color:{}\">{}</a></p>",
            escape(url),
            colour(brand.accent),
            escape(label)
        ));
    }
    if let Some((label, url)) = footer {
        text.push_str(&format!("\n--\n{label}: {url}\n"));
        html.push_str(&format!(
            "<hr><p style=\"font-size:12px;color:#666\"><a href=\"{}\">{}</a></p>",
            escape(url),
            escape(label)
        ));
    }
    html.push_str("</div></body></html>");
    (text, html)
}

/// To agents: an offline message (`offline`) or one waiting for an answer.
pub fn to_agent(
    brand: &Brand<'_>,
    offline: bool,
    visitor: &str,
    visitor_email: Option<&str>,
    lines: &[Line],
    url: &str,
) -> Rendered {
    let w = words(brand.lang);
    let (subject, intro) = if offline {
        (w.offline_subject, w.offline_intro)
    } else {
        (w.waiting_subject, w.waiting_intro)
    };
    let mut intro = fill(intro, visitor, brand.space);
    if let Some(e) = visitor_email {
        intro.push_str(&format!(" ({} {e})", w.visitor_email));
    }
    let (text, html) = page(brand, &intro, lines, Some((w.open_thread, url)), None);
    Rendered {
        subject: format!("[{}] {}", brand.space, fill(subject, visitor, brand.space)),
        text,
        html,
    }
}

/// To a visitor: replies it has not seen (`transcript` false) or the
/// whole conversation.
pub fn to_visitor(
    brand: &Brand<'_>,
    transcript: bool,
    lines: &[Line],
    unsubscribe: &str,
) -> Rendered {
    let w = words(brand.lang);
    let (subject, intro) = if transcript {
        (w.transcript_subject, w.transcript_intro)
    } else {
        (w.replies_subject, w.replies_intro)
    };
    let intro = fill(intro, "", brand.space);
    let (text, html) = page(
        brand,
        &intro,
        lines,
        None,
        Some((w.unsubscribe, unsubscribe)),
    );
    Rendered {
        subject: fill(subject, "", brand.space),
        text,
        html,
    }
}

pub fn test_mail() -> Rendered {
    let w = words(Lang::En);
    Rendered {
        subject: w.test_subject.to_owned(),
        text: format!("{}\n", w.test_body),
        html: format!("<p>{}</p>", w.test_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_people_wrote_is_escaped_and_the_colour_checked() {
        let brand = Brand {
            space: "Shop <b>",
            accent: "red;background:url(x)",
            lang: Lang::En,
        };
        let lines = [Line {
            who: "Eve <script>".into(),
            text: "<img src=x onerror=alert(1)>\nsecond".into(),
            at: Utc::now(),
        }];
        let r = to_visitor(
            &brand,
            true,
            &lines,
            "https://chat.example.com/u?a=1&b=\"2\"",
        );
        assert!(!r.html.contains("<script>") && !r.html.contains("<img"));
        assert!(
            r.html
                .contains("&lt;img src=x onerror=alert(1)&gt;<br>second")
        );
        assert!(r.html.contains("background:#2563eb"));
        assert!(r.html.contains("a=1&amp;b=&quot;2&quot;"));
        assert!(r.text.contains("<img src=x onerror=alert(1)>"));
    }

    #[test]
    fn languages_follow_the_tag() {
        assert_eq!(Lang::of("pl-PL"), Lang::Pl);
        assert_eq!(Lang::of("ru"), Lang::Ru);
        assert_eq!(Lang::of("de"), Lang::En);
        assert_eq!(Lang::of(""), Lang::En);
        let brand = Brand {
            space: "Sklep",
            accent: "#123456",
            lang: Lang::Pl,
        };
        let r = to_agent(&brand, true, "Ola", None, &[], "https://x/app");
        assert_eq!(r.subject, "[Sklep] Nowa wiadomość offline od: Ola");
    }
}
