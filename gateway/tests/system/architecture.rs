//! The module map holds (docs/ARCHITECTURE.md): no two top-level modules of `gateway/src`
//! use each other, directly or round a circle, and neither do two files within one. A file's
//! use of its own ancestors or descendants (a module and its parts) does not count; test
//! code does not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`services::threats`) → the source file's text, test code cut off.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&root).ok()?.with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let test_only = parts
                .iter()
                .any(|part| part == "tests" || part.ends_with("_tests") || part == "test_support");
            if test_only {
                return None;
            }
            let text = std::fs::read_to_string(&file).ok()?;
            let code = text.split("#[cfg(test)]\nmod tests").next()?.to_owned();
            Some((parts.join("::"), code))
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The paths a file names: `crate::a::b`, `super::c`, and each item of `use super::{d, e}`.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    for (start, _) in code.char_indices() {
        let rest = &code[start..];
        let at_word =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !at_word || !(rest.starts_with("crate::") || rest.starts_with("super::")) {
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<String> = path
            .split("::")
            .filter(|segment| !segment.is_empty())
            .map(str::to_owned)
            .collect();
        if path.ends_with("::") && rest[path.len()..].starts_with('{') {
            let group = &rest[path.len() + 1..rest.find('}').unwrap_or(rest.len())];
            for item in group.split(',') {
                let item = item.trim().split([' ', ':']).next().unwrap_or("");
                if !item.is_empty() {
                    let mut nested = segments.clone();
                    nested.push(item.to_owned());
                    paths.push(nested);
                }
            }
        }
        paths.push(segments);
    }
    paths
}

/// The module a path names, from module `from`: the longest known prefix.
fn resolve(from: &str, path: &[String], known: &BTreeMap<String, String>) -> Option<String> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    if rest.first().is_some_and(|first| first == "crate") {
        rest = &rest[1..];
    } else {
        base = from
            .split("::")
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        while rest.first().is_some_and(|first| first == "super") {
            base.pop();
            rest = &rest[1..];
        }
    }
    let full: Vec<String> = base.into_iter().chain(rest.iter().cloned()).collect();
    (1..=full.len())
        .rev()
        .map(|length| full[..length].join("::"))
        .find(|candidate| known.contains_key(candidate))
}

fn related(a: &str, b: &str) -> bool {
    a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .filter(|(module, _)| !module.is_empty())
        .map(|(module, code)| {
            let targets = named_paths(code)
                .iter()
                .filter_map(|path| resolve(module, path, &known))
                .filter(|target| !target.is_empty() && target != module && !related(module, target))
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

/// A circle of uses, if there is one, as the modules round it.
fn circle(uses: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|on| on == module) {
            let mut found = path[at..].to_vec();
            found.push(module.to_owned());
            return Some(found);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in uses.get(module).into_iter().flatten() {
            if let Some(found) = visit(next, uses, done, path) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|module| visit(module, uses, &mut done, &mut Vec::new()))
}

/// The same uses between top-level modules (`services::threats` is `services`).
fn top_level(uses: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let top = |module: &str| module.split("::").next().unwrap_or(module).to_owned();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, targets) in uses {
        let from = top(module);
        let entry = modules.entry(from.clone()).or_default();
        entry.extend(
            targets
                .iter()
                .map(|target| top(target))
                .filter(|to| *to != from),
        );
    }
    modules
}

#[test]
fn no_import_circles_between_modules_or_files() {
    let uses = uses();
    assert!(uses.len() > 50, "the walk found the gateway's files");
    assert!(
        uses["services::standing"].contains("charter"),
        "the walk sees uses: {:?}",
        uses["services::standing"]
    );
    if let Some(found) = circle(&top_level(&uses)) {
        panic!("an import circle between modules: {}", found.join(" -> "));
    }
    if let Some(found) = circle(&uses) {
        panic!("an import circle between files: {}", found.join(" -> "));
    }
}

#[test]
fn the_walk_finds_a_circle_when_there_is_one() {
    let mut uses = uses();
    uses.entry("charter".into())
        .or_default()
        .insert("services".into());
    let found = circle(&uses).expect("a circle through charter and services");
    assert!(found.contains(&"charter".to_owned()));
}
