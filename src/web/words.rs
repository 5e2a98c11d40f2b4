//! The words of the visitor widget and the member embed: every language
//! has every key the English has, with the same placeholders. (The agent
//! app's dictionaries are checked in `web::app`.)

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
    let en = dictionary(source, "en");
    for lang in ["pl", "ru"] {
        let other = dictionary(source, lang);
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
    let source = include_str!("../../assets/widget/widget.js");
    assert!(dictionary(source, "en").len() > 40);
    check("widget", source);
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
