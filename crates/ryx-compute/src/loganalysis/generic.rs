//! The default path: header detection and variable masking that need no preset.
//!
//! Both work on one line at a time and use no other line, so the result cannot depend
//! on how the input is cut into units.
//!
//! # Header detection ([`split_header`])
//! The first whitespace tokens of a line (at most [`MAX_HEAD`]) are classified:
//! timestamps and numbers (`2015-10-18`, `18:01:47,978`, `081109`, `1702`), month and
//! day names (`Jun`, `Sun`), `-`, bracketed groups (`[main]`, `[Sun Dec 04 04:47:44
//! 2005]`, `[QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774]`), levels
//! (`INFO`, `[notice]`, and single letters such as Android's `D` when a component
//! follows), components (a token ending in `:` such as `sshd[24200]:`) and other
//! words (host names, at most three). The header ends
//! - after a level, extended by following bracketed groups, one component and a `-`;
//! - else at the first component, when the tokens before it start with a timestamp;
//! - else after the leading run of timestamp-like tokens (six or more digits, or digit
//!   groups joined by `-:./,`), if any.
//!
//! A level or component anchor is only taken when every token before it is a header
//! token and there is a timestamp among them (or the level is the first token), so
//! content that merely contains `ERROR` or `word:` is left alone. The detected shape
//! (one letter a header token) is counted, and `finish` reports the most common one as
//! a layout such as `<Time> <Time> <Level> [<Field>] <Component>: <Content>`.
//!
//! # Masking ([`mask_content`])
//! Token by token (whitespace split): URLs, paths, e-mail addresses and domain names
//! (a dotted name ending in a common top-level domain) become `<*>`. A token holding
//! a digit becomes `<*>` when, stripped of surrounding brackets and punctuation, it is
//! numeric (IPs, host:port, times, dates, versions: digits and `.:-/,+_`), hexadecimal
//! (`0x1f`, `9f4ef63`, UUIDs, MACs) or a number with a unit (`37ms`, `3.5KB`, `80%`).
//! Otherwise it is cut at `= : , ; ( ) [ ] { } < > " ' | @ / #` and each piece holding
//! a digit becomes `<*>`, unless it looks like an identifier (`jk2_init`, `log4j`:
//! starts and ends with a letter, at most two digits, no `-`). Size and time units
//! after a masked number (`384.0 B`, `12 ms`) and month/day names next to one are
//! masked too. Values of `key=value` holding two dots or more (`name=com.a.b`) are
//! masked.

use crate::chunk::is_space;

/// Number of leading tokens examined for a header.
pub(crate) const MAX_HEAD: usize = 12;

const LEVELS: &[&[u8]] = &[
    b"INFO",
    b"INFORMATION",
    b"NOTICE",
    b"DEBUG",
    b"TRACE",
    b"WARN",
    b"WARNING",
    b"ERROR",
    b"ERR",
    b"FATAL",
    b"SEVERE",
    b"CRITICAL",
    b"CRIT",
    b"ALERT",
    b"EMERG",
    b"EMERGENCY",
    b"FAILURE",
    b"VERBOSE",
    b"FINE",
    b"FINER",
    b"FINEST",
    b"CONFIG",
];

const MONTHS_DAYS: &[&[u8]] = &[
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Sept", b"Oct", b"Nov", b"Dec", b"Mon",
    b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun",
];

const TLDS: &[&[u8]] = &[
    b"com",
    b"net",
    b"org",
    b"edu",
    b"gov",
    b"mil",
    b"int",
    b"io",
    b"de",
    b"uk",
    b"cn",
    b"jp",
    b"ru",
    b"fr",
    b"br",
    b"info",
    b"biz",
    b"us",
    b"ca",
    b"au",
    b"nl",
    b"it",
    b"es",
    b"pl",
    b"in",
    b"kr",
    b"tw",
    b"hk",
    b"local",
    b"lan",
    b"localdomain",
];

const UNITS: &[&[u8]] = &[
    b"B", b"KB", b"MB", b"GB", b"TB", b"PB", b"KiB", b"MiB", b"GiB", b"TiB", b"kB", b"ms", b"us", b"ns", b"Mbps",
    b"Kbps", b"Gbps",
];

