//! `search-stats` and `search`: BM25 ranking over JSON-lines documents,
//! exact however the documents are split.
//!
//! **Documents.** One per line: a JSON object with an `id` (or `_id`, as
//! BEIR corpora have), a string or an integer, and text fields. The text
//! indexed is every other top-level string value, in key order, joined by a
//! space (`{"_id":"d1","title":"Cats","text":"Cats purr."}` indexes
//! `Cats purr. Cats`: key order is `text`, `title`). Blank lines are
//! ignored; a line that is not such an object is skipped and counted
//! (`skipped`), never an error.
//!
//! **Analyzer.** tantivy's `en_stem`: split on every character that is not
//! alphanumeric, drop tokens longer than 40 bytes, lower-case, English
//! Snowball stemming. The query is analyzed the same way, word by word,
//! each distinct word once ([`query_terms`]); each token is one optional
//! clause (a document matches any of them, and scores the sum of the
//! clauses it matches, as tantivy's query parser gives for plain words).
//!
//! **Scores.** BM25 (k1 = 1.2, b = 0.75, tantivy's) needs three corpus
//! figures: the number of documents N, the tokens in all of them, and each
//! query term's document frequency. A chunk alone knows only its own; so a
//! search runs in two jobs over the same units:
//!
//! 1. `search-stats` (`{"q"}`) counts the three per unit; partials add up;
//! 2. `search` ([`search_params`]) scores each unit's documents with the
//!    corpus figures handed in (tantivy's `Bm25StatisticsProvider`), a
//!    document's score being its terms' scores added in query order, and
//!    keeps the unit's top `k` by score, ties by ascending id; partials
//!    merge by keeping the top `k` of both.
//!
//! Both merges are associative and commutative, so the result is the same
//! for any split and any merge tree, and equals one tantivy index over all
//! the documents ([`reference`]) score for score, bit for bit.

use crate::error::ComputeError;
use crate::JobKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use tantivy::query::{Bm25StatisticsProvider, EnableScoring, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value as _, STORED, STRING};
use tantivy::{
    DocAddress, DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentOrdinal, TantivyDocument,
    Term, TERMINATED,
};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 3072;
/// Most terms a query may have after analysis.
pub const MAX_QUERY_TERMS: usize = 1024;
/// Largest `k`.
pub const MAX_K: usize = 1000;
/// The analyzer (a tantivy tokenizer name).
pub const ANALYZER: &str = "en_stem";
/// Memory tantivy's writer may use for one unit's index.
const WRITER_HEAP: usize = 50_000_000;

/// A query: its text and its analyzed terms (in query order, repeats kept).
#[derive(Clone, Debug)]
struct Query0 {
    q: String,
    terms: Vec<String>,
    /// Each distinct word once (tantivy's query parser), not every word.
    distinct: bool,
}

impl Query0 {
    fn parse(kind: JobKind, obj: &Map<String, Value>) -> Result<Query0, ComputeError> {
        let q = match obj.get("q") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ComputeError::params(kind, "`q` must be a string")),
            None => return Err(ComputeError::params(kind, "`q` (the query) is required")),
        };
        if q.len() > MAX_QUERY_BYTES {
            return Err(ComputeError::params(kind, format!("`q` is longer than {MAX_QUERY_BYTES} bytes")));
        }
        let distinct = crate::opt_bool(kind, obj, "distinct_words")?.unwrap_or(false);
        let terms = query_terms(&q, distinct);
        if terms.is_empty() {
            return Err(ComputeError::params(kind, "`q` has no words to search for"));
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(ComputeError::params(kind, format!("`q` has more than {MAX_QUERY_TERMS} words")));
        }
        Ok(Query0 { q, terms, distinct })
    }
}

/// The clauses of a query: its words (whitespace-separated) analyzed into
/// tokens, in order. Every word counts, repeats included (a word said
/// twice weighs twice, BM25's query-term frequency); with `distinct`, each
/// distinct word once, compared as typed, in order of first appearance, as
/// tantivy's query parser makes plain words into clauses (`titles titles`
/// one clause, `titles title` two).
pub fn query_terms(q: &str, distinct: bool) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    q.split_whitespace().filter(|w| !distinct || seen.insert(*w)).flat_map(analyze).collect()
}

