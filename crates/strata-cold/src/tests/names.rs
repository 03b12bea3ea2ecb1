//! Any name the catalog accepts (quoted identifiers can hold anything) goes
//! through every path helper and back: built, recorded as text, parsed back
//! equal, kept under its table's directory, and usable for every object-store
//! operation the flush, read and garbage-collection paths perform.

use super::{read_all, run, table};
use crate::ColdStore;
use crate::layout::{self, USER_TABLES_TEMPLATE};
use crate::manifest::LiveFile;
use crate::writer::FileWriter;
use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use proptest::prelude::*;
use std::sync::Arc;

/// Characters object_store escapes, path syntax, and a few non-ASCII ones.
const AWKWARD: &[char] = &[
    '#',
    '~',
    '%',
    '{',
    '}',
    '^',
    '|',
    ' ',
    '/',
    '.',
    '\\',
    '?',
    '*',
    '"',
    '<',
    '>',
    '[',
    ']',
    '`',
    '\n',
    '\0',
    '-',
    'é',
    'ß',
    '日',
    '😀',
    '\u{10FFFF}',
];

fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        6 => prop::sample::select(AWKWARD),
        4 => prop::char::range('a', 'z'),
    ]
}

/// Names a quoted identifier can spell, weighted towards the awkward ones.
fn name() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "",
        ".",
        "..",
        "/",
        "../..",
        "a/../b",
        "%",
        "%2F",
        "%2E%2E",
        "%-",
        "{namespace}",
        "{tableName}",
        "{userId}",
        "manifest.json",
        "batch-1.parquet",
        "t#1",
        "bob~1",
        "a%2Fb ~{x}",
        "x#123",
    ])
    .prop_map(String::from);
    prop_oneof![
        2 => special,
        6 => prop::collection::vec(name_char(), 0..24).prop_map(String::from_iter),
        1 => prop::collection::vec(name_char(), 40..200).prop_map(String::from_iter),
    ]
}

/// Names from a tiny alphabet, so distinct names often escape to similar text.
fn near_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(&['%', '2', 'F', 'E', '/', '.', '-', 'a'][..]), 0..5)
            .prop_map(String::from_iter),
        1 => (0usize..3, prop::collection::vec(prop::sample::select(&['a', 'é', '%'][..]), 0..3))
            .prop_map(|(n, tail)| format!("{}{}", "x".repeat(110 + n), String::from_iter(tail))),
    ]
}

fn kinds(user: &str) -> [(&'static str, String); 2] {
    [("Shared", String::new()), ("User", user.to_string())]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_path_parses_back_from_its_recorded_text(
        ns in name(), t in name(), user in name(), file_id in any::<u64>(),
    ) {
        for (kind, user) in kinds(&user) {
            let def = table(&ns, &t, kind, &[("id", "BigInt")]);
            let dir = layout::table_dir(&def);
            let part = layout::partition_dir(&def, &user);
            let file = layout::file_path(&def, &user, file_id);
            let manifest = layout::manifest_path(&def, &user);
            prop_assert_eq!(dir.parts().count(), 2);
            prop_assert_eq!(part.parts().count(), if kind == "User" { 3 } else { 2 });
            let expected: Vec<String> = [ns.as_str(), t.as_str(), user.as_str()]
                .iter()
                .take(part.parts().count())
                .map(|n| layout::segment(n))
                .collect();
            let got: Vec<String> = part.parts().map(|p| p.as_ref().to_string()).collect();
            prop_assert_eq!(got, expected);
            for p in [&dir, &part, &file, &manifest] {
                let text = layout::to_stored(p);
                let back = layout::from_stored(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&back, p);
                prop_assert!(p.prefix_matches(&dir), "{} not under {}", p, dir);
                for s in p.parts() {
                    let s = s.as_ref().to_string();
                    prop_assert!(!matches!(s.as_str(), "" | "." | ".."), "segment {:?} of {}", s, p);
                    prop_assert!(s.len() <= layout::MAX_SEGMENT_BYTES, "segment {:?}", s);
                }
            }
            prop_assert!(file.prefix_matches(&part));
            prop_assert_eq!(file.parts().count(), part.parts().count() + 1);
            prop_assert!(manifest.prefix_matches(&part));
            prop_assert_eq!(layout::file_id_of(&file), Some(file_id));
        }
    }

    #[test]
    fn different_names_never_share_a_directory(
        a in (near_name(), near_name(), near_name()),
        b in (near_name(), near_name(), near_name()),
    ) {
        prop_assume!(a != b);
        let pa = layout::render(USER_TABLES_TEMPLATE, &layout::Values { namespace: &a.0, table: &a.1, user: &a.2, shard: "" });
        let pb = layout::render(USER_TABLES_TEMPLATE, &layout::Values { namespace: &b.0, table: &b.1, user: &b.2, shard: "" });
        prop_assert_ne!(pa, pb);
    }

    #[test]
    fn different_names_never_share_a_segment(a in name(), b in name()) {
        prop_assume!(a != b);
        prop_assert_ne!(layout::segment(&a), layout::segment(&b));
    }
}

proptest! {
    // Each case writes a Parquet file to disk.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn objects_under_any_name_are_written_listed_read_and_deleted(
        ns in name(), t in name(), user in name(),
    ) {
        run(async move {
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let root = tmp.path().join("storage");
            let cold = ColdStore::local("local", &root).map_err(|e| e.to_string())?;
            for (kind, user) in kinds(&user) {
                round_trip(&cold, &ns, &t, kind, &user).await?;
            }
            // Nothing was written beside the storage root, and nothing is left in it.
            let beside: Vec<_> = std::fs::read_dir(tmp.path())
                .map_err(|e| e.to_string())?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            if beside != [std::ffi::OsString::from("storage")] {
                return Err(format!("objects escaped the storage root: {beside:?}"));
            }
            Ok(())
        })?;
    }
}

