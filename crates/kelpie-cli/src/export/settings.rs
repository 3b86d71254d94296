//! What each container engine does with the settings a file wrote: carried over, or left out for
//! a reason. The rule of each setting is in its row of the settings table
//! (`kelpie_config::settings`, its `export`), where a setting is declared; an exporter names
//! each setting of the file it leaves out in a warning and in a comment beside the object (never
//! dropped silently).

use kelpie_config::settings;
pub(super) use kelpie_config::settings::Engine;
use kelpie_core::AppSpec;

/// The settings `written` holds that `engine` leaves out for `app`, each with why, in the
/// file's order of fields (sorted by name).
pub(super) fn left_out<'a>(
    engine: Engine,
    app: &AppSpec,
    written: impl IntoIterator<Item = &'a &'static str>,
) -> Vec<(&'static str, &'static str)> {
    written
        .into_iter()
        .filter_map(|field| {
            let why = match settings::find(field) {
                Some(setting) => setting.export.left_out(engine, app)?,
                None => settings::NO_RULE,
            };
            Some((*field, why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_settings_depend_on_the_app() {
        let app = AppSpec {
            kill_signal: "SIGTERM".into(),
            instances: 3,
            ..AppSpec::default()
        };
        let out = left_out(
            Engine::Kubernetes,
            &app,
            &["kill_signal", "increment_var", "max_restarts"],
        );
        let fields: Vec<&str> = out.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["increment_var", "max_restarts"]);
        let out = left_out(Engine::Compose, &app, &["kill_signal"]);
        assert!(out.is_empty());
        let out = left_out(Engine::Compose, &app, &["no_such_field"]);
        assert_eq!(out, [("no_such_field", settings::NO_RULE)]);
    }
}
