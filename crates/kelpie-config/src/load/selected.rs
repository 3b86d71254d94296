//! A file's selected apps built, the refused ones sorted into those the file cannot do
//! without and those left out, and the rest put in the order they start.

use super::Document;
use crate::dependencies::Graph;
use crate::readers::{self, Origin};
use kelpie_core::AppSpec;
use std::collections::BTreeMap;

/// The selected apps of a file, built: those that were (and their files' settings as
/// written), and those refused with their reasons.
pub(super) struct Selected {
    pub(super) apps: Vec<AppSpec>,
    pub(super) written: BTreeMap<String, crate::Written>,
    pub(super) refused: Vec<(usize, Vec<String>)>,
    /// The index in the file of each app of `apps`.
    pub(super) kept: Vec<usize>,
}

/// Build each selected app; their warnings and errors go with the file's.
pub(super) fn build_selected(
    doc: &Document,
    selected: &[usize],
    origin: &Origin<'_>,
    warnings: &mut Vec<String>,
    errors: &mut Vec<String>,
) -> Selected {
    let file = doc.file.as_str();
    let mut built_apps = Selected {
        apps: Vec::new(),
        written: BTreeMap::new(),
        refused: Vec::new(),
        kept: Vec::new(),
    };
    for &i in selected {
        match readers::read_app(&doc.apps[i], origin) {
            Ok(built) if !built.refused.is_empty() => {
                warnings.extend(built.warnings.into_iter().map(|w| format!("{file}: {w}")));
                built_apps.refused.push((i, built.refused));
            }
            Ok(built) => {
                warnings.extend(built.warnings.into_iter().map(|w| format!("{file}: {w}")));
                built_apps
                    .written
                    .insert(built.spec.name.clone(), built.written);
                built_apps.apps.push(built.spec);
                built_apps.kept.push(i);
            }
            Err(app_errors) => {
                errors.extend(app_errors.into_iter().map(|e| format!("{file}: {e}")))
            }
        }
    }
    built_apps
}

/// An app another one depends on cannot be left out, and a file with nothing left to start is
/// invalid: the file is refused whole (`errors`). Other refused apps are left out with their
/// reasons, returned.
pub(super) fn sort_refusals(
    refused: Vec<(usize, Vec<String>)>,
    names: &[Option<String>],
    apps: &[AppSpec],
    file: &str,
    errors: &mut Vec<String>,
) -> Vec<String> {
    let mut refused_apps = Vec::new();
    let nothing_left = apps.is_empty();
    for (i, reasons) in refused {
        let needed = nothing_left
            || names[i]
                .as_ref()
                .is_some_and(|name| apps.iter().any(|app| app.depends_on.contains(name)));
        let reasons = reasons.into_iter().map(|r| format!("{file}: {r}"));
        if needed && !nothing_left {
            errors.extend(reasons.map(|r| format!("{r} (and other apps depend on it)")));
        } else if needed {
            errors.extend(reasons);
        } else {
            refused_apps.extend(reasons);
        }
    }
    refused_apps
}

/// The built apps (`apps[k]` is the file's app `selected[k]`) in the order they start: the
/// apps they depend on first.
pub(super) fn in_start_order(
    apps: Vec<AppSpec>,
    selected: &[usize],
    graph: &Graph,
) -> Vec<AppSpec> {
    let mut built: Vec<Option<AppSpec>> = apps.into_iter().map(Some).collect();
    let position_of: std::collections::HashMap<usize, usize> =
        selected.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    graph
        .start_order(selected)
        .into_iter()
        .filter_map(|i| {
            let k = *position_of.get(&i)?;
            built.get_mut(k)?.take()
        })
        .collect()
}
