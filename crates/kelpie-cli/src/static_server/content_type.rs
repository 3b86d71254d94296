//! The `Content-Type` of a file, from its extension.

use std::path::Path;

/// For files whose extension is not known.
const UNKNOWN: &str = "application/octet-stream";

/// The media type of `path`, by its extension (case-insensitive).
pub(super) fn of(path: &Path) -> &'static str {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return UNKNOWN;
    };
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "xml" => "application/xml",
        "txt" | "text" | "log" | "conf" | "ini" => "text/plain; charset=utf-8",
        "md" | "markdown" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "yaml" | "yml" => "text/yaml; charset=utf-8",
        "svg" | "svgz" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "eot" => "application/vnd.ms-fontobject",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" | "oga" => "audio/ogg",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension_any_case() {
        assert_eq!(of(Path::new("/a/index.html")), "text/html; charset=utf-8");
        assert_eq!(of(Path::new("APP.JS")), "text/javascript; charset=utf-8");
        assert_eq!(of(Path::new("data.json")), "application/json");
        assert_eq!(of(Path::new("logo.svg")), "image/svg+xml");
        assert_eq!(of(Path::new("font.woff2")), "font/woff2");
        assert_eq!(of(Path::new("README")), "application/octet-stream");
        assert_eq!(of(Path::new("x.unknown")), "application/octet-stream");
    }
}
