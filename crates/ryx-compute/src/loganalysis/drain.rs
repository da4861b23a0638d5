//! Drain template mining (He et al., ICWS 2017), following LogPAI's reference
//! implementation decision for decision.
//!
//! A message is a sequence of tokens (masked variables already replaced by `<*>`).
//! The parse tree is keyed first by token count, then by the first `depth - 3`
//! tokens (tokens holding a digit, or beyond `max_child` children, go to a `<*>`
//! branch). Each leaf holds log groups; a message joins the group of its leaf whose
//! template has the highest share of equal non-`<*>` tokens (ties: more `<*>`), if
//! that share reaches the similarity threshold, and the template keeps equal tokens
//! and turns the others into `<*>`. Otherwise it starts a new group. As in the
//! reference, messages with at most `depth - 3` tokens never enter the tree, so each
//! distinct short message is its own group.
//!
//! Two additions, off for presets: [`Config::constant_share`] compares only the
//! template's constant positions, and [`split_groups`] splits groups afterwards by
//! low-cardinality wildcard positions.

use std::collections::HashMap;

/// Token id of the wildcard `<*>`.
pub(crate) const WILD: u32 = 0;

/// Interns tokens so the tree and comparisons work on integers.
pub(crate) struct Interner<'a> {
    ids: HashMap<&'a [u8], u32>,
    toks: Vec<&'a [u8]>,
    digit: Vec<bool>,
}

impl<'a> Interner<'a> {
    pub(crate) fn new() -> Self {
        let mut i = Interner { ids: HashMap::new(), toks: Vec::new(), digit: Vec::new() };
        i.intern(b"<*>");
        i
    }

    pub(crate) fn intern(&mut self, t: &'a [u8]) -> u32 {
        if let Some(&id) = self.ids.get(t) {
            return id;
        }
        let id = self.toks.len() as u32;
        self.ids.insert(t, id);
        self.toks.push(t);
        self.digit.push(t.iter().any(u8::is_ascii_digit));
        id
    }

    pub(crate) fn text(&self, id: u32) -> &'a [u8] {
        self.toks[id as usize]
    }
}

enum Node {
    Inner(HashMap<u32, usize>),
    Leaf(Vec<usize>),
}

/// Drain settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub similarity: f64,
    pub depth: usize,
    pub max_child: usize,
    /// Compare only the template's constant positions: the share of them that the
    /// message matches (instead of the share of all positions, as in the reference).
    pub constant_share: bool,
}

/// Incremental Drain parser over interned token sequences.
pub(crate) struct Drain {
    cfg: Config,
    prefix: usize,
    by_len: HashMap<usize, usize>,
    nodes: Vec<Node>,
    /// Template tokens of every group, in creation order.
    pub templates: Vec<Vec<u32>>,
}

impl Drain {
    pub(crate) fn new(cfg: Config) -> Self {
        Drain {
            cfg,
            prefix: cfg.depth.saturating_sub(3),
            by_len: HashMap::new(),
            nodes: Vec::new(),
            templates: Vec::new(),
        }
    }

    /// Feeds one message; returns the index of its group.
    pub(crate) fn add(&mut self, seq: &[u32], digit: &[bool]) -> usize {
        if let Some(g) = self.search(seq) {
            let t = &mut self.templates[g];
            for (a, &b) in t.iter_mut().zip(seq) {
                if *a != b {
                    *a = WILD;
                }
            }
            return g;
        }
        let g = self.templates.len();
        self.templates.push(seq.to_vec());
        self.insert(g, seq, digit);
        g
    }

    fn search(&self, seq: &[u32]) -> Option<usize> {
        if seq.len() <= self.prefix {
            return None;
        }
        let mut node = *self.by_len.get(&seq.len())?;
        for t in &seq[..self.prefix] {
            match &self.nodes[node] {
                Node::Inner(ch) => node = *ch.get(t).or_else(|| ch.get(&WILD))?,
                Node::Leaf(_) => return None,
            }
        }
        let Node::Leaf(groups) = &self.nodes[node] else {
            return None;
        };
        let mut best = None;
        let mut max_sim = -1.0f64;
        let mut max_par = -1i64;
        for &g in groups {
            let (sim, par) = seq_dist(&self.templates[g], seq, self.cfg.constant_share);
            if sim > max_sim || (sim == max_sim && par > max_par) {
                max_sim = sim;
                max_par = par;
                best = Some(g);
            }
        }
        if max_sim >= self.cfg.similarity {
            best
        } else {
            None
        }
    }