/// The tokens `text` gives under [`ANALYZER`].
pub fn analyze(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(mut a) = tantivy::tokenizer::TokenizerManager::default().get(ANALYZER) {
        let mut s = a.token_stream(text);
        while let Some(t) = s.next() {
            out.push(t.text.clone());
        }
    }
    out
}

/// Parameters of `search-stats`.
#[derive(Clone, Debug)]
pub struct StatsParams {
    query: Query0,
}

impl StatsParams {
    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::SearchStats;
        let obj = crate::params_object(kind, v, &["q", "distinct_words"])?;
        Ok(StatsParams { query: Query0::parse(kind, &obj)? })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "q": self.query.q, "distinct_words": self.query.distinct })
    }
}

/// The corpus figures BM25 needs, for a query's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusStats {
    /// Documents.
    pub docs: u64,
    /// Tokens of the indexed text of all documents.
    pub tokens: u64,
    /// Documents containing each term.
    pub df: BTreeMap<String, u64>,
}

/// Parameters of `search`, compact so that long queries fit a work token
/// (`MAX_PARAMS_LEN`): `{"terms": "t1 t2 t1", "df": "n1 n2", "docs", "tokens",
/// "k"}`: the analyzed query terms in order (repeats kept), space-separated
/// (an analyzed term holds no space); the document frequency of each
/// distinct term in order of first appearance; the corpus's documents and
/// tokens. [`search_params`] builds them from a `search-stats` result.
#[derive(Clone, Debug)]
pub struct SearchParams {
    query: Query0,
    k: usize,
    stats: CorpusStats,
}

/// The distinct terms of `terms`, in order of first appearance.
fn distinct(terms: &[String]) -> Vec<&String> {
    let mut seen = std::collections::BTreeSet::new();
    terms.iter().filter(|t| seen.insert(t.as_str())).collect()
}

impl SearchParams {
    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::Search;
        let obj = crate::params_object(kind, v, &["terms", "df", "docs", "tokens", "k"])?;
        let text = |key: &str| match obj.get(key) {
            Some(Value::String(s)) => Ok(s.as_str()),
            _ => Err(ComputeError::params(kind, format!("`{key}` (from search_params) is required, a string"))),
        };
        let terms: Vec<String> = text("terms")?.split(' ').map(str::to_owned).collect();
        if terms.iter().any(|t| t.is_empty() || t.len() > 255) || terms.len() > MAX_QUERY_TERMS {
            return Err(ComputeError::params(
                kind,
                format!("`terms` must be 1 to {MAX_QUERY_TERMS} analyzed terms separated by single spaces"),
            ));
        }
        let counts: Vec<u64> = text("df")?
            .split(' ')
            .map(|n| n.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| ComputeError::params(kind, "`df` must be counts separated by single spaces"))?;
        let uniq = distinct(&terms);
        if counts.len() != uniq.len() {
            return Err(ComputeError::params(
                kind,
                format!("`df` has {} counts for {} distinct terms", counts.len(), uniq.len()),
            ));
        }
        let num = |key: &str| {
            crate::opt_usize(kind, &obj, key, 0, u64::MAX)?
                .map(|x| x as u64)
                .ok_or_else(|| ComputeError::params(kind, format!("`{key}` is required")))
        };
        let (docs, tokens) = (num("docs")?, num("tokens")?);
        if counts.iter().any(|&d| d > docs) {
            return Err(ComputeError::params(kind, "`df` counts more documents than `docs`"));
        }
        let df = uniq.into_iter().cloned().zip(counts).collect();
        let k = crate::opt_usize(kind, &obj, "k", 1, MAX_K as u64)?.unwrap_or(10);
        let query = Query0 { q: terms.join(" "), terms, distinct: false };
        Ok(SearchParams { query, k, stats: CorpusStats { docs, tokens, df } })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "terms": self.query.q,
            "df": distinct(&self.query.terms).iter().map(|t| self.stats.df.get(*t).copied().unwrap_or(0).to_string()).collect::<Vec<_>>().join(" "),
            "docs": self.stats.docs,
            "tokens": self.stats.tokens,
            "k": self.k,
        })
    }
}

