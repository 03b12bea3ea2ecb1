//! Pruning never drops a row the filter would keep: over random data with
//! NULLs, NaN of both signs, ±0, ±Inf, empty and long strings, written by the
//! crate's writer into a few files of small row groups, every file holding a
//! matching row survives manifest pruning, and a scan with row-group pruning
//! returns exactly the rows an unpruned scan's filter keeps.

use super::{read_all, run, table};
use crate::ColdStore;
use crate::manifest::LiveFile;
use crate::prune::FileStatistics;
use crate::writer::{FileWriter, file_schema};
use arrow::array::{
    Array, AsArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use strata_catalog::TableDef;

#[derive(Debug, Clone)]
struct Row {
    x: Option<f64>,
    r: Option<f32>,
    s: Option<String>,
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => prop::sample::select(vec![
            f64::NAN, -f64::NAN, 0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 100.0, f64::MAX,
            f64::MIN, f64::MIN_POSITIVE, 1e-300,
        ]),
        2 => (-3i32..4).prop_map(f64::from),
        1 => any::<f64>(),
    ]
}

fn real() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => prop::sample::select(vec![
            f32::NAN, -f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 100.0, f32::MAX,
        ]),
        2 => (-3i16..4).prop_map(f32::from),
        1 => any::<f32>(),
    ]
}

/// Strings around the edges of Parquet statistics: empty, and longer than the
/// 64 bytes statistics are truncated to (one of them with code points whose
/// truncated maximum cannot be incremented).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ab]{0,3}",
        (0usize..3).prop_map(|n| format!("{}{}", "a".repeat(64), "b".repeat(n))),
        (0usize..3).prop_map(|n| "\u{10FFFF}".repeat(15 + n)),
        "\\PC{0,4}",
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.85, double()),
        prop::option::weighted(0.85, real()),
        prop::option::weighted(0.85, text()),
    )
        .prop_map(|(x, r, s)| Row { x, r, s })
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    IsNull,
    IsNotNull,
}

fn atom() -> impl Strategy<Value = Expr> {
    let op = prop::sample::select(vec![
        Op::Eq,
        Op::NotEq,
        Op::Lt,
        Op::LtEq,
        Op::Gt,
        Op::GtEq,
        Op::IsNull,
        Op::IsNotNull,
    ]);
    let literal = prop_oneof![
        double().prop_map(|v| ("x", ScalarValue::Float64(Some(v)))),
        real().prop_map(|v| ("r", ScalarValue::Float32(Some(v)))),
        text().prop_map(|v| ("s", ScalarValue::Utf8(Some(v)))),
    ];
    (op, literal).prop_map(|(op, (column, value))| {
        let c = col(column);
        let v = lit(value);
        match op {
            Op::Eq => c.eq(v),
            Op::NotEq => c.not_eq(v),
            Op::Lt => c.lt(v),
            Op::LtEq => c.lt_eq(v),
            Op::Gt => c.gt(v),
            Op::GtEq => c.gt_eq(v),
            Op::IsNull => c.is_null(),
            Op::IsNotNull => c.is_not_null(),
        }
    })
}

/// One to three atoms joined by AND / OR.
fn filter() -> impl Strategy<Value = Expr> {
    (atom(), prop::collection::vec((any::<bool>(), atom()), 0..3)).prop_map(|(first, rest)| {
        rest.into_iter().fold(
            first,
            |acc, (and, e)| if and { acc.and(e) } else { acc.or(e) },
        )
    })
}

fn test_table() -> TableDef {
    table(
        "app",
        "t",
        "Shared",
        &[
            ("id", "BigInt"),
            ("x", "Double"),
            ("r", "Real"),
            ("s", "Text"),
        ],
    )
}

/// Writes `rows` (ids from `first_id`) as one file, in two batches so the
/// statistics are merged across batches too.
async fn write_file(
    cold: &ColdStore,
    def: &TableDef,
    file_id: u64,
    first_id: i64,
    rows: &[Row],
    row_group_rows: usize,
) -> Result<LiveFile, String> {
    let mut w = FileWriter::create_with_row_groups(cold, def, "", file_id, row_group_rows)
        .map_err(|e| e.to_string())?;
    let (a, b) = rows.split_at(rows.len() / 2);
    for (offset, part) in [(0, a), (a.len(), b)] {
        if part.is_empty() {
            continue;
        }
        let ids: Vec<i64> = (0..part.len())
            .map(|i| first_id + (offset + i) as i64)
            .collect();
        let batch = RecordBatch::try_new(
            file_schema(def),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(part.iter().map(|r| r.x).collect::<Float64Array>()),
                Arc::new(part.iter().map(|r| r.r).collect::<Float32Array>()),
                Arc::new(part.iter().map(|r| r.s.clone()).collect::<StringArray>()),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .map_err(|e| e.to_string())?;
        w.write(&batch).await.map_err(|e| e.to_string())?;
    }
    let meta = w.finish(0).await.map_err(|e| e.to_string())?;
    Ok(LiveFile {
        meta,
        deleted: vec![],
    })
}

/// Ids of the rows `filter` keeps (true, not NULL).
fn kept(filter: &Arc<dyn PhysicalExpr>, batches: &[RecordBatch]) -> Result<BTreeSet<i64>, String> {
    let mut out = BTreeSet::new();
    for b in batches {
        let mask = filter
            .evaluate(b)
            .and_then(|v| v.into_array(b.num_rows()))
            .map_err(|e| e.to_string())?;
        let mask = mask.as_boolean();
        let ids = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            if mask.is_valid(i) && mask.value(i) {
                out.insert(ids.value(i));
            }
        }
    }
    Ok(out)
}

