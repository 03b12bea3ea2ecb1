//! Row fixes to `pg_catalog` tables that tools cross-check against each
//! other (pg_dump stops at the first reference it cannot resolve).

use super::augment::Context;
use super::catalog_oids::catalog_oid;
use super::roles::{BOOTSTRAP_ROLE_OID, bootstrap_user, role_oids};
use super::tables::default_value;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::error::Result as DfResult;
use datafusion::physical_plan::collect;
use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use strata_catalog::Role;

/// `information_schema`'s namespace OID in the shipped `pg_proc` and
/// `pg_type` rows (its functions and composite types); `pg_namespace` must
/// report the same or pg_dump finds objects in a schema that does not exist.
const INFORMATION_SCHEMA_OID: i32 = 13283;

pub(crate) async fn apply(
    table: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    context: &Context,
    state: &dyn Session,
) -> DfResult<Vec<RecordBatch>> {
    Ok(match table {
        // Strata keeps no owners: everything belongs to the bootstrap user.
        "pg_class" => map_all(batches, "relowner", |a| {
            Ok(Arc::new(Int32Array::from(vec![
                BOOTSTRAP_ROLE_OID;
                a.len()
            ])))
        })?,
        // pg_dump knows the providers by their one-letter codes.
        "pg_database" => map_all(batches, "datlocprovider", |a| {
            let a = cast(a, &DataType::Utf8)?;
            let out: StringArray = a
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|v| match v {
                        "libc" => "c",
                        "icu" => "i",
                        other => other,
                    })
                })
                .collect();
            Ok(Arc::new(out))
        })?,
        "pg_namespace" => batches
            .iter()
            .map(information_schema_oid)
            .collect::<DfResult<_>>()?,
        "pg_roles" => batches
            .iter()
            .map(|b| strata_roles(b, context))
            .collect::<DfResult<_>>()?,
        "pg_authid" => {
            let mut out = vec![];
            for b in &batches {
                // The shipped row for OID 10 is the reference cluster's
                // bootstrap user; Strata's take its place.
                let oids = cast(column(b, "oid")?, &DataType::Int32)?;
                let keep: BooleanArray = oids
                    .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .iter()
                    .map(|o| Some(o != Some(BOOTSTRAP_ROLE_OID)))
                    .collect();
                out.push(filter_record_batch(b, &keep)?);
            }
            out.push(authid_rows(schema, context)?);
            out
        }
        // The shipped rows are the reference cluster's system views, which
        // have no `pg_class` rows here (pg_dump checks), and Strata has no
        // views of its own.
        "pg_rewrite" => vec![],
        "pg_description" => {
            let mut out = batches;
            if let Some(public) = namespace_oid(context, state, "public").await?
                && public != 2200
            {
                out.push(rows(schema, 1, |name| match name {
                    "objoid" => Some(ScalarValue::Int32(Some(public))),
                    "classoid" => catalog_oid("pg_namespace").map(|o| ScalarValue::Int32(Some(o))),
                    "objsubid" => Some(ScalarValue::Int32(Some(0))),
                    "description" => Some(ScalarValue::Utf8(Some("standard public schema".into()))),
                    "tableoid" => {
                        catalog_oid("pg_description").map(|o| ScalarValue::Int32(Some(o)))
                    }
                    _ => None,
                })?);
            }
            out
        }
        _ => batches,
    })
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> DfResult<&'a ArrayRef> {
    b.column_by_name(name).ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "pg_catalog table lacks column {name}"
        ))
    })
}

/// `batches` with column `name` replaced by `f` of it (cast back to its type).
fn map_all(
    batches: Vec<RecordBatch>,
    name: &str,
    f: impl Fn(&ArrayRef) -> DfResult<ArrayRef>,
) -> DfResult<Vec<RecordBatch>> {
    batches.iter().map(|b| map_column(b, name, &f)).collect()
}