    fn new_node(&mut self, leaf: bool) -> usize {
        self.nodes.push(if leaf { Node::Leaf(Vec::new()) } else { Node::Inner(HashMap::new()) });
        self.nodes.len() - 1
    }

    fn insert(&mut self, g: usize, seq: &[u32], digit: &[bool]) {
        if seq.len() <= self.prefix {
            return;
        }
        let prefix = self.prefix;
        let mut node = match self.by_len.get(&seq.len()) {
            Some(&n) => n,
            None => {
                let n = self.new_node(prefix == 0);
                self.by_len.insert(seq.len(), n);
                n
            }
        };
        for (i, &t) in seq[..prefix].iter().enumerate() {
            let leaf_next = i + 1 == prefix;
            let (len, has_t, has_wild) = match &self.nodes[node] {
                Node::Inner(ch) => (ch.len(), ch.get(&t).copied(), ch.get(&WILD).copied()),
                Node::Leaf(_) => return,
            };
            let next = if let Some(n) = has_t {
                n
            } else if !digit.get(i).copied().unwrap_or(false) {
                match has_wild {
                    Some(w) if len >= self.cfg.max_child => w,
                    Some(_) => self.child(node, t, leaf_next),
                    None if len + 1 < self.cfg.max_child => self.child(node, t, leaf_next),
                    None => self.child(node, WILD, leaf_next),
                }
            } else {
                match has_wild {
                    Some(w) => w,
                    None => self.child(node, WILD, leaf_next),
                }
            };
            node = next;
        }
        if let Node::Leaf(groups) = &mut self.nodes[node] {
            groups.push(g);
        }
    }

    fn child(&mut self, parent: usize, t: u32, leaf: bool) -> usize {
        let n = self.new_node(leaf);
        if let Node::Inner(ch) = &mut self.nodes[parent] {
            ch.insert(t, n);
        }
        n
    }
}

