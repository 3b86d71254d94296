//! The settings table against everything that repeats it: each test fails, naming the row or
//! the line, when one of them drifts from the table. The generated parts (the reference's field
//! table, the Node package's typed fields) are rewritten from the table by
//! `KELPIE_UPDATE_GENERATED=1 cargo test -p kelpie-config --lib settings`.

use super::*;
use crate::ScriptOptions;
use clap::{Args, Command, FromArgMatches};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A file of the repository.
fn repository_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// `lines` (whole lines, each ending in a newline) of `path` are what the table generates:
/// they are rewritten under `KELPIE_UPDATE_GENERATED=1`, else a difference fails, showing the
/// first line that differs.
fn check_generated(path: &str, first: usize, end: usize, generated: &str, what: &str) {
    let file = repository_file(path);
    let text = std::fs::read_to_string(&file).expect("read the file");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let written: String = lines[first..end].concat();
    if written == generated {
        return;
    }
    if std::env::var_os("KELPIE_UPDATE_GENERATED").is_some() {
        let updated = [
            lines[..first].concat(),
            generated.into(),
            lines[end..].concat(),
        ]
        .concat();
        std::fs::write(&file, updated).expect("write the file");
        return;
    }
    let differs = written
        .lines()
        .zip(generated.lines())
        .position(|(w, g)| w != g)
        .unwrap_or(written.lines().count().min(generated.lines().count()));
    panic!(
        "{path}: {what} is not what the settings table says (line {} of it differs:\n  written:   {:?}\n  generated: {:?}); \
         change the row in crates/kelpie-config/src/settings/, then run \
         `KELPIE_UPDATE_GENERATED=1 cargo test -p kelpie-config --lib settings`",
        differs + 1,
        written.lines().nth(differs),
        generated.lines().nth(differs),
    );
}

#[test]
fn every_row_says_its_name_value_default_doc_and_export_once() {
    let mut names = BTreeSet::new();
    let mut flags = BTreeSet::new();
    for s in all() {
        assert!(names.insert(s.name), "`{}` has two rows", s.name);
        assert!(
            !s.value.is_empty() && !s.default.is_empty() && !s.doc.is_empty(),
            "`{}`: a row says what a file writes, its default and what it does",
            s.name
        );
        for flag in s.flags {
            assert!(flags.insert(*flag), "--{flag} is in two rows");
        }
        if s.family {
            assert!(s.flags.is_empty() && s.aliases.is_empty(), "{}", s.name);
            continue;
        }
        assert!(
            s.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "`{}`: a field is named in snake_case",
            s.name
        );
        assert!(
            !matches!(s.export, Export::Undecided),
            "`{}`: the row does not say what `kelpie export` does with it",
            s.name
        );
        assert!(
            s.restart == OnRestart::NotTaken || !s.flags.is_empty(),
            "`{}`: restart takes no flag it does not have",
            s.name
        );
    }
    for (alias, field) in aliases() {
        assert!(
            !names.contains(alias),
            "`{alias}` is a field and an alias of `{field}`"
        );
        let fields = aliases().filter(|(a, _)| *a == alias).count();
        assert_eq!(fields, 1, "`{alias}` is an alias of {fields} fields");
        assert!(
            !NOT_SUPPORTED.contains(&alias),
            "`{alias}` is an alias and a PM2 field not supported"
        );
    }
    for field in NOT_SUPPORTED {
        assert!(!names.contains(field), "`{field}` is supported and not");
    }
}

#[test]
fn the_flags_of_kelpie_start_are_the_rows_flags_and_each_sets_its_rows_field() {
    let command = ScriptOptions::augment_args(Command::new("start"));
    let mut seen = BTreeSet::new();
    for arg in command.get_arguments() {
        // The script's arguments (after `--`) and `env` (set by `kelpie serve`) have no flag.
        let Some(long) = arg.get_long() else { continue };
        let row = fields()
            .find(|s| s.flags.contains(&long))
            .unwrap_or_else(|| panic!("--{long} is a flag of `kelpie start` that no row names"));
        let spellings = std::iter::once(long).chain(arg.get_visible_aliases().unwrap_or_default());
        for spelling in spellings {
            assert!(
                row.flags.contains(&spelling),
                "--{spelling} sets `{}`, whose row does not name it",
                row.name
            );
            seen.insert(spelling);
        }
        let mut words = vec!["start".to_string()];
        // The timing flags of a health check are given with a probe (else they set nothing
        // and are refused: `HealthFlags::missing_probe`).
        if row.name == "health_check"
            && !["health-http", "health-tcp", "health-exec"].contains(&long)
        {
            words.push("--health-tcp=1".into());
        }
        words.push(if arg.get_action().takes_values() {
            format!("--{long}=1")
        } else {
            format!("--{long}")
        });
        let matches = command
            .clone()
            .try_get_matches_from(&words)
            .unwrap_or_else(|e| panic!("{words:?}: {e}"));
        let options = ScriptOptions::from_arg_matches(&matches).expect("the options");
        let set: Vec<String> = options.fields().keys().cloned().collect();
        assert_eq!(set, [row.name], "--{long} sets the field of its row");
    }
    for s in fields() {
        for flag in s.flags {
            assert!(
                seen.contains(flag),
                "`{}`'s row names --{flag}, which `kelpie start` does not have",
                s.name
            );
        }
    }
}