/// The parameters of `search` for the top `k`, from the result of a
/// `search-stats` job (its `terms` and `stats`).
pub fn search_params(stats_result: &Value, k: usize) -> Result<Value, ComputeError> {
    let kind = JobKind::Search;
    let bad = || ComputeError::params(kind, "not a search-stats result");
    let terms: Vec<String> =
        serde_json::from_value(stats_result.get("terms").cloned().ok_or_else(bad)?).map_err(|_| bad())?;
    let stats: CorpusStats =
        serde_json::from_value(stats_result.get("stats").cloned().ok_or_else(bad)?).map_err(|_| bad())?;
    let df: Vec<String> = distinct(&terms).iter().map(|t| stats.df.get(*t).copied().unwrap_or(0).to_string()).collect();
    Ok(json!({ "terms": terms.join(" "), "df": df.join(" "), "docs": stats.docs, "tokens": stats.tokens, "k": k }))
}

/// One unit's (or several units') corpus figures for a query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsPartial {
    docs: u64,
    tokens: u64,
    /// Document frequency of each query term, in query order.
    df: Vec<u64>,
    skipped: u64,
}

/// A hit: a document's id and score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hit {
    /// The document's id.
    pub id: String,
    /// Its BM25 score.
    pub score: f32,
    /// BLAKE3 of the chunk the document is in (hex), in partials: the
    /// result lists them apart, as `hit_chunks`, so that its `hits` are
    /// one index's whatever the split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<String>,
}

/// One unit's (or several units') best hits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchPartial {
    /// Best first (score descending, then id ascending), at most `k`.
    hits: Vec<Hit>,
    /// Documents that matched any term.
    matched: u64,
    docs: u64,
    skipped: u64,
}

/// Ranking order: higher score first, then lower id.
fn rank(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id))
}

impl StatsPartial {
    pub(crate) fn empty(p: &StatsParams) -> StatsPartial {
        StatsPartial { df: vec![0; p.query.terms.len()], ..StatsPartial::default() }
    }

    pub(crate) fn validate(&self, p: &StatsParams) -> Result<(), ComputeError> {
        if self.df.len() != p.query.terms.len() {
            return Err(ComputeError::bad("search-stats partial has another number of terms than the query"));
        }
        if self.df.iter().any(|&d| d > self.docs) {
            return Err(ComputeError::bad("search-stats partial counts more documents with a term than in all"));
        }
        Ok(())
    }
}

impl SearchPartial {
    pub(crate) fn validate(&self, p: &SearchParams) -> Result<(), ComputeError> {
        if self.hits.len() > p.k {
            return Err(ComputeError::bad("search partial has more than k hits"));
        }
        if self.hits.windows(2).any(|w| rank(&w[0], &w[1]) == Ordering::Greater) {
            return Err(ComputeError::bad("search partial hits are not in ranking order"));
        }
        let is_name = |c: &str| c.len() == 64 && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if self.hits.iter().any(|h| h.chunk.as_deref().is_some_and(|c| !is_name(c))) {
            return Err(ComputeError::bad("search partial names a chunk that is not a BLAKE3 name"));
        }
        if self.hits.iter().any(|h| !h.score.is_finite()) {
            return Err(ComputeError::bad("search partial has a score that is not a number"));
        }
        if self.matched > self.docs || (self.hits.len() as u64) > self.matched {
            return Err(ComputeError::bad("search partial counts are inconsistent"));
        }
        Ok(())
    }
}

/// The documents of a chunk: (id, text) pairs, and the lines skipped.
fn documents(chunk: &[u8]) -> (Vec<(String, String)>, u64) {
    let mut docs = Vec::new();
    let mut skipped = 0;
    for line in chunk.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match document(line) {
            Some(d) => docs.push(d),
            None => skipped += 1,
        }
    }
    (docs, skipped)
}

