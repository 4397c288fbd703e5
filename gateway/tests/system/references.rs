//! Every reference in the docs and in code comments resolves inside the repository. A reader
//! has only the repository: there is no issue tracker in it, so an issue number leads nowhere;
//! a section mark must name a Markdown file of the repository and one of its headings; and a
//! relative Markdown link must reach a file that exists and, with an anchor, a heading in it.
//!
//! Scanned: `README.md`, everything under `docs/` and `config/`, and the `.rs` and `.md` files
//! under `gateway/`, `admin-cli/`, `credential-schemas/` and `tests/` (never `target/` or
//! `.git/`). Only the comments of Rust files count: string literals may hold anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::Path;

/// What a dangling reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// An issue or pull-request number.
    Issue,
    /// A numbered or named section of a document.
    Section,
    /// A relative Markdown link, or its anchor.
    Link,
}

/// One dangling reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    file: String,
    line: usize,
    kind: Kind,
    detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {:?}: {}",
            self.file, self.line, self.kind, self.detail
        )
    }
}

/// The files the checker sees, by `/`-separated path relative to the repository root.
#[derive(Default)]
struct Tree {
    /// Every file and directory.
    paths: BTreeSet<String>,
    /// The text of every file read: the scanned ones and every Markdown file.
    texts: BTreeMap<String, String>,
    /// The files whose references are checked.
    scanned: BTreeSet<String>,
}

/// Directories never walked, wherever they are.
const SKIPPED_DIRS: [&str; 2] = ["target", ".git"];

impl Tree {
    /// The repository on disk.
    fn load(root: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut pending = vec![String::new()];
        while let Some(dir) = pending.pop() {
            let entries = fs::read_dir(root.join(&dir))
                .unwrap_or_else(|error| panic!("reading {}: {error}", root.join(&dir).display()));
            for entry in entries {
                let entry = entry.unwrap_or_else(|error| panic!("listing {dir}: {error}"));
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let path = if dir.is_empty() {
                    name.clone()
                } else {
                    format!("{dir}/{name}")
                };
                let is_dir = entry
                    .file_type()
                    .unwrap_or_else(|error| panic!("inspecting {path}: {error}"))
                    .is_dir();
                if is_dir {
                    if !SKIPPED_DIRS.contains(&name.as_str()) {
                        tree.paths.insert(path.clone());
                        pending.push(path);
                    }
                    continue;
                }
                let scanned = is_scanned(&path);
                if scanned || path.ends_with(".md") {
                    // Text only: a file that is not UTF-8 holds no prose to check.
                    if let Ok(text) = fs::read_to_string(root.join(&path)) {
                        if scanned {
                            tree.scanned.insert(path.clone());
                        }
                        tree.texts.insert(path.clone(), text);
                    }
                }
                tree.paths.insert(path);
            }
        }
        tree
    }

    /// A tree of these files only, every one of them scanned.
    fn in_memory(files: &[(&str, &str)]) -> Tree {
        let mut tree = Tree::default();
        for (path, text) in files {
            let mut dir = *path;
            while let Some((parent, _)) = dir.rsplit_once('/') {
                tree.paths.insert(parent.to_owned());
                dir = parent;
            }
            tree.paths.insert((*path).to_owned());
            tree.scanned.insert((*path).to_owned());
            tree.texts.insert((*path).to_owned(), (*text).to_owned());
        }
        tree
    }
}

/// Whether the references of the file at `path` are checked.
fn is_scanned(path: &str) -> bool {
    let top = path.split('/').next().unwrap_or_default();
    match top {
        "README.md" => path == "README.md",
        "docs" | "config" => path.contains('/'),
        "gateway" | "admin-cli" | "credential-schemas" | "tests" => {
            path.ends_with(".rs") || path.ends_with(".md")
        }
        _ => false,
    }
}

/// Every dangling reference in the scanned files, in file and line order.
fn check(tree: &Tree) -> Vec<Finding> {
    let mut findings = Vec::new();
    for file in &tree.scanned {
        let text = &tree.texts[file];
        let rust = file.ends_with(".rs");
        let markdown = file.ends_with(".md");
        let prose = if rust {
            rust_comments(text)
        } else {
            text.clone()
        };
        let mut fence = None;
        for (index, line) in prose.lines().enumerate() {
            let mut report = |kind, detail| {
                findings.push(Finding {
                    file: file.clone(),
                    line: index + 1,
                    kind,
                    detail,
                });
            };
            for detail in issue_refs(line) {
                report(Kind::Issue, detail);
            }
            for detail in section_refs(tree, file, line) {
                report(Kind::Section, detail);
            }
            if !(rust || markdown) || toggles_fence(line, rust, &mut fence) || fence.is_some() {
                continue;
            }
            for detail in broken_links(tree, file, line, rust) {
                report(Kind::Link, detail);
            }
        }
    }
    findings.sort();
    findings
}

