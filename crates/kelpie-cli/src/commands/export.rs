//! `export`: load an ecosystem file as `start` does (no daemon), hand the specs to the pure
//! exporters, then print the result or write it into a directory.

use super::load_context;
use crate::cli::ExportArgs;
use crate::export::{self, Context, ImagePlan};
use crate::render;
use anyhow::{bail, Context as _, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(super) fn export(args: ExportArgs) -> Result<ExitCode> {
    if !kelpie_config::is_ecosystem_file(&args.file) {
        bail!(
            "`{}` is not an ecosystem file (.json, .yaml, .yml, .toml, or ecosystem*.js/.cjs/.mjs / *.config.js)",
            args.file
        );
    }
    let ctx = load_context(args.profile.clone(), args.only.clone())?;
    let loaded = kelpie_config::load_file(Path::new(&args.file), &ctx)?;
    render::print_warnings(&loaded.warnings);
    let project_dir = project_dir(&loaded.apps, &args.file)?;
    let workdir = match &args.workdir {
        Some(dir) if dir.starts_with('/') => dir.clone(),
        Some(dir) => bail!("--workdir `{dir}`: an absolute path in the image is expected"),
        None => std::fs::read_to_string(project_dir.join("Dockerfile"))
            .ok()
            .and_then(|text| export::dockerfile_workdir(&text))
            .unwrap_or_else(|| export::DEFAULT_WORKDIR.to_string()),
    };
    let project_dir = project_dir.display().to_string();
    let lookup = |program: &str| find_in_path(program);
    // The binary that wrote the units runs them: it knows the flags it wrote.
    let kelpie = std::env::current_exe()
        .context("cannot find the kelpie binary's path")?
        .display()
        .to_string();
    // The units' secrets go beside them when they are written to a directory (named there by
    // its absolute path), else where a system keeps its own configuration.
    let env_dir = match &args.output {
        Some(dir) => std::path::absolute(dir)
            .unwrap_or_else(|_| dir.clone())
            .display()
            .to_string(),
        None => "/etc/kelpie".to_string(),
    };
    let result = export::export(
        args.target,
        &loaded.apps,
        &Context {
            lookup: &lookup,
            written: &loaded.written,
            image: ImagePlan {
                image: args.image.as_deref(),
                workdir: &workdir,
                project_dir: &project_dir,
                lookup: &lookup,
            },
            secret_ref: args.secret_ref.as_deref(),
            kelpie: &kelpie,
            env_dir: &env_dir,
        },
    )
    .with_context(|| args.file.clone())?;
    for warning in &result.warnings {
        eprintln!("kelpie: warning: {warning}");
    }
    match &args.output {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(export::as_stream(args.target, &result).as_bytes())?;
            stdout.flush()?;
        }
        Some(dir) => {
            let written = write_files(dir, &result.files, &result.private, args.force)?;
            for path in written {
                eprintln!("kelpie: wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Write every file into `dir`, each atomically (a temporary file, synced, then moved into
/// place). Without `force`, nothing is written when any file exists already, and the move is a
/// hard link, which fails rather than replacing a file created in the meantime.
fn write_files(
    dir: &Path,
    files: &[(String, String)],
    private: &std::collections::BTreeSet<String>,
    force: bool,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if !force {
        let existing: Vec<String> = files
            .iter()
            .map(|(name, _)| dir.join(name))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist{} (nothing written; --force replaces)",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            );
        }
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        let temp = dir.join(format!(".{name}.kelpie-{}.tmp", std::process::id()));
        // One left by a run that was killed would stop the exclusive creation below.
        let _ = std::fs::remove_file(&temp);
        // A file of secrets is its owner's alone; the others as the umask says.
        let mode = if private.contains(name) { 0o600 } else { 0o666 };
        let result = write_one(&temp, &path, text, mode, force);
        // The temporary file is gone after a successful move; after a failure it must not stay.
        let _ = std::fs::remove_file(&temp);
        result.with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn write_one(temp: &Path, path: &Path, text: &str, mode: u32, force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if force {
        std::fs::rename(temp, path)?;
    } else {
        std::fs::hard_link(temp, path)?;
    }
    Ok(())
}

/// The absolute path of `program` in this shell's `PATH`, for `ExecStart=`.
fn find_in_path(program: &str) -> Option<String> {
    if program.contains('/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .map(|p| p.display().to_string())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directory of the ecosystem file, as the loader resolved the apps' paths against it:
/// the project directory, which is the image's working directory.
fn project_dir(apps: &[kelpie_core::AppSpec], file: &str) -> Result<PathBuf> {
    let path = match apps.iter().find_map(|a| a.source_file.as_deref()) {
        Some(source) => PathBuf::from(source),
        None => std::fs::canonicalize(file).with_context(|| format!("cannot read {file}"))?,
    };
    Ok(path.parent().map(Path::to_path_buf).unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_files_are_kept_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = vec![("a.service".to_string(), "one\n".to_string())];
        write_files(dir.path(), &files, &Default::default(), false).expect("first write");
        let again = vec![("a.service".to_string(), "two\n".to_string())];
        let err = write_files(dir.path(), &again, &Default::default(), false).expect_err("exists");
        assert!(
            err.to_string().contains("a.service already exists"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.service")).expect("read"),
            "one\n"
        );
        write_files(dir.path(), &again, &Default::default(), true).expect("forced");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.service")).expect("read"),
            "two\n"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
