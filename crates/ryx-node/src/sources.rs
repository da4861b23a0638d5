//! Sources: a node's own files, read where they lie (`--source
//! NAME=PATH_OR_GLOB`), never loaded whole.
//!
//! Each file is cut at line ends into *sealed* chunks of about the chunk
//! size, each named by the BLAKE3 of its bytes; only the names, offsets and
//! lengths are kept, and a chunk's bytes are read back from the file when a
//! job wants them (and checked against the name: the file may have changed).
//! What follows the last sealed chunk, up to the last complete line, is the
//! file's open *tail*, hashed when a snapshot asks for it, so appended lines
//! are part of the next snapshot without waiting for a chunk to fill.
//!
//! The cuts are those [`ryx_compute::split_chunks`] makes of the whole file
//! (a cut is decided by the bytes up to the newline it falls after, so it
//! can be made as soon as they are on disk), except that a line longer than
//! [`MAX_LINE`] is cut where that bound falls, so a file without newlines
//! cannot make the node read without end.
//!
//! A file whose device or inode changed, or that became shorter than what
//! was sealed of it, was rotated or truncated: its chunks are dropped and it
//! is read again from the start, as a new generation. Memory per file is
//! its list of chunk names, whatever the size of the file.

use ryx_core::blobs::Hash;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Longest line kept whole; a longer one is cut where this bound falls.
pub const MAX_LINE: u64 = 1 << 20;
/// Scans (seconds) a file must stay unchanged before its open tail is
/// sealed as a chunk.
pub const SEAL_QUIET_SCANS: u32 = 3;
/// Most files one source follows (the first in path order).
pub const MAX_FILES: usize = 4096;

/// `NAME=PATH_OR_GLOB`: a dataset's name, and the files this node holds of
/// it. A glob (`*`, `?`) may appear only in the last path component.
/// `NAME=files:PATH_OR_GLOB`: one document per file (see
/// [`crate::spool`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    /// Dataset name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// The directory the files are in.
    pub dir: PathBuf,
    /// The file name, or a glob over file names.
    pub pattern: String,
    /// One document per file, rather than lines.
    pub per_file: bool,
}

/// Before the path: one document per file.
pub const PER_FILE_PREFIX: &str = "files:";