/// Opens or closes a fenced code block at `line` (its marker kept in `fence`); true if the line
/// is a fence.
fn toggles_fence(line: &str, rust: bool, fence: &mut Option<char>) -> bool {
    let mut text = line.trim_start();
    if rust {
        text = text.trim_start_matches(['/', '!', '*']).trim_start();
    }
    let marker = if text.starts_with("```") {
        '`'
    } else if text.starts_with("~~~") {
        '~'
    } else {
        return false;
    };
    match *fence {
        None => *fence = Some(marker),
        Some(open) if open == marker => *fence = None,
        Some(_) => {}
    }
    true
}

/// Whether `byte` can be part of a word.
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// A short piece of `line` around byte `at`, for a message.
fn excerpt(line: &str, at: usize) -> String {
    let mut start = at.saturating_sub(20);
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 30).min(line.len());
    while !line.is_char_boundary(end) {
        end += 1;
    }
    line[start..end].trim().to_owned()
}

/// Issue references, N being a number: `issue N`, `issues N and M`, `issue #N`, `(#N)` and a
/// free-standing `#N`. Not `PKCS#8`, attributes, headings or hex colours: a free-standing
/// number sign with exactly 3 or 6 digits reads as a colour unless it is in parentheses.
fn issue_refs(line: &str) -> Vec<String> {
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut found = Vec::new();
    // The number signs already reported as part of `issue #N`.
    let mut covered = BTreeSet::new();
    let mut from = 0;
    while let Some(offset) = lower[from..].find("issue") {
        let start = from + offset;
        from = start + "issue".len();
        if start > 0 && is_word(bytes[start - 1]) {
            continue;
        }
        let mut at = from;
        if bytes.get(at) == Some(&b's') {
            at += 1;
        }
        let gap = at;
        while bytes
            .get(at)
            .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
        {
            at += 1;
        }
        let hash = bytes.get(at) == Some(&b'#');
        if hash {
            at += 1;
        }
        if (at > gap || hash) && bytes.get(at).is_some_and(u8::is_ascii_digit) {
            found.push(format!("issue reference `{}`", excerpt(line, start)));
            if hash {
                covered.insert(at - 1);
            }
        }
    }
    for (at, _) in lower.match_indices('#') {
        let before = at.checked_sub(1).map(|index| bytes[index]);
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let after = bytes.get(at + 1 + digits).copied();
        let opens = before.is_none_or(|byte| matches!(byte, b' ' | b'\t' | b'(' | b'[' | b','));
        let closes = after.is_none_or(|byte| {
            matches!(
                byte,
                b' ' | b'\t' | b')' | b']' | b',' | b'.' | b';' | b':' | b'!' | b'?'
            )
        });
        // `](#42-numbers)` and `](#3)` are links to headings.
        let anchor = lower[..at].ends_with("](");
        if digits == 0 || !opens || !closes || anchor || covered.contains(&at) {
            continue;
        }
        if before != Some(b'(') && (digits == 3 || digits == 6) {
            continue;
        }
        found.push(format!("issue reference `{}`", excerpt(line, at)));
    }
    found
}

