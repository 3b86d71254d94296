//! Where the apps are in their image (Compose and Kubernetes): the project directory, the one
//! holding the ecosystem file, is the image's working directory (`--workdir`, the `WORKDIR` of
//! a Dockerfile beside the file, else `/app`). Paths of this machine under it are written as
//! paths in the image, programs found in `PATH` by name, so nothing of the exporting machine's
//! layout reaches the output and the same file exports to the same bytes anywhere.

use super::PathLookup;
use kelpie_core::AppSpec;

/// The image's working directory when neither `--workdir` nor a Dockerfile says otherwise (the
/// usual `WORKDIR` of Node, Python and Go images' guides).
pub(crate) const DEFAULT_WORKDIR: &str = "/app";

/// How the apps of a file are placed in an image.
pub(crate) struct ImagePlan<'a> {
    /// The image to run (`--image`); `None` writes a placeholder.
    pub image: Option<&'a str>,
    /// Where the project directory is in the image.
    pub workdir: &'a str,
    /// The project directory on this machine: the ecosystem file's directory.
    pub project_dir: &'a str,
    /// Finds a program in this machine's `PATH`: a script found there is a program of the
    /// image, written by name.
    pub lookup: &'a PathLookup,
}

impl ImagePlan<'_> {
    /// The image of an app whose objects are named `name`, and whether it is a placeholder.
    pub(crate) fn image(&self, name: &str) -> (String, bool) {
        match self.image {
            Some(image) => (image.to_string(), false),
            None => (format!("{PLACEHOLDER_REGISTRY}/{name}:replace-me"), true),
        }
    }

    /// `path` (absolute, of this machine) in the image: under the project directory, the same
    /// place under the working directory; elsewhere unchanged (the file wrote it so).
    fn in_image(&self, path: &str) -> Option<String> {
        let project = self.project_dir.trim_end_matches('/');
        let rest = path.strip_prefix(project)?;
        if rest.is_empty() {
            return Some(self.workdir.to_string());
        }
        let rest = rest.strip_prefix('/')?;
        Some(format!("{}/{rest}", self.workdir.trim_end_matches('/')))
    }

    /// The app's working directory in the image.
    pub(crate) fn cwd(&self, app: &AppSpec, warnings: &mut Vec<String>) -> String {
        self.in_image(&app.cwd).unwrap_or_else(|| {
            warnings.push(outside(app, "cwd", &app.cwd, self.project_dir));
            app.cwd.clone()
        })
    }

    /// The command the container runs: the interpreter (by name, or in the image when it is
    /// the project's own), its arguments, the script in the image and the app's arguments.
    pub(crate) fn command(&self, app: &AppSpec, warnings: &mut Vec<String>) -> Vec<String> {
        let mut argv = app.command_line();
        let script_at = argv.len() - 1 - app.args.len();
        if let Some(interpreter) = app.interpreter.as_deref() {
            argv[0] = self
                .in_image(interpreter)
                .unwrap_or_else(|| program_name(interpreter).to_string());
        }
        if !app.is_shell_command_line() && app.script.starts_with('/') {
            argv[script_at] = self.program(app, warnings);
        }
        argv
    }

    /// The script in the image: under the project directory, its place there; a program of
    /// `PATH` (`npm`), its name; else the path the file wrote, with a warning.
    fn program(&self, app: &AppSpec, warnings: &mut Vec<String>) -> String {
        if let Some(path) = self.in_image(&app.script) {
            return path;
        }
        let name = program_name(&app.script);
        if (self.lookup)(name).as_deref() == Some(app.script.as_str()) {
            return name.to_string();
        }
        warnings.push(outside(app, "script", &app.script, self.project_dir));
        app.script.clone()
    }
}

/// The registry of the placeholder image: `.example` is reserved (RFC 2606), so the
/// placeholder can never pull someone else's image.
const PLACEHOLDER_REGISTRY: &str = "registry.example";

fn outside(app: &AppSpec, field: &str, path: &str, project: &str) -> String {
    format!(
        "app `{}`: field `{field}`: `{path}` is outside the project directory {project}; it is written as is, so the image must have it at that path",
        app.name
    )
}

/// The file name of a program (`/usr/bin/python3` -> `python3`): images have their own paths.
pub(super) fn program_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The working directory the final stage of a Dockerfile sets (its last `WORKDIR`, relative
/// ones joined to the one before), when it sets one Kelpie can read (no variables).
pub(crate) fn dockerfile_workdir(text: &str) -> Option<String> {
    let mut workdir: Option<String> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("FROM") {
            workdir = None;
        } else if instruction.eq_ignore_ascii_case("WORKDIR") {
            let dir = words.collect::<Vec<_>>().join(" ");
            let dir = dir.trim_matches('"');
            if dir.is_empty() || dir.contains('$') {
                return None;
            }
            workdir = Some(match (&workdir, dir.starts_with('/')) {
                (Some(before), false) => format!("{}/{dir}", before.trim_end_matches('/')),
                (None, false) => format!("/{dir}"),
                (_, true) => dir.to_string(),
            });
        }
    }
    workdir
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(lookup: &'a PathLookup) -> ImagePlan<'a> {
        ImagePlan {
            image: None,
            workdir: "/app",
            project_dir: "/home/me/proj",
            lookup,
        }
    }

    #[test]
    fn paths_under_the_project_move_into_the_image() {
        let lookup = |p: &str| (p == "npm").then(|| "/usr/bin/npm".to_string());
        let plan = plan(&lookup);
        let mut warnings = Vec::new();
        let node = AppSpec {
            name: "api".into(),
            script: "/home/me/proj/dist/main.js".into(),
            interpreter: Some("/usr/local/bin/node".into()),
            cwd: "/home/me/proj".into(),
            args: vec!["--port".into(), "3000".into()],
            ..AppSpec::default()
        };
        assert_eq!(
            plan.command(&node, &mut warnings),
            [
                "node",
                "--enable-source-maps",
                "/app/dist/main.js",
                "--port",
                "3000"
            ]
        );
        assert_eq!(plan.cwd(&node, &mut warnings), "/app");
        let npm = AppSpec {
            script: "/usr/bin/npm".into(),
            args: vec!["start".into()],
            cwd: "/home/me/proj/web".into(),
            ..AppSpec::default()
        };
        assert_eq!(plan.command(&npm, &mut warnings), ["npm", "start"]);
        assert_eq!(plan.cwd(&npm, &mut warnings), "/app/web");
        assert!(warnings.is_empty(), "{warnings:?}");
        let elsewhere = AppSpec {
            name: "tool".into(),
            script: "/opt/tool/run".into(),
            cwd: "/home/me/projector".into(),
            ..AppSpec::default()
        };
        assert_eq!(plan.command(&elsewhere, &mut warnings), ["/opt/tool/run"]);
        assert_eq!(plan.cwd(&elsewhere, &mut warnings), "/home/me/projector");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(
            plan.image("api"),
            ("registry.example/api:replace-me".to_string(), true)
        );
    }

    #[test]
    fn the_final_stage_of_a_dockerfile_gives_the_workdir() {
        let text = "FROM node:20 AS build\nWORKDIR /src\nFROM node:20-alpine\nWORKDIR /srv\nworkdir app\nCMD [\"node\"]\n";
        assert_eq!(dockerfile_workdir(text).as_deref(), Some("/srv/app"));
        assert_eq!(dockerfile_workdir("FROM a\nWORKDIR /x\nFROM b\n"), None);
        assert_eq!(dockerfile_workdir("FROM a\nWORKDIR $HOME\n"), None);
    }
}
