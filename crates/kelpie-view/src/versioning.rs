//! PM2's "vizion": the git metadata of the repository an app's directory is in, shown as
//! `pm2_env.versioning` by `jlist` and as the "Revision control" section of `describe`, so
//! people and deploy scripts can tell which commit an app runs.
//!
//! Read from the repository's files, without running git (a listing must stay cheap, and the
//! daemon must not depend on a `git` binary): the repository is found by walking up from the
//! app's directory, the branch and revision come from `HEAD` and the refs (loose or packed),
//! the remote's url from `config`. The commit message (PM2's `comment`) needs the object store
//! (zlib, packs and deltas), so it is left out rather than guessed. Read each time the list is
//! asked for, so it always tells the current commit of the directory.

use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// What is read of the repository an app's directory is in (PM2's `versioning` keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versioning {
    /// Always `git`: the only version control Kelpie reads.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The url of the `origin` remote, else of the first remote (a password in it masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The root of the working tree.
    pub repo_path: String,
    /// The branch checked out, or `HEAD` when detached (as `git rev-parse --abbrev-ref HEAD`).
    pub branch: String,
    /// The commit checked out; `None` in a repository without commits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the checked-out ref last moved (the mtime of its file, else of `HEAD`), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    /// The remotes' names, in the order of `config`.
    pub remotes: Vec<String>,
    /// The remote `url` is of: `origin` when there is one, else the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// Symbolic refs followed at most this deep (git's own limit is 5).
const MAX_REF_DEPTH: usize = 5;

/// The metadata of the repository `dir` is in, or `None` when it is in none (or its `HEAD`
/// cannot be read).
pub fn read(dir: &Path) -> Option<Versioning> {
    let repo = find_repository(dir)?;
    let head_path = repo.git_dir.join("HEAD");
    let head = std::fs::read_to_string(&head_path).ok()?;
    let head = head.trim();
    let (branch, found) = match head.strip_prefix("ref:") {
        Some(target) => {
            let target = target.trim();
            let branch = target.strip_prefix("refs/heads/").unwrap_or(target);
            (branch.to_string(), resolve_ref(&repo, target))
        }
        None if is_object_id(head) => (
            "HEAD".to_string(),
            Some(Resolved {
                id: head.to_string(),
                loose_file: Some(head_path.clone()),
            }),
        ),
        None => return None,
    };
    let update_time = found.as_ref().and_then(|r| {
        // A packed ref has no file of its own: `HEAD` moved when it was checked out.
        let file = r.loose_file.as_deref().unwrap_or(&head_path);
        modified_time(file)
    });
    let remotes = std::fs::read_to_string(repo.common_dir.join("config"))
        .map(|text| remotes(&text))
        .unwrap_or_default();
    let chosen = remotes
        .iter()
        .find(|r| r.name == "origin")
        .or_else(|| remotes.first());
    Some(Versioning {
        kind: "git",
        url: chosen.and_then(|r| r.url.as_deref()).map(mask_password),
        repo_path: repo.work_tree.display().to_string(),
        branch,
        revision: found.map(|r| r.id),
        update_time,
        remote: chosen.map(|r| r.name.clone()),
        remotes: remotes.into_iter().map(|r| r.name).collect(),
    })
}

/// Where a repository's files are.
#[derive(Debug, PartialEq, Eq)]
struct Repository {
    /// The directory holding `.git`.
    work_tree: PathBuf,
    /// Where `HEAD` is: `.git`, or what a `.git` file points to (a worktree, a submodule).
    git_dir: PathBuf,
    /// Where the shared refs and `config` are: the main repository's `.git` for a worktree
    /// (its `commondir` file), else `git_dir`.
    common_dir: PathBuf,
}

