//! Which file answers a request's path: the file itself, a directory's `index.html`, the
//! homepage for `/`, and with `spa` the fallbacks of single-page apps. Never a file outside the
//! root: a path with `..` is refused, and a file reached through a link is served only when
//! what it resolves to is inside the root. Never a hidden file (`.env`, `.git/config`,
//! `.htpasswd`): a name starting with `.` is not found, but `/.well-known/` (RFC 8615).

use super::settings::Settings;
use std::path::{Path, PathBuf};

/// What a path leads to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resolved {
    /// This file.
    File(PathBuf),
    /// A directory named without its final `/`: the client is sent there, so the relative
    /// links of its `index.html` work.
    Redirect(String),
    /// Nothing: a 404.
    NotFound,
    /// A path that would leave the root.
    Forbidden,
    /// Not a path (bad percent-encoding, a NUL byte, not UTF-8).
    BadRequest,
}

/// The file for the request path `path` (as sent, percent-encoded, without the query).
pub(super) fn find(site: &Settings, path: &str) -> Resolved {
    let Some(decoded) = percent_decode(path) else {
        return Resolved::BadRequest;
    };
    let segments = match segments(&decoded) {
        Ok(segments) => segments,
        Err(found) => return found,
    };
    if segments.is_empty() {
        return homepage(site).map_or(Resolved::NotFound, Resolved::File);
    }
    let candidate = under(&site.root, &segments);
    match std::fs::metadata(&candidate) {
        Ok(meta) if meta.is_file() => {
            within(site, candidate).map_or(Resolved::NotFound, Resolved::File)
        }
        Ok(meta) if meta.is_dir() && !decoded.ends_with('/') => {
            Resolved::Redirect(location(&segments))
        }
        Ok(meta) if meta.is_dir() => {
            match is_file(candidate.join("index.html")).and_then(|index| within(site, index)) {
                Some(index) => Resolved::File(index),
                None => missing(site, &segments),
            }
        }
        _ => missing(site, &segments),
    }
}

/// An unknown path: a 404, or for a single-page app (as PM2's `--spa`) the file of the same
/// name at the root (`/deep/link/app.js` is `/app.js`), else the homepage.
fn missing(site: &Settings, segments: &[&str]) -> Resolved {
    if !site.spa {
        return Resolved::NotFound;
    }
    let same_name = segments
        .last()
        .and_then(|last| is_file(site.root.join(last)))
        .and_then(|file| within(site, file));
    match same_name.or_else(|| homepage(site)) {
        Some(file) => Resolved::File(file),
        None => Resolved::NotFound,
    }
}

/// The homepage file, if it exists.
fn homepage(site: &Settings) -> Option<PathBuf> {
    let segments = segments(&site.homepage).ok()?;
    if segments.is_empty() {
        return None;
    }
    is_file(under(&site.root, &segments)).and_then(|file| within(site, file))
}

/// The root's `404.html`, sent with 404s when it exists (as in PM2).
pub(super) fn not_found_page(site: &Settings) -> Option<PathBuf> {
    is_file(site.root.join("404.html")).and_then(|page| within(site, page))
}

/// `path` when it is a file that resolves inside the root (links followed) to a name that is
/// not hidden.
fn is_file(path: PathBuf) -> Option<PathBuf> {
    path.is_file().then_some(path)
}

/// `path`, resolved, when it is still inside the root and no name of it under the root is
/// hidden: a link to `/etc/shadow` or to `.env` serves nothing.
fn within(site: &Settings, path: PathBuf) -> Option<PathBuf> {
    let resolved = path.canonicalize().ok()?;
    let inside = resolved.strip_prefix(&site.root).ok()?;
    let hidden = inside
        .components()
        .enumerate()
        .any(|(i, name)| is_hidden(i, &name.as_os_str().to_string_lossy()));
    (!hidden).then_some(resolved)
}

/// A name the server never serves: one starting with `.`, but `.well-known` at the top.
fn is_hidden(index: usize, name: &str) -> bool {
    name.starts_with('.') && !(index == 0 && name == ".well-known")
}

fn under(root: &Path, segments: &[&str]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(segments);
    path
}

/// The path's names, without empty ones and `.`; `..` is refused rather than resolved, so no
/// spelling of a path leaves the root.
fn segments(decoded: &str) -> Result<Vec<&str>, Resolved> {
    if decoded.contains('\0') {
        return Err(Resolved::BadRequest);
    }
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Resolved::Forbidden),
            name => segments.push(name),
        }
    }
    // Hidden names are not found (not forbidden: which ones exist is not said).
    if segments
        .iter()
        .enumerate()
        .any(|(i, name)| is_hidden(i, name))
    {
        return Err(Resolved::NotFound);
    }
    Ok(segments)
}

/// The absolute path of `segments` with a final `/`, percent-encoded: built from the names, not
/// from what the client sent, so it cannot become another site (`//host/`).
fn location(segments: &[&str]) -> String {
    let mut out = String::from("/");
    for segment in segments {
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out.push('/');
    }
    out
}

