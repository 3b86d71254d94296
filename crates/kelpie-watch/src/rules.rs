//! What an app never watches: `node_modules` and `.git`, the directories the project's
//! `.gitignore` names (build output: `target/`, `dist/`, `.next/`), the `never` paths with their
//! rotated log files, and the `ignore` globs (the rules are described in the module above).

use super::{WatchError, WatchSettings};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// `path` without `.` components or a trailing `/`, so joined names and comparisons are clean.
pub(super) fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `path` without symbolic links, or as it is when that cannot be known.
pub(super) fn real_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// What both watchers make of an app's settings: its rules, its roots (lexically normalized),
/// its quiet period and its longest hold (see "Bursts").
pub(super) struct Prepared {
    pub(super) rules: Rules,
    pub(super) roots: Vec<PathBuf>,
    pub(super) delay: std::time::Duration,
    pub(super) hold: std::time::Duration,
}

impl Prepared {
    pub(super) fn new(settings: &WatchSettings) -> Result<Prepared, WatchError> {
        if settings.paths.is_empty() {
            return Err(WatchError::NoPath);
        }
        let rules = Rules::new(settings)?;
        let roots = settings
            .paths
            .iter()
            .map(|path| normalize(&settings.cwd.join(path)))
            .collect();
        let delay = settings.delay.min(super::MAX_DELAY);
        let hold = delay
            .saturating_mul(super::HOLD_FACTOR)
            .min(super::MAX_HOLD)
            .max(delay);
        Ok(Prepared {
            rules,
            roots,
            delay,
            hold,
        })
    }
}

/// What an app never watches.
pub(super) struct Rules {
    pub(super) cwd: PathBuf,
    pub(super) cwd_real: PathBuf,
    /// Globs without `/`: any path component.
    pub(super) names: GlobSet,
    /// Globs with `/`: the path relative to `cwd`.
    pub(super) relative: GlobSet,
    /// Globs starting with `/`: the absolute path.
    pub(super) absolute: GlobSet,
    /// `never` paths, as given and resolved.
    pub(super) never: Vec<PathBuf>,
    /// Rotated files of never-watched log files: (directory, name prefix `<stem>__`).
    pub(super) rotated: Vec<(PathBuf, OsString)>,
}

impl Rules {
    pub(super) fn new(settings: &WatchSettings) -> Result<Rules, WatchError> {
        let mut names = GlobSetBuilder::new();
        let mut relative = GlobSetBuilder::new();
        let mut absolute = GlobSetBuilder::new();
        let ignored = gitignored_directories(&settings.cwd);
        for written in settings.ignore.iter().chain(&ignored) {
            let pattern = written.trim();
            let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
            // `tmp/` (a directory, in gitignore's words) is the component `tmp`.
            let pattern = pattern.trim_end_matches('/');
            if pattern.is_empty() {
                continue;
            }
            let set = if pattern.starts_with('/') {
                &mut absolute
            } else if pattern.contains('/') {
                &mut relative
            } else {
                &mut names
            };
            let mut add = |pattern: &str| -> Result<(), WatchError> {
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| WatchError::Glob {
                        written: written.clone(),
                        cause: source,
                    })?;
                set.add(glob);
                Ok(())
            };
            add(pattern)?;
            // `dir/**` ignores the directory itself too: no watch is spent on it.
            if let Some(dir) = pattern.strip_suffix("/**") {
                if !dir.is_empty() {
                    add(dir)?;
                }
            }
        }
        let build = |set: GlobSetBuilder| set.build().map_err(WatchError::Globs);
        let mut never = Vec::new();
        let mut rotated = Vec::new();
        for path in &settings.never {
            let path = normalize(&settings.cwd.join(path));
            let real = match (path.parent(), path.file_name()) {
                // The file may not exist yet: resolve its directory.
                (Some(parent), Some(name)) if !path.exists() => real_path(parent).join(name),
                _ => real_path(&path),
            };
            if !path.is_dir() {
                if let Some(name) = path.file_name() {
                    let name = name.to_string_lossy();
                    let stem = name.strip_suffix(".log").unwrap_or(&name);
                    let prefix = OsString::from(format!("{stem}__"));
                    for dir in [path.parent(), real.parent()].into_iter().flatten() {
                        rotated.push((dir.to_path_buf(), prefix.clone()));
                    }
                }
            }
            if real != path {
                never.push(real);
            }
            never.push(path);
        }
        Ok(Rules {
            cwd: normalize(&settings.cwd),
            cwd_real: real_path(&settings.cwd),
            names: build(names)?,
            relative: build(relative)?,
            absolute: build(absolute)?,
            never,
            rotated,
        })
    }

    /// Is the entry at `path` (`real` once resolved) ignored? Its directory was not, so only its
    /// own name is checked against the component rules.
    pub(super) fn ignores(&self, path: &Path, real: &Path) -> bool {
        if let Some(name) = path.file_name() {
            if name == "node_modules" || name == ".git" || self.names.is_match(name) {
                return true;
            }
        }
        if self.is_never(path, real) {
            return true;
        }
        if !self.relative.is_empty() {
            for (path, base) in [(path, &self.cwd), (real, &self.cwd_real)] {
                if path
                    .strip_prefix(base)
                    .is_ok_and(|rel| self.relative.is_match(rel))
                {
                    return true;
                }
            }
        }
        !self.absolute.is_empty() && (self.absolute.is_match(path) || self.absolute.is_match(real))
    }

    /// Is the directory at `path` (`real` once resolved) above a `never` path?
    pub(super) fn leads_to_never(&self, path: &Path, real: &Path) -> bool {
        self.never.iter().any(|never| {
            never != path && never != real && (never.starts_with(path) || never.starts_with(real))
        })
    }

    pub(super) fn is_never(&self, path: &Path, real: &Path) -> bool {
        if self
            .never
            .iter()
            .any(|never| path.starts_with(never) || real.starts_with(never))
        {
            return true;
        }
        let Some(name) = path.file_name() else {
            return false;
        };
        self.rotated.iter().any(|(dir, prefix)| {
            (path.parent() == Some(dir) || real.parent() == Some(dir))
                && name
                    .as_encoded_bytes()
                    .starts_with(prefix.as_encoded_bytes())
        })
    }
}

/// The directories the `.gitignore` in `cwd` names, as ignore globs: the project's build output
/// and caches (`/target`, `dist/`, `.next/`, `__pycache__/`), which nobody edits and which a
/// build rewrites by the thousand files. Only directories: a pattern that ends with `/`, or
/// names one that exists when the watch is set up; a file it names (`.env`, `*.log`) is still
/// watched, as without a `.gitignore`. Negations (`!keep/`) and comments are left out.
fn gitignored_directories(cwd: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(cwd.join(".gitignore")) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| {
            let directory = line.ends_with('/');
            let pattern = line.trim_end_matches('/');
            let anchored =
                pattern.starts_with('/') || pattern.trim_start_matches('/').contains('/');
            let pattern = pattern.trim_start_matches('/');
            if pattern.is_empty() {
                return None;
            }
            let exists = !pattern.contains(['*', '?', '[']) && cwd.join(pattern).is_dir();
            if !directory && !exists {
                return None;
            }
            // Anchored: relative to the project (`dir/**` ignores the directory itself too);
            // a bare name: a directory of that name anywhere below it, as git reads it.
            Some(if anchored {
                format!("{pattern}/**")
            } else {
                pattern.to_string()
            })
        })
        .collect()
}
