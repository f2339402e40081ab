//! Serving a directory of static files over plain GET (the demo's page and scripts), so a page
//! and its socket share one port. Only regular files strictly inside the directory are served:
//! `..`, absolute segments, backslashes, NUL and symlinks leading outside are refused with 404.

use std::path::{Component, Path, PathBuf};

use crate::config::MAX_STATIC_FILE_BYTES;

/// Maps a request path to a file inside `root`, or `None` when it must not be served.
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
  let decoded = super::http::percent_decode(request_path)?;
  if decoded.contains('\0') || decoded.contains('\\') {
    return None;
  }
  let relative = decoded.trim_start_matches('/');
  let relative = if relative.is_empty() || relative.ends_with('/') {
    format!("{relative}index.html")
  } else {
    relative.to_string()
  };
  let candidate = Path::new(&relative);
  if !candidate.components().all(|c| matches!(c, Component::Normal(_))) {
    return None;
  }
  let root = root.canonicalize().ok()?;
  let full = root.join(candidate).canonicalize().ok()?;
  (full.starts_with(&root) && full.is_file()).then_some(full)
}

pub fn content_type(path: &Path) -> &'static str {
  match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
    "html" => "text/html; charset=utf-8",
    "js" | "mjs" => "text/javascript; charset=utf-8",
    "css" => "text/css; charset=utf-8",
    "json" => "application/json",
    "svg" => "image/svg+xml",
    "png" => "image/png",
    "ico" => "image/x-icon",
    "txt" => "text/plain; charset=utf-8",
    _ => "application/octet-stream",
  }
}

/// Resolves and reads a file off the runtime's worker threads, refusing files over
/// [`MAX_STATIC_FILE_BYTES`]. Returns the file's content type and bytes.
pub async fn load(root: PathBuf, request_path: String) -> Option<(&'static str, Vec<u8>)> {
  tokio::task::spawn_blocking(move || {
    let path = resolve(&root, &request_path)?;
    if std::fs::metadata(&path).ok()?.len() > MAX_STATIC_FILE_BYTES {
      return None;
    }
    let body = std::fs::read(&path).ok()?;
    Some((content_type(&path), body))
  })
  .await
  .ok()
  .flatten()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn serves_files_inside_the_root_only() {
    let root = std::env::temp_dir().join(format!("warren-static-{}", std::process::id()));
    std::fs::create_dir_all(root.join("sub")).expect("temp dir");
    std::fs::write(root.join("index.html"), "hi").expect("write");
    std::fs::write(root.join("sub/a.js"), "x").expect("write");
    assert!(resolve(&root, "/").is_some_and(|p| p.ends_with("index.html")));
    assert!(resolve(&root, "/sub/a.js").is_some());
    assert!(resolve(&root, "/sub/%61.js").is_some());
    for bad in [
      "/../etc/passwd",
      "/sub/../../x",
      "/%2e%2e/x",
      "/sub/..%2f..%2fx",
      "//etc/passwd",
      "/a\\b",
      "/missing",
    ] {
      assert_eq!(resolve(&root, bad), None, "{bad}");
    }
    let _ = std::fs::remove_dir_all(&root);
  }
}