/// Header token classes, one letter each in a shape.
const TIME: u8 = b'T';
const NUM: u8 = b'N';
const MONTH: u8 = b'M';
const DASH: u8 = b'D';
const GROUP: u8 = b'B';
const LEVEL: u8 = b'L';
const COMPONENT: u8 = b'C';
const WORD: u8 = b'W';

/// Header shape: one class letter per header token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Shape {
    len: u8,
    codes: [u8; MAX_HEAD],
}

impl Shape {
    fn push(&mut self, c: u8) {
        if (self.len as usize) < MAX_HEAD {
            self.codes[self.len as usize] = c;
            self.len += 1;
        }
    }

    /// The shape's letters.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.codes[..self.len as usize]
    }
}

/// Renders a shape (as stored in the partial) as a layout in `format` syntax.
pub(crate) fn describe(shape: &[u8]) -> String {
    let mut out = String::new();
    for &c in shape {
        out.push_str(match c {
            TIME => "<Time> ",
            NUM => "<Num> ",
            MONTH => "<Month> ",
            DASH => "- ",
            GROUP => "[<Field>] ",
            LEVEL => "<Level> ",
            COMPONENT => "<Component>: ",
            _ => "<Field> ",
        });
    }
    out.push_str("<Content>");
    out
}

/// Result of [`split_header`].
pub(crate) struct Split<'a> {
    pub content: &'a [u8],
    pub level: Option<&'a [u8]>,
    pub shape: Shape,
}

fn is_digit_punct(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'.' | b':' | b'-' | b'/' | b',' | b'+' | b'_')
}

/// Digits and separators only, with a digit: a number or a timestamp part.
fn is_numeric(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|&b| is_digit_punct(b)) && t.iter().any(u8::is_ascii_digit)
}

/// Numeric and clearly a timestamp (or a long id): six digits or more, or at least two
/// digit groups.
fn is_strong_time(t: &[u8]) -> bool {
    let t = t.strip_suffix(b",").unwrap_or(t);
    if !is_numeric(t) {
        // ISO 8601 with `T` and an optional zone.
        return t.len() >= 15 && t.contains(&b'T') && t.iter().all(|&b| is_digit_punct(b) || b == b'T' || b == b'Z');
    }
    let digits = t.iter().filter(|b| b.is_ascii_digit()).count();
    let groups = t.split(|&b| !b.is_ascii_digit()).filter(|g| !g.is_empty()).count();
    digits >= 6 || groups >= 2
}

/// A date or a time: it starts like `2005-06-03`, `2005.06.03`, `17/06/09`, `03-17` or
/// `16:13:38` (an ISO 8601 timestamp too), or, with `epoch`, it is nine digits or more.
/// IP addresses and plain numbers are not.
fn is_datetime(t: &[u8], epoch: bool) -> bool {
    let t = t.strip_suffix(b",").unwrap_or(t);
    let g1 = t.iter().take_while(|b| b.is_ascii_digit()).count();
    if epoch && g1 >= 9 && g1 == t.len() {
        return true;
    }
    let (Some(&sep), rest) = (t.get(g1), t.get(g1 + 1..).unwrap_or(b"")) else { return false };
    let g2 = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match (g1, sep) {
        (4, b'-' | b'/' | b'.') => (1..=2).contains(&g2),
        (1..=2, b':') => g2 == 2,
        (1..=2, b'-' | b'/') => (1..=2).contains(&g2),
        _ => false,
    }
}

fn is_level_word(t: &[u8], bracketed: bool) -> bool {
    if bracketed {
        return LEVELS.iter().any(|l| l.eq_ignore_ascii_case(t));
    }
    // Bare: all capitals (INFO), or capitalised (Info).
    let up = t.iter().all(|b| b.is_ascii_uppercase());
    let cap = t.first().is_some_and(u8::is_ascii_uppercase) && t[1..].iter().all(u8::is_ascii_lowercase);
    (up || cap) && LEVELS.iter().any(|l| l.eq_ignore_ascii_case(t))
}

fn is_month_day(t: &[u8]) -> bool {
    let t = t.strip_suffix(b",").unwrap_or(t);
    MONTHS_DAYS.contains(&t)
}

