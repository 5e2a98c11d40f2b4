//! The full-text index itself: its schema, the documents a message, a
//! visitor and a thread subject become, and the query `q` turns into.
//!
//! Every document carries its organization, space, visitor and (for
//! messages and subjects) thread as exact terms, so a query is always
//! bounded to one organization and an erasure removes a visitor's
//! documents by one term. Nothing is stored but ids: what a result shows
//! is read from the store, which stays the truth.

use std::path::Path;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::ids::{MessageId, OrgId, SpaceId, ThreadId, VisitorId};
use crate::messages::model::Message;
use crate::threads::model::Thread;
use crate::visitors::model::Visitor;

/// The analyzer of every text: words, lower-cased, accents folded (so
/// "zamowienie" finds "zamówienie").
const ANALYZER: &str = "mychat";
/// Writer memory: tantivy's minimum; one indexing thread.
const WRITER_BYTES: usize = 15_000_000;

/// The commit payload of an index whose writer stopped cleanly: every
/// committed event before it is in the index.
pub const CLEAN: &str = "clean";
pub const DIRTY: &str = "dirty";

#[derive(Clone, Copy)]
pub struct Fields {
    /// Unique per document: `m:<message>`, `v:<visitor>`, `t:<thread>`.
    key: Field,
    org: Field,
    space: Field,
    visitor: Field,
    thread: Field,
    message: Field,
    /// "1" on internal notes.
    internal: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        org: b.add_text_field("org", STRING),
        space: b.add_text_field("space", STRING),
        visitor: b.add_text_field("visitor", STRING | STORED),
        // Read back from a hit, never searched for: stored, not indexed
        // (an indexed message id was one more unique term per message for
        // every segment's term dictionary to build and merge).
        thread: b.add_text_field("thread", STORED),
        message: b.add_text_field("message", STORED),
        internal: b.add_text_field("internal", STRING),
        text: b.add_text_field("text", text_options),
    };
    (b.build(), fields)
}

pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The words of `text` as the index sees them.
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// One document to add (after removing whatever had its key).
pub enum Doc {
    Message {
        org: OrgId,
        space: SpaceId,
        visitor: VisitorId,
        message: Message,
    },
    Visitor {
        org: OrgId,
        visitor: Visitor,
    },
    Subject {
        org: OrgId,
        thread: Thread,
    },
}

