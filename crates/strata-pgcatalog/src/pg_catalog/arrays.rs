//! Catalog columns Postgres keeps as arrays (`text[]`, `oid[]`, `int2[]`,
//! `aclitem[]`) or vectors (`int2vector`, `oidvector`), which the shipped
//! catalog rows and the crate's tables hold as text (`1 2`, `{2}`, `[23, 25]`,
//! `['i', 'o']`). As Arrow lists, `= ANY(col)`, `col[1]`, `unnest(col)` and
//! `array_to_string(col, ', ')` work the way pg_dump, pgjdbc and Metabase
//! use them.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Builder, Int16Builder, Int32Builder, ListBuilder,
    StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::Result as DfResult;
use std::sync::Arc;

/// The element type of `table.column` when Postgres has it as an array.
pub(crate) fn element_type(table: &str, column: &str) -> Option<DataType> {
    use DataType::{Float32, Int16, Int32, Utf8};
    Some(match (table, column) {
        ("pg_constraint", "conkey" | "confkey" | "confdelsetcols")
        | ("pg_index", "indkey" | "indoption")
        | ("pg_partitioned_table", "partattrs")
        | ("pg_publication_rel", "prattrs")
        | ("pg_statistic_ext", "stxkeys")
        | ("pg_trigger", "tgattr") => Int16,
        ("pg_constraint", "conpfeqop" | "conppeqop" | "conffeqop" | "conexclop")
        | ("pg_extension", "extconfig")
        | ("pg_index", "indclass" | "indcollation")
        | ("pg_partitioned_table", "partclass" | "partcollation")
        | ("pg_policy", "polroles")
        | ("pg_proc", "proargtypes" | "proallargtypes" | "protrftypes") => Int32,
        ("pg_statistic", c) if c.starts_with("stanumbers") => Float32,
        ("pg_attribute", "attacl" | "attoptions" | "attfdwoptions")
        | ("pg_class", "relacl" | "reloptions")
        | ("pg_db_role_setting", "setconfig")
        | ("pg_default_acl", "defaclacl")
        | ("pg_event_trigger", "evttags")
        | ("pg_extension", "extcondition")
        | ("pg_foreign_data_wrapper", "fdwacl" | "fdwoptions")
        | ("pg_foreign_server", "srvacl" | "srvoptions")
        | ("pg_foreign_table", "ftoptions")
        | ("pg_init_privs", "initprivs")
        | ("pg_language", "lanacl")
        | ("pg_largeobject_metadata", "lomacl")
        | ("pg_namespace", "nspacl")
        | ("pg_proc", "proacl" | "proargmodes" | "proargnames" | "proconfig")
        | ("pg_settings", "enumvals")
        | ("pg_statistic_ext", "stxkind")
        | ("pg_subscription", "subpublications")
        | ("pg_tablespace", "spcacl" | "spcoptions")
        | ("pg_type", "typacl")
        | ("pg_user_mapping", "umoptions") => Utf8,
        _ => return None,
    })
}

/// The Postgres vector type of `table.column` (`int2vector`, `oidvector`):
/// lists whose text form is space-separated and whose subscripts start at 0.
/// The wire frontend sends them as that type (`strata_catalog::WIRE_TYPE_KEY`).
pub(crate) fn vector_type(table: &str, column: &str) -> Option<&'static str> {
    Some(match (table, column) {
        ("pg_index", "indkey" | "indoption")
        | ("pg_partitioned_table", "partattrs")
        | ("pg_statistic_ext", "stxkeys")
        | ("pg_trigger", "tgattr") => "int2vector",
        ("pg_index", "indclass" | "indcollation")
        | ("pg_partitioned_table", "partclass" | "partcollation")
        | ("pg_proc", "proargtypes") => "oidvector",
        _ => return None,
    })
}

/// The Arrow type of a list of `element`.
pub(crate) fn list_of(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", element, true)))
}

/// The elements of an array's or vector's text: `{a,b}`, `[1, 2]`,
/// `['i', 'o']` or `1 2`; quoted elements may hold separators.
fn elements(text: &str) -> Vec<Option<String>> {
    let inner = text.trim();
    let inner = inner
        .strip_prefix(['{', '['])
        .and_then(|s| s.strip_suffix(['}', ']']))
        .unwrap_or(inner);
    let mut out = vec![];
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        if first == '"' || first == '\'' {
            chars.next();
            let mut s = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => s.extend(chars.next()),
                    c if c == first => break,
                    c => s.push(c),
                }
            }
            out.push(Some(s));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push((!s.eq_ignore_ascii_case("null")).then_some(s));
        }
    }
    out
}

/// `array` (text, or already a list) as a list of `element`; elements that
/// do not parse are NULL.
pub(crate) fn to_list(array: &ArrayRef, element: &DataType) -> DfResult<ArrayRef> {
    if matches!(array.data_type(), DataType::List(_)) {
        return Ok(cast(array, &list_of(element.clone()))?);
    }
    let text = cast(array, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let rows = (0..text.len()).map(|i| text.is_valid(i).then(|| elements(text.value(i))));
    Ok(match element {
        DataType::Int16 => build(rows, Int16Builder::new(), |b, v| {
            b.append_option(v.and_then(|v| v.parse().ok()))
        }),
        DataType::Int32 => build(rows, Int32Builder::new(), |b, v| {
            b.append_option(v.and_then(|v| v.parse().ok()))
        }),
        DataType::Float32 => build(rows, Float32Builder::new(), |b, v| {
            b.append_option(v.and_then(|v| v.parse().ok()))
        }),
        _ => build(rows, StringBuilder::new(), |b, v| b.append_option(v)),
    })
}

fn build<B: datafusion::arrow::array::ArrayBuilder>(
    rows: impl Iterator<Item = Option<Vec<Option<String>>>>,
    values: B,
    mut push: impl FnMut(&mut B, Option<&str>),
) -> ArrayRef {
    let mut list = ListBuilder::new(values);
    for row in rows {
        match row {
            Some(items) => {
                for item in &items {
                    push(list.values(), item.as_deref());
                }
                list.append(true);
            }
            None => list.append(false),
        }
    }
    Arc::new(list.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Int16Type;

    #[test]
    fn parses_every_text_form() {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(elements("1 2"), s(&["1", "2"]));
        assert_eq!(elements("{2}"), s(&["2"]));
        assert_eq!(elements("[23, 25]"), s(&["23", "25"]));
        assert_eq!(elements("['i', 'o']"), s(&["i", "o"]));
        assert_eq!(elements("{\"a,b\",c}"), s(&["a,b", "c"]));
        assert_eq!(elements("{}"), vec![]);
        assert_eq!(elements("{1,NULL}"), vec![Some("1".into()), None]);
    }

    #[test]
    fn builds_lists_and_keeps_nulls() -> DfResult<()> {
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("1 3"), None]));
        let list = to_list(&text, &DataType::Int16)?;
        let list = list.as_list::<i32>();
        assert!(list.is_null(1));
        let first = list.value(0);
        assert_eq!(first.as_primitive::<Int16Type>().values(), &[1, 3]);
        Ok(())
    }
}
