//! The supervisor crate's top-level modules depend on each other one way only: no module imports one
//! that imports it back, directly or through others. A cycle means two modules that cannot be
//! understood, tested or changed apart (docs/architecture.md draws the layers).

mod source;

use source::{code_of, rust_files};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a source file belongs to (`supervisor/handlers.rs` → `supervisor`).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The modules `code` names: `crate::x` and the heads of `use crate::{x, y::z}`.
fn modules_named(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let heads: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find("};").unwrap_or(group.len())];
                let mut depth = 0;
                let mut heads = Vec::new();
                let mut start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            heads.push(&group[start..i]);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                heads.push(&group[start..]);
                heads
            }
            None => vec![rest],
        };
        for head in heads {
            let name: String = head
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                named.insert(name);
            }
        }
    }
    named
}

/// A cycle through `start` in `edges`, as the path of modules, if there is one.
fn cycle_from(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in edges.get(&module).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn the_daemons_modules_import_each_other_one_way_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(&src, f))
        .filter(|m| m != "lib")
        .collect();
    assert!(modules.contains("supervisor") && modules.contains("supervisor_channel"));

    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = top_module(&src, file);
        if module == "lib" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).expect("read"));
        let mut named = modules_named(&code, &modules);
        named.remove(&module);
        edges.entry(module).or_default().extend(named);
    }
    // The checker sees what it must: the supervisor starts instances and writes its state.
    // (That the supervisor imports none of its faces, the control and web servers and the
    // daemon's start-up, is no longer read here: they are the `kelpie-daemon` crate, above this
    // one, and the crate graph keeps it.)
    assert!(edges["supervisor"].contains("instance"), "{edges:?}");
    assert!(edges["supervisor"].contains("persist"), "{edges:?}");

    let cycles: Vec<String> = modules
        .iter()
        .filter_map(|m| cycle_from(m, &edges))
        .map(|cycle| cycle.join(" → "))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between the daemon's modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_finds_a_cycle_and_reads_use_groups() {
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let named = modules_named(
        "use crate::{a::X, b::{Y, Z}};\nfn f() { crate::c::g(); }",
        &modules,
    );
    assert_eq!(named, modules);
    let edges: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    assert_eq!(
        cycle_from("a", &edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        code_of("use crate::a; // crate::b\n#[cfg(test)]\nuse crate::c;"),
        "use crate::a; "
    );
    // A test-only variant or function leaves the rest of the file read; a test module ends it.
    let file = "enum E {\n    A,\n    #[cfg(test)]\n    Fake(crate::c::F),\n}\n\
                #[cfg(test)]\nfn only(x: u8, y: crate::c::Y) { crate::c::g(); }\n\
                use crate::b;\n#[cfg(test)]\nmod tests {\n    use crate::a::x;\n}\n";
    let named = modules_named(&code_of(file), &modules);
    assert_eq!(named, BTreeSet::from(["b".to_string()]));
}