/// A token ending in `:` that names a component (`sshd[42]:`, `dfs.DataNode$X:`).
fn is_component(t: &[u8]) -> bool {
    match t.strip_suffix(b":") {
        Some(c) => !c.is_empty() && c.iter().any(u8::is_ascii_alphabetic) && !c.ends_with(b":"),
        None => false,
    }
}

/// If token `i` opens a bracketed group, the index after the token closing it
/// (within `MAX_HEAD` tokens).
fn group_end(toks: &[&[u8]], i: usize) -> Option<usize> {
    let open = toks.get(i)?.first().copied()?;
    if open != b'[' {
        return None;
    }
    let mut depth = 0i32;
    for (j, t) in toks.iter().enumerate().skip(i) {
        for &b in t.iter() {
            match b {
                b'[' => depth += 1,
                b']' => depth -= 1,
                _ => {}
            }
        }
        if depth <= 0 {
            // The group must close at the end of a token.
            return (t.ends_with(b"]") && depth == 0).then_some(j + 1);
        }
    }
    None
}

/// Splits a trimmed line into header and content (see the module docs).
pub(crate) fn split_header(line: &[u8]) -> Split<'_> {
    // Token offsets of the first MAX_HEAD + 1 tokens.
    let mut offs = [(0usize, 0usize); MAX_HEAD + 1];
    let mut n = 0;
    let mut i = 0;
    while i < line.len() && n < offs.len() {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let s = i;
        while i < line.len() && !is_space(line[i]) {
            i += 1;
        }
        offs[n] = (s, i);
        n += 1;
    }
    let mut toks: [&[u8]; MAX_HEAD + 1] = [b""; MAX_HEAD + 1];
    for k in 0..n {
        toks[k] = &line[offs[k].0..offs[k].1];
    }
    let toks = &toks[..n];
    let head = n.min(MAX_HEAD);
    let mut shape = Shape::default();
    let mut level = None;
    let mut words = 0;
    let mut strong = false;
    // The line starts like a header: a number, timestamp, date word, `-` or group.
    // ... or a capitalised tag (`KERNDTLB`) before a date, a time or an epoch.
    let tag = n >= 2
        && toks[0].iter().all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
        && toks[0].first().is_some_and(u8::is_ascii_uppercase)
        && is_datetime(toks[1], true);
    let started = tag
        || toks.first().is_some_and(|t| {
            is_numeric(t) || is_strong_time(t) || is_month_day(t) || *t == b"-" || t.starts_with(b"[")
        });
    let mut end = None;
    let mut k = 0;
    while k < head {
        let t = toks[k];
        if let Some(j) = group_end(toks, k) {
            let inner = &line[offs[k].0 + 1..offs[j - 1].1 - 1];
            if j == k + 1 && is_level_word(inner, true) {
                shape.push(LEVEL);
                level = Some(inner);
                k += 1;
                end = Some(extend_after_level(toks, k, &mut shape));
                break;
            }
            strong |= inner.split(|&b| is_space(b)).any(|w| is_strong_time(w) || is_month_day(w));
            shape.push(GROUP);
            k = j;
            continue;
        }
        let bare = t.strip_suffix(b":").unwrap_or(t);
        if is_level_word(bare, false) && (strong || (k == 0 && bare.iter().all(u8::is_ascii_uppercase))) {
            shape.push(LEVEL);
            level = Some(bare);
            end = Some(extend_after_level(toks, k + 1, &mut shape));
            break;
        }
        if t.len() == 1
            && b"VDIWEFA".contains(&t[0])
            && strong
            && k >= 2
            && toks.get(k + 1).is_some_and(|c| is_component(c))
        {
            shape.push(LEVEL);
            shape.push(COMPONENT);
            level = Some(t);
            end = Some(k + 2);
            break;
        }
        if is_strong_time(t) {
            strong = true;
            shape.push(TIME);
        } else if is_numeric(t) {
            shape.push(NUM);
        } else if is_month_day(t) {
            strong = true;
            shape.push(MONTH);
        } else if t == b"-" {
            shape.push(DASH);
        } else if is_component(t) && strong {
            shape.push(COMPONENT);
            end = Some(k + 1);
            break;
        } else if (strong || started) && (words < 3 || t.iter().any(u8::is_ascii_digit)) {
            if !t.iter().any(u8::is_ascii_digit) {
                words += 1;
            }
            shape.push(WORD);
        } else {
            break;
        }
        k += 1;
    }
    let end = match end {
        Some(e) => e,
        None => {
            // Fallback: up to the last date/time among the header tokens scanned (not
            // the first token) and the numbers right after it; else the leading run of
            // dates and times.
            let codes = shape.as_bytes();
            let mut starts = Vec::with_capacity(codes.len());
            let mut tok = 0;
            for &c in codes {
                starts.push(tok);
                tok = if c == GROUP { group_end(toks, tok).unwrap_or(tok + 1) } else { tok + 1 };
            }
            let last = (1..codes.len()).rev().find(|&i| codes[i] == TIME && is_datetime(toks[starts[i]], true));
            match last {
                Some(last) => {
                    let mut e = last + 1;
                    while e < codes.len() && codes[e] == NUM {
                        e += 1;
                    }
                    let mut kept = Shape::default();
                    for &c in &codes[..e] {
                        kept.push(c);
                    }
                    shape = kept;
                    starts.get(e).copied().unwrap_or(tok)
                }
                None => {
                    // A leading bracketed timestamp (`[10.30 16:49:06]`), then dates
                    // and times.
                    shape = Shape::default();
                    let mut run = 0;
                    if let Some(j) = group_end(toks, 0) {
                        let inner = &line[offs[0].0 + 1..offs[j - 1].1 - 1];
                        if inner.split(|&b| is_space(b)).any(|w| is_datetime(w, false) && w.contains(&b':')) {
                            shape.push(GROUP);
                            run = j;
                        }
                    }
                    while run < head && (is_datetime(toks[run], false) || is_month_day(toks[run])) {
                        shape.push(if is_month_day(toks[run]) { MONTH } else { TIME });
                        run += 1;
                    }
                    run
                }
            }
        }
    };
    let content = if end == 0 {
        line
    } else if end < n {
        &line[offs[end].0..]
    } else {
        b""
    };
    Split { content, level, shape }
}