/// Checks both pruning levels of `expr` against the unpruned result.
async fn check(
    cold: &ColdStore,
    def: &TableDef,
    files: &[LiveFile],
    expr: &Expr,
) -> Result<(), String> {
    let schema = def.arrow_schema(false);
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
    // Planned the way the table provider plans pushed-down filters.
    let physical = SessionContext::new()
        .create_physical_expr(expr.clone(), &df_schema)
        .map_err(|e| e.to_string())?;
    let predicate = PruningPredicateBuilder::new()
        .with_file_schema(schema)
        .try_build(physical.clone())
        .map(Arc::new)
        .map_err(|e| e.to_string())?;
    let keep_files = predicate
        .prune(&FileStatistics { table: def, files })
        .map_err(|e| e.to_string())?;
    for (i, f) in files.iter().enumerate() {
        let want = kept(&physical, &read_all(cold, def, f, None).await?)?;
        if !want.is_empty() && !keep_files[i] {
            return Err(format!(
                "{expr}: file {i} pruned by the manifest but the filter keeps {want:?}; stats {:?}",
                f.meta.columns
            ));
        }
        let got = kept(
            &physical,
            &read_all(cold, def, f, Some(predicate.clone())).await?,
        )?;
        if got != want {
            return Err(format!(
                "{expr}: file {i} with row-group pruning kept {got:?}, unpruned {want:?}"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn pruned_scans_keep_every_row_the_filter_keeps(
        rows in prop::collection::vec(row(), 1..40),
        cuts in prop::collection::vec(0usize..40, 0..3),
        row_group_rows in 1usize..6,
        filters in prop::collection::vec(filter(), 1..6),
    ) {
        run(async move {
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let cold = ColdStore::local("local", tmp.path()).map_err(|e| e.to_string())?;
            let def = test_table();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % rows.len()).collect();
            bounds.extend([0, rows.len()]);
            bounds.sort_unstable();
            bounds.dedup();
            let mut files = vec![];
            for (n, w) in bounds.windows(2).enumerate() {
                files.push(write_file(&cold, &def, n as u64 + 1, w[0] as i64, &rows[w[0]..w[1]], row_group_rows).await?);
            }
            for f in &filters {
                check(&cold, &def, &files, f).await?;
            }
            Ok(())
        })?;
    }
}

/// Manifests written before NaN was counted: their float bounds may be NaN
/// (sign lost in the text) and say nothing of NaN, so neither level prunes on
/// them.
#[test]
fn manifests_without_nan_counts_never_prune_floats() {
    let outcome = run(async {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cold = ColdStore::local("local", tmp.path()).map_err(|e| e.to_string())?;
        let def = test_table();
        let rows: Vec<Row> = [-f64::NAN, 1.0, f64::NAN]
            .into_iter()
            .map(|x| Row {
                x: Some(x),
                r: Some(x as f32),
                s: None,
            })
            .collect();
        let mut file = write_file(&cold, &def, 1, 0, &rows, 1).await?;
        for c in &mut file.meta.columns {
            c.nan_count = None;
            if c.name == "x" || c.name == "r" {
                c.min = Some("NaN".into());
                c.max = Some("NaN".into());
            }
        }
        for v in [0.0, 100.0, f64::NAN, f64::NEG_INFINITY] {
            for e in [
                col("x").lt(lit(v)),
                col("x").gt(lit(v)),
                col("x").eq(lit(v)),
            ] {
                check(&cold, &def, std::slice::from_ref(&file), &e).await?;
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The guards above must not switch pruning off: files and row groups that
/// cannot match (no NaN, bounds known) are still skipped at both levels.
#[test]
fn files_without_nan_still_prune() {
    let outcome = run(async {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cold = ColdStore::local("local", tmp.path()).map_err(|e| e.to_string())?;
        let def = test_table();
        let rows: Vec<Row> = [-0.0, 0.0, 1.5, f64::NEG_INFINITY]
            .into_iter()
            .map(|x| Row {
                x: Some(x),
                r: Some(x as f32),
                s: Some("b".into()),
            })
            .collect();
        let file = write_file(&cold, &def, 1, 0, &rows, 2).await?;
        let files = std::slice::from_ref(&file);
        for e in [
            col("x").gt(lit(100.0)),
            col("r").gt(lit(2.0f32)),
            col("s").lt(lit("a")),
        ] {
            let schema = def.arrow_schema(false);
            let df_schema =
                DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
            let physical = SessionContext::new()
                .create_physical_expr(e.clone(), &df_schema)
                .map_err(|e| e.to_string())?;
            let predicate = PruningPredicateBuilder::new()
                .with_file_schema(schema)
                .try_build(physical)
                .map(Arc::new)
                .map_err(|e| e.to_string())?;
            let keep = predicate
                .prune(&FileStatistics { table: &def, files })
                .map_err(|e| e.to_string())?;
            if keep != [false] {
                return Err(format!("{e}: manifest kept the file"));
            }
            let scanned: usize = read_all(&cold, &def, &file, Some(predicate))
                .await?
                .iter()
                .map(|b| b.num_rows())
                .sum();
            if scanned != 0 {
                return Err(format!("{e}: row groups not pruned, {scanned} rows read"));
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
