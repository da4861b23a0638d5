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
//! Snowball stemming. The query is analyzed the same way; each of its
//! tokens is one optional clause (a document matches any of them, and
//! scores the sum of the clauses it matches, as tantivy's query parser
//! gives for plain words).
//!
//! **Scores.** BM25 (k1 = 1.2, b = 0.75, tantivy's) needs three corpus
//! figures: the number of documents N, the tokens in all of them, and each
//! query term's document frequency. A chunk alone knows only its own; so a
//! search runs in two jobs over the same units:
//!
//! 1. `search-stats` (`{"q"}`) counts the three per unit; partials add up;
//! 2. `search` (`{"q", "k", "stats"}`) scores each unit's documents with the
//!    corpus figures handed in (tantivy's `Bm25StatisticsProvider`) and
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
use std::collections::{BTreeMap, BinaryHeap};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{Bm25StatisticsProvider, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value as _, STORED, STRING};
use tantivy::{DocAddress, DocId, Index, IndexWriter, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;
/// Most terms a query may have after analysis.
pub const MAX_QUERY_TERMS: usize = 32;
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
        let terms = analyze(&q);
        if terms.is_empty() {
            return Err(ComputeError::params(kind, "`q` has no words to search for"));
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(ComputeError::params(kind, format!("`q` has more than {MAX_QUERY_TERMS} words")));
        }
        Ok(Query0 { q, terms })
    }
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
        let obj = crate::params_object(kind, v, &["q"])?;
        Ok(StatsParams { query: Query0::parse(kind, &obj)? })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "q": self.query.q })
    }

    /// The analyzed query terms.
    pub fn terms(&self) -> &[String] {
        &self.query.terms
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

/// Parameters of `search`.
#[derive(Clone, Debug)]
pub struct SearchParams {
    query: Query0,
    k: usize,
    stats: CorpusStats,
}

impl SearchParams {
    pub(crate) fn from_json(v: &Value) -> Result<Self, ComputeError> {
        let kind = JobKind::Search;
        let obj = crate::params_object(kind, v, &["q", "k", "stats"])?;
        let query = Query0::parse(kind, &obj)?;
        let k = crate::opt_usize(kind, &obj, "k", 1, MAX_K as u64)?.unwrap_or(10);
        let stats: CorpusStats = match obj.get("stats") {
            Some(s) => serde_json::from_value(s.clone()).map_err(|e| {
                ComputeError::params(
                    kind,
                    format!("`stats` must be {{\"docs\", \"tokens\", \"df\": {{term: count}}}}: {e}"),
                )
            })?,
            None => return Err(ComputeError::params(kind, "`stats` (from a search-stats job) is required")),
        };
        if let Some(t) = query.terms.iter().find(|t| !stats.df.contains_key(*t)) {
            return Err(ComputeError::params(kind, format!("`stats.df` has no count for the term {t:?}")));
        }
        if stats.df.values().any(|&d| d > stats.docs) {
            return Err(ComputeError::params(kind, "`stats.df` counts more documents than `stats.docs`"));
        }
        Ok(SearchParams { query, k, stats })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "q": self.query.q, "k": self.k, "stats": self.stats })
    }

    /// How many hits are kept.
    pub fn k(&self) -> usize {
        self.k
    }
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

/// An in-memory tantivy index over some documents.
struct Indexed {
    index: Index,
    id: Field,
    text: Field,
}

fn index(docs: &[(String, String)]) -> Result<Indexed, ComputeError> {
    let err = |e: tantivy::TantivyError| ComputeError::Search(e.to_string());
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
    Ok(Indexed { index, id, text })
}

fn terms(ix: &Indexed, q: &Query0) -> Vec<Term> {
    q.terms.iter().map(|t| Term::from_field_text(ix.text, t)).collect()
}

fn query_of(ix: &Indexed, q: &Query0) -> Box<dyn Query> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms(ix, q)
        .into_iter()
        .map(|t| (Occur::Should, Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>))
        .collect();
    Box::new(BooleanQuery::new(clauses))
}

/// The figures of `search-stats` for one chunk.
pub(crate) fn map_stats(p: &StatsParams, chunk: &[u8]) -> Result<StatsPartial, ComputeError> {
    let (docs, skipped) = documents(chunk);
    if docs.is_empty() {
        return Ok(StatsPartial { docs: 0, tokens: 0, df: vec![0; p.query.terms.len()], skipped });
    }
    let ix = index(&docs)?;
    let s = corpus_stats(&ix, &p.query)?;
    let df = p.query.terms.iter().map(|t| s.df.get(t).copied().unwrap_or(0)).collect();
    Ok(StatsPartial { docs: s.docs, tokens: s.tokens, df, skipped })
}

fn corpus_stats(ix: &Indexed, q: &Query0) -> Result<CorpusStats, ComputeError> {
    let err = |e: tantivy::TantivyError| ComputeError::Search(e.to_string());
    let searcher = ix.index.reader().map_err(err)?.searcher();
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

/// Keeps, per segment, every document that can still be in the top `k` by
/// score: those not below the k-th best score seen so far. Ties at the
/// boundary are all kept, to be broken by id once ids are read.
struct Candidates {
    k: usize,
}

#[derive(Clone, Copy, PartialEq)]
struct MinScore(Score);
impl Eq for MinScore {}
impl PartialOrd for MinScore {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MinScore {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0)
    }
}