/// Extends a header after its level: bracketed groups (at most two) when a component or
/// a `-` follows them, one component, one `-`. Returns the index of the first content
/// token.
fn extend_after_level(toks: &[&[u8]], start: usize, shape: &mut Shape) -> usize {
    let mut k = start;
    let mut groups = 0;
    for _ in 0..2 {
        match group_end(toks, k) {
            Some(j) => {
                groups += 1;
                k = j;
            }
            None => break,
        }
    }
    let next_is_end = toks.get(k).is_some_and(|t| is_component(t) || *t == b"-");
    if groups > 0 && !next_is_end {
        k = start;
        groups = 0;
    }
    for _ in 0..groups {
        shape.push(GROUP);
    }
    if toks.get(k).is_some_and(|t| is_component(t)) {
        shape.push(COMPONENT);
        k += 1;
    }
    if toks.get(k).is_some_and(|t| *t == b"-") {
        shape.push(DASH);
        k += 1;
    }
    k
}

const WILD: &[u8] = b"<*>";

/// Generalises two different tokens of one template position, keeping a common prefix
/// that ends with punctuation and a common suffix that starts with punctuation:
/// `user=root`, `user=guest` -> `user=<*>`; `(a)`, `(b)` -> `(<*>)`; `x1`, `y2` -> `<*>`.
pub(crate) fn merge_token(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a == b {
        return a.to_vec();
    }
    let cut = |c: u8| !c.is_ascii_alphanumeric() && c != b'_' && c != b'*';
    let mut p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while p > 0 && !(cut(a[p - 1]) && a[p - 1] != b'<') {
        p -= 1;
    }
    let room = a.len().min(b.len()) - p;
    let mut s = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count().min(room);
    while s > 0 && !(cut(a[a.len() - s]) && a[a.len() - s] != b'>') {
        s -= 1;
    }
    let mut out = Vec::with_capacity(p + 3 + s);
    out.extend_from_slice(&a[..p]);
    out.extend_from_slice(WILD);
    out.extend_from_slice(&a[a.len() - s..]);
    out
}