fn map_column(
    b: &RecordBatch,
    name: &str,
    f: &impl Fn(&ArrayRef) -> DfResult<ArrayRef>,
) -> DfResult<RecordBatch> {
    let schema = b.schema();
    let Ok(i) = schema.index_of(name) else {
        return Ok(b.clone());
    };
    let mut columns = b.columns().to_vec();
    columns[i] = cast(&f(&columns[i])?, schema.field(i).data_type())?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn information_schema_oid(b: &RecordBatch) -> DfResult<RecordBatch> {
    let names = cast(column(b, "nspname")?, &DataType::Utf8)?;
    let names = names.as_string::<i32>().clone();
    map_column(b, "oid", &|oids| {
        let oids = cast(oids, &DataType::Int32)?;
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let out: Int32Array = (0..oids.len())
            .map(|i| {
                if names.is_valid(i) && names.value(i) == "information_schema" {
                    Some(INFORMATION_SCHEMA_OID)
                } else {
                    oids.is_valid(i).then(|| oids.value(i))
                }
            })
            .collect();
        Ok(Arc::new(out))
    })
}

/// The OID `pg_namespace` gives the namespace `name`.
async fn namespace_oid(
    context: &Context,
    state: &dyn Session,
    name: &str,
) -> DfResult<Option<i32>> {
    let Some(t) = context.inner.table("pg_namespace").await? else {
        return Ok(None);
    };
    let batches = collect(t.scan(state, None, &[], None).await?, state.task_ctx()).await?;
    for b in &batches {
        let names = cast(column(b, "nspname")?, &DataType::Utf8)?;
        let oids = cast(column(b, "oid")?, &DataType::Int32)?;
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        for (i, n) in names.as_string::<i32>().iter().enumerate() {
            if n == Some(name) && oids.is_valid(i) {
                return Ok(Some(oids.value(i)));
            }
        }
    }
    Ok(None)
}

/// `pg_roles` with each user's OID, and the bootstrap user's attributes
/// those of a Postgres bootstrap superuser.
fn strata_roles(b: &RecordBatch, context: &Context) -> DfResult<RecordBatch> {
    let users = context.tiers.catalog.users();
    let oids = role_oids(&users);
    let boot = bootstrap_user(&users).map(|u| u.name.clone());
    let names = cast(column(b, "rolname")?, &DataType::Utf8)?;
    let names: Vec<Option<String>> = names
        .as_string::<i32>()
        .iter()
        .map(|n| n.map(str::to_string))
        .collect();
    let is_boot = |n: &Option<String>| n.is_some() && *n == boot;
    let b = map_column(b, "oid", &|_| {
        let out: Int32Array = names
            .iter()
            .map(|n| n.as_ref().and_then(|n| oids.get(n).copied()))
            .collect();
        Ok(Arc::new(out))
    })?;
    let flag = |b: &RecordBatch, col: &str| {
        map_column(b, col, &|_| {
            let out: BooleanArray = names.iter().map(|n| Some(is_boot(n))).collect();
            Ok(Arc::new(out))
        })
    };
    let b = flag(&b, "rolcreatedb")?;
    let b = flag(&b, "rolreplication")?;
    flag(&b, "rolbypassrls")
}

/// A `pg_authid` row per Strata user (no password: verifiers stay private).
fn authid_rows(schema: &SchemaRef, context: &Context) -> DfResult<RecordBatch> {
    let mut users = context.tiers.catalog.users();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let oids = role_oids(&users);
    let boot = bootstrap_user(&users).map(|u| u.name.clone());
    super::tables::batch_of(schema, &users, |u, f| {
        let is_boot = boot.as_deref() == Some(u.name.as_str());
        let admin = matches!(u.role, Role::Dba | Role::System);
        let bool = |v: bool| Ok(ScalarValue::Boolean(Some(v)));
        match f.name().as_str() {
            "oid" => Ok(ScalarValue::Int32(oids.get(&u.name).copied())),
            "rolname" => Ok(ScalarValue::Utf8(Some(u.name.clone()))),
            "rolsuper" => bool(u.role == Role::System),
            "rolinherit" | "rolcanlogin" => bool(true),
            "rolcreaterole" => bool(admin),
            "rolcreatedb" | "rolreplication" | "rolbypassrls" => bool(is_boot),
            "rolconnlimit" => Ok(ScalarValue::Int32(Some(-1))),
            "tableoid" => Ok(ScalarValue::Int32(catalog_oid("pg_authid"))),
            _ => default_value(f),
        }
    })
}

/// `n` rows of `schema` whose values `value` gives by column name (the rest
/// NULL, or false/0/'' where not nullable).
fn rows(
    schema: &SchemaRef,
    n: usize,
    value: impl Fn(&str) -> Option<ScalarValue>,
) -> DfResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let v = value(f.name()).map_or_else(|| default_value(f), Ok)?;
            Ok(cast(&v.to_array_of_size(n)?, f.data_type())?)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