impl std::str::FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<SourceSpec, String> {
        let (name, path) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=PATH_OR_GLOB"))?;
        let (path, per_file) = match path.strip_prefix(PER_FILE_PREFIX) {
            Some(p) => (p, true),
            None => (path, false),
        };
        if !is_dataset_name(name) {
            return Err(format!("{name:?}: a dataset name is 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
        let path = Path::new(path);
        let pattern = path.file_name().and_then(|f| f.to_str()).filter(|f| !f.is_empty());
        let Some(pattern) = pattern else {
            return Err(format!("{}: expected a file name or a glob at the end of the path", path.display()));
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dir.to_string_lossy().contains(['*', '?', '[']) {
            return Err(format!("{}: a glob may only be in the file name", path.display()));
        }
        Ok(SourceSpec { name: name.to_string(), dir, pattern: pattern.to_string(), per_file })
    }
}

/// Whether `name` may name a dataset: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn is_dataset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= ryx_core::wire::MAX_DATASET_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: any
/// one; everything else literally).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point: linear in practice, and
    // never exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A sealed chunk of a file: its place and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// BLAKE3 of the bytes, lowercase hex.
    pub hash: Hash,
}

impl Chunk {
    /// This chunk as a snapshot entry of the file shown as `path`.
    fn entry(&self, path: &str) -> ryx_api::SnapshotChunk {
        ryx_api::SnapshotChunk {
            path: path.to_string(),
            offset: self.offset,
            len: self.len,
            hash: self.hash.as_str().into(),
        }
    }
}

/// What the node holds of one file.
#[derive(Clone, Debug, Default)]
pub struct FileState {
    dev: u64,
    ino: u64,
    /// Times the file was found rotated or truncated.
    pub generation: u32,
    /// The sealed chunks, in file order, covering `0..sealed_to`.
    pub chunks: Vec<Chunk>,
    /// Where the sealed part ends.
    pub sealed_to: u64,
    /// The file's length at the last scan.
    pub len: u64,
    /// Scans in a row that found the file unchanged.
    quiet: u32,
}

/// What a scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Chunks sealed by this scan.
    pub sealed: usize,
    /// Files found rotated or truncated (read again from the start).
    pub restarted: usize,
    /// Files that are gone.
    pub vanished: usize,
    /// Lines cut for being longer than [`MAX_LINE`].
    pub long_lines: usize,
    /// Files (or the directory) that could not be read, with why.
    pub errors: Vec<(PathBuf, String)>,
}

/// One source: the files matching its spec, as chunks.
#[derive(Clone, Debug)]
pub struct Source {
    /// What it follows.
    pub spec: SourceSpec,
    chunk_size: u64,
    files: BTreeMap<PathBuf, FileState>,
    /// A file unchanged for this many scans has its open tail sealed.
    seal_quiet: u32,
    /// The last tail worked out per file, with what the file looked like
    /// (device, inode, length, modification time, sealed offset): a
    /// query asks for the tails at every wave, and a file that did not
    /// change need not be read and hashed again.
    tails: Arc<Mutex<HashMap<PathBuf, (TailKey, Chunk)>>>,
}

/// What a file looked like when its tail was worked out.
type TailKey = (u64, u64, u64, i64, i64, u64);

impl Source {
    /// A source cutting chunks of about `chunk_size` bytes; nothing read yet.
    pub fn new(spec: SourceSpec, chunk_size: u64) -> Source {
        Source {
            spec,
            chunk_size: chunk_size.max(1),
            files: BTreeMap::new(),
            seal_quiet: SEAL_QUIET_SCANS,
            tails: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The same, sealing a quiet file's tail after `scans` unchanged scans
    /// (`u32::MAX`: never; the cuts are then exactly `split_chunks`').
    pub fn with_seal_quiet(mut self, scans: u32) -> Source {
        self.seal_quiet = scans;
        self
    }

    /// The files followed, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&PathBuf, &FileState)> {
        self.files.iter()
    }

    /// Looks at the files again: new ones, grown ones (sealing what is
    /// complete), rotated or truncated ones, vanished ones.
    pub fn scan(&mut self) -> ScanReport {
        let mut report = ScanReport::default();
        let paths = match self.matching() {
            Ok(p) => p,
            Err(e) => {
                report.errors.push((self.spec.dir.clone(), e.to_string()));
                return report;
            }
        };
        let before = self.files.len();
        self.files.retain(|p, _| paths.binary_search(p).is_ok());
        report.vanished = before - self.files.len();
        for path in paths {
            let state = self.files.entry(path.clone()).or_default();
            if let Err(e) = scan_file(&path, state, (self.chunk_size, self.seal_quiet), &mut report) {
                report.errors.push((path, e.to_string()));
            }
        }
        report
    }

    /// The regular files matching the spec, sorted, at most [`MAX_FILES`].
    fn matching(&self) -> std::io::Result<Vec<PathBuf>> {
        let literal = !self.spec.pattern.contains(['*', '?']);
        if literal {
            let p = self.spec.dir.join(&self.spec.pattern);
            return Ok(if p.is_file() { vec![p] } else { Vec::new() });
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.spec.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if glob_match(&self.spec.pattern, name) && entry.path().is_file() {
                out.push(entry.path());
            }
        }
        out.sort();
        out.truncate(MAX_FILES);
        Ok(out)
    }

    /// The open tail of `path`: the complete lines after its sealed chunks,
    /// as a chunk named by their hash (`None`: nothing complete there).
    /// The tail [`Source::tail`] would give, if the file is as it was when
    /// that was last worked out (one `stat`, no read); `None` otherwise.
    pub fn tail_if_unchanged(&self, path: &Path) -> Option<Option<Chunk>> {
        let state = self.files.get(path)?;
        let meta = std::fs::metadata(path).ok()?;
        if (meta.dev(), meta.ino()) != (state.dev, state.ino) || meta.len() < state.sealed_to {
            return None;
        }
        let key: TailKey = (meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec(), state.sealed_to);
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        match tails.get(path) {
            Some((k, c)) if *k == key => Some(Some(c.clone())),
            // Nothing past the sealed part: no tail.
            _ if meta.len() == state.sealed_to => Some(None),
            _ => None,
        }
    }

    pub fn tail(&self, path: &Path) -> std::io::Result<Option<Chunk>> {
        let Some(state) = self.files.get(path) else { return Ok(None) };
        let mut file = File::open(path)?;
        // Lines appended since the last scan count too, if the file is the
        // one scanned (not rotated meanwhile) and no shorter than sealed.
        let meta = file.metadata()?;
        let now = if (meta.dev(), meta.ino()) == (state.dev, state.ino) && meta.len() >= state.sealed_to {
            meta.len()
        } else {
            state.len
        };
        let len = now.saturating_sub(state.sealed_to).min(self.chunk_size + MAX_LINE);
        let key: TailKey = (meta.dev(), meta.ino(), now, meta.mtime(), meta.mtime_nsec(), state.sealed_to);
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, c)) = tails.get(path) {
            if *k == key {
                return Ok(Some(c.clone()));
            }
        }
        let bytes = read_at(&mut file, state.sealed_to, len)?;
        let Some(end) = memchr::memrchr(b'\n', &bytes).map(|i| i + 1) else { return Ok(None) };
        let tail = Chunk { offset: state.sealed_to, len: end as u64, hash: hash_of(&bytes[..end]) };
        if tails.len() >= self.files.len().max(1) * 2 {
            tails.retain(|p, _| self.files.contains_key(p));
        }
        tails.insert(path.to_path_buf(), (key, tail.clone()));
        Ok(Some(tail))
    }
}

/// How often the files are looked at again.
pub const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the node follows of one source, and what it has counted.
struct Followed {
    /// What the user asked to follow.
    spec: SourceSpec,
    /// One document per file: the spool the files are taken into, which
    /// `source` follows.
    spool: Option<crate::spool::Spool>,
    source: Source,
    scans: u64,
    restarts: u64,
    long_lines: u64,
    errors: Vec<String>,
    /// (chunks, bytes) last announced in the source's info item, and when.
    announced: Option<((u64, u64), std::time::Instant)>,
    /// The copy of its sealed chunks' list last published (see
    /// [`SourceAnnounce::copy`]).
    published: Option<SnapshotCopy>,
    /// One document per file: the spool's chunks indexed so far (new ones
    /// are indexed as they are sealed, ahead of the first search).
    indexed: usize,
}