/// A plain word, the kind of token that may be a constant with a few variants: letters
/// (and `_`, `-` inside) and at most one final digit, optionally in brackets or quotes,
/// after `key=` or `key:`, or before one of `,;:.`; not eight hexadecimal letters or
/// more.
pub(crate) fn is_plain_word(t: &[u8]) -> bool {
    let (_, t, _) = strip(t);
    let t = match t.iter().position(|&b| b == b'=' || b == b':') {
        Some(i) if i + 1 < t.len() && t[..i].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') => &t[i + 1..],
        _ => t,
    };
    let t = match t.last() {
        Some(b',' | b';' | b':' | b'.') => &t[..t.len() - 1],
        _ => t,
    };
    // One final digit is allowed (`eth0`, `ssh2`).
    let t = match t.split_last() {
        Some((d, rest)) if d.is_ascii_digit() && rest.len() >= 2 => rest,
        _ => t,
    };
    !t.is_empty()
        && t[0].is_ascii_alphabetic()
        && t.iter().all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
        && !(t.len() >= 8 && t.iter().all(u8::is_ascii_hexdigit))
}

fn is_open(b: u8) -> bool {
    matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'')
}

fn is_close(b: u8) -> bool {
    matches!(b, b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b',' | b';' | b':' | b'.' | b'!' | b'?')
}

fn is_piece_delim(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':'
            | b','
            | b';'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'<'
            | b'>'
            | b'"'
            | b'\''
            | b'|'
            | b'@'
            | b'/'
            | b'#'
    )
}

/// Splits `tok` into leading punctuation, core and trailing punctuation.
fn strip(tok: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let s = tok.iter().position(|&b| !is_open(b)).unwrap_or(tok.len());
    let e = tok.iter().rposition(|&b| !is_close(b)).map_or(s, |i| i + 1).max(s);
    (&tok[..s], &tok[s..e], &tok[e..])
}

fn is_hex(c: &[u8]) -> bool {
    let c = c.strip_prefix(b"0x").or_else(|| c.strip_prefix(b"0X")).unwrap_or(c);
    c.len() >= 4
        && c.iter().all(|&b| b.is_ascii_hexdigit() || b == b'-' || b == b':')
        && c.iter().any(u8::is_ascii_digit)
}

/// `0x` hex of any length.
fn is_0x(c: &[u8]) -> bool {
    c.len() > 2 && (c.starts_with(b"0x") || c.starts_with(b"0X")) && c[2..].iter().all(u8::is_ascii_hexdigit)
}

