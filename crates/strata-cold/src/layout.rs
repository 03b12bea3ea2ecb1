//! Object paths of cold files. A partition's directory comes from a template so
//! USER tables (one directory per user) and other storages can lay files out
//! differently; the file name is `batch-{file_id}.parquet`, with file ids unique
//! across the server so a re-created table never collides with old objects.
//!
//! Names map to path segments one to one ([`segment`]): every name the catalog
//! accepts — empty, `.`/`..`, containing `/`, `%`, `#`, `{`, control or
//! non-ASCII characters, of any length — becomes exactly one segment, two
//! different names never share one, and no name can leave its directory.
//!
//! A path is escaped once, when it is built, and recorded (manifest entries,
//! garbage records) as that escaped text ([`to_stored`]); it is rebuilt with
//! [`from_stored`], which never escapes again. `Path::from(&str)` must not be
//! used on recorded text: it escapes every `%` a second time and so names
//! another object.

use object_store::path::{Path, PathPart};
use ring::digest::{SHA256, digest};
use strata_catalog::TableDef;
use strata_common::{Result, StrataError};
use strata_sql::TableKind;

/// Directory template of SHARED (and STREAM) tables on a storage that sets none.
pub const SHARED_TABLES_TEMPLATE: &str = strata_catalog::DEFAULT_SHARED_TEMPLATE;
/// Directory template of USER tables (one directory per user) on a storage that sets none.
pub const USER_TABLES_TEMPLATE: &str = strata_catalog::DEFAULT_USER_TEMPLATE;
/// Name of the manifest mirror in each partition directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Longest escaped name kept as is. Filesystems cap a path segment at 255 bytes
/// and one character can escape to 12 (four UTF-8 bytes, each `%XX`), so a
/// longer name is shortened (see [`segment`]).
pub const MAX_SEGMENT_BYTES: usize = 120;
/// Hex digits of the SHA-256 of a shortened name kept in its segment (128 bits).
const DIGEST_HEX: usize = 32;
/// Separates a shortened name's prefix from its digest. The escaping never
/// produces it (every `%` it writes is followed by two hex digits), so a
/// shortened segment cannot equal any kept one.
const DIGEST_MARK: &str = "%-";

/// The one path segment of a name, already escaped.
///
/// `PathPart::from` escapes the name once (`/` → `%2F`, `..` → `%2E%2E`,
/// `%` → `%25`, non-ASCII bytes → `%XX`), which maps names to segments one to
/// one. An empty name (which `Path` would silently drop, moving the files up a
/// level) or one longer than [`MAX_SEGMENT_BYTES`] escaped becomes the escaped
/// prefix, [`DIGEST_MARK`] and a digest of the whole name instead.
pub fn segment(name: &str) -> String {
    let escaped = PathPart::from(name);
    let escaped: &str = escaped.as_ref();
    if !escaped.is_empty() && escaped.len() <= MAX_SEGMENT_BYTES {
        return escaped.to_string();
    }
    // The escaped text is ASCII, so any byte index is a char boundary; back off
    // so no `%XX` is cut in two (only for readability: the digest decides).
    let mut cut = escaped
        .len()
        .min(MAX_SEGMENT_BYTES - DIGEST_MARK.len() - DIGEST_HEX);
    if let Some(i) = escaped[..cut].rfind('%')
        && i + 3 > cut
    {
        cut = i;
    }
    let hash = digest(&SHA256, name.as_bytes());
    let hex: String = hash
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    format!("{}{DIGEST_MARK}{}", &escaped[..cut], &hex[..DIGEST_HEX])
}

/// What a template's placeholders stand for in one partition.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub namespace: &'a str,
    pub table: &'a str,
    pub user: &'a str,
    /// The storage's sharding of the user id (of the table name for SHARED tables).
    pub shard: &'a str,
}

/// Fills one template segment: placeholders are looked up in the template
/// only, so a name that itself reads `{userId}` is never substituted again.
fn fill(template_segment: &str, v: &Values<'_>) -> String {
    let mut out = String::new();
    let mut rest = template_segment;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let (value, len) = [
            ("{namespace}", v.namespace),
            ("{tableName}", v.table),
            ("{userId}", v.user),
            ("{shard}", v.shard),
        ]
        .iter()
        .find(|(p, _)| rest.starts_with(p))
        .map(|(p, v)| (*v, p.len()))
        .unwrap_or(("{", 1));
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// Joins already-escaped segments. `PathPart::parse` checks a segment without
/// escaping it again; it cannot fail on [`segment`]'s output, and if it ever
/// did, escaping once more still keeps the segment inside its directory.
fn join_escaped(base: Path, segments: &[String]) -> Path {
    let mut path = base;
    for s in segments {
        path = match PathPart::parse(s) {
            Ok(part) => path.join(part),
            Err(_) => path.join(PathPart::from(s.as_str())),
        };
    }
    path
}

/// Renders a template; each `/`-separated template segment becomes exactly one
/// path segment, so a name containing `/` or `..` can never escape its directory.
pub fn render(template: &str, values: &Values<'_>) -> Path {
    let segments: Vec<String> = template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| segment(&fill(s, values)))
        .collect();
    join_escaped(Path::ROOT, &segments)
}