fn document(line: &[u8]) -> Option<(String, String)> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    let id_key = if obj.contains_key("id") { "id" } else { "_id" };
    let id = match obj.get(id_key)? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    let mut keys: Vec<&String> = obj.keys().filter(|k| *k != "id" && *k != "_id").collect();
    keys.sort_unstable();
    let text: Vec<&str> = keys.into_iter().filter_map(|k| obj.get(k).and_then(Value::as_str)).collect();
    Some((id, text.join(" ")))
}

/// An in-memory tantivy index over some documents, ready to search.
pub(crate) struct Indexed {
    reader: IndexReader,
    text: Field,
    /// Documents indexed, and lines skipped (not documents).
    docs: u64,
    skipped: u64,
    /// Each document's id, by segment and document number: read from the
    /// store once when the index is built, so that a query reads no stored
    /// document (each read decompresses a block of the store).
    ids: Vec<Vec<String>>,
}

fn err(e: tantivy::TantivyError) -> ComputeError {
    ComputeError::Search(e.to_string())
}

fn index(docs: &[(String, String)], skipped: u64) -> Result<Indexed, ComputeError> {
    let mut sb = Schema::builder();
    let id = sb.add_text_field("id", STRING | STORED);
    let opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs),
    );
    let text = sb.add_text_field("text", opts);
    let index = Index::create_in_ram(sb.build());
    let mut w: IndexWriter = index.writer_with_num_threads(1, WRITER_HEAP).map_err(err)?;
    w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    for (i, t) in docs {
        let mut d = TantivyDocument::default();
        d.add_text(id, i);
        d.add_text(text, t);
        w.add_document(d).map_err(err)?;
    }
    w.commit().map_err(err)?;
    w.wait_merging_threads().map_err(err)?;
    let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(err)?;
    let searcher = reader.searcher();
    let mut ids = Vec::with_capacity(searcher.segment_readers().len());
    for (ord, seg) in searcher.segment_readers().iter().enumerate() {
        let mut seg_ids = Vec::with_capacity(seg.max_doc() as usize);
        for d in 0..seg.max_doc() {
            let doc: TantivyDocument = searcher.doc(DocAddress::new(ord as SegmentOrdinal, d)).map_err(err)?;
            seg_ids.push(doc.get_first(id).and_then(|v| v.as_str()).unwrap_or_default().to_owned());
        }
        ids.push(seg_ids);
    }
    drop(searcher);
    Ok(Indexed { reader, text, docs: docs.len() as u64, skipped, ids })
}

/// Indexes of units already seen, by the BLAKE3 of their bytes: a unit is
/// indexed once, not at each of a search's two jobs and each query after.
/// Bounded by the bytes of the units held (`set_index_cache_bytes`; the
/// least recently used go first). Pure all the same: an index is a
/// function of the unit's bytes.
struct IndexCache {
    entries: BTreeMap<[u8; 32], (Arc<Indexed>, usize, u64)>,
    bytes: usize,
    cap: usize,
    tick: u64,
}

/// Default bound of the index cache: the bytes of the units indexed.
pub const DEFAULT_INDEX_CACHE_BYTES: usize = 256 << 20;

static CACHE: Mutex<IndexCache> =
    Mutex::new(IndexCache { entries: BTreeMap::new(), bytes: 0, cap: DEFAULT_INDEX_CACHE_BYTES, tick: 0 });

fn cache() -> std::sync::MutexGuard<'static, IndexCache> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bounds the index cache by the bytes of the units whose indexes it
/// keeps (0: keep none). A node sets it from its memory limit.
pub fn set_index_cache_bytes(cap: usize) {
    let mut c = cache();
    c.cap = cap;
    c.evict(0);
}

/// Whether the unit whose BLAKE3 is `key` is indexed already (a search
/// over it then reads no bytes and builds nothing).
pub fn is_indexed(key: &[u8; 32]) -> bool {
    cache().entries.contains_key(key)
}