/// What a query found: a thread, and the message that matched when it was
/// a message (not the visitor or the subject).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Message {
        thread: ThreadId,
        message: MessageId,
    },
    Thread(ThreadId),
    Visitor(VisitorId),
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, or creates an empty one. Returns whether
    /// it is complete (its last writer stopped cleanly); an index that
    /// cannot be opened is replaced by an empty one.
    pub fn open(dir: &Path) -> tantivy::Result<(SearchIndex, bool)> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let existing = tantivy::directory::MmapDirectory::open(dir)
            .ok()
            .and_then(|d| Index::open(d).ok())
            .filter(|i| i.schema() == schema);
        let (index, complete) = match existing {
            Some(index) => {
                let clean = index.load_metas()?.payload.as_deref() == Some(CLEAN);
                (index, clean)
            }
            None => {
                // Unreadable or of another schema: start over.
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                (Index::create_in_dir(dir, schema)?, false)
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok((
            SearchIndex {
                index,
                reader,
                fields,
            },
            complete,
        ))
    }

    /// The one writer. Its first commit marks the index as being written,
    /// so a crash before a clean stop is noticed at the next start.
    pub fn writer(&self) -> tantivy::Result<IndexWriter> {
        let mut writer = self.index.writer_with_num_threads(1, WRITER_BYTES)?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(DIRTY);
        prepared.commit()?;
        Ok(writer)
    }

    pub fn reload(&self) -> tantivy::Result<()> {
        self.reader.reload()
    }

    pub fn commit(writer: &mut IndexWriter, payload: &str) -> tantivy::Result<()> {
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        Ok(())
    }

    fn id_term(field: Field, id: impl ToString) -> Term {
        Term::from_field_text(field, &id.to_string())
    }

    /// Replaces the document with the same key.
    pub fn put(&self, writer: &IndexWriter, doc: Doc) -> tantivy::Result<()> {
        let f = self.fields;
        let mut d = TantivyDocument::new();
        let key = match doc {
            Doc::Message {
                org,
                space,
                visitor,
                message,
            } => {
                d.add_text(f.org, org.to_string());
                d.add_text(f.space, space.to_string());
                d.add_text(f.visitor, visitor.to_string());
                d.add_text(f.thread, message.thread_id.to_string());
                d.add_text(f.message, message.id.to_string());
                if message.internal {
                    d.add_text(f.internal, "1");
                }
                d.add_text(f.text, &message.content);
                for a in &message.attachments {
                    d.add_text(f.text, &a.name);
                }
                format!("m:{}", message.id)
            }
            Doc::Visitor { org, visitor } => {
                d.add_text(f.org, org.to_string());
                d.add_text(f.space, visitor.chat_space_id.to_string());
                d.add_text(f.visitor, visitor.id.to_string());
                for text in visitor_texts(&visitor) {
                    d.add_text(f.text, text);
                }
                format!("v:{}", visitor.id)
            }
            Doc::Subject { org, thread } => {
                d.add_text(f.org, org.to_string());
                d.add_text(f.space, thread.chat_space_id.to_string());
                d.add_text(f.visitor, thread.visitor_id.to_string());
                d.add_text(f.thread, thread.id.to_string());
                d.add_text(f.text, thread.subject.as_deref().unwrap_or_default());
                format!("t:{}", thread.id)
            }
        };
        d.add_text(f.key, &key);
        writer.delete_term(Term::from_field_text(f.key, &key));
        writer.add_document(d)?;
        Ok(())
    }

    pub fn remove_message(&self, writer: &IndexWriter, id: MessageId) {
        writer.delete_term(Term::from_field_text(self.fields.key, &format!("m:{id}")));
    }

    pub fn remove_subject(&self, writer: &IndexWriter, id: ThreadId) {
        writer.delete_term(Term::from_field_text(self.fields.key, &format!("t:{id}")));
    }

    /// Everything about a visitor: its fields, its threads' subjects and messages.
    pub fn remove_visitor(&self, writer: &IndexWriter, id: VisitorId) {
        writer.delete_term(Self::id_term(self.fields.visitor, id));
    }

    pub fn remove_space(&self, writer: &IndexWriter, id: SpaceId) {
        writer.delete_term(Self::id_term(self.fields.space, id));
    }

    pub fn remove_all(&self, writer: &IndexWriter) -> tantivy::Result<()> {
        writer.delete_all_documents()?;
        Ok(())
    }

    /// The best `limit` documents of `org` matching every word of `q`
    /// (each as a word prefix, so a word being typed already finds),
    /// best first. Internal notes only when `notes`.
    pub fn search(
        &self,
        org: OrgId,
        q: &str,
        notes: bool,
        limit: usize,
    ) -> tantivy::Result<Vec<Found>> {
        let f = self.fields;
        let words = words(q);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(TermQuery::new(
                Self::id_term(f.org, org),
                IndexRecordOption::Basic,
            )),
        )];
        for word in words.iter().take(8) {
            let term = Term::from_field_text(f.text, word);
            clauses.push((
                Occur::Must,
                Box::new(FuzzyTermQuery::new_prefix(term, 0, false)),
            ));
        }
        if !notes {
            clauses.push((
                Occur::MustNot,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.internal, "1"),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let id = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .and_then(|s| s.parse::<uuid::Uuid>().ok())
            };
            let found = match (id(f.message), id(f.thread), id(f.visitor)) {
                (Some(m), Some(t), _) => Found::Message {
                    thread: ThreadId(t),
                    message: MessageId(m),
                },
                (None, Some(t), _) => Found::Thread(ThreadId(t)),
                (None, None, Some(v)) => Found::Visitor(VisitorId(v)),
                _ => continue,
            };
            out.push(found);
        }
        Ok(out)
    }

    /// How many documents mention the visitor (its own, its threads').
    pub fn count_of_visitor(&self, id: VisitorId) -> tantivy::Result<usize> {
        let query = TermQuery::new(
            Self::id_term(self.fields.visitor, id),
            IndexRecordOption::Basic,
        );
        self.reader.searcher().search(&query, &Count)
    }

    /// How many documents the index holds.
    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// The visitor's fields a search looks at.
pub fn visitor_texts(v: &Visitor) -> Vec<&str> {
    [
        v.display_name.as_deref(),
        v.email.as_deref(),
        v.phone.as_deref(),
        v.external_id.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index an older My-Chat wrote with another schema (here: message
    /// and thread ids indexed as terms) is started over, empty and
    /// incomplete, so the indexer rebuilds it from the store.
    #[test]
    fn an_index_of_another_schema_is_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Schema::builder();
        for name in ["key", "org", "space", "visitor", "thread", "message"] {
            b.add_text_field(name, STRING | STORED);
        }
        let old = b.build();
        let message = old.get_field("message").unwrap();
        let index = Index::create_in_dir(dir.path(), old.clone()).unwrap();
        let mut writer: IndexWriter = index.writer_with_num_threads(1, WRITER_BYTES).unwrap();
        let mut d = TantivyDocument::new();
        d.add_text(message, "m1");
        writer.add_document(d).unwrap();
        let mut prepared = writer.prepare_commit().unwrap();
        prepared.set_payload(CLEAN);
        prepared.commit().unwrap();
        drop(writer);

        let (opened, complete) = SearchIndex::open(dir.path()).unwrap();
        assert!(!complete, "an index of another schema is not complete");
        assert_eq!(opened.index.schema(), schema().0);
        assert_eq!(opened.reader.searcher().num_docs(), 0);
    }
}