/// A number followed by a short unit (`37ms`, `3.5KB`, `80%`, `1004rts`).
fn is_number_unit(c: &[u8]) -> bool {
    let d = c.iter().take_while(|&&b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+').count();
    if d == 0 || !c[..d].iter().any(u8::is_ascii_digit) {
        return false;
    }
    let rest = &c[d..];
    rest == b"%" || (rest.len() <= 4 && rest.iter().all(u8::is_ascii_alphabetic))
}

fn is_path(c: &[u8]) -> bool {
    (c.len() > 1 && c[0] == b'/' && c[1] != b'/')
        || c.starts_with(b"./")
        || c.starts_with(b"../")
        || c.starts_with(b"~/")
        || (c.len() > 2 && c[0].is_ascii_alphabetic() && &c[1..3] == b":\\")
}

fn is_domain(c: &[u8]) -> bool {
    let mut labels = c.split(|&b| b == b'.');
    let Some(last) = labels.next_back() else { return false };
    let rest: Vec<&[u8]> = labels.collect();
    !rest.is_empty()
        && TLDS.contains(&last)
        && rest.iter().all(|l| !l.is_empty() && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn is_identifier(p: &[u8]) -> bool {
    let digits = p.iter().filter(|b| b.is_ascii_digit()).count();
    // `ssh2`, `eth0`, `md5`: two letters or more and one final digit.
    let letters = p.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if letters >= 2 && digits == 1 && letters + 1 == p.len() {
        return true;
    }
    p.first().is_some_and(u8::is_ascii_alphabetic)
        && p.last().is_some_and(u8::is_ascii_alphabetic)
        && digits <= 2
        && !p.contains(&b'-')
        && !p.iter().all(u8::is_ascii_hexdigit)
}

/// Whether a whole core is a variable.
fn core_is_variable(c: &[u8], has_digit: bool) -> bool {
    if c.is_empty() {
        return false;
    }
    if c.windows(3).any(|w| w == b"://") || is_path(c) || is_domain(c) {
        return true;
    }
    if let Some(at) = c.iter().position(|&b| b == b'@') {
        if at > 0 && c[at + 1..].contains(&b'.') && !c[at + 1..].contains(&b'@') {
            return true;
        }
    }
    has_digit && (is_numeric(c) || is_strong_time(c) || is_hex(c) || is_0x(c) || is_number_unit(c))
}

/// Masks one token into `out`.
fn mask_token(tok: &[u8], out: &mut Vec<u8>) {
    let has_digit = tok.iter().any(u8::is_ascii_digit);
    if !has_digit && !tok.iter().any(|&b| b == b'/' || b == b'.' || b == b'@' || b == b'=') {
        out.extend_from_slice(tok);
        return;
    }
    let (pre, core, post) = strip(tok);
    if has_digit && is_numeric(core) {
        // Numbers keep their `:` structure and a leading `/`: `/10.0.0.1:80` ->
        // `/<*>:<*>`, `07:07:00` -> `<*>:<*>:<*>`.
        out.extend_from_slice(pre);
        let body = core.strip_prefix(b"/").map_or(core, |b| {
            out.push(b'/');
            b
        });
        for (i, part) in body.split(|&b| b == b':').enumerate() {
            if i > 0 {
                out.push(b':');
            }
            if !part.is_empty() {
                out.extend_from_slice(WILD);
            }
        }
        out.extend_from_slice(post);
        return;
    }
    if core_is_variable(core, has_digit) {
        out.extend_from_slice(pre);
        out.extend_from_slice(WILD);
        out.extend_from_slice(post);
        return;
    }
    // Piece by piece.
    out.extend_from_slice(pre);
    let mut i = 0;
    let mut after_eq = false;
    while i < core.len() {
        let b = core[i];
        if is_piece_delim(b) {
            out.push(b);
            after_eq = b == b'=';
            i += 1;
            continue;
        }
        let s = i;
        while i < core.len() && !is_piece_delim(core[i]) {
            i += 1;
        }
        let p = &core[s..i];
        let digit = p.iter().any(u8::is_ascii_digit);
        let dots = p.iter().filter(|&&b| b == b'.').count();
        if digit && is_hex(p) {
            out.extend_from_slice(WILD);
        } else if digit && !is_identifier(p) {
            // Keep a word prefix: `blk_-42` -> `blk_<*>`, `node-7` -> `node-<*>`.
            // (also `dcbf.....0` -> `dcbf.....<*>`, but `blk_-42` -> `blk_<*>`).
            let pre = p.iter().take_while(|b| b.is_ascii_alphabetic()).count();
            let mut cut = pre;
            while cut < p.len() && matches!(p[cut], b'_' | b'-' | b'.') {
                cut += 1;
            }
            if cut > pre + 1 && p[cut - 1] == b'-' {
                cut -= 1;
            }
            let num = match p.get(cut) {
                Some(b'-') => p.get(cut + 1).is_some_and(u8::is_ascii_digit),
                Some(b) => b.is_ascii_digit(),
                None => false,
            };
            if pre >= 2 && num {
                out.extend_from_slice(&p[..cut]);
            }
            out.extend_from_slice(WILD);
        } else if (after_eq && dots >= 2) || core_is_variable(p, false) {
            out.extend_from_slice(WILD);
        } else {
            out.extend_from_slice(p);
        }
        after_eq = false;
    }
    out.extend_from_slice(post);
}

/// Masks `content` into `out` as canonical tokens (one space between tokens).
pub(crate) fn mask_content(content: &[u8], out: &mut Vec<u8>, toks: &mut Vec<(usize, usize)>) {
    toks.clear();
    let mut i = 0;
    while i < content.len() {
        while i < content.len() && is_space(content[i]) {
            i += 1;
        }
        if i == content.len() {
            break;
        }
        let s = i;
        while i < content.len() && !is_space(content[i]) {
            i += 1;
        }
        toks.push((s, i));
    }
    let start = out.len();
    let mut prev_wild = false;
    for (k, &(s, e)) in toks.iter().enumerate() {
        if out.len() > start {
            out.push(b' ');
        }
        let tok = &content[s..e];
        let at = out.len();
        let (pre, core, post) = strip(tok);
        let next_digit = toks.get(k + 1).is_some_and(|&(s, e)| {
            content[s..e].iter().any(u8::is_ascii_digit) || is_month_day(strip(&content[s..e]).1)
        });
        if (prev_wild && UNITS.contains(&core)) || (is_month_day(core) && (prev_wild || next_digit)) {
            out.extend_from_slice(pre);
            out.extend_from_slice(WILD);
            out.extend_from_slice(post);
        } else {
            mask_token(tok, out);
        }
        prev_wild = out[at..].ends_with(WILD) || out[at..].starts_with(WILD) && out.len() - at <= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        let mut out = Vec::new();
        mask_content(s.as_bytes(), &mut out, &mut Vec::new());
        String::from_utf8(out).expect("utf8")
    }

    fn header(s: &str) -> (String, Option<String>, String) {
        let sp = split_header(s.as_bytes());
        (
            String::from_utf8_lossy(sp.content).into_owned(),
            sp.level.map(|l| String::from_utf8_lossy(l).into_owned()),
            describe(sp.shape.as_bytes()),
        )
    }

    #[test]
    fn masks() {
        assert_eq!(
            masked("Receiving block blk_-123 src: /10.0.0.1:50010 dest: /10.0.0.2:50010"),
            "Receiving block blk_<*> src: /<*>:<*> dest: /<*>:<*>"
        );
        assert_eq!(masked("session opened for user root by (uid=0)"), "session opened for user root by (uid=<*>)");
        assert_eq!(masked("rhost=218.188.2.4  user=root"), "rhost=<*> user=root");
        assert_eq!(masked("jk2_init() Found child 6725 in slot 10"), "jk2_init() Found child <*> in slot <*>");
        assert_eq!(masked("size 384.0 B, free 317.5 KB)"), "size <*> <*>, free <*> <*>)");
        assert_eq!(masked("for ns.example.com [173.234.31.186] failed"), "for <*> [<*>] failed");
        assert_eq!(masked("took 37ms at 2020-01-01T10:00:00Z id 9f4ef63a"), "took <*> at <*> id <*>");
        assert_eq!(masked("ok /etc/httpd/conf/workers2.properties"), "ok <*>");
        assert_eq!(masked("a=1,b=0x1f,name=com.a.b,c=true"), "a=<*>,b=<*>,name=<*>,c=true");
        assert_eq!(masked("at Sat Jun 18 02:08:11 2005"), "at <*> <*> <*> <*>:<*>:<*> <*>");
        assert_eq!(masked("GET http://x.y/z?a=1 from me@mail.org"), "GET <*> from <*>");
        assert_eq!(masked(""), "");
    }

    #[test]
    fn odd_input() {
        let big = "[".repeat(1 << 20);
        assert_eq!(split_header(big.as_bytes()).content.len(), 1 << 20);
        let many = "1 ".repeat(1 << 18);
        let s = split_header(many.trim().as_bytes());
        assert!(s.content.len() < many.len());
        let mut out = Vec::new();
        mask_content(many.as_bytes(), &mut out, &mut Vec::new());
        assert_eq!(out.len(), 4 * (1 << 18) - 1);
        for bytes in [&b"\xff\xfe 12 \x80=9 [\xc3] /\xff:1"[..], b"=", b"/", b"@.", b"0x", b"[]", b"-1-", b"a=.b.c"] {
            let s = split_header(bytes);
            let mut out = Vec::new();
            mask_content(s.content, &mut out, &mut Vec::new());
            assert!(!out.starts_with(b" ") && !out.ends_with(b" ") && !out.windows(2).any(|w| w == b"  "));
        }
    }

    #[test]
    fn plain_words() {
        for w in [
            "root",
            "user=guest",
            "isOverlap:false",
            "failures;",
            "BREAK-IN",
            "Link.",
            "ssh2",
            "alt0",
            "(usable)",
            "\"View",
        ] {
            assert!(is_plain_word(w.as_bytes()), "{w}");
        }
        for w in ["x12", "a1", "com.a.b", "a/b", "deadbeef", "x=", "<*>", "", "=", ":"] {
            assert!(!is_plain_word(w.as_bytes()), "{w}");
        }
    }

    #[test]
    fn merged_tokens() {
        let m = |a: &str, b: &str| String::from_utf8(merge_token(a.as_bytes(), b.as_bytes())).expect("utf8");
        assert_eq!(m("user=root", "user=guest"), "user=<*>");
        assert_eq!(m("user=<*>", "user=guest"), "user=<*>");
        assert_eq!(m("(a)", "(b)"), "(<*>)");
        assert_eq!(m("x1", "y2"), "<*>");
        assert_eq!(m("ssh1", "ssh2"), "<*>");
        assert_eq!(m("<*>", "<x>"), "<*>");
        assert_eq!(m("a:", "a::"), "a:<*>");
        assert_eq!(m("", "x"), "<*>");
    }

    #[test]
    fn headers() {
        let h = header("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block");
        assert_eq!(h.0, "PacketResponder 1 for block");
        assert_eq!(h.1.as_deref(), Some("INFO"));
        assert_eq!(h.2, "<Time> <Time> <Num> <Level> <Component>: <Content>");
        let h = header("2015-10-18 18:01:47,978 INFO [RMCommunicator Allocator] org.a.B: Created x");
        assert_eq!(h.0, "Created x");
        let h = header("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:F@774] - Note: 3");
        assert_eq!(h.0, "Note: 3");
        let h = header("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok");
        assert_eq!((h.0.as_str(), h.1.as_deref()), ("workerEnv.init() ok", Some("notice")));
        let h = header("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown");
        assert_eq!((h.0.as_str(), h.1), ("check pass; user unknown", None));
        let h = header("03-17 16:13:38.811  1702  2395 D WindowManager: print x");
        assert_eq!((h.0.as_str(), h.1.as_deref()), ("print x", Some("D")));
        let h = header("- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache");
        assert_eq!(h.0, "instruction cache");
        let h = header("KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-19.05.27.396460 R30-M0-N9-C:J16-U01 RAS KERNEL FATAL data TLB error interrupt");
        assert_eq!((h.0.as_str(), h.1.as_deref()), ("data TLB error interrupt", Some("FATAL")));
        // Content lines are left alone.
        assert_eq!(header("check pass; user unknown").0, "check pass; user unknown");
        assert_eq!(
            header("BLOCK* NameSystem.addStoredBlock: blockMap updated").0,
            "BLOCK* NameSystem.addStoredBlock: blockMap updated"
        );
        assert_eq!(header("").0, "");
        let h = header("[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] Directory index forbidden");
        assert_eq!(h.0, "[client 1.2.3.4] Directory index forbidden");
        assert_eq!(header("[client 10.0.0.1] File does not exist").0, "[client 10.0.0.1] File does not exist");
        assert_eq!(header("10.0.0.1:80 Served block").0, "10.0.0.1:80 Served block");
        assert_eq!(header("2005.06.03 12:00:00 x").0, "x");
        let h = header("[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy");
        assert_eq!(h.0, "chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy");
        let h = header("2024-01-02 10:00:00,123 INFO: started");
        assert_eq!((h.0.as_str(), h.1.as_deref()), ("started", Some("INFO")));
        let h = header("2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack");
        assert_eq!((h.0.as_str(), h.1.as_deref()), ("CBS    Loaded Servicing Stack", Some("Info")));
        let h =
            header("Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: IOThunderboltSwitch<0>(0x0)::listenerCallback");
        assert_eq!(h.0, "IOThunderboltSwitch<0>(0x0)::listenerCallback");
        let h =
            header("- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed");
        assert_eq!(h.0, "session closed");
        assert_eq!(header("[").0, "[");
        assert_eq!(header("2020-01-01 12:00:00").0, "");
    }
}