/// Units indexed (from scratch) and found indexed, since the start.
pub fn index_cache_counts() -> (u64, u64) {
    (BUILT.load(AtomicOrdering::Relaxed), REUSED.load(AtomicOrdering::Relaxed))
}

static BUILT: AtomicU64 = AtomicU64::new(0);
static REUSED: AtomicU64 = AtomicU64::new(0);

impl IndexCache {
    /// Makes room for `need` more bytes.
    fn evict(&mut self, need: usize) {
        while self.bytes + need > self.cap && !self.entries.is_empty() {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.2).map(|(k, _)| *k) else { break };
            if let Some((_, b, _)) = self.entries.remove(&oldest) {
                self.bytes -= b;
            }
        }
    }
}

/// The index of a unit: from the cache, or built (and kept if it fits).
/// Indexes a chunk of documents ahead of its first search, into the same
/// bounded cache the `search` and `search-stats` kernels use (a node
/// indexes the chunks of its document sources as they are sealed).
pub fn warm(chunk: &[u8]) -> Result<(), ComputeError> {
    unit_index(chunk).map(|_| ())
}

fn unit_index(chunk: &[u8]) -> Result<Arc<Indexed>, ComputeError> {
    let key: [u8; 32] = blake3::hash(chunk).into();
    unit_index_named(key, || Ok(chunk.to_vec()))
}

/// The index of the unit whose BLAKE3 is `key`: from the cache, or built
/// from the bytes `load` gives (which must hash to `key`: the caller's
/// reader checks its chunks against their names).
fn unit_index_named(
    key: [u8; 32],
    load: impl FnOnce() -> Result<Vec<u8>, ComputeError>,
) -> Result<Arc<Indexed>, ComputeError> {
    {
        let mut c = cache();
        c.tick += 1;
        let tick = c.tick;
        if let Some(e) = c.entries.get_mut(&key) {
            e.2 = tick;
            REUSED.fetch_add(1, AtomicOrdering::Relaxed);
            return Ok(e.0.clone());
        }
    }
    let chunk = load()?;
    let chunk = &chunk[..];
    let (docs, skipped) = documents(chunk);
    let ix = Arc::new(index(&docs, skipped)?);
    BUILT.fetch_add(1, AtomicOrdering::Relaxed);
    let mut c = cache();
    if chunk.len() <= c.cap {
        c.evict(chunk.len());
        c.tick += 1;
        let tick = c.tick;
        if c.entries.insert(key, (ix.clone(), chunk.len(), tick)).is_none() {
            c.bytes += chunk.len();
        }
    }
    Ok(ix)
}

fn terms(ix: &Indexed, q: &Query0) -> Vec<Term> {
    q.terms.iter().map(|t| Term::from_field_text(ix.text, t)).collect()
}

/// The figures of `search-stats` for one chunk.
pub(crate) fn map_stats(p: &StatsParams, chunk: &[u8]) -> Result<StatsPartial, ComputeError> {
    map_stats_ix(p, &*unit_index(chunk)?)
}

/// [`map_stats`] over a unit's index.
pub(crate) fn map_stats_ix(p: &StatsParams, ix: &Indexed) -> Result<StatsPartial, ComputeError> {
    let s = corpus_stats(ix, &p.query)?;
    let df = p.query.terms.iter().map(|t| s.df.get(t).copied().unwrap_or(0)).collect();
    Ok(StatsPartial { docs: s.docs, tokens: s.tokens, df, skipped: ix.skipped })
}

fn corpus_stats(ix: &Indexed, q: &Query0) -> Result<CorpusStats, ComputeError> {
    let searcher = ix.reader.searcher();
    let mut tokens = 0;
    for r in searcher.segment_readers() {
        tokens += r.inverted_index(ix.text).map_err(err)?.total_num_tokens();
    }
    let mut df = BTreeMap::new();
    for (t, term) in q.terms.iter().zip(terms(ix, q)) {
        df.insert(t.clone(), searcher.doc_freq(&term).map_err(err)?);
    }
    Ok(CorpusStats { docs: searcher.num_docs(), tokens, df })
}