/// Section references that do not resolve: the section mark, or the word section with a number,
/// or the word appendix with a letter or number. Each must follow the name of a Markdown file of
/// the repository (`PROTOCOL.md`, or a link to it) or be followed by `of` and that name, and
/// name one of its headings, by number or by text.
fn section_refs(tree: &Tree, file: &str, line: &str) -> Vec<String> {
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut marks = Vec::new();
    for (at, _) in line.match_indices('\u{a7}') {
        let previous = line[..at].chars().next_back();
        if previous != Some('\u{a7}') {
            marks.push((at, at + '\u{a7}'.len_utf8()));
        }
    }
    for word in ["section", "appendix"] {
        for (at, _) in lower.match_indices(word) {
            let mut end = at + word.len();
            if bytes.get(end) == Some(&b's') {
                end += 1;
            }
            let bounded = (at == 0 || !is_word(bytes[at - 1]))
                && bytes.get(end).is_some_and(|byte| *byte == b' ');
            let token = line[end..]
                .trim_start()
                .split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
                .next()
                .unwrap_or_default();
            let numbered = token.starts_with(|c: char| c.is_ascii_digit());
            // An appendix named by one character (a letter, a circled number) or by capitals
            // (a roman numeral); not one followed by a word.
            let lettered = word == "appendix"
                && (token.chars().count() == 1
                    || (!token.is_empty()
                        && token
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())));
            if bounded && (numbered || lettered) {
                marks.push((at, end));
            }
        }
    }
    let mut found = Vec::new();
    for (at, end) in marks {
        let rest = line[end..].trim_start_matches(['\u{a7}', ' ']);
        let (id, length) = section_id(rest);
        let after = rest[length..].trim_start();
        let named = document_before(&line[..at]).or_else(|| {
            let of = after.strip_prefix("of ")?;
            document_before(of.split_whitespace().next()?)
        });
        let reference = excerpt(line, at);
        let Some(document) = named else {
            found.push(format!(
                "section reference `{reference}` names no Markdown file of the repository"
            ));
            continue;
        };
        let Some(target) = resolve_document(tree, file, &document) else {
            found.push(format!(
                "section reference `{reference}`: `{document}` is not in the repository"
            ));
            continue;
        };
        let headings = heading_texts(tree.texts.get(&target).map_or("", String::as_str));
        if !section_exists(&headings, id) {
            found.push(format!(
                "section reference `{reference}`: no heading `{id}` in {target}"
            ));
        }
    }
    found
}

/// The section named at the start of `rest` (a number, `4.2`, or text up to punctuation), and
/// the length of `rest` it takes.
fn section_id(rest: &str) -> (&str, usize) {
    if rest.starts_with(|c: char| c.is_ascii_digit()) {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        return (rest[..end].trim_end_matches('.'), end);
    }
    let end = rest
        .find([',', ';', ':', '(', ')', '[', ']', '"'])
        .unwrap_or(rest.len());
    (rest[..end].trim().trim_end_matches('.'), end)
}

/// The Markdown file named right before a section reference, as written.
fn document_before(text: &str) -> Option<String> {
    let text = text
        .trim_end()
        .trim_end_matches([')', '`', '*', '"', '\'', ',']);
    let token = text
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '`' | '"' | '\''))
        .next()?;
    token
        .to_ascii_lowercase()
        .ends_with(".md")
        .then(|| token.to_owned())
}

/// The repository path of the document `name` cited from `file`: beside it, or from the root.
fn resolve_document(tree: &Tree, file: &str, name: &str) -> Option<String> {
    [relative_to(file, name), normalise("", name)]
        .into_iter()
        .flatten()
        .find(|path| tree.paths.contains(path))
}

/// Whether a heading matches a section id: by number (`4.2` for `## 4.2 Title`), or by text
/// (its slug, with or without its number, begins with the id's slug).
fn section_exists(headings: &[String], id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        return headings.iter().any(|heading| {
            heading
                .strip_prefix(id)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with(['.', ' ', ')']))
        });
    }
    let wanted = slug(id);
    !wanted.is_empty()
        && headings.iter().any(|heading| {
            let unnumbered = heading.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
            slug(heading).starts_with(&wanted) || slug(unnumbered.trim()).starts_with(&wanted)
        })
}

