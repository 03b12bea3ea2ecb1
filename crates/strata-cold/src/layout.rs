//! Object paths of cold files. A partition's directory comes from a template so
//! USER tables (one directory per user) and other storages can lay files out
//! differently; the file name is `batch-{file_id}.parquet`, with file ids unique
//! across the server so a re-created table never collides with old objects.

use object_store::path::{Path, PathPart};
use strata_catalog::TableDef;
use strata_sql::TableKind;

/// Directory template of SHARED (and STREAM) tables.
pub const SHARED_TABLES_TEMPLATE: &str = "{namespace}/{tableName}";
/// Directory template of USER tables: one directory per user.
pub const USER_TABLES_TEMPLATE: &str = "{namespace}/{tableName}/{userId}";
/// Name of the manifest mirror in each partition directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Renders a template; each `/`-separated segment becomes one escaped path part,
/// so a name containing `/` or `..` can never escape its directory.
pub fn render(template: &str, namespace: &str, table: &str, user: &str) -> Path {
    let parts = template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|seg| {
            let s = seg
                .replace("{namespace}", namespace)
                .replace("{tableName}", table)
                .replace("{userId}", user);
            PathPart::from(s)
        })
        .collect::<Vec<_>>();
    Path::from_iter(parts)
}

/// Directory of one (table, user) partition.
pub fn partition_dir(table: &TableDef, user: &str) -> Path {
    let template = match table.kind {
        TableKind::User => USER_TABLES_TEMPLATE,
        _ => SHARED_TABLES_TEMPLATE,
    };
    render(template, &table.namespace, &table.name, user)
}

/// Directory holding every partition of a table.
pub fn table_dir(table: &TableDef) -> Path {
    render(SHARED_TABLES_TEMPLATE, &table.namespace, &table.name, "")
}

pub fn file_path(table: &TableDef, user: &str, file_id: u64) -> Path {
    partition_dir(table, user).join(format!("batch-{file_id}.parquet").as_str())
}

pub fn manifest_path(table: &TableDef, user: &str) -> Path {
    partition_dir(table, user).join(MANIFEST_FILE)
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
    use super::*;

    #[test]
    fn templates_escape_each_segment() {
        let p = render(USER_TABLES_TEMPLATE, "app", "msgs", "a/../b");
        assert_eq!(p.parts().count(), 3);
        assert!(p.as_ref().starts_with("app/msgs/"));
        let f = Path::from("app/t/batch-42.parquet");
        assert_eq!(file_id_of(&f), Some(42));
        assert_eq!(file_id_of(&Path::from("app/t/manifest.json")), None);
    }
}