impl Followed {
    fn new(spec: SourceSpec, chunk_size: u64, spooling: &Spooling) -> Followed {
        let mut errors = Vec::new();
        let mut spool = None;
        let followed = if spec.per_file {
            let path = spooling.dir.join(format!("{}.jsonl", spec.name));
            match crate::spool::Spool::create(&spec.dir, &spec.pattern, path.clone(), &spooling.node) {
                Ok(s) => spool = Some(s),
                Err(e) => errors.push(format!("{}: cannot make the spool: {e}", path.display())),
            }
            SourceSpec {
                name: spec.name.clone(),
                dir: spooling.dir.clone(),
                pattern: format!("{}.jsonl", spec.name),
                per_file: false,
            }
        } else {
            spec.clone()
        };
        let source = Source::new(followed, chunk_size);
        Followed {
            spec,
            spool,
            source,
            scans: 0,
            restarts: 0,
            long_lines: 0,
            errors,
            announced: None,
            published: None,
            indexed: 0,
        }
    }

    /// A spool's chunks sealed since the last call, to index ahead.
    fn newly_sealed(&mut self) -> Vec<(PathBuf, Chunk)> {
        if self.spool.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut n = 0;
        for (path, st) in self.source.files() {
            // A spool made again (a new generation) starts over.
            let from = if st.chunks.len() < self.indexed { 0 } else { self.indexed };
            out.extend(st.chunks[from..].iter().map(|c| (path.clone(), c.clone())));
            n += st.chunks.len();
        }
        self.indexed = n;
        out
    }

    /// The list of this source's sealed chunks (no open tails: those have
    /// no copies), as other nodes keep it for when this one is gone.
    fn sealed_snapshot(&self, me: ryx_core::NodeId) -> ryx_api::SourceSnapshot {
        let mut chunks = Vec::new();
        for (path, st) in self.source.files() {
            let shown = path.display().to_string();
            chunks.extend(st.chunks.iter().map(|c| c.entry(&shown)));
        }
        ryx_api::SourceSnapshot { chunks, name: self.source.spec.name.clone(), node: crate::http::api_id(me) }
    }

    fn scan(&mut self) {
        let mut spool_error = None;
        if let Some(spool) = &mut self.spool {
            match spool.take() {
                Ok(t) => self.long_lines += t.cut as u64,
                Err(e) => {
                    let line = format!("{}: {e}", self.spec.dir.display());
                    if !self.errors.contains(&line) {
                        tracing::warn!(source = %self.spec.name, "cannot take documents from {line}");
                    }
                    spool_error = Some(line);
                }
            }
        }
        let r = self.source.scan();
        self.scans += 1;
        self.restarts += r.restarted as u64;
        self.long_lines += r.long_lines as u64;
        for (path, e) in &r.errors {
            // Said once per change, not once a second.
            let line = format!("{}: {e}", path.display());
            if !self.errors.contains(&line) {
                tracing::warn!(source = %self.source.spec.name, "cannot read {line}");
            }
        }
        self.errors = r.errors.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect();
        self.errors.extend(spool_error);
        if self.spec.per_file && self.spool.is_none() {
            self.errors.push(format!("{}: no spool for its documents", self.spec.dir.display()));
        }
    }

    fn view(&self) -> ryx_api::SourceView {
        let spec = &self.spec;
        let files: Vec<ryx_api::SourceFile> = self
            .source
            .files()
            .map(|(p, f)| ryx_api::SourceFile {
                path: p.display().to_string(),
                generation: f.generation,
                len: f.len,
                chunks: f.chunks.len() as u64,
                sealed_bytes: f.sealed_to,
            })
            .collect();
        ryx_api::SourceView {
            name: spec.name.clone(),
            pattern: format!(
                "{}{}",
                if spec.per_file { PER_FILE_PREFIX } else { "" },
                spec.dir.join(&spec.pattern).display()
            ),
            chunks: files.iter().map(|f| f.chunks).sum(),
            sealed_bytes: files.iter().map(|f| f.sealed_bytes).sum(),
            bytes: files.iter().map(|f| f.len).sum(),
            files,
            scans: self.scans,
            restarts: self.restarts,
            long_lines: self.long_lines,
            errors: self.errors.clone(),
        }
    }
}

/// Tail chunks named by snapshots that a node keeps serving (the oldest is
/// forgotten first; a job still running over it then fails that unit).
pub const MAX_TAILS: usize = 4096;

/// Where each chunk of the node's own files lies: shared by the scanner,
/// the kernel threads and the blob endpoint. Only names and places are
/// kept, never bytes.
#[derive(Clone, Default)]
pub struct LocalChunks(Arc<RwLock<LocalMap>>);

#[derive(Default)]
struct LocalMap {
    sealed: HashMap<Hash, (PathBuf, Chunk)>,
    tails: HashMap<Hash, (PathBuf, Chunk)>,
    tail_order: VecDeque<Hash>,
}

impl LocalChunks {
    /// The file and place of a chunk of this node's own files.
    pub fn locate(&self, hash: &str) -> Option<(PathBuf, Chunk)> {
        let m = self.0.read().unwrap_or_else(|p| p.into_inner());
        m.sealed.get(hash).or_else(|| m.tails.get(hash)).cloned()
    }

    /// Chunks known, sealed and tails.
    pub fn len(&self) -> usize {
        let m = self.0.read().unwrap_or_else(|p| p.into_inner());
        m.sealed.len() + m.tails.len()
    }

