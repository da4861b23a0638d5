//! Header layouts such as `<Date> <Time> <Level> [<Process>] <Component>: <Content>`.
//!
//! Syntax (the one used by the Loghub README and LogPAI's logparser):
//! - `<Name>` is a field (`[A-Za-z_][A-Za-z0-9_]*`); `<Content>` is required and is the
//!   message that template mining works on; `<Level>`, when present, feeds `levels`
//!   and alerts;
//! - a run of spaces matches one or more whitespace bytes;
//! - `( ... )?` is an optional part (e.g. Linux's `<Component>([<PID>])?: <Content>`);
//! - every other character is a literal.
//!
//! Fields match lazily (shortest first) and the layout must span the whole line after
//! surrounding whitespace is trimmed, exactly like logparser's generated
//! `^(?P<Date>.*?)\s+...(?P<Content>.*?)$` regex.

use regex::bytes::{Regex, RegexBuilder};

/// A compiled header layout.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    re: Regex,
    content: usize,
    level: Option<usize>,
}

/// Result of splitting one line with a [`Layout`].
pub(crate) struct Fields<'a> {
    pub content: &'a [u8],
    pub level: Option<&'a [u8]>,
}

impl Layout {
    /// Compiles `layout`; the error is a human readable reason.
    pub(crate) fn compile(layout: &str) -> Result<Layout, String> {
        let chars: Vec<char> = layout.chars().collect();
        let mut names = Vec::new();
        let mut re = String::from("^");
        translate(&chars, &mut re, &mut names)?;
        re.push('$');
        if !names.iter().any(|n| n == "Content") {
            return Err("the layout has no <Content> field".into());
        }
        let re =
            RegexBuilder::new(&re).size_limit(16 << 20).build().map_err(|e| format!("layout does not compile: {e}"))?;
        let index = |name: &str| re.capture_names().position(|n| n == Some(name));
        let content = index("Content").ok_or("the layout has no <Content> field")?;
        let level = index("Level");
        Ok(Layout { re, content, level })
    }

    /// Splits a trimmed line; `None` when it does not fit the layout.
    pub(crate) fn split<'a>(&self, line: &'a [u8]) -> Option<Fields<'a>> {
        let caps = self.re.captures(line)?;
        let content = caps.get(self.content).map_or(&b""[..], |m| m.as_bytes());
        let level = self.level.and_then(|i| caps.get(i)).map(|m| m.as_bytes());
        Some(Fields { content, level })
    }
}

fn translate(chars: &[char], re: &mut String, names: &mut Vec<String>) -> Result<(), String> {
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '<' {
            if let Some(len) = field_len(&chars[i + 1..]) {
                let name: String = chars[i + 1..i + 1 + len].iter().collect();
                if names.contains(&name) {
                    return Err(format!("field <{name}> appears twice"));
                }
                re.push_str(&format!("(?P<{name}>(?s-u:.)*?)"));
                names.push(name);
                i += len + 2;
                continue;
            }
        }
        if c == '(' {
            if let Some(close) = matching_paren(&chars[i..]) {
                if chars.get(i + close + 1) == Some(&'?') {
                    re.push_str("(?:");
                    translate(&chars[i + 1..i + close], re, names)?;
                    re.push_str(")?");
                    i += close + 2;
                    continue;
                }
            }
        }
        if c == ' ' {
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            re.push_str("(?-u:\\s)+");
            continue;
        }
        re.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4])));
        i += 1;
    }
    Ok(())
}

/// Length of a field name starting at `s` and closed by `>`.
fn field_len(s: &[char]) -> Option<usize> {
    let len = s.iter().position(|&c| c == '>')?;
    let name = &s[..len];
    let ok = !name.is_empty()
        && (name[0].is_ascii_alphabetic() || name[0] == '_')
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(len)
}

/// Offset of the `)` matching the `(` at `s[0]`.
fn matching_paren(s: &[char]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in s.iter().enumerate() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(layout: &str, line: &str) -> Option<(String, Option<String>)> {
        let l = Layout::compile(layout).expect("layout");
        l.split(line.as_bytes()).map(|f| {
            (String::from_utf8_lossy(f.content).into_owned(), f.level.map(|x| String::from_utf8_lossy(x).into_owned()))
        })
    }

    #[test]
    fn layouts() {
        let linux = "<Month> <Date> <Time> <Level> <Component>([<PID>])?: <Content>";
        assert_eq!(
            split(linux, "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; x"),
            Some(("authentication failure; x".into(), Some("combo".into())))
        );
        assert_eq!(
            split(linux, "Jun 15 04:06:18 combo su: session opened"),
            Some(("session opened".into(), Some("combo".into())))
        );
        let zk = "<Date> <Time> - <Level>  [<Node>:<Component>@<Id>] - <Content>";
        assert_eq!(
            split(zk, "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200"),
            Some(("Notification time out: 3200".into(), Some("INFO".into())))
        );
        assert_eq!(split("[<Time>] [<Level>] <Content>", "no brackets here"), None);
        assert!(Layout::compile("<Date> <Time>").is_err());
        assert!(Layout::compile("<Content> <Content>").is_err());
        // literal characters, including regex metacharacters and unbalanced parens
        assert_eq!(
            split("a.b (x <Level>) <Content>", "a.b (x W) hi there"),
            Some(("hi there".into(), Some("W".into())))
        );
        assert_eq!(split("<Level>: <Content>", "E: \u{ff}"), Some(("\u{ff}".into(), Some("E".into()))));
    }
}