/// The nearest repository at or above `dir`: a `.git` directory, or a `.git` file saying
/// `gitdir: <path>`. A `.git` that holds no `HEAD` is not one, and the search goes on up, as
/// git's does.
fn find_repository(dir: &Path) -> Option<Repository> {
    for candidate in dir.ancestors() {
        let dot_git = candidate.join(".git");
        let Ok(meta) = std::fs::metadata(&dot_git) else {
            continue;
        };
        let git_dir = if meta.is_dir() {
            dot_git
        } else {
            match std::fs::read_to_string(&dot_git) {
                Ok(text) => match text.trim().strip_prefix("gitdir:") {
                    Some(path) => candidate.join(path.trim()),
                    None => continue,
                },
                Err(_) => continue,
            }
        };
        if !git_dir.join("HEAD").is_file() {
            continue;
        }
        let common_dir = match std::fs::read_to_string(git_dir.join("commondir")) {
            Ok(path) => git_dir.join(path.trim()),
            Err(_) => git_dir.clone(),
        };
        return Some(Repository {
            work_tree: candidate.to_path_buf(),
            git_dir,
            common_dir,
        });
    }
    None
}

/// A ref's commit, and the loose file it was read from (`None`: from `packed-refs`).
struct Resolved {
    id: String,
    loose_file: Option<PathBuf>,
}

/// The commit a ref (`refs/heads/main`) names: its loose file, else its line in
/// `packed-refs`, following symbolic refs. `None` for a branch without commits yet.
fn resolve_ref(repo: &Repository, name: &str) -> Option<Resolved> {
    let mut name = name.to_string();
    for _ in 0..MAX_REF_DEPTH {
        if !is_safe_ref_name(&name) {
            return None;
        }
        let file = repo.common_dir.join(&name);
        if let Ok(text) = std::fs::read_to_string(&file) {
            let text = text.trim();
            if let Some(target) = text.strip_prefix("ref:") {
                name = target.trim().to_string();
                continue;
            }
            return is_object_id(text).then(|| Resolved {
                id: text.to_string(),
                loose_file: Some(file),
            });
        }
        let packed = std::fs::read_to_string(repo.common_dir.join("packed-refs")).ok()?;
        return packed_ref(&packed, &name).map(|id| Resolved {
            id: id.to_string(),
            loose_file: None,
        });
    }
    None
}

/// The commit of `name` in the text of a `packed-refs` file (`<id> <name>` lines; `#` starts
/// the header, `^` the commit a tag above points to).
fn packed_ref<'a>(packed: &'a str, name: &str) -> Option<&'a str> {
    packed
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('^'))
        .filter_map(|line| line.split_once(' '))
        .find(|(id, ref_name)| ref_name.trim() == name && is_object_id(id))
        .map(|(id, _)| id)
}

/// A ref name that stays inside the repository: relative, without `..`.
fn is_safe_ref_name(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// A full object id: 40 hex digits (SHA-1) or 64 (SHA-256).
fn is_object_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file's mtime as RFC 3339 in UTC, to the second (`2026-01-02T03:04:05Z`).
fn modified_time(file: &Path) -> Option<String> {
    let modified = std::fs::metadata(file).ok()?.modified().ok()?;
    let time = jiff::Timestamp::try_from(modified).ok()?;
    let seconds = jiff::Timestamp::from_second(time.as_second()).ok()?;
    Some(seconds.to_string())
}

/// One `[remote "<name>"]` section of a git `config`.
#[derive(Debug, PartialEq, Eq)]
struct Remote {
    name: String,
    /// Its first `url`.
    url: Option<String>,
}

/// The remotes of a git `config` text, in their order, each with its first `url`.
fn remotes(config: &str) -> Vec<Remote> {
    let mut found: Vec<Remote> = Vec::new();
    // Index in `found` of the remote whose section we are in.
    let mut current: Option<usize> = None;
    for line in config.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = remote_section(header).map(|name| {
                match found.iter().position(|r| r.name == name) {
                    Some(at) => at,
                    None => {
                        found.push(Remote { name, url: None });
                        found.len() - 1
                    }
                }
            });
            continue;
        }
        let Some(at) = current else { continue };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("url") && found[at].url.is_none() {
            found[at].url = Some(config_value(value));
        }
    }
    found
}

/// The remote's name when a section header (after its `[`) is `remote "<name>"]`. The section
/// name is case-insensitive, the subsection (the remote's name) is not.
fn remote_section(header: &str) -> Option<String> {
    let header = &header[..header.rfind(']')?];
    let (section, name) = header.split_once(char::is_whitespace)?;
    if !section.eq_ignore_ascii_case("remote") {
        return None;
    }
    let name = name.trim().strip_prefix('"')?.strip_suffix('"')?;
    Some(name.replace("\\\"", "\"").replace("\\\\", "\\"))
}