    /// Whether no chunk is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the sealed chunks; returns what was added and removed.
    fn set_sealed(&self, now: HashMap<Hash, (PathBuf, Chunk)>) -> (Vec<(Hash, u64)>, Vec<Hash>) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        let added =
            now.iter().filter(|(h, _)| !m.sealed.contains_key(*h)).map(|(h, (_, c))| (h.clone(), c.len)).collect();
        let removed = m.sealed.keys().filter(|h| !now.contains_key(*h) && !m.tails.contains_key(*h)).cloned().collect();
        m.sealed = now;
        (added, removed)
    }

    /// Notes tails named by a snapshot; returns what was forgotten to make
    /// room.
    /// Notes tails as served from their files; returns those new here
    /// (name, size) and those forgotten to make room.
    fn add_tails(&self, tails: Vec<(PathBuf, Chunk)>) -> (Vec<(Hash, u64)>, Vec<Hash>) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        let mut forgotten = Vec::new();
        let mut added = Vec::new();
        for (path, c) in tails {
            if m.tails.contains_key(&c.hash) {
                continue;
            }
            added.push((c.hash.clone(), c.len));
            m.tail_order.push_back(c.hash.clone());
            m.tails.insert(c.hash.clone(), (path, c));
            while m.tail_order.len() > MAX_TAILS {
                let Some(old) = m.tail_order.pop_front() else { break };
                m.tails.remove(&old);
                if !m.sealed.contains_key(&old) {
                    forgotten.push(old);
                }
            }
        }
        added.retain(|(h, _)| m.tails.contains_key(h));
        (added, forgotten)
    }
}

/// Where one-document-per-file sources keep their spools, and what their
/// documents' ids start with (see [`crate::spool`]).
#[derive(Clone, Debug)]
pub struct Spooling {
    /// The directory (`--spool-dir`).
    pub dir: PathBuf,
    /// The node's id.
    pub node: String,
}

impl Default for Spooling {
    fn default() -> Spooling {
        Spooling { dir: std::env::temp_dir().join(format!("ryx-spool-{}", std::process::id())), node: "node".into() }
    }
}

/// The node's sources: what it follows and where each chunk lies. Cheap to
/// clone; every clone is the same set.
#[derive(Clone, Default)]
pub struct SourceSet {
    followed: Arc<Mutex<Vec<Followed>>>,
    spooling: Spooling,
    /// Where each chunk lies.
    pub local: LocalChunks,
    chunk_size: u64,
    /// Copies other nodes keep of each chunk (custody `k` is one more).
    copies: u8,
}