#[test]
fn every_field_of_the_start_flags_has_its_row() {
    for name in crate::field_names::of(&ScriptOptions::default()) {
        assert!(
            find(name).is_some(),
            "ScriptOptions writes `{name}`, which no row declares"
        );
    }
}

#[test]
fn the_configuration_reference_field_table_is_the_settings_table() {
    let path = "docs/configuration.md";
    let text = std::fs::read_to_string(repository_file(path)).expect("read the reference");
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("| Field (aliases) |"))
        .expect("the field table of docs/configuration.md");
    let end = first
        + lines[first..]
            .iter()
            .take_while(|l| l.starts_with('|'))
            .count();
    check_generated(path, first, end, &reference_table(), "the field table");
}

#[test]
fn the_node_package_types_the_fields_the_table_types() {
    let path = "npm/kelpie/lib/index.d.ts";
    let text = std::fs::read_to_string(repository_file(path)).expect("read index.d.ts");
    let lines: Vec<&str> = text.lines().collect();
    let marker = |words: &str| {
        lines
            .iter()
            .position(|l| l.trim_start().starts_with(words))
            .unwrap_or_else(|| panic!("{path}: no line starting with {words:?}"))
    };
    let first = marker("// Begin: the settings table's fields") + 1;
    let end = marker("// End: the settings table's fields");
    assert!(first <= end, "{path}: the markers are in order");
    check_generated(
        path,
        first,
        end,
        &typescript_fields(),
        "StartOptions' typed fields",
    );
}

/// The reference's tables of `kelpie start` flags (`| `--flag <value>` | `field` ... |`) name
/// each flag with the field whose row names it.
#[test]
fn the_flag_tables_of_the_reference_name_each_flag_with_its_field() {
    let text = std::fs::read_to_string(repository_file("docs/configuration.md"))
        .expect("read the reference");
    let mut rows = 0;
    for line in text.lines().filter(|l| l.starts_with("| `-")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let field = cells[1]
            .trim_start_matches('`')
            .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .next()
            .unwrap_or_default();
        let row = find(field).unwrap_or_else(|| panic!("{line}: `{field}` is not a field"));
        for flag in cells[0].split("--").skip(1) {
            let flag = flag
                .split(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .next()
                .unwrap_or_default();
            assert!(
                row.flags.contains(&flag),
                "{line}: --{flag} does not set `{field}`"
            );
        }
        rows += 1;
    }
    assert!(rows > 40, "the flag tables were found ({rows} rows)");
}

/// "PM2 fields not supported yet" in the reference lists [`NOT_SUPPORTED`], no more, no less.
#[test]
fn the_reference_lists_the_pm2_fields_not_supported() {
    let text = std::fs::read_to_string(repository_file("docs/configuration.md"))
        .expect("read the reference");
    let section = text
        .split("### PM2 fields not supported yet")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("the section");
    // The list is the paragraph after the first one.
    let list = section.trim().split("\n\n").nth(1).expect("the list");
    let listed: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(crate::fields::to_snake_case)
        .collect();
    let declared: BTreeSet<String> = NOT_SUPPORTED.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        listed, declared,
        "docs/configuration.md's \"PM2 fields not supported yet\" (left) and settings::NOT_SUPPORTED (right)"
    );
}

#[test]
fn each_engine_carries_or_explains_a_setting_by_its_row() {
    let app = AppSpec {
        kill_signal: "SIGTERM".into(),
        instances: 3,
        ..AppSpec::default()
    };
    let why = |field: &str, engine| find(field).and_then(|s| s.export.left_out(engine, &app));
    assert_eq!(why("kill_signal", Engine::Kubernetes), None);
    assert_eq!(why("name", Engine::Compose), None);
    assert!(why("increment_var", Engine::Kubernetes).is_some_and(|w| w.contains("replicas")));
    assert!(why("max_restarts", Engine::Compose).is_some_and(|w| w.contains("backoff")));
    assert!(why("wait_ready", Engine::Compose).is_some());
    assert_eq!(why("wait_ready", Engine::Kubernetes), None);
    assert_eq!(
        Export::Undecided.left_out(Engine::Compose, &app),
        Some(NO_RULE)
    );
}

#[test]
fn the_start_only_flags_are_the_kept_rows() {
    let kept: Vec<&str> = kept_on_restart().collect();
    assert_eq!(
        kept,
        [
            "disable-source-map-support",
            "source-map-support",
            "filter-env",
            "no-vizion",
            "no-pmx"
        ]
    );
}