/// `%XX` sequences decoded; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Site {
        dir: tempfile::TempDir,
        settings: Settings,
    }

    /// index.html, other.html, app.js, 404.html, docs/index.html, empty/, "a b.txt".
    fn site(spa: bool) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("docs")).expect("mkdir");
        std::fs::create_dir_all(root.join("empty")).expect("mkdir");
        for file in [
            "index.html",
            "other.html",
            "app.js",
            "404.html",
            "docs/index.html",
            "a b.txt",
        ] {
            std::fs::write(root.join(file), file).expect("write");
        }
        std::fs::write(dir.path().join("secret"), "secret").expect("write");
        let settings = Settings {
            root,
            host: "127.0.0.1".into(),
            port: 0,
            spa,
            homepage: "/index.html".into(),
            auth: None,
        };
        Site { dir, settings }
    }

    fn file(site: &Site, name: &str) -> Resolved {
        Resolved::File(site.settings.root.join(name))
    }

    #[test]
    fn files_directories_and_the_homepage() {
        let s = site(false);
        let find = |path| find(&s.settings, path);
        assert_eq!(find("/"), file(&s, "index.html"));
        assert_eq!(find("/index.html"), file(&s, "index.html"));
        assert_eq!(find("//other.html"), file(&s, "other.html"));
        assert_eq!(find("/./app.js"), file(&s, "app.js"));
        assert_eq!(find("/a%20b.txt"), file(&s, "a b.txt"));
        assert_eq!(find("/docs/"), file(&s, "docs/index.html"));
        assert_eq!(find("/docs"), Resolved::Redirect("/docs/".into()));
        assert_eq!(find("//docs"), Resolved::Redirect("/docs/".into()));
        assert_eq!(find("/empty/"), Resolved::NotFound);
        assert_eq!(find("/nope.html"), Resolved::NotFound);
        assert_eq!(find("/deep/other.html"), Resolved::NotFound);
    }

    #[test]
    fn another_homepage() {
        let mut s = site(false);
        s.settings.homepage = "/other.html".into();
        assert_eq!(find(&s.settings, "/"), file(&s, "other.html"));
        s.settings.homepage = "/missing.html".into();
        assert_eq!(find(&s.settings, "/"), Resolved::NotFound);
    }

    #[test]
    fn spa_falls_back_to_the_same_name_then_the_homepage() {
        let s = site(true);
        let find = |path| find(&s.settings, path);
        assert_eq!(
            find("/mangez/des/pommes/other.html"),
            file(&s, "other.html")
        );
        assert_eq!(find("/route/app.js"), file(&s, "app.js"));
        assert_eq!(find("/some/client/route"), file(&s, "index.html"));
        assert_eq!(find("/empty/"), file(&s, "index.html"));
        assert_eq!(find("/docs/"), file(&s, "docs/index.html"));
    }

    #[test]
    fn nothing_outside_the_root() {
        let s = site(true);
        assert!(s.dir.path().join("secret").is_file());
        for path in [
            "/../secret",
            "/%2e%2e/secret",
            "/..%2fsecret",
            "/docs/../../secret",
            "/docs/%2E%2E/%2E%2E/secret",
        ] {
            assert_eq!(find(&s.settings, path), Resolved::Forbidden, "{path}");
        }
        assert_eq!(find(&s.settings, "/%00"), Resolved::BadRequest);
        assert_eq!(find(&s.settings, "/%zz"), Resolved::BadRequest);
        assert_eq!(find(&s.settings, "/%ff"), Resolved::BadRequest);
        assert_eq!(find(&s.settings, "/%4"), Resolved::BadRequest);
    }

    #[test]
    fn no_hidden_file_and_no_link_out_of_the_root() {
        let s = site(true);
        let root = &s.settings.root;
        std::fs::write(root.join(".env"), "SECRET=1").expect("write");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::write(root.join(".git/config"), "[core]").expect("write");
        std::fs::create_dir_all(root.join(".well-known")).expect("mkdir");
        std::fs::write(root.join(".well-known/security.txt"), "Contact: x").expect("write");
        std::os::unix::fs::symlink(s.dir.path().join("secret"), root.join("out.txt"))
            .expect("link");
        std::os::unix::fs::symlink(root.join(".env"), root.join("env.txt")).expect("link");
        std::os::unix::fs::symlink(root.join("app.js"), root.join("alias.js")).expect("link");
        let mut plain = site(false);
        plain.settings.root = root.clone();
        for path in [
            "/.env",
            "/.git/config",
            "/%2egit/config",
            "/docs/.env",
            "/out.txt",
            "/env.txt",
            "/x/.well-known/security.txt",
        ] {
            assert_eq!(find(&plain.settings, path), Resolved::NotFound, "{path}");
        }
        // With spa, a hidden or outside file is not a fallback either: the homepage is.
        assert_eq!(find(&s.settings, "/route/out.txt"), file(&s, "index.html"));
        assert_eq!(
            find(&plain.settings, "/.well-known/security.txt"),
            file(&s, ".well-known/security.txt")
        );
        assert_eq!(find(&plain.settings, "/alias.js"), file(&s, "app.js"));
    }
}