impl SourceSet {
    /// Sources following `specs`, cutting chunks of about `chunk_size`
    /// bytes; nothing read yet.
    pub fn new(specs: Vec<SourceSpec>, chunk_size: u64, copies: u8, spooling: Spooling) -> SourceSet {
        let followed = specs.into_iter().map(|spec| Followed::new(spec, chunk_size, &spooling)).collect();
        SourceSet {
            followed: Arc::new(Mutex::new(followed)),
            spooling,
            local: LocalChunks::default(),
            chunk_size,
            copies,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Followed>> {
        self.followed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows `specs` from now on: sources whose spec is unchanged keep
    /// what they know, new ones start, the others stop (their chunks are
    /// released at the next scan).
    pub fn replace(&self, specs: Vec<SourceSpec>) {
        let mut followed = self.lock();
        let mut old: Vec<Followed> = std::mem::take(&mut *followed);
        for spec in specs {
            match old.iter().position(|f| f.spec == spec) {
                Some(i) => followed.push(old.swap_remove(i)),
                None => followed.push(Followed::new(spec, self.chunk_size, &self.spooling)),
            }
        }
    }

    /// Whether this node follows dataset `name`.
    pub fn has(&self, name: &str) -> bool {
        self.lock().iter().any(|f| f.spec.name == name)
    }

    /// The bytes of a chunk of this node's snapshot (blocking: file IO),
    /// checked against its name.
    pub fn read(&self, c: &ryx_api::SnapshotChunk) -> std::io::Result<Vec<u8>> {
        let chunk = Chunk { offset: c.offset, len: c.len, hash: Hash::from(c.hash.as_str()) };
        read_chunk(Path::new(&c.path), &chunk)
    }

    /// Scans every source (blocking: file IO). Returns the view, the chunks
    /// added and removed, and the info items to announce (with the copies
    /// of chunk lists to publish when there are copies, see
    /// [`SourceAnnounce::copy`]).
    fn scan_all(&self, me: ryx_core::NodeId) -> Scanned {
        let mut followed = self.lock();
        let mut sealed = HashMap::new();
        let mut announce = Vec::new();
        let mut publish = Vec::new();
        let mut index = Vec::new();
        for f in followed.iter_mut() {
            f.scan();
            index.extend(f.newly_sealed());
            for (path, st) in f.source.files() {
                for c in &st.chunks {
                    sealed.insert(c.hash.clone(), (path.clone(), c.clone()));
                }
            }
            let view = f.view();
            let now_counts = (view.chunks, view.bytes);
            // Announced when the chunks change, or the bytes (the open
            // tail) at most every ANNOUNCE_EVERY: a growing log does not
            // put a new item every second.
            let due = match f.announced {
                None => true,
                Some((c, _)) if c.0 != now_counts.0 => true,
                Some((c, at)) => c.1 != now_counts.1 && at.elapsed() >= ANNOUNCE_EVERY,
            };
            if due && view.bytes > 0 {
                f.announced = Some((now_counts, std::time::Instant::now()));
                if self.copies > 0 {
                    let snap = f.sealed_snapshot(me);
                    let bytes = serde_json::to_vec(&snap).unwrap_or_default();
                    let hash = hash_of(&bytes);
                    if f.published.as_ref().is_none_or(|p| p.hash != hash.as_str()) {
                        let copy = SnapshotCopy {
                            hash: hash.to_string(),
                            size: bytes.len() as u64,
                            chunks: snap.chunks.len() as u64,
                            bytes: snap.chunks.iter().map(|c| c.len).sum(),
                        };
                        let old = f.published.replace(copy).map(|p| Hash::from(p.hash.as_str()));
                        publish.push(Publish { hash, bytes, old });
                    }
                }
                announce.push(Announce {
                    name: view.name.clone(),
                    files: view.files.len() as u64,
                    chunks: view.chunks,
                    bytes: view.bytes,
                    copy: f.published.clone(),
                });
            }
        }
        let view = ryx_api::Sources { sources: followed.iter().map(Followed::view).collect() };
        drop(followed);
        let (added, removed) = self.local.set_sealed(sealed);
        Scanned { view, added, removed, announce, publish, index }
    }

    /// The chunks this node holds of dataset `name` right now, sealed ones
    /// and each file's open tail, in path then offset order (blocking: the
    /// tails are read and hashed). `None`: not a dataset of this node.
    pub fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let followed = self.lock();
        let f = followed.iter().find(|f| f.source.spec.name == name)?;
        let mut out = Vec::new();
        let mut tails = Vec::new();
        for (path, st) in f.source.files() {
            let shown = path.display().to_string();
            let entry = |c: &Chunk| c.entry(&shown);
            out.extend(st.chunks.iter().map(entry));
            match f.source.tail(path) {
                Ok(Some(t)) => {
                    out.push(entry(&t));
                    tails.push((path.clone(), t));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(source = name, "cannot read the tail of {}: {e}", path.display()),
            }
        }
        drop(followed);
        let (noted, forgotten) = self.local.add_tails(tails);
        Some(Snapshot { chunks: out, noted, forgotten })
    }

    /// [`SourceSet::snapshot`]'s chunks when no file changed since its
    /// tail was last read (`stat`s only, no read, no hash; nothing noted):
    /// what a query wave can answer over on the event loop.
    pub fn snapshot_if_unchanged(&self, name: &str) -> Option<Vec<ryx_api::SnapshotChunk>> {
        let followed = self.lock();
        let f = followed.iter().find(|f| f.source.spec.name == name)?;
        let mut out = Vec::new();
        for (path, st) in f.source.files() {
            let shown = path.display().to_string();
            out.extend(st.chunks.iter().map(|c| c.entry(&shown)));
            if let Some(t) = f.source.tail_if_unchanged(path)? {
                out.push(t.entry(&shown));
            }
        }
        Some(out)
    }

    /// The chunk size sources are cut at.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Notes chunks as here or gone in the core, and has other nodes keep
    /// copies of the new ones (custody, `copies` + 1 in all) until
    /// `until` (Unix ms, 0: until they are gone from here).
    pub fn note(&self, s: &mut crate::runtime::State, added: Vec<(Hash, u64)>, removed: Vec<Hash>, until: u64) {
        let refs: Vec<ryx_core::jobs::BlobRef> =
            added.iter().map(|(h, size)| ryx_core::jobs::BlobRef { hash: h.clone(), size: *size }).collect();
        let refused = s.node.set_local_chunks(added, Vec::new());
        if refused > 0 {
            tracing::warn!(refused, "more chunks in sources than a node follows; the rest are not served");
        }
        let now = s.clock.now();
        if self.copies > 0 && !refs.is_empty() {
            s.node.keep(now, refs, usize::from(self.copies) + 1, until);
        }
        if !removed.is_empty() {
            let gone: Vec<String> = removed.iter().map(|h| h.to_string()).collect();
            s.node.release(now, &gone);
            s.node.set_local_chunks(Vec::new(), removed);
        }
    }
}

impl SourceSet {
    /// Stores a new list of sealed chunks and has `copies` other nodes keep
    /// it; the list it replaces is released and dropped.
    fn publish(&self, s: &mut crate::runtime::State, p: Publish) {
        let now = s.clock.now();
        let size = p.bytes.len() as u64;
        match s.node.blob_put(now, p.hash.as_str(), size, ryx_core::blobs::BlobKind::Manifest, false) {
            Ok(()) => {
                s.store.insert(p.hash.to_string(), bytes::Bytes::from(p.bytes));
                let r = ryx_core::jobs::BlobRef { hash: p.hash.clone(), size };
                s.node.keep(now, vec![r], usize::from(self.copies) + 1, 0);
            }
            Err(e) => tracing::warn!("cannot store the list of this node's chunks: {e}"),
        }
        if let Some(old) = p.old.filter(|o| *o != p.hash) {
            s.node.release(now, &[old.to_string()]);
            s.node.blob_remove(old.as_str());
            s.store.remove(old.as_str());
        }
    }
}

/// One dataset's chunks on this node now ([`SourceSet::snapshot`]).
pub struct Snapshot {
    /// The chunks, in path then offset order.
    pub chunks: Vec<ryx_api::SnapshotChunk>,
    /// Tails it named that are new here, to note as held (name, size).
    pub noted: Vec<(Hash, u64)>,
    /// Tails forgotten to make room for them.
    pub forgotten: Vec<Hash>,
}

/// What one round of scans found, for the event loop.
struct Scanned {
    view: ryx_api::Sources,
    added: Vec<(Hash, u64)>,
    removed: Vec<Hash>,
    /// Datasets to announce.
    announce: Vec<Announce>,
    /// Chunk lists to have other nodes keep.
    publish: Vec<Publish>,
    /// Chunks of documents to index ahead of their first search.
    index: Vec<(PathBuf, Chunk)>,
}

/// One dataset's announcement, as found by a scan.
struct Announce {
    name: String,
    files: u64,
    chunks: u64,
    bytes: u64,
    copy: Option<SnapshotCopy>,
}

/// A new list of a dataset's sealed chunks to store and have kept by
/// `--source-copies` other nodes, replacing `old`.
struct Publish {
    hash: Hash,
    bytes: Vec<u8>,
    old: Option<Hash>,
}

/// A source's info item is put again when only its byte count changed at
/// most this often.
pub const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The info key under which `node` announces that it holds part of
/// dataset `name`.
pub fn source_key(name: &str, node: ryx_core::NodeId) -> String {
    format!("{SOURCE_KEY_PREFIX}{name}/{node}")
}

/// Info keys of source announcements start with this.
pub const SOURCE_KEY_PREFIX: &str = "ryx/source/";

/// What a node announces of a dataset it holds part of (the value of its
/// [`source_key`] item): enough to find it and fetch its snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceAnnounce {
    /// The node.
    pub node: ryx_core::NodeId,
    /// Its UDP address (work tokens for its chunks are sent there).
    pub udp: std::net::SocketAddr,
    /// Its HTTP address (snapshots and chunks are fetched there).
    pub http: std::net::SocketAddr,
    /// Files, sealed chunks and bytes as of the announcement.
    pub files: u64,
    /// Sealed chunks.
    pub chunks: u64,
    /// Bytes in the files.
    pub bytes: u64,
    /// The list of its sealed chunks (a [`ryx_api::SourceSnapshot`]) as a
    /// blob that `--source-copies` other nodes keep, as they keep the
    /// chunks: when this node is gone, a snapshot of the dataset still
    /// covers what it held, from those copies. Absent without copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<SnapshotCopy>,
}

/// Where the kept list of a node's sealed chunks of one dataset is found
/// ([`SourceAnnounce::copy`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotCopy {
    /// BLAKE3 of the list's JSON, hex (fetched as `GET /v1/blobs/{hash}`
    /// from any node keeping it).
    pub hash: String,
    /// Bytes of the JSON.
    pub size: u64,
    /// Chunks listed.
    pub chunks: u64,
    /// Bytes of the chunks listed.
    pub bytes: u64,
}

/// Follows the node's sources for as long as it runs: a scan every
/// [`SCAN_EVERY`] on a blocking thread (file IO never runs on the event
/// loop); the loop gets the view (`GET /v1/sources`), the chunks now here
/// or gone (so that tokens for them run here), and a `ryx/source/NAME/ID`
/// info item per dataset when it changed, by which other nodes find it.
pub async fn follow(handle: crate::runtime::Handle, set: SourceSet) {
    let mut tick = tokio::time::interval(SCAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let Ok(me) = handle.call(|s| s.node.id()).await else { return };
    loop {
        tick.tick().await;
        let s = set.clone();
        let Ok(mut scanned) = tokio::task::spawn_blocking(move || s.scan_all(me)).await else { return };
        let index = std::mem::take(&mut scanned.index);
        if !index.is_empty() {
            // Indexed where the documents live, as they arrive, off the
            // event loop and without holding up the next scan.
            tokio::task::spawn_blocking(move || {
                for (path, chunk) in index {
                    match read_chunk(&path, &chunk) {
                        Ok(bytes) => {
                            if let Err(e) = ryx_compute::search::warm(&bytes) {
                                tracing::warn!("cannot index chunk {}: {e}", chunk.hash);
                            }
                        }
                        Err(e) => tracing::warn!("cannot read chunk {} to index it: {e}", chunk.hash),
                    }
                }
            });
        }
        let applied = handle
            .call(move |s| {
                let Scanned { view, added, removed, announce, publish, .. } = scanned;
                let set = s.source_set.clone();
                set.note(s, added, removed, 0);
                s.sources = view;
                let now = s.clock.now();
                for p in publish {
                    set.publish(s, p);
                }
                let (me, udp, http) = (s.node.id(), s.node.addr(), s.node.http_addr());
                for Announce { name, files, chunks, bytes, copy } in announce {
                    let a = SourceAnnounce { node: me, udp, http, files, chunks, bytes, copy };
                    let value = serde_json::to_value(&a).unwrap_or_default();
                    if let Err(e) = s.node.put_info(now, &source_key(&name, me), value, None) {
                        tracing::warn!(source = %name, "cannot announce: {e}");
                    }
                }
            })
            .await;
        if applied.is_err() {
            return; // the event loop has stopped
        }
    }
}

/// Reads a chunk back from its file, checked against its name.
pub fn read_chunk(path: &Path, chunk: &Chunk) -> std::io::Result<Vec<u8>> {
    let bytes = read_at(&mut File::open(path)?, chunk.offset, chunk.len)?;
    if bytes.len() as u64 != chunk.len || hash_of(&bytes) != chunk.hash {
        return Err(std::io::Error::other(format!(
            "{} changed under chunk {} at offset {}",
            path.display(),
            chunk.hash,
            chunk.offset
        )));
    }
    Ok(bytes)
}

fn hash_of(bytes: &[u8]) -> Hash {
    Hash::from(blake3::hash(bytes).to_hex().as_str())
}

fn read_at(file: &mut File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

fn scan_file(
    path: &Path,
    state: &mut FileState,
    (chunk_size, seal_quiet): (u64, u32),
    report: &mut ScanReport,
) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let same = (meta.dev(), meta.ino()) == (state.dev, state.ino);
    let known = !state.chunks.is_empty() || state.sealed_to > 0 || state.len > 0;
    if known && (!same || len < state.sealed_to) {
        let generation = state.generation.saturating_add(1);
        *state = FileState { generation, ..FileState::default() };
        report.restarted += 1;
    }
    state.dev = meta.dev();
    state.ino = meta.ino();
    state.quiet = if len == state.len { state.quiet.saturating_add(1) } else { 0 };
    state.len = len;
    // Seal while the bytes after the sealed part reach past one chunk: the
    // cut inside that window is then final (split_chunks' rule). One chunk
    // is read; only a chunk without a newline reads on, up to MAX_LINE.
    while len - state.sealed_to > chunk_size {
        let mut bytes = read_at(&mut file, state.sealed_to, chunk_size)?;
        if (bytes.len() as u64) < chunk_size {
            break; // the file shrank while being read: the next scan sees it
        }
        let end = match memchr::memrchr(b'\n', &bytes) {
            Some(i) => i + 1,
            None => {
                let more = MAX_LINE.min(len - state.sealed_to - chunk_size);
                let rest = read_at(&mut file, state.sealed_to + chunk_size, more)?;
                let found = memchr::memchr(b'\n', &rest);
                let whole = rest.len() as u64 == MAX_LINE;
                bytes.extend_from_slice(&rest);
                match found {
                    Some(i) => chunk_size as usize + i + 1,
                    None if whole => {
                        report.long_lines += 1;
                        bytes.len()
                    }
                    None => break, // the line is not complete yet
                }
            }
        };
        state.chunks.push(Chunk { offset: state.sealed_to, len: end as u64, hash: hash_of(&bytes[..end]) });
        state.sealed_to += end as u64;
        report.sealed += 1;
    }
    // A file that stopped growing has its complete lines sealed too, so
    // that its last chunk gets copies like the others (an open tail is only
    // named when a snapshot asks for it). Lines appended later start a new
    // chunk there: the cut differs from split_chunks' over the whole file,
    // which changes chunk names, never a result.
    if state.quiet >= seal_quiet && len > state.sealed_to && len - state.sealed_to <= chunk_size {
        let bytes = read_at(&mut file, state.sealed_to, len - state.sealed_to)?;
        if let Some(end) = memchr::memrchr(b'\n', &bytes).map(|i| i + 1) {
            state.chunks.push(Chunk { offset: state.sealed_to, len: end as u64, hash: hash_of(&bytes[..end]) });
            state.sealed_to += end as u64;
            report.sealed += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir() -> ryx_testkit::ScratchDir {
        ryx_testkit::ScratchDir::new("sources")
    }

    /// A source whose cuts are exactly split_chunks' (quiet tails unsealed).
    fn source(d: &Path, pattern: &str, chunk: u64) -> Source {
        Source::new(format!("app={}/{pattern}", d.display()).parse().expect("spec"), chunk).with_seal_quiet(u32::MAX)
    }

    /// The chunks and the tail cover the file's complete lines exactly, cut
    /// where split_chunks cuts the whole.
    fn assert_covers(src: &Source, path: &Path) {
        let data = std::fs::read(path).expect("read");
        let complete = memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1);
        let (_, st) = src.files().find(|(p, _)| p.as_path() == path).expect("followed");
        let mut parts: Vec<Vec<u8>> = st.chunks.iter().map(|c| read_chunk(path, c).expect("chunk")).collect();
        if let Some(t) = src.tail(path).expect("tail") {
            parts.push(read_chunk(path, &t).expect("tail chunk"));
        }
        assert_eq!(parts.concat(), data[..complete].to_vec());
        let want: Vec<Vec<u8>> = ryx_compute::split_chunks(&data[..complete], src.chunk_size as usize)
            .into_iter()
            .map(|r| data[r].to_vec())
            .collect();
        let sealed = st.chunks.len();
        assert_eq!(parts[..sealed], want[..sealed], "sealed cuts differ from split_chunks");
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let s: SourceSpec = "app=/var/log/app/*.log".parse().expect("spec");
        assert_eq!((s.name.as_str(), s.dir.as_path(), s.pattern.as_str()), ("app", Path::new("/var/log/app"), "*.log"));
        let s: SourceSpec = "x=file.txt".parse().expect("relative");
        assert_eq!((s.dir.as_path(), s.pattern.as_str()), (Path::new("."), "file.txt"));
        for bad in ["noequals", "=/a/b", "bad name=/a", "a=/x/*/y.log", "a=/", &format!("{}=/a", "n".repeat(65))] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn globs_match_as_shells_do() {
        for (p, n, m) in [
            ("*.log", "a.log", true),
            ("*.log", "a.log.1", false),
            ("app-?.log", "app-1.log", true),
            ("app-?.log", "app-12.log", false),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("**x", "yyx", true),
            ("lit", "lit", true),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} ~ {n}");
        }
        // No exponential blow-up on a hostile pattern.
        assert!(!glob_match(&"*a".repeat(30), &"a".repeat(200).replace("aa", "ab")));
    }

    #[test]
    fn appended_lines_are_sealed_or_in_the_tail_and_cuts_match_split_chunks() {
        let d = dir();
        let path = d.path().join("a.log");
        let mut f = File::create(&path).expect("create");
        let mut src = source(d.path(), "*.log", 64);
        let mut rng = ryx_core::rng::Rng::new(3);
        for round in 0..40 {
            for _ in 0..rng.below(6) {
                let words = 1 + rng.below(12);
                let line: Vec<String> = (0..words).map(|i| format!("w{}", i * round)).collect();
                writeln!(f, "{}", line.join(" ")).expect("write");
            }
            // Sometimes half a line, finished in a later round.
            if rng.chance(0.3) {
                write!(f, "half ").expect("write");
            }
            f.flush().expect("flush");
            let r = src.scan();
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            assert_covers(&src, &path);
        }
        assert!(src.files().next().expect("file").1.chunks.len() > 10);
    }

    #[test]
    fn a_file_that_stops_growing_has_its_tail_sealed_and_appends_start_a_new_chunk() {
        let d = dir();
        let path = d.path().join("a.log");
        std::fs::write(&path, "one line\n".repeat(20)).expect("write");
        let mut src = source(d.path(), "a.log", 64).with_seal_quiet(2);
        src.scan();
        let sealed = |s: &Source| s.files().next().expect("file").1.sealed_to;
        assert!(sealed(&src) < 180, "the tail is open while the file may grow");
        src.scan();
        src.scan();
        assert_eq!(sealed(&src), 180, "quiet for two scans: sealed to the end");
        assert_eq!(src.tail(&path).expect("tail"), None);
        // Appended later: a new chunk from there, the old ones unchanged.
        let before = src.files().next().expect("file").1.chunks.clone();
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"two\nthree\n").expect("append");
        drop(f);
        src.scan();
        let st = src.files().next().expect("file").1.clone();
        assert_eq!(st.chunks[..before.len()], before[..]);
        let t = src.tail(&path).expect("tail").expect("the new lines");
        assert_eq!((t.offset, t.len), (180, 10));
        let all: Vec<u8> =
            st.chunks.iter().chain(std::iter::once(&t)).flat_map(|c| read_chunk(&path, c).expect("read")).collect();
        assert_eq!(all, std::fs::read(&path).expect("read"));
    }

    #[test]
    fn a_tail_is_given_without_a_read_only_while_its_file_is_unchanged() {
        let d = dir();
        let path = d.path().join("a.log");
        std::fs::write(&path, "one line\n".repeat(20)).expect("write");
        let mut src = source(d.path(), "a.log", 1 << 20);
        src.scan();
        assert_eq!(src.tail_if_unchanged(&path), None, "never read: not known");
        let t = src.tail(&path).expect("tail").expect("open lines");
        assert_eq!(src.tail_if_unchanged(&path), Some(Some(t.clone())));
        // Appended: the tail read before is no longer the file's.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"two\n").expect("append");
        drop(f);
        assert_eq!(src.tail_if_unchanged(&path), None);
        let t2 = src.tail(&path).expect("tail").expect("open lines");
        assert_eq!(t2.len, t.len + 4);
        assert_eq!(src.tail_if_unchanged(&path), Some(Some(t2)));
        // Rewritten in place to the same length: the modification time
        // (or the inode) tells.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "ONE LINE\n".repeat(20) + "TWO\n").expect("rewrite");
        assert_eq!(src.tail_if_unchanged(&path), None);
    }

    #[test]
    fn rotation_and_truncation_start_a_new_generation() {
        let d = dir();
        let path = d.path().join("a.log");
        std::fs::write(&path, "one line\n".repeat(100)).expect("write");
        let mut src = source(d.path(), "a.log", 128);
        assert!(src.scan().sealed > 0);
        // Truncated below what was sealed.
        std::fs::write(&path, "short\n").expect("truncate");
        let r = src.scan();
        assert_eq!(r.restarted, 1);
        assert_covers(&src, &path);
        // Rotated: a new file (new inode) under the same name.
        std::fs::rename(&path, d.path().join("a.log.1")).expect("rotate");
        std::fs::write(&path, "fresh\n".repeat(50)).expect("write");
        let r = src.scan();
        assert_eq!(r.restarted, 1);
        assert_eq!(src.files().next().expect("file").1.generation, 2);
        assert_covers(&src, &path);
        // Gone.
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(src.scan().vanished, 1);
        assert_eq!(src.files().count(), 0);
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_bound_and_a_changed_chunk_is_refused() {
        let d = dir();
        let path = d.path().join("blob.bin");
        let n = (MAX_LINE + 4096) as usize;
        std::fs::write(&path, vec![b'x'; n]).expect("write");
        let mut src = source(d.path(), "*.bin", 1024);
        let r = src.scan();
        assert_eq!((r.sealed, r.long_lines), (1, 1));
        let st = src.files().next().expect("file").1.clone();
        assert_eq!(st.chunks[0].len, 1024 + MAX_LINE);
        assert_eq!(src.tail(&path).expect("tail"), None, "no complete line after the cut");
        // The bytes under a chunk change: reading it back says so.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[10] = b'y';
        std::fs::write(&path, bytes).expect("rewrite");
        assert!(read_chunk(&path, &st.chunks[0]).is_err());
    }

    #[test]
    fn an_unreadable_directory_is_an_error_not_a_panic() {
        let mut src = Source::new("app=/nonexistent-ryx-dir/*.log".parse().expect("spec"), 64);
        let r = src.scan();
        assert_eq!(r.errors.len(), 1);
        assert_eq!(src.files().count(), 0);
    }
}