/// Flush-like write (a Parquet file through the multipart writer, plus the
/// manifest mirror), read through the recorded path, listing as the orphan
/// sweep does, and deletion through the recorded text as garbage collection does.
async fn round_trip(
    cold: &ColdStore,
    ns: &str,
    t: &str,
    kind: &str,
    user: &str,
) -> Result<(), String> {
    let def = table(
        ns,
        t,
        kind,
        &[("id", "BigInt"), ("x", "Double"), ("s", "Text")],
    );
    let mut w = FileWriter::create(cold, &def, user, 42).map_err(|e| e.to_string())?;
    let batch = RecordBatch::try_new(
        crate::writer::file_schema(&def),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Float64Array::from(vec![Some(1.5), None])),
            Arc::new(StringArray::from(vec![Some("a"), Some("")])),
            Arc::new(Int64Array::from(vec![10, 11])),
        ],
    )
    .map_err(|e| e.to_string())?;
    w.write(&batch).await.map_err(|e| e.to_string())?;
    let meta = w.finish(0).await.map_err(|e| e.to_string())?;
    let file = layout::file_path(&def, user, 42);
    if meta.path != layout::to_stored(&file) {
        return Err(format!("recorded {:?}, built {file}", meta.path));
    }
    let manifest = layout::manifest_path(&def, user);
    cold.put(&manifest, b"{}".to_vec())
        .await
        .map_err(|e| e.to_string())?;

    // Read back the way queries do (footer, then rows), from the recorded text.
    let live = LiveFile {
        meta: meta.clone(),
        deleted: vec![],
    };
    let rows: usize = read_all(cold, &def, &live, None)
        .await?
        .iter()
        .map(|b| b.num_rows())
        .sum();
    if rows != 2 {
        return Err(format!("read {rows} rows back from {}", meta.path));
    }
    let bytes = cold
        .object_store()
        .get(&layout::from_stored(&layout::to_stored(&manifest)).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    if bytes.as_ref() != b"{}" {
        return Err("manifest read back differs".into());
    }

    // Listing: the whole storage (orphan sweep compares recorded text), the
    // partition and the table directory each hold exactly these two objects.
    let want = |listed: Vec<Path>| -> Result<(), String> {
        let mut got: Vec<String> = listed.iter().map(layout::to_stored).collect();
        got.sort();
        let mut expected = vec![meta.path.clone(), layout::to_stored(&manifest)];
        expected.sort();
        (got == expected)
            .then_some(())
            .ok_or(format!("listed {got:?}, expected {expected:?}"))
    };
    want(cold.list(None).await.map_err(|e| e.to_string())?)?;
    want(
        cold.list(Some(&layout::partition_dir(&def, user)))
            .await
            .map_err(|e| e.to_string())?,
    )?;
    want(
        cold.list(Some(&layout::table_dir(&def)))
            .await
            .map_err(|e| e.to_string())?,
    )?;

    cold.delete_stored(&meta.path)
        .await
        .map_err(|e| e.to_string())?;
    cold.delete_stored(&layout::to_stored(&manifest))
        .await
        .map_err(|e| e.to_string())?;
    let left = cold.list(None).await.map_err(|e| e.to_string())?;
    if !left.is_empty() {
        return Err(format!("left after delete: {left:?}"));
    }
    Ok(())
}