pub(crate) fn merge_stats(a: StatsPartial, b: StatsPartial) -> Result<StatsPartial, ComputeError> {
    if a.df.len() != b.df.len() {
        return Err(ComputeError::bad("search-stats partials of different queries"));
    }
    let add = |x: u64, y: u64| x.checked_add(y).ok_or(ComputeError::Overflow("search-stats count"));
    let df = a.df.iter().zip(&b.df).map(|(x, y)| add(*x, *y)).collect::<Result<_, _>>()?;
    Ok(StatsPartial {
        docs: add(a.docs, b.docs)?,
        tokens: add(a.tokens, b.tokens)?,
        df,
        skipped: add(a.skipped, b.skipped)?,
    })
}

pub(crate) fn finish_stats(p: &StatsParams, x: &StatsPartial) -> Value {
    let df: BTreeMap<&str, u64> = p.query.terms.iter().map(String::as_str).zip(x.df.iter().copied()).collect();
    json!({
        "q": p.query.q,
        "terms": p.query.terms,
        "stats": {"docs": x.docs, "tokens": x.tokens, "df": df},
        "skipped": x.skipped,
    })
}

/// BM25 statistics of the whole corpus, handed to tantivy in place of the
/// unit's own.
struct Given<'a> {
    stats: &'a CorpusStats,
}

impl Bm25StatisticsProvider for Given<'_> {
    fn total_num_tokens(&self, _field: Field) -> tantivy::Result<u64> {
        Ok(self.stats.tokens)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.stats.docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        Ok(term.value().as_str().and_then(|t| self.stats.df.get(t)).copied().unwrap_or(0))
    }
}

/// The top `k` of `ix` for `q`, and how many matched: scored with the
/// corpus figures `given`, or (`None`) with the index's own.
///
/// Each term is scored by tantivy (`TermQuery`, BM25 with the statistics
/// provided), and a document's score is the sum of its terms' scores in
/// query order. Not tantivy's union scorer: it adds the terms' scores in
/// an order that depends on where documents lie in the index (it drops
/// exhausted terms by swapping), so the same document could score one
/// ulp apart in a unit's index and in one index over everything.
fn top_k(ix: &Indexed, q: &Query0, k: usize, given: Option<&CorpusStats>) -> Result<(Vec<Hit>, u64), ComputeError> {
    let searcher = ix.reader.searcher();
    if given.map_or(searcher.num_docs(), |s| s.docs) == 0 {
        return Ok((Vec::new(), 0));
    }
    let provider = given.map(|stats| Given { stats });
    let scoring = match &provider {
        Some(p) => EnableScoring::enabled_from_statistics_provider(p, &searcher),
        None => EnableScoring::enabled_from_searcher(&searcher),
    };
    let weights = terms(ix, q)
        .into_iter()
        .map(|t| TermQuery::new(t, IndexRecordOption::WithFreqs).weight(scoring))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut scored: Vec<(Score, DocAddress)> = Vec::new();
    // One score slot per document of a segment, kept between queries on
    // this thread (a query touches the documents its terms hold; clearing
    // only those keeps the cost of a query to its matches).
    thread_local! {
        static ACC: std::cell::RefCell<(Vec<Score>, Vec<bool>, Vec<DocId>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
    }
    ACC.with(|cell| -> Result<(), ComputeError> {
        let (acc, hit, touched) = &mut *cell.borrow_mut();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let n = reader.max_doc() as usize;
            if acc.len() < n {
                acc.resize(n, 0.0);
                hit.resize(n, false);
            }
            touched.clear();
            for w in &weights {
                let mut scorer = match w.scorer(reader, 1.0) {
                    Ok(s) => s,
                    Err(e) => {
                        // Leave every slot clean for the next query.
                        acc.iter_mut().for_each(|a| *a = 0.0);
                        hit.iter_mut().for_each(|h| *h = false);
                        return Err(err(e));
                    }
                };
                let mut doc = scorer.doc();
                while doc != TERMINATED {
                    let d = doc as usize;
                    if !hit[d] {
                        hit[d] = true;
                        touched.push(doc);
                    }
                    acc[d] += scorer.score();
                    doc = scorer.advance();
                }
            }
            // In the order first matched: the order of `scored` changes
            // nothing (the top k are taken by score, then sorted by score
            // and id).
            for &d in touched.iter() {
                scored.push((acc[d as usize], DocAddress::new(ord as SegmentOrdinal, d)));
                acc[d as usize] = 0.0;
                hit[d as usize] = false;
            }
        }
        Ok(())
    })?;
    let matched = scored.len() as u64;
    // Only documents scoring at least the k-th best can be in the top k;
    // those tied with it are ranked by id.
    if scored.len() > k {
        let (_, kth, _) = scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let floor = kth.0;
        scored.retain(|(s, _)| *s >= floor);
    }
    let mut hits = Vec::with_capacity(scored.len());
    for (score, addr) in scored {
        let id = ix
            .ids
            .get(addr.segment_ord as usize)
            .and_then(|s| s.get(addr.doc_id as usize))
            .cloned()
            .ok_or_else(|| ComputeError::Search(format!("no document {addr:?} in the index")))?;
        hits.push(Hit { id, score, chunk: None });
    }
    hits.sort_by(rank);
    hits.truncate(k);
    Ok((hits, matched))
}