/// The longest leading part of a template that names no user or shard: the
/// directory under which every partition of a table lies, or `None` when the
/// template starts with `{shard}` or `{userId}` (the table has no one prefix).
pub fn table_prefix(template: &str, namespace: &str, table: &str) -> Option<Path> {
    let fixed: Vec<&str> = template
        .split('/')
        .filter(|s| !s.is_empty())
        .take_while(|s| !s.contains("{userId}") && !s.contains("{shard}"))
        .collect();
    if !fixed.iter().any(|s| s.contains("{tableName}")) {
        return None;
    }
    let values = Values {
        namespace,
        table,
        user: "",
        shard: "",
    };
    Some(render(&fixed.join("/"), &values))
}

/// The object name of a file.
pub fn file_name(file_id: u64) -> String {
    format!("batch-{file_id}.parquet")
}

fn default_values<'a>(table: &'a TableDef, user: &'a str) -> Values<'a> {
    Values {
        namespace: &table.namespace,
        table: &table.name,
        user,
        shard: "",
    }
}

/// Directory of one (table, user) partition under the default templates
/// (a storage's own are applied by [`crate::ColdStore::partition_dir`]).
pub fn partition_dir(table: &TableDef, user: &str) -> Path {
    let template = match table.kind {
        TableKind::User => USER_TABLES_TEMPLATE,
        _ => SHARED_TABLES_TEMPLATE,
    };
    render(template, &default_values(table, user))
}

/// Directory holding every partition of a table under the default templates.
pub fn table_dir(table: &TableDef) -> Path {
    render(SHARED_TABLES_TEMPLATE, &default_values(table, ""))
}

pub fn file_path(table: &TableDef, user: &str, file_id: u64) -> Path {
    partition_dir(table, user).join(file_name(file_id).as_str())
}

pub fn manifest_path(table: &TableDef, user: &str) -> Path {
    partition_dir(table, user).join(MANIFEST_FILE)
}

/// The text a path is recorded as: its escaped form, exactly.
pub fn to_stored(path: &Path) -> String {
    path.as_ref().to_string()
}

/// Rebuilds a path recorded by [`to_stored`] without escaping it again.
pub fn from_stored(text: &str) -> Result<Path> {
    Path::parse(text).map_err(|e| {
        StrataError::Storage(format!(
            "corrupt object path {text:?} in a cold-tier record: {e}"
        ))
    })
}

/// The file id encoded in a `batch-{n}.parquet` name, if it is one.
pub fn file_id_of(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    name.strip_prefix("batch-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    fn vals<'a>(namespace: &'a str, table: &'a str, user: &'a str) -> super::Values<'a> {
        super::Values {
            namespace,
            table,
            user,
            shard: "",
        }
    }

    use super::*;

    #[test]
    fn templates_escape_each_segment() {
        let p = render(
            USER_TABLES_TEMPLATE,
            &Values {
                namespace: "app",
                table: "msgs",
                user: "a/../b",
                shard: "",
            },
        );
        assert_eq!(p.parts().count(), 3);
        assert!(p.as_ref().starts_with("app/msgs/"));
        let f = Path::from("app/t/batch-42.parquet");
        assert_eq!(file_id_of(&f), Some(42));
        assert_eq!(file_id_of(&Path::from("app/t/manifest.json")), None);
    }

    #[test]
    fn names_that_look_like_placeholders_stay_names() {
        let a = render(USER_TABLES_TEMPLATE, &vals("{tableName}", "x", "u"));
        let b = render(USER_TABLES_TEMPLATE, &vals("x", "x", "u"));
        assert_ne!(a, b);
        assert_eq!(a.as_ref(), "%7BtableName%7D/x/u");
    }

    #[test]
    fn empty_and_long_names_get_their_own_segment() {
        let empty = render(USER_TABLES_TEMPLATE, &vals("", "t", "u"));
        assert_eq!(empty.parts().count(), 3);
        let long = "é".repeat(300);
        let s = segment(&long);
        assert!(s.len() <= MAX_SEGMENT_BYTES, "{s}");
        assert_ne!(s, segment(&"é".repeat(301)));
        assert!(!s.contains('/'));
    }

    #[test]
    fn stored_text_parses_back_without_escaping_again() {
        let p = render(USER_TABLES_TEMPLATE, &vals("app", "t#1", "bob~1"));
        let text = to_stored(&p);
        assert_eq!(text, "app/t%231/bob%7E1");
        assert_eq!(from_stored(&text).ok(), Some(p.clone()));
        // What the bug did: `Path::from` escapes the `%` again.
        assert_ne!(Path::from(text.as_str()), p);
    }
}