/// The texts of the ATX headings of a Markdown document, outside fenced code.
fn heading_texts(markdown: &str) -> Vec<String> {
    let mut fence = None;
    let mut headings = Vec::new();
    for line in markdown.lines() {
        if toggles_fence(line, false, &mut fence) || fence.is_some() {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let text = line.trim_start_matches(' ');
        let level = text.len() - text.trim_start_matches('#').len();
        let rest = &text[level..];
        if indent > 3 || !(1..=6).contains(&level) {
            continue;
        }
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        let mut title = rest.trim();
        let closed = title.trim_end_matches('#');
        if closed.is_empty() || closed.ends_with([' ', '\t']) {
            title = closed.trim_end();
        }
        headings.push(without_link_targets(title));
    }
    headings
}

/// `text` with the `(target)` of every `[label](target)` removed.
fn without_link_targets(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        out.push_str(&rest[..=at]);
        let target = &rest[at + 1..];
        match target.find(')') {
            Some(close) => rest = &target[close + 1..],
            None => {
                rest = target;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation other than `-` and
/// `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            _ if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown document, with GitHub's `-1`, `-2` for repeated headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for heading in heading_texts(markdown) {
        let base = slug(&heading);
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(if *count == 0 {
            base
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// `path` joined to `base` (a `/`-separated repository path) with `.` and `..` resolved;
/// `None` if it climbs out of the repository.
fn normalise(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|part| !part.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// `path` as written in `file`: from the repository root if it starts with `/`, else from
/// `file`'s directory.
fn relative_to(file: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return normalise("", path);
    }
    let dir = file.rsplit_once('/').map_or("", |(dir, _)| dir);
    normalise(dir, path)
}

/// `%xx` escapes decoded, for link targets such as `My%20File.md`.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = if bytes[at] == b'%' {
            text.get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        } else {
            None
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a link target has a scheme (`https:`, `mailto:`), or is a Rust path (`crate::x`).
fn is_external(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

/// `line` with the inside of every inline code span blanked.
fn without_code_spans(line: &str) -> String {
    line.split('`')
        .enumerate()
        .map(|(index, piece)| {
            if index % 2 == 1 {
                " ".repeat(piece.len())
            } else {
                piece.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// The targets of the Markdown links on `line`: inline `[label](target)` and reference
/// definitions `[label]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some((_, target)) = trimmed.split_once("]: ")
    {
        targets.push(target.trim().to_owned());
    }
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let mut depth = 0usize;
        let close = after.char_indices().find_map(|(index, c)| match c {
            '(' => {
                depth += 1;
                None
            }
            ')' if depth == 0 => Some(index),
            ')' => {
                depth -= 1;
                None
            }
            _ => None,
        });
        let Some(close) = close else {
            break;
        };
        targets.push(after[..close].trim().to_owned());
        rest = &after[close + 1..];
    }
    targets
        .into_iter()
        .filter_map(|target| {
            let target = target.trim_start_matches('<');
            let first = target.split_whitespace().next()?;
            Some(first.trim_end_matches('>').to_owned())
        })
        .collect()
}

/// Relative links on `line` whose file or heading is missing.
fn broken_links(tree: &Tree, file: &str, line: &str, rust: bool) -> Vec<String> {
    let mut found = Vec::new();
    for target in link_targets(&without_code_spans(line)) {
        if target.is_empty() || is_external(&target) {
            continue;
        }
        // In Rust, `[label](Item)` is an intra-doc link and `#x` a rustdoc anchor.
        if rust && (target.starts_with('#') || !target.contains(['/', '.'])) {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            Some(file.to_owned())
        } else {
            relative_to(file, &percent_decoded(path))
        };
        let Some(resolved) = resolved else {
            found.push(format!("link `{target}` leads out of the repository"));
            continue;
        };
        let resolved = resolved.trim_end_matches('/').to_owned();
        if !(resolved.is_empty() || tree.paths.contains(&resolved)) {
            found.push(format!("link `{target}`: {resolved} does not exist"));
            continue;
        }
        let Some(anchor) = anchor else {
            continue;
        };
        if !resolved.to_ascii_lowercase().ends_with(".md") {
            continue;
        }
        let text = tree.texts.get(&resolved).map_or("", String::as_str);
        if !anchors(text).contains(&percent_decoded(anchor).to_lowercase()) {
            found.push(format!(
                "link `{target}`: no heading `#{anchor}` in {resolved}"
            ));
        }
    }
    found
}

/// The comments of Rust source, with all else (code, strings, characters) blanked and every
/// line kept, so that line numbers still match.
fn rust_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        if c == '/' && next == Some('/') {
            while at < chars.len() && chars[at] != '\n' {
                out.push(chars[at]);
                at += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while at < chars.len() {
                let pair = (chars[at], chars.get(at + 1).copied());
                if pair == ('/', Some('*')) {
                    depth += 1;
                    out.push_str("/*");
                    at += 2;
                } else if pair == ('*', Some('/')) {
                    depth -= 1;
                    out.push_str("*/");
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(chars[at]);
                    at += 1;
                }
            }
        } else if let Some(end) = string_end(&chars, at) {
            out.extend(chars[at..end].iter().map(|c| blank(*c)));
            at = end;
        } else if c == '\'' {
            // A character literal (`'x'`, `'\n'`, `'\''`), else a lifetime or label.
            let end = if next == Some('\\') {
                (at + 3..chars.len())
                    .find(|index| chars[*index] == '\'')
                    .map_or(at + 1, |close| close + 1)
            } else if chars.get(at + 2) == Some(&'\'') {
                at + 3
            } else {
                at + 1
            };
            out.extend(chars[at..end].iter().map(|c| blank(*c)));
            at = end;
        } else {
            out.push(blank(c));
            at += 1;
        }
    }
    out
}

/// If a string literal (`"…"`, `b"…"`, `c"…"`, `r#"…"#`, `br"…"`) starts at `at`, the index
/// just past it.
fn string_end(chars: &[char], at: usize) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    if at > 0 && ident(chars[at - 1]) {
        return None;
    }
    let mut open = at;
    if matches!(chars[open], 'b' | 'c') {
        open += 1;
    }
    let raw = chars.get(open) == Some(&'r');
    if raw {
        open += 1;
    }
    let hashes = if raw {
        chars[open..].iter().take_while(|c| **c == '#').count()
    } else {
        0
    };
    open += hashes;
    if chars.get(open) != Some(&'"') {
        return None;
    }
    let mut index = open + 1;
    while index < chars.len() {
        match chars[index] {
            '\\' if !raw => index += 2,
            '"' if chars
                .get(index + 1..index + 1 + hashes)
                .is_some_and(|tail| tail.iter().all(|c| *c == '#')) =>
            {
                return Some(index + 1 + hashes);
            }
            _ => index += 1,
        }
    }
    Some(chars.len())
}

#[test]
fn every_reference_resolves_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let tree = Tree::load(root);
    for expected in ["README.md", "docs/ARCHITECTURE.md", "gateway/src/lib.rs"] {
        assert!(
            tree.scanned.contains(expected),
            "{expected} was not scanned"
        );
    }
    let findings = check(&tree);
    assert!(
        findings.is_empty(),
        "{} reference(s) lead outside the repository:\n{}",
        findings.len(),
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The sample's Markdown, with `@` standing for the section mark.
const SAMPLE_README: &str = r#"# Sample
See issue 12 for the history.
It was fixed long ago (#14).
As DESIGN.md @4.2 says, it holds.
As agreed (see @7), it holds.
The [guide](docs/GONE.md) is gone.
The [real one](docs/REAL.md#no-such-heading) moved.
Per section 3.5 of the old plan.
Fine: [real](docs/REAL.md#real-heading), [site](https://example.org/x#y), [top](#sample).
Fine: PKCS#8, colour #fff or #000, `#[derive(Debug)]`, [dir](docs/), docs/REAL.md @4.2.
Fine: [`code`](docs/REAL.md), [numbers](docs/REAL.md#42-numbers), [again](docs/REAL.md#real-heading-1).

```sh
# not a heading; [not a link](nowhere.md)
```
"#;

const SAMPLE_DOC: &str = r#"# Real heading
## 4.2 Numbers
## Real heading
See [the readme](../README.md#sample), [numbers](#42-numbers) and REAL.md @Numbers.
"#;

const SAMPLE_RUST: &str = r##"//! Crate docs; see issue #3.
#![forbid(unsafe_code)]
#[derive(Debug)]
struct S; // [missing](../../docs/MISSING.md)
const T: &str = "issue 99 (#1) @9 [x](nowhere.md)"; // a string: not prose
const R: &str = r#"issue 98 " (#2) @9"#; // a raw string either
const C: char = '"'; // nor a character: issues are for trackers
fn f<'a>(x: &'a str) -> &'a str { x } // a lifetime, then [`S`](S) and [x](crate::x)
/* a block comment: (#5) */
"##;

#[test]
fn the_checker_finds_each_kind_of_dangling_reference() {
    let readme = SAMPLE_README.replace('@', "\u{a7}");
    let doc = SAMPLE_DOC.replace('@', "\u{a7}");
    let rust = SAMPLE_RUST.replace('@', "\u{a7}");
    let tree = Tree::in_memory(&[
        ("README.md", readme.as_str()),
        ("docs/REAL.md", doc.as_str()),
        ("gateway/src/lib.rs", rust.as_str()),
    ]);
    let findings = check(&tree);
    let found: BTreeSet<(&str, usize, Kind)> = findings
        .iter()
        .map(|finding| (finding.file.as_str(), finding.line, finding.kind))
        .collect();
    let expected = BTreeSet::from([
        ("README.md", 2, Kind::Issue),
        ("README.md", 3, Kind::Issue),
        ("README.md", 4, Kind::Section),
        ("README.md", 5, Kind::Section),
        ("README.md", 6, Kind::Link),
        ("README.md", 7, Kind::Link),
        ("README.md", 8, Kind::Section),
        ("gateway/src/lib.rs", 1, Kind::Issue),
        ("gateway/src/lib.rs", 4, Kind::Link),
        ("gateway/src/lib.rs", 9, Kind::Issue),
    ]);
    let listing = findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(found, expected, "findings:\n{listing}");
    assert_eq!(findings.len(), expected.len(), "findings:\n{listing}");
}