/// One chunk's best hits for `search`.
pub(crate) fn map_search(p: &SearchParams, chunk: &[u8]) -> Result<SearchPartial, ComputeError> {
    map_search_ix(p, &*unit_index(chunk)?, blake3::hash(chunk).into())
}

/// [`map_search`] over a unit's index; `key` is the unit's BLAKE3.
pub(crate) fn map_search_ix(p: &SearchParams, ix: &Indexed, key: [u8; 32]) -> Result<SearchPartial, ComputeError> {
    let (mut hits, matched) = top_k(ix, &p.query, p.k, Some(&p.stats))?;
    if !hits.is_empty() {
        let name = blake3::Hash::from(key).to_hex().to_string();
        for h in &mut hits {
            h.chunk = Some(name.clone());
        }
    }
    Ok(SearchPartial { hits, matched, docs: ix.docs, skipped: ix.skipped })
}

/// The index of the unit named `key` (its BLAKE3), from the cache or
/// built from `load`'s bytes.
pub(crate) fn named_index(
    key: [u8; 32],
    load: impl FnOnce() -> Result<Vec<u8>, ComputeError>,
) -> Result<Arc<Indexed>, ComputeError> {
    unit_index_named(key, load)
}

pub(crate) fn merge_search(
    p: &SearchParams,
    a: SearchPartial,
    b: SearchPartial,
) -> Result<SearchPartial, ComputeError> {
    let add = |x: u64, y: u64| x.checked_add(y).ok_or(ComputeError::Overflow("search count"));
    let mut hits = a.hits;
    hits.extend(b.hits);
    hits.sort_by(rank);
    hits.truncate(p.k);
    Ok(SearchPartial {
        hits,
        matched: add(a.matched, b.matched)?,
        docs: add(a.docs, b.docs)?,
        skipped: add(a.skipped, b.skipped)?,
    })
}

pub(crate) fn finish_search(p: &SearchParams, x: &SearchPartial) -> Value {
    let hits: Vec<Value> = x.hits.iter().map(|h| json!({ "id": h.id, "score": h.score })).collect();
    let mut out = json!({
        "terms": p.query.terms,
        "k": p.k,
        "hits": hits,
        "matched": x.matched,
        "docs": x.docs,
        "skipped": x.skipped,
        "stats": p.stats,
    });
    // Where each hit lives (the name of its chunk), when the partials said:
    // not in the one-index reference, which has no chunks.
    if x.hits.iter().any(|h| h.chunk.is_some()) {
        let chunks: Vec<Option<&str>> = x.hits.iter().map(|h| h.chunk.as_deref()).collect();
        out["hit_chunks"] = json!(chunks);
    }
    out
}