struct SegmentCandidates {
    k: usize,
    ord: SegmentOrdinal,
    best: BinaryHeap<MinScore>,
    kept: Vec<(Score, DocAddress)>,
    matched: u64,
}

impl Collector for Candidates {
    type Fruit = (Vec<(Score, DocAddress)>, u64);
    type Child = SegmentCandidates;

    fn for_segment(&self, ord: SegmentOrdinal, _r: &SegmentReader) -> tantivy::Result<SegmentCandidates> {
        Ok(SegmentCandidates { k: self.k, ord, best: BinaryHeap::new(), kept: Vec::new(), matched: 0 })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<(Vec<(Score, DocAddress)>, u64)>) -> tantivy::Result<Self::Fruit> {
        let matched = fruits.iter().map(|f| f.1).sum();
        Ok((fruits.into_iter().flat_map(|f| f.0).collect(), matched))
    }
}

impl SegmentCollector for SegmentCandidates {
    type Fruit = (Vec<(Score, DocAddress)>, u64);

    fn collect(&mut self, doc: DocId, score: Score) {
        self.matched += 1;
        if self.best.len() == self.k {
            let floor = self.best.peek().map_or(Score::NEG_INFINITY, |m| m.0);
            if score < floor {
                return;
            }
            if score > floor {
                self.best.pop();
                self.best.push(MinScore(score));
            }
        } else {
            self.best.push(MinScore(score));
        }
        self.kept.push((score, DocAddress::new(self.ord, doc)));
        if self.kept.len() >= 4 * self.k + 64 {
            let floor = self.best.peek().map_or(Score::NEG_INFINITY, |m| m.0);
            self.kept.retain(|(s, _)| *s >= floor);
        }
    }

    fn harvest(self) -> Self::Fruit {
        let floor = if self.best.len() == self.k {
            self.best.peek().map_or(Score::NEG_INFINITY, |m| m.0)
        } else {
            Score::NEG_INFINITY
        };
        (self.kept.into_iter().filter(|(s, _)| *s >= floor).collect(), self.matched)
    }
}

/// The top `k` of `ix` for `q`, and how many matched: scored with the
/// corpus figures `given`, or (`None`) with the index's own.
fn top_k(ix: &Indexed, q: &Query0, k: usize, given: Option<&CorpusStats>) -> Result<(Vec<Hit>, u64), ComputeError> {
    let err = |e: tantivy::TantivyError| ComputeError::Search(e.to_string());
    let searcher = ix.index.reader().map_err(err)?.searcher();
    if given.map_or(searcher.num_docs(), |s| s.docs) == 0 {
        return Ok((Vec::new(), 0));
    }
    let query = query_of(ix, q);
    let collector = Candidates { k };
    let (cands, matched) = match given {
        Some(stats) => searcher.search_with_statistics_provider(&*query, &collector, &Given { stats }),
        None => searcher.search(&*query, &collector),
    }
    .map_err(err)?;
    let mut hits = Vec::with_capacity(cands.len());
    for (score, addr) in cands {
        let d: TantivyDocument = searcher.doc(addr).map_err(err)?;
        let id = d.get_first(ix.id).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        hits.push(Hit { id, score });
    }
    hits.sort_by(rank);
    hits.truncate(k);
    Ok((hits, matched))
}

/// One chunk's best hits for `search`.
pub(crate) fn map_search(p: &SearchParams, chunk: &[u8]) -> Result<SearchPartial, ComputeError> {
    let (docs, skipped) = documents(chunk);
    let n = docs.len() as u64;
    if docs.is_empty() {
        return Ok(SearchPartial { hits: Vec::new(), matched: 0, docs: 0, skipped });
    }
    let ix = index(&docs)?;
    let (hits, matched) = top_k(&ix, &p.query, p.k, Some(&p.stats))?;
    Ok(SearchPartial { hits, matched, docs: n, skipped })
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
    json!({
        "q": p.query.q,
        "terms": p.query.terms,
        "k": p.k,
        "hits": x.hits,
        "matched": x.matched,
        "docs": x.docs,
        "skipped": x.skipped,
        "stats": p.stats,
    })
}

/// The single-index reference: every document of `inputs` (JSON lines) in
/// one tantivy index, scored by tantivy with that index's own statistics,
/// the top `k` by score then id. What the two distributed jobs together
/// must give, byte for byte.
pub fn reference(inputs: &[&[u8]], q: &str, k: usize) -> Result<Value, ComputeError> {
    let query = Query0::parse(JobKind::Search, &params_of(q))?;
    let mut docs = Vec::new();
    let mut skipped = 0;
    for i in inputs {
        let (d, s) = documents(i);
        docs.extend(d);
        skipped += s;
    }
    let ix = index(&docs)?;
    let stats = corpus_stats(&ix, &query)?;
    let (hits, matched) = top_k(&ix, &query, k, None)?;
    let params = SearchParams::from_json(&json!({ "q": q, "k": k, "stats": stats }))?;
    Ok(finish_search(&params, &SearchPartial { hits, matched, docs: docs.len() as u64, skipped }))
}

fn params_of(q: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("q".into(), Value::String(q.into()));
    m
}