/// Splits Drain's groups by their low-cardinality wildcard positions (Brain's idea that
/// a position taking few distinct words is a constant whose variants are different
/// events). A position of group `g` splits it when the group's template has `<*>` there,
/// every message of the group has a `literal` token there, and the messages
/// hold between 2 and `max_values` distinct tokens there. Messages are given in order of
/// first appearance with their Drain group; `literal` says whether a token may be a
/// constant variant (the caller's rule: a plain word); returns the new group of every message and
/// the new groups' templates, new groups numbered in order of first appearance.
pub(crate) fn split_groups(
    group_of: &[usize],
    seqs: &[Vec<u32>],
    templates: &[Vec<u32>],
    literal: &dyn Fn(u32) -> bool,
    max_values: usize,
) -> (Vec<usize>, Vec<Vec<u32>>) {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); templates.len()];
    for (m, &g) in group_of.iter().enumerate() {
        if let Some(v) = members.get_mut(g) {
            v.push(m);
        }
    }
    // Split positions of every group.
    let mut split_at: Vec<Vec<usize>> = vec![Vec::new(); templates.len()];
    for (g, t) in templates.iter().enumerate() {
        if members[g].len() < 2 {
            continue;
        }
        for (pos, &tok) in t.iter().enumerate() {
            if tok != WILD {
                continue;
            }
            let mut values: Vec<u32> = Vec::new();
            let mut ok = true;
            for &m in &members[g] {
                let v = seqs[m].get(pos).copied().unwrap_or(WILD);
                if v == WILD || !literal(v) {
                    ok = false;
                    break;
                }
                if !values.contains(&v) {
                    values.push(v);
                    if values.len() > max_values {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && values.len() >= 2 {
                split_at[g].push(pos);
            }
        }
    }
    let mut ids: HashMap<(usize, Vec<u32>), usize> = HashMap::new();
    let mut new_of = Vec::with_capacity(group_of.len());
    let mut out: Vec<Vec<u32>> = Vec::new();
    for (m, &g) in group_of.iter().enumerate() {
        let key: Vec<u32> = split_at[g].iter().map(|&pos| seqs[m].get(pos).copied().unwrap_or(WILD)).collect();
        let next = out.len();
        let id = *ids.entry((g, key)).or_insert(next);
        if id == next {
            out.push(seqs[m].clone());
        } else {
            for (a, &b) in out[id].iter_mut().zip(&seqs[m]) {
                if *a != b {
                    *a = WILD;
                }
            }
        }
        new_of.push(id);
    }
    (new_of, out)
}

/// Share of positions where the template holds the same (non-`<*>`) token, and the
/// number of `<*>` in the template.
fn seq_dist(template: &[u32], seq: &[u32], constant_share: bool) -> (f64, i64) {
    let mut sim = 0usize;
    let mut par = 0i64;
    for (&a, &b) in template.iter().zip(seq) {
        if a == WILD {
            par += 1;
        } else if a == b {
            sim += 1;
        }
    }
    if template.is_empty() {
        return (0.0, 0);
    }
    if constant_share {
        let constants = template.len() - par as usize;
        return (if constants == 0 { 1.0 } else { sim as f64 / constants as f64 }, par);
    }
    (sim as f64 / template.len() as f64, par)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: Config, msgs: &[&str]) -> (Vec<usize>, Vec<String>) {
        let mut int = Interner::new();
        let mut d = Drain::new(cfg);
        let mut groups = Vec::new();
        for m in msgs {
            let seq: Vec<u32> = m.split_whitespace().map(|t| int.intern(t.as_bytes())).collect();
            let digit: Vec<bool> = seq.iter().map(|&t| int.text(t).iter().any(u8::is_ascii_digit)).collect();
            groups.push(d.add(&seq, &digit));
        }
        let templates = d
            .templates
            .iter()
            .map(|t| t.iter().map(|&x| String::from_utf8_lossy(int.text(x)).into_owned()).collect::<Vec<_>>().join(" "))
            .collect();
        (groups, templates)
    }

    const CFG: Config = Config { similarity: 0.5, depth: 4, max_child: 100, constant_share: false };

    #[test]
    fn groups_similar_messages() {
        let (g, t) = run(
            CFG,
            &[
                "Receiving block blk_1 src: /10.0.0.1",
                "Receiving block blk_2 src: /10.0.0.2",
                "Deleting block blk_3 file /a",
                "Receiving block blk_4 src: /10.0.0.3",
            ],
        );
        assert_eq!(g, vec![0, 0, 1, 0]);
        assert_eq!(t[0], "Receiving block <*> src: <*>");
    }

    #[test]
    fn threshold_and_length_split_groups() {
        let (g, _) = run(CFG, &["a b c d", "a x y z", "a b c", "a b c d"]);
        // 1/4 similar < 0.5: new group; other length: new group.
        assert_eq!(g, vec![0, 1, 2, 0]);
    }

    #[test]
    fn short_messages_never_join_like_the_reference() {
        // depth 4 -> one prefix token; one-token messages are never put in the tree.
        let (g, t) = run(CFG, &["x", "x", ""]);
        assert_eq!(g, vec![0, 1, 2]);
        assert_eq!(t, vec!["x", "x", ""]);
    }

    #[test]
    fn digits_go_to_the_wildcard_branch() {
        let (g, t) = run(CFG, &["42 apples eaten", "43 apples eaten"]);
        assert_eq!(g, vec![0, 0]);
        assert_eq!(t[0], "<*> apples eaten");
    }

    #[test]
    fn max_child_overflow_goes_to_wildcard() {
        let cfg = Config { max_child: 3, ..CFG };
        let (g, _) = run(cfg, &["a k", "b k", "c k", "d k"]);
        // 'a' and 'b' get nodes, the third child slot becomes '<*>' (holding 'c'),
        // and 'd' then follows '<*>' and joins 'c k' (similarity 1/2).
        assert_eq!(g, vec![0, 1, 2, 2]);
    }
}
