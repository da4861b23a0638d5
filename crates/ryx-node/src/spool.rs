//! One document per file (`--source NAME=files:DIR/GLOB`): the node takes
//! each matching file, once it has stayed unchanged for a scan, as one
//! JSON line `{"id": "NODE/FILE", "text": "CONTENTS"}` appended to a spool
//! file of its own, and follows that spool as the dataset's data (chunks,
//! copies, snapshots and jobs as for any source).
//!
//! - A document's id is the node's id, a slash and the file's name: unique
//!   network-wide, and stable across restarts with `--identity-file`.
//! - A file is taken once. Later changes to it are not seen (a document is
//!   immutable, as a log line is); a new file is a new document; a file
//!   removed stays in the spool until the node restarts.
//! - Contents are read as UTF-8 (invalid bytes replaced) and cut at
//!   [`MAX_DOC`] bytes, counted as a cut line.
//! - The spool starts empty whenever the node starts, and takes the files
//!   again in name order.
//!
//! The spool holds what a search needs exactly: `ryx-node exec search
//! --input SPOOL` over the spools (in the canonical order) ranks as the
//! network does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most bytes of a file taken as a document's text (the spool's lines must
/// stay under the longest line a source keeps whole, escapes included).
pub const MAX_DOC: u64 = 256 << 10;
/// Most files taken per scan (the rest wait for the next).
const MAX_TAKE_PER_SCAN: usize = 4096;

/// A spool of one-document-per-file source.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    pattern: String,
    /// The spool file.
    path: PathBuf,
    /// `NODE/`: what ids start with.
    prefix: String,
    /// Files taken, by name.
    taken: BTreeSet<String>,
    /// Files not taken yet, as last seen (length, modification time in
    /// ns): taken when seen the same twice.
    pending: BTreeMap<String, (u64, i64)>,
    file: File,
}

/// What one look at the directory did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Documents appended to the spool.
    pub docs: usize,
    /// Of them, cut at [`MAX_DOC`].
    pub cut: usize,
}

impl Spool {
    /// A new, empty spool at `path` for the files `pattern` names in
    /// `dir`, with ids `node/NAME`.
    pub fn create(dir: &Path, pattern: &str, path: PathBuf, node: &str) -> std::io::Result<Spool> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            pattern: pattern.to_string(),
            path,
            prefix: format!("{node}/"),
            taken: BTreeSet::new(),
            pending: BTreeMap::new(),
            file,
        })
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Documents taken so far.
    pub fn docs(&self) -> usize {
        self.taken.len()
    }

    /// Looks at the directory: files unchanged since the last look are
    /// appended to the spool, in name order (blocking: file IO).
    pub fn take(&mut self) -> std::io::Result<Taken> {
        let mut out = Taken::default();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if self.taken.contains(&name) || !crate::sources::glob_match(&self.pattern, &name) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(entry.path()) else { continue };
            if meta.is_file() {
                names.push((name, (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec())));
            }
        }
        names.sort();
        let mut lines = Vec::new();
        let mut still = BTreeMap::new();
        for (name, seen) in names {
            if lines.len() >= MAX_TAKE_PER_SCAN || self.pending.get(&name) != Some(&seen) {
                still.insert(name, seen);
                continue;
            }
            let mut bytes = Vec::new();
            let Ok(f) = File::open(self.dir.join(&name)) else { continue };
            f.take(MAX_DOC + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > MAX_DOC {
                bytes.truncate(MAX_DOC as usize);
                out.cut += 1;
            }
            let text = String::from_utf8_lossy(&bytes);
            let line = serde_json::json!({ "id": format!("{}{name}", self.prefix), "text": text });
            lines.push(line.to_string());
            self.taken.insert(name);
        }
        self.pending = still;
        if !lines.is_empty() {
            let mut all = lines.join("\n");
            all.push('\n');
            // One write of whole lines: the source never sees half a line
            // as complete.
            self.file.write_all(all.as_bytes())?;
            out.docs = lines.len();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_taken_once_quiet_as_json_lines_with_node_scoped_ids() {
        let dir = ryx_testkit::ScratchDir::new("spool-src");
        let out = ryx_testkit::ScratchDir::new("spool-out");
        std::fs::write(dir.path().join("b.txt"), "second \"quoted\"\nline").expect("write");
        std::fs::write(dir.path().join("a.txt"), "first").expect("write");
        std::fs::write(dir.path().join("skip.bin"), "not matched").expect("write");
        std::fs::write(dir.path().join("big.txt"), vec![b'x'; MAX_DOC as usize + 10]).expect("write");
        let path = out.path().join("docs.jsonl");
        let mut s = Spool::create(dir.path(), "*.txt", path.clone(), "n1").expect("spool");
        // First look: seen, not yet known to be quiet.
        assert_eq!(s.take().expect("take"), Taken::default());
        assert_eq!(s.take().expect("take"), Taken { docs: 3, cut: 1 });
        std::fs::write(dir.path().join("a.txt"), "changed later: not seen").expect("write");
        std::fs::write(dir.path().join("c.txt"), "third").expect("write");
        assert_eq!(s.take().expect("take").docs, 0);
        assert_eq!(s.take().expect("take").docs, 1);
        let text = std::fs::read_to_string(&path).expect("read");
        let docs: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        let ids: Vec<&str> = docs.iter().map(|d| d["id"].as_str().expect("id")).collect();
        assert_eq!(ids, ["n1/a.txt", "n1/b.txt", "n1/big.txt", "n1/c.txt"]);
        assert_eq!(docs[0]["text"], "first");
        assert_eq!(docs[1]["text"], "second \"quoted\"\nline");
        assert_eq!(docs[2]["text"].as_str().expect("text").len(), MAX_DOC as usize);
        assert_eq!(s.docs(), 4);
    }
}
