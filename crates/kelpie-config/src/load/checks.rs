//! What a loaded file is checked for once its apps are built, and the warnings it gets: names
//! used twice, dependencies renamed by `append_env_to_name`, cluster apps without a port,
//! unknown and ignored fields.

use super::Document;
use crate::readers::{self, Origin};
use kelpie_core::AppSpec;

/// Two apps that `append_env_to_name` gave the same name (`web` with `--env dev`, and another
/// app already named `web-dev`).
pub(super) fn renamed_duplicates(apps: &[AppSpec], file: &str) -> Vec<String> {
    counted(apps.iter().map(|app| &app.name))
        .filter(|(_, count)| *count > 1)
        .map(|(name, count)| format!(
            "{file}: app name `{name}` is used by {count} apps once `append_env_to_name` adds the `--env` name; names must be unique within a file"
        ))
        .collect()
}

/// Each distinct name with how many times it comes, in the order of their first appearance:
/// one pass, so a file of 10 000 apps is checked as fast as one of 10.
pub(super) fn counted<'a>(
    names: impl Iterator<Item = &'a String>,
) -> impl Iterator<Item = (&'a String, usize)> {
    let mut order = Vec::new();
    let mut counts: std::collections::HashMap<&'a String, usize> = std::collections::HashMap::new();
    for name in names {
        let count = counts.entry(name).or_insert(0);
        if *count == 0 {
            order.push(name);
        }
        *count += 1;
    }
    order.into_iter().map(move |name| (name, counts[name]))
}

/// `depends_on` names the apps of the file as written: follow those that `append_env_to_name`
/// renamed. `apps[k]` is the app at `selected[k]`; `names` are the file's declared names.
pub(super) fn rename_dependencies(
    apps: &mut [AppSpec],
    selected: &[usize],
    names: &[Option<String>],
) {
    let renamed: Vec<(String, String)> = selected
        .iter()
        .zip(apps.iter())
        .filter_map(|(&i, app)| {
            let declared = names.get(i)?.as_ref()?;
            (*declared != app.name).then(|| (declared.clone(), app.name.clone()))
        })
        .collect();
    if renamed.is_empty() {
        return;
    }
    for app in apps.iter_mut() {
        for dependency in &mut app.depends_on {
            if let Some((_, new)) = renamed.iter().find(|(old, _)| old == dependency) {
                *dependency = new.clone();
            }
        }
    }
}

/// One warning per key that is no field at all, naming the file, the app and the key, with the
/// field it most likely misspells. PM2 ignores such keys; so does Kelpie, but says so.
pub(super) fn unknown_warnings(
    doc: &Document,
    selected: &[usize],
    origin: &Origin<'_>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for &i in selected {
        let raw = &doc.apps[i];
        let label = readers::label(raw, origin);
        for (key, suggestion) in &raw.unknown {
            warnings.push(match suggestion {
                Some(known) => format!(
                    "{}: {label}: unknown field `{key}` is ignored (did you mean `{known}`?)",
                    doc.file
                ),
                None => format!("{}: {label}: unknown field `{key}` is ignored", doc.file),
            });
        }
    }
    warnings
}

/// One warning per ignored field, naming every app that sets it.
pub(super) fn unsupported_warnings(
    doc: &Document,
    selected: &[usize],
    origin: &Origin<'_>,
) -> Vec<String> {
    let mut by_field: Vec<(&str, Vec<String>)> = Vec::new();
    for &i in selected {
        let raw = &doc.apps[i];
        let name = readers::app_name(raw, origin).unwrap_or_else(|| format!("#{}", i + 1));
        for key in &raw.unsupported {
            match by_field.iter_mut().find(|(k, _)| k == key) {
                Some((_, apps)) => apps.push(name.clone()),
                None => by_field.push((key, vec![name.clone()])),
            }
        }
    }
    by_field
        .into_iter()
        .map(|(key, apps)| {
            let noun = if apps.len() == 1 { "app" } else { "apps" };
            let list = apps
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let why = crate::fields::ignored_because(&crate::fields::to_snake_case(key))
                .unwrap_or("is not supported yet by kelpie");
            format!("{}: {noun} {list}: `{key}` {why} and is ignored", doc.file)
        })
        .collect()
}
