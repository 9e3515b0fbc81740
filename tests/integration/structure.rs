//! The module structure: data flows one way, so no two top-level modules of the library import
//! each other, directly or through others. Read from the `crate::<module>` paths in each
//! module's files, doc links included (tests left out), the way a newcomer reads them. And no
//! file is so long that a newcomer cannot hold it: at most [`MAX_LINES`] before its tests.

use std::collections::{BTreeMap, BTreeSet};

/// Cycles still to be taken apart, each as the pair of modules that close it. The test fails
/// when a new cycle appears, and when one of these is gone (so the list only shrinks).
const KNOWN_CYCLES: &[(&str, &str)] = &[];

/// The most lines a source file has before its test module.
const MAX_LINES: usize = 800;

/// A file's code without its test module: everything before `#[cfg(test)]` followed by
/// `mod` (a test-only import or function earlier in the file is code like any other).
fn before_tests(text: &str) -> &str {
    let mut at = 0;
    while let Some(i) = text[at..].find("#[cfg(test)]") {
        let start = at + i;
        let rest = text[start + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") {
            return &text[..start];
        }
        at = start + 1;
    }
    text
}

/// Every `.rs` file under `src/`, with its path relative to `src/`.
fn sources() -> Vec<(std::path::PathBuf, String)> {
    let src = crate::harness::root().join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                let text = std::fs::read_to_string(&path).expect("readable");
                let rel = path.strip_prefix(&src).expect("under src").to_owned();
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_file_is_longer_than_a_reader_holds() {
    let long: Vec<String> = sources()
        .iter()
        // A file of tests only (config/tests.rs) is all tests.
        .filter(|(rel, _)| !rel.ends_with("tests.rs"))
        .map(|(rel, text)| (rel, before_tests(text).lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(rel, n)| format!("{}: {n} lines before its tests", rel.display()))
        .collect();
    assert!(long.is_empty(), "split by concern: {long:#?}");
}

#[test]
fn the_cut_is_at_the_test_module() {
    let text = "a\n#[cfg(test)]\nuse x;\nb\n#[cfg(test)]\nmod tests {}\n";
    assert_eq!(before_tests(text), "a\n#[cfg(test)]\nuse x;\nb\n");
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // The binary and its own modules (src/cli/) are not the library's.
        if module == "main" || module == "lib" || module == "cli" {
            continue;
        }
        // Not the tests. Doc links count: a module's docs that point at a later module
        // make the reader follow the flow backwards too.
        let code = before_tests(&text);
        let uses = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

/// Whether `to` is reachable from `from`.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(m) = todo.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn modules_do_not_import_each_other_in_a_cycle() {
    let graph = module_graph();
    assert!(graph.len() >= 10, "modules found: {graph:?}");
    let mut cycles = BTreeSet::new();
    for (a, uses) in &graph {
        for b in uses {
            if reaches(&graph, b, a) {
                let pair = if a < b {
                    (a.clone(), b.clone())
                } else {
                    (b.clone(), a.clone())
                };
                cycles.insert(pair);
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_CYCLES
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = cycles.difference(&known).collect();
    assert!(
        new.is_empty(),
        "new import cycles: {new:?}\nthe graph: {graph:#?}"
    );
    let gone: Vec<_> = known.difference(&cycles).collect();
    assert!(
        gone.is_empty(),
        "cycles gone, take them off KNOWN_CYCLES: {gone:?}"
    );
}