/// The single-index reference: every document of `inputs` (JSON lines) in
/// one tantivy index, scored by tantivy with that index's own statistics,
/// the top `k` by score then id. What the two distributed jobs together
/// must give, byte for byte.
pub fn reference(inputs: &[&[u8]], q: &str, k: usize, distinct_words: bool) -> Result<Value, ComputeError> {
    OneIndex::new(inputs)?.search(q, k, distinct_words)
}

/// One tantivy index over every document of some inputs (JSON lines),
/// built once and asked any number of queries: the single-process
/// reference of [`reference`], and the baseline of search benchmarks.
pub struct OneIndex {
    ix: Indexed,
}

impl OneIndex {
    /// Indexes every document of `inputs`.
    pub fn new(inputs: &[&[u8]]) -> Result<OneIndex, ComputeError> {
        let mut docs = Vec::new();
        let mut skipped = 0;
        for i in inputs {
            let (d, s) = documents(i);
            docs.extend(d);
            skipped += s;
        }
        Ok(OneIndex { ix: index(&docs, skipped)? })
    }

    /// Documents indexed.
    pub fn docs(&self) -> u64 {
        self.ix.docs
    }

    /// The top `k` for `q`, scored with this index's own statistics, as
    /// the distributed search must give it.
    pub fn search(&self, q: &str, k: usize, distinct_words: bool) -> Result<Value, ComputeError> {
        let query = Query0::parse(JobKind::Search, &params_of(q, distinct_words))?;
        let stats = corpus_stats(&self.ix, &query)?;
        let (hits, matched) = top_k(&self.ix, &query, k, None)?;
        let stats_result = json!({ "terms": query.terms, "stats": stats });
        let params = SearchParams::from_json(&search_params(&stats_result, k)?)?;
        let all = SearchPartial { hits, matched, docs: self.ix.docs, skipped: self.ix.skipped };
        Ok(finish_search(&params, &all))
    }
}

fn params_of(q: &str, distinct_words: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("q".into(), Value::String(q.into()));
    m.insert("distinct_words".into(), Value::Bool(distinct_words));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word a clause, or each distinct word once (tantivy's parser).
    #[test]
    fn each_distinct_word_of_a_query_is_a_clause() {
        assert_eq!(query_terms("titles titles What what", true), ["titl", "what", "what"]);
        assert_eq!(query_terms("titles title", true), ["titl", "titl"]);
        assert_eq!(query_terms("titles titles What what", false), ["titl", "titl", "what", "what"]);
        assert_eq!(query_terms("  don't\tstop ", false), ["don", "t", "stop"]);
        assert!(query_terms(" ,; ", true).is_empty());
    }

    /// A unit is indexed once and found again; the cache keeps no more
    /// than its bound, dropping the least recently used.
    #[test]
    fn units_are_indexed_once_and_the_cache_stays_bounded() {
        let unit = |i: usize| format!("{{\"id\":\"u{i}\",\"text\":\"cat number {i}\"}}\n").repeat(50).into_bytes();
        let p = StatsParams::from_json(&json!({"q": "cat"})).expect("params");
        let (built0, reused0) = index_cache_counts();
        let a = map_stats(&p, &unit(1)).expect("map");
        let b = map_stats(&p, &unit(1)).expect("map again");
        assert_eq!(a, b);
        let (built1, reused1) = index_cache_counts();
        assert_eq!((built1 - built0, reused1 - reused0), (1, 1));
        set_index_cache_bytes(3 * unit(1).len());
        for i in 2..10 {
            map_stats(&p, &unit(i)).expect("map");
        }
        assert!(cache().bytes <= 3 * unit(1).len() && cache().entries.len() <= 3);
        let (built2, _) = index_cache_counts();
        map_stats(&p, &unit(1)).expect("map");
        assert_eq!(index_cache_counts().0, built2 + 1, "evicted: indexed again");
        set_index_cache_bytes(0);
        assert!(cache().entries.is_empty());
        set_index_cache_bytes(DEFAULT_INDEX_CACHE_BYTES);
    }
}