/// A config value as git reads it: quotes removed, `\` escapes resolved, a `#` or `;` outside
/// quotes starts a comment.
fn config_value(raw: &str) -> String {
    let mut value = String::new();
    let mut quoted = false;
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => {}
            },
            '#' | ';' if !quoted => break,
            _ => value.push(c),
        }
    }
    value.trim_end().to_string()
}

/// A url with the password of its user part masked (`https://me:****@host/x.git`): listings are
/// shown and logged, and a token in a remote's url must not travel with them.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_string();
    };
    format!(
        "{scheme}://{}:{}{}",
        &rest[..colon],
        crate::secrets::MASK,
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelpie_testkit::git;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";
    const OTHER_ID: &str = "89abcdef0123456789abcdef0123456789abcdef";

    /// A directory holding `files` (path, content).
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
        }
        dir
    }

    #[test]
    fn a_branch_from_a_loose_ref_with_the_origin_url() {
        let dir = tree(&[
            ("repo/.git/HEAD", "ref: refs/heads/feature/x\n"),
            ("repo/.git/refs/heads/feature/x", &format!("{ID}\n")),
            (
                "repo/.git/config",
                "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://example.com/up.git\n\
                 [remote \"origin\"]\n\turl = git@example.com:me/x.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
            ),
            ("repo/src/lib/.keep", ""),
        ]);
        let found = read(&dir.path().join("repo/src/lib")).expect("a repository");
        assert_eq!(found.kind, "git");
        assert_eq!(found.branch, "feature/x");
        assert_eq!(found.revision.as_deref(), Some(ID));
        assert_eq!(found.url.as_deref(), Some("git@example.com:me/x.git"));
        assert_eq!(found.remote.as_deref(), Some("origin"));
        assert_eq!(found.remotes, ["upstream", "origin"]);
        assert_eq!(
            found.repo_path,
            dir.path().join("repo").display().to_string()
        );
        let time = found.update_time.expect("an update time");
        let parsed: jiff::Timestamp = time.parse().expect("RFC 3339");
        let age = jiff::Timestamp::now().as_second() - parsed.as_second();
        assert!((0..60).contains(&age), "{time}");
    }

    #[test]
    fn a_packed_ref_and_the_first_remote_without_origin() {
        let dir = tree(&[
            (".git/HEAD", "ref: refs/heads/main\n"),
            (
                ".git/packed-refs",
                &format!(
                    "# pack-refs with: peeled fully-peeled sorted\n{OTHER_ID} refs/heads/mainline\n\
                     {ID} refs/heads/main\n{OTHER_ID} refs/tags/v1\n^{ID}\n"
                ),
            ),
            (
                ".git/config",
                "[remote \"fork\"] ; mine\n\turl = \"https://example.com/fork.git\" # a comment\n",
            ),
        ]);
        let found = read(dir.path()).expect("a repository");
        assert_eq!(found.branch, "main");
        assert_eq!(found.revision.as_deref(), Some(ID));
        assert_eq!(found.url.as_deref(), Some("https://example.com/fork.git"));
        assert_eq!(found.remote.as_deref(), Some("fork"));
        assert!(found.update_time.is_some(), "the time HEAD moved");
    }

    #[test]
    fn detached_head_empty_repository_and_no_remote() {
        let detached = tree(&[(".git/HEAD", &format!("{ID}\n"))]);
        let found = read(detached.path()).expect("a repository");
        assert_eq!(found.branch, "HEAD");
        assert_eq!(found.revision.as_deref(), Some(ID));
        assert_eq!(found.url, None);
        assert!(found.remotes.is_empty());

        let empty = tree(&[
            (".git/HEAD", "ref: refs/heads/master\n"),
            (".git/refs/heads/.keep", ""),
        ]);
        let found = read(empty.path()).expect("a repository");
        assert_eq!(found.branch, "master");
        assert_eq!(found.revision, None);
        assert_eq!(found.update_time, None);
        let json = serde_json::to_value(&found).expect("json");
        assert!(json.get("revision").is_none(), "{json}");
        assert_eq!(json["type"], "git");
    }

    #[test]
    fn a_worktree_reads_head_from_its_own_dir_and_refs_from_the_common_one() {
        let dir = tree(&[
            ("main/.git/HEAD", "ref: refs/heads/main\n"),
            ("main/.git/refs/heads/main", &format!("{OTHER_ID}\n")),
            ("main/.git/refs/heads/topic", &format!("{ID}\n")),
            (
                "main/.git/config",
                "[remote \"origin\"]\nurl = https://example.com/x.git\n",
            ),
            ("main/.git/worktrees/wt/HEAD", "ref: refs/heads/topic\n"),
            ("main/.git/worktrees/wt/commondir", "../..\n"),
            ("wt/.git", "gitdir: ../main/.git/worktrees/wt\n"),
        ]);
        let found = read(&dir.path().join("wt")).expect("a repository");
        assert_eq!(found.branch, "topic");
        assert_eq!(found.revision.as_deref(), Some(ID));
        assert_eq!(found.url.as_deref(), Some("https://example.com/x.git"));
        assert_eq!(found.repo_path, dir.path().join("wt").display().to_string());
    }

    #[test]
    fn no_repository_or_a_dot_git_that_is_not_one() {
        let dir = tree(&[("app/.git/not-a-repo", ""), ("app/.keep", "")]);
        // The temp dir may itself be inside a repository; only a repository at or below the
        // temp dir would be wrong here.
        let found = read(&dir.path().join("app"));
        assert!(
            found
                .as_ref()
                .is_none_or(|v| !Path::new(&v.repo_path).starts_with(dir.path())),
            "{found:?}"
        );
    }

    #[test]
    fn ref_names_that_leave_the_repository_are_not_read() {
        let dir = tree(&[
            ("repo/.git/HEAD", "ref: ../../outside\n"),
            ("outside", &format!("{ID}\n")),
        ]);
        let found = read(&dir.path().join("repo")).expect("a repository");
        assert_eq!(found.revision, None);
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            mask_password("https://me:s3cret@example.com/x.git"),
            "https://me:****@example.com/x.git"
        );
        assert_eq!(
            mask_password("https://token@example.com/x.git"),
            "https://token@example.com/x.git"
        );
        assert_eq!(
            mask_password("git@example.com:me/x.git"),
            "git@example.com:me/x.git"
        );
        assert_eq!(
            mask_password("https://example.com/a@b:c"),
            "https://example.com/a@b:c"
        );
    }

    #[test]
    fn a_real_repository_made_by_git() {
        if std::process::Command::new("git")
            .arg("--version")
            .output()
            .is_err()
        {
            kelpie_testkit::skip("git is not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // git names the top level by its real path.
        let repo = &dir.path().canonicalize().expect("real path");
        git(repo, &["init", "-q"]);
        git(repo, &["checkout", "-q", "-b", "release"]);
        std::fs::write(repo.join("a.txt"), "a").expect("write");
        git(repo, &["add", "a.txt"]);
        git(repo, &["commit", "-q", "-m", "first"]);
        git(
            repo,
            &["remote", "add", "origin", "https://example.com/x.git"],
        );
        std::fs::create_dir(repo.join("sub")).expect("mkdir");

        let found = read(&repo.join("sub")).expect("a repository");
        assert_eq!(found.branch, "release");
        assert_eq!(found.revision, Some(git(repo, &["rev-parse", "HEAD"])));
        assert_eq!(found.url.as_deref(), Some("https://example.com/x.git"));
        assert_eq!(
            found.repo_path,
            git(repo, &["rev-parse", "--show-toplevel"])
        );

        // Once packed (as after a clone or `git gc`), the same commit is found.
        git(repo, &["pack-refs", "--all"]);
        assert!(!repo.join(".git/refs/heads/release").exists());
        let packed = read(repo).expect("a repository");
        assert_eq!(packed.revision, found.revision);

        git(repo, &["checkout", "-q", "--detach"]);
        let detached = read(repo).expect("a repository");
        assert_eq!(detached.branch, "HEAD");
        assert_eq!(detached.revision, found.revision);
    }
}
