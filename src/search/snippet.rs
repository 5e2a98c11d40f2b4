//! The piece of a matching text a result list shows, split into plain and
//! matching parts, so clients highlight without parsing anything.

use serde::Serialize;

use super::index::analyzer;

/// How many characters a snippet shows around its first match.
const BEFORE: usize = 40;
const LENGTH: usize = 180;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Part {
    pub text: String,
    /// A word the query matched.
    pub hit: bool,
}

/// The words of `q` as the index sees them.
pub fn query_words(q: &str) -> Vec<String> {
    super::index::words(q)
}

/// The part of `text` around its first word that starts with one of
/// `words` (lower-cased, accents folded), with every such word marked.
/// `None` when nothing in `text` matches.
pub fn snippet(text: &str, words: &[String]) -> Option<Vec<Part>> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut hits: Vec<(usize, usize)> = Vec::new();
    while stream.advance() {
        let token = stream.token();
        if words.iter().any(|w| token.text.starts_with(w.as_str())) {
            hits.push((token.offset_from, token.offset_to));
        }
    }
    let first = hits.first()?.0;
    let start = back_chars(text, first, BEFORE);
    let end = forward_chars(text, start, LENGTH);
    let mut parts = Vec::new();
    let mut at = start;
    if start > 0 {
        parts.push(Part {
            text: "…".into(),
            hit: false,
        });
    }
    for (from, to) in hits {
        if from < at || from >= end {
            continue;
        }
        let to = to.min(end);
        if from > at {
            parts.push(Part {
                text: text[at..from].to_owned(),
                hit: false,
            });
        }
        parts.push(Part {
            text: text[from..to].to_owned(),
            hit: true,
        });
        at = to;
    }
    if at < end {
        parts.push(Part {
            text: text[at..end].to_owned(),
            hit: false,
        });
    }
    if end < text.len() {
        parts.push(Part {
            text: "…".into(),
            hit: false,
        });
    }
    Some(parts)
}

/// The byte index `n` characters before `at` (or 0).
fn back_chars(text: &str, at: usize, n: usize) -> usize {
    text[..at]
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

/// The byte index `n` characters after `from` (or the end).
fn forward_chars(text: &str, from: usize, n: usize) -> usize {
    text[from..]
        .char_indices()
        .nth(n)
        .map_or(text.len(), |(i, _)| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(parts: &[Part]) -> String {
        parts
            .iter()
            .map(|p| {
                if p.hit {
                    format!("[{}]", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn matching_words_are_marked_by_prefix_and_folded_accents() {
        let parts = snippet(
            "Gdzie jest moje zamówienie? Zamówienie 17.",
            &query_words("zamowien"),
        )
        .unwrap();
        assert_eq!(
            marked(&parts),
            "Gdzie jest moje [zamówienie]? [Zamówienie] 17."
        );
    }

    #[test]
    fn a_long_text_is_cut_around_its_first_match() {
        let text = format!("{} parcel {}", "a ".repeat(100), "b ".repeat(200));
        let parts = snippet(&text, &query_words("parcel")).unwrap();
        let shown = marked(&parts);
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.contains("[parcel]"));
        assert!(shown.chars().count() < 200);
    }

    #[test]
    fn no_match_is_no_snippet() {
        assert_eq!(snippet("hello there", &query_words("parcel")), None);
    }
}
