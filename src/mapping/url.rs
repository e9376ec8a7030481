//! `details.url_private` → ECS `url.*`, as Elasticsearch's `uri_parts` processor splits it.
//!
//! Differences from `uri_parts`, on purpose: user info (`url.username`, `url.password`) is not
//! copied out (a private file link must not spread credentials into more indexed fields), and
//! `url.extension` comes from the last path segment only (`uri_parts` takes text after the last
//! dot anywhere in the path, so `/a.b/c` would give `b/c`). The port is set only when the URL
//! names a non-default one, because the `url` crate normalises `:443` on https away.

use serde_json::{Map, Value};

/// The `url` object for `raw`; `None` when `raw` is not an absolute URL.
pub(crate) fn parts(raw: &str) -> Option<Map<String, Value>> {
    let u = url::Url::parse(raw).ok()?;
    let mut out = Map::new();
    out.insert("original".into(), raw.into());
    out.insert("scheme".into(), u.scheme().into());
    if let Some(host) = u.host_str() {
        // IPv6 hosts come bracketed from the url crate; ECS wants the bare address.
        out.insert(
            "domain".into(),
            host.trim_start_matches('[').trim_end_matches(']').into(),
        );
    }
    if let Some(port) = u.port() {
        out.insert("port".into(), port.into());
    }
    // Java's URI.getPath(), which uri_parts uses, returns the path percent-decoded.
    let path = percent_decode(u.path());
    if let Some(ext) = extension(&path) {
        out.insert("extension".into(), ext.into());
    }
    out.insert("path".into(), path.into());
    if let Some(q) = u.query() {
        out.insert("query".into(), q.into());
    }
    if let Some(f) = u.fragment() {
        out.insert("fragment".into(), f.into());
    }
    Some(out)
}

/// The text after the last dot of the last path segment, if that is not empty.
fn extension(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next()?;
    let (stem, ext) = last.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

/// Decodes `%XX` escapes; the input is returned unchanged if the result is not UTF-8.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_https_url() {
        let v = Value::Object(parts("https://example.com/").unwrap());
        assert_eq!(
            v,
            json!({"original": "https://example.com/", "scheme": "https", "domain": "example.com", "path": "/"})
        );
    }

    #[test]
    fn slack_private_file_link() {
        let raw = "https://files.slack.com/files-pri/T0-F0/my%20image.PNG?t=xoxe-1#frag";
        let v = Value::Object(parts(raw).unwrap());
        assert_eq!(v["path"], "/files-pri/T0-F0/my image.PNG");
        assert_eq!(v["extension"], "PNG");
        assert_eq!(v["query"], "t=xoxe-1");
        assert_eq!(v["fragment"], "frag");
        assert!(v.get("port").is_none());
    }

    #[test]
    fn explicit_port_user_info_and_ipv6() {
        let v = Value::Object(parts("http://user:secret@[2001:db8::1]:8080/a.b/c").unwrap());
        assert_eq!(v["domain"], "2001:db8::1");
        assert_eq!(v["port"], 8080);
        assert!(
            v.get("extension").is_none(),
            "dots in earlier segments are not an extension"
        );
        assert!(v.get("password").is_none() && v.get("username").is_none());
    }

    #[test]
    fn relative_or_junk_is_none() {
        assert!(parts("/files/x.png").is_none());
        assert!(parts("").is_none());
        assert!(parts("not a url").is_none());
    }

    #[test]
    fn bad_escapes_are_kept() {
        assert_eq!(percent_decode("/a%zz%"), "/a%zz%");
        assert_eq!(percent_decode("/%ff"), "/%ff");
    }
}
