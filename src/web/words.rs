//! The words of the visitor widget (`assets/widget/words.json`) and the
//! member embed: every language has every key the English has, with the
//! same placeholders. (The agent app's dictionaries are checked in
//! `web::app`.)

/// The keys of `<lang>: { … }` in a script's `WORDS`, each with its text.
fn dictionary(source: &str, lang: &str) -> Vec<(String, String)> {
    let start = source
        .find(&format!("\n    {lang}: {{"))
        .unwrap_or_else(|| panic!("no {lang} words"));
    let body = &source[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("\n    },").expect("the words end")];
    // key: 'text', … — identifiers outside quotes followed by a colon.
    let mut found = Vec::new();
    let mut ident = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next()),
                        '\'' => break,
                        c => text.push(c),
                    }
                }
                if let Some((_, t)) = found
                    .last_mut()
                    .filter(|(_, t): &&mut (String, String)| t.is_empty())
                {
                    *t = text;
                }
                ident.clear();
            }
            ':' if !ident.is_empty() => found.push((std::mem::take(&mut ident), String::new())),
            c if c.is_alphanumeric() || c == '_' => ident.push(c),
            _ => ident.clear(),
        }
    }
    found
}

fn placeholders(text: &str) -> usize {
    text.matches("{}").count()
}

fn check(name: &str, source: &str) {
    check_with(name, |lang| dictionary(source, lang));
}

/// One language of the widget's `words.json`.
fn json_dictionary(source: &str, lang: &str) -> Vec<(String, String)> {
    let all: serde_json::Value = serde_json::from_str(source).expect("words.json is JSON");
    all[lang]
        .as_object()
        .unwrap_or_else(|| panic!("no {lang} words"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("words are strings").to_owned()))
        .collect()
}

fn check_with(name: &str, dictionary: impl Fn(&str) -> Vec<(String, String)>) {
    let en = dictionary("en");
    for lang in ["pl", "ru"] {
        let other = dictionary(lang);
        let missing: Vec<&str> = en
            .iter()
            .filter(|(k, _)| !other.iter().any(|(o, _)| o == k))
            .map(|(k, _)| k.as_str())
            .collect();
        let extra: Vec<&str> = other
            .iter()
            .filter(|(k, _)| !en.iter().any(|(e, _)| e == k))
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name} {lang}: missing {missing:?}, extra {extra:?}"
        );
        for (k, text) in &other {
            let english = &en.iter().find(|(e, _)| e == k).unwrap().1;
            assert!(!text.is_empty(), "{name} {lang}: {k} is empty");
            assert_eq!(
                placeholders(text),
                placeholders(english),
                "{name} {lang}: {k} has other placeholders than the English"
            );
        }
    }
}

#[test]
fn every_language_of_the_widget_has_every_word() {
    let source = include_str!("../../assets/widget/words.json");
    assert!(json_dictionary(source, "en").len() > 40);
    check_with("widget", |lang| json_dictionary(source, lang));
    // The loader offers exactly the languages there are words for.
    let served = super::widget::languages();
    assert_eq!(served, ["en", "pl", "ru"]);
}

#[test]
fn every_language_of_the_embed_has_every_word() {
    let source = include_str!("../../assets/embed/embed.js");
    assert!(dictionary(source, "en").len() > 20);
    check("embed", source);
}

#[test]
fn a_missing_word_is_found() {
    let source = "\n    en: {\n      a: 'A {}', b: 'B',\n    },\n    pl: {\n      a: 'A {}',\n    },\n    ru: {\n      a: 'A {}', b: 'B',\n    },\n";
    let pl = dictionary(source, "pl");
    assert_eq!(pl, [("a".to_owned(), "A {}".to_owned())]);
    assert!(std::panic::catch_unwind(|| check("sample", source)).is_err());
}

#[test]
fn every_word_the_widget_uses_is_in_its_dictionary() {
    let en = json_dictionary(include_str!("../../assets/widget/words.json"), "en");
    for (name, source) in [
        ("panel", include_str!("../../assets/widget/panel.js")),
        ("loader", include_str!("../../assets/widget/widget.js")),
    ] {
        // `t.key` (and the loader's `W.t.key`), but not `wait.key` etc.
        for (at, _) in source.match_indices("t.") {
            let before = source[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let key: String = source[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(
                key.is_empty() || en.iter().any(|(k, _)| *k == key),
                "{name} uses the word {key:?}, which words.json does not have"
            );
        }
    }
}
