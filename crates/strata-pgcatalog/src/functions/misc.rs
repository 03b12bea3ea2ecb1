//! Postgres functions catalog queries of tools call with arguments the
//! `datafusion-pg-catalog` versions refuse (an `int8` OID, a literal
//! encoding number) or that it lacks: `format`, the relation sizes,
//! `pg_encoding_to_char`, `pg_options_to_table`, and the first element of an
//! index key vector (what `information_schema._pg_expandarray` yields for
//! Strata's one-column keys; see `compat::expandarray`).

use super::ident::{quote_ident, quote_literal};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int16Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::scalar::ScalarValue;
use std::sync::Arc;

/// The longest text `format()` builds; past it the call fails (a client
/// controls the arguments).
const MAX_FORMAT_LEN: usize = 1 << 20;

/// `format(fmt, args…)` with Postgres' `%s` (text, NULL as empty), `%I`
/// (identifier), `%L` (literal, NULL as `NULL`), `%%` and the positional
/// `%n$s` forms; NULL when the format is NULL.
pub(crate) fn format_text(fmt: &str, args: &[Option<String>]) -> DfResult<String> {
    // Postgres' codes: a bad format string is 22023 (an argument number past
    // int range, 22003, reads as one too).
    let err = |m: &str| {
        DataFusionError::External(Box::new(strata_common::StrataError::InvalidParameterValue(
            format!("format(): {m}"),
        )))
    };
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
        } else {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            let index = if digits.is_empty() {
                None
            } else {
                if chars.next() != Some('$') {
                    return Err(err("unsupported format specifier"));
                }
                let n: usize = digits
                    .parse()
                    .map_err(|_| err("argument number too large"))?;
                Some(
                    n.checked_sub(1)
                        .ok_or_else(|| err("argument number must be > 0"))?,
                )
            };
            let spec = chars
                .next()
                .ok_or_else(|| err("unterminated format specifier"))?;
            if spec == '%' && index.is_none() {
                out.push('%');
                continue;
            }
            let i = match index {
                Some(i) => i,
                None => next,
            };
            next = i + 1;
            let arg = args.get(i).ok_or_else(|| err("too few arguments"))?;
            match spec {
                's' => out.push_str(arg.as_deref().unwrap_or("")),
                'I' => match arg {
                    Some(a) => out.push_str(&quote_ident(a)),
                    None => {
                        return Err(err("null values cannot be formatted as an SQL identifier"));
                    }
                },
                'L' => match arg {
                    Some(a) => out.push_str(&quote_literal(a)),
                    None => out.push_str("NULL"),
                },
                other => {
                    return Err(err(&format!(
                        "unrecognized format() type specifier \"{other}\""
                    )));
                }
            }
        }
        if out.len() > MAX_FORMAT_LEN {
            return Err(err("result too long"));
        }
    }
    Ok(out)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Format {
    signature: Signature,
}

impl Format {
    pub(crate) fn new() -> Format {
        Format {
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let columns = args
            .args
            .iter()
            .map(|a| {
                let a = datafusion::arrow::compute::cast(&a.to_array(n)?, &DataType::Utf8)?;
                Ok(a.as_string::<i32>().clone())
            })
            .collect::<DfResult<Vec<StringArray>>>()?;
        let Some((fmt, rest)) = columns.split_first() else {
            return Err(DataFusionError::Plan("format takes a format text".into()));
        };
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            if fmt.is_null(row) {
                out.push(None);
                continue;
            }
            let values: Vec<Option<String>> = rest
                .iter()
                .map(|c| (!c.is_null(row)).then(|| c.value(row).to_string()))
                .collect();
            out.push(Some(format_text(fmt.value(row), &values)?));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `quote_literal(value)`: the value's text as a string literal; NULL for
/// NULL (pg_dump quotes options and event-trigger tags with it).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct QuoteLiteral {
    signature: Signature,
}

impl QuoteLiteral {
    pub(crate) fn new() -> QuoteLiteral {
        QuoteLiteral {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for QuoteLiteral {
    fn name(&self) -> &str {
        "quote_literal"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan("quote_literal takes a value".into()));
        };
        let a =
            datafusion::arrow::compute::cast(&arg.to_array(args.number_rows)?, &DataType::Utf8)?;
        let out: StringArray = a
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(quote_literal))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// A function of a relation OID (any integer type, or a regclass) that
/// answers 0 bytes: Strata does not size relations per OID; tools only show
/// the number. NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ZeroSize {
    name: &'static str,
    signature: Signature,
}

impl ZeroSize {
    pub(crate) fn new(name: &'static str) -> ZeroSize {
        ZeroSize {
            name,
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Stable,
            ),
        }
    }
}

impl ScalarUDFImpl for ZeroSize {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan(format!("{} takes an oid", self.name)));
        };
        let a = arg.to_array(args.number_rows)?;
        let out: Int64Array = (0..a.len()).map(|i| (!a.is_null(i)).then_some(0)).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Encoding numbers as Postgres numbers them (`pg_wchar.h`), the ones a
/// client may meet.
const ENCODINGS: [(i64, &str); 9] = [
    (0, "SQL_ASCII"),
    (1, "EUC_JP"),
    (6, "UTF8"),
    (8, "LATIN1"),
    (16, "WIN1252"),
    (24, "WIN1251"),
    (34, "SJIS"),
    (35, "BIG5"),
    (36, "GBK"),
];

/// `pg_encoding_to_char(int)`: the encoding's name, `''` for an unknown
/// number (as Postgres answers).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct EncodingToChar {
    signature: Signature,
}

impl EncodingToChar {
    pub(crate) fn new() -> EncodingToChar {
        EncodingToChar {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for EncodingToChar {
    fn name(&self) -> &str {
        "pg_encoding_to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan(
                "pg_encoding_to_char takes an int".into(),
            ));
        };
        let a =
            datafusion::arrow::compute::cast(&arg.to_array(args.number_rows)?, &DataType::Int64)?;
        let a = a.as_primitive::<Int64Type>();
        let out: StringArray = a
            .iter()
            .map(|v| {
                v.map(|v| {
                    ENCODINGS
                        .iter()
                        .find(|(n, _)| *n == v)
                        .map_or("", |(_, name)| name)
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The first element of an index key vector, as text (`int2vector`'s
/// `"1 2"`, an array's `{1,2}`) or an array.
fn first_element(text: &str) -> Option<i16> {
    text.trim_matches(|c| c == '{' || c == '}')
        .split([' ', ','])
        .find(|s| !s.is_empty())?
        .trim()
        .parse()
        .ok()
}

/// `strata_first_key(vector)`: the `.x` of
/// `information_schema._pg_expandarray(vector)`'s one row (Strata's keys
/// have one column).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FirstKey {
    signature: Signature,
}

pub(crate) const FIRST_KEY: &str = "strata_first_key";

impl FirstKey {
    pub(crate) fn new() -> FirstKey {
        FirstKey {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FirstKey {
    fn name(&self) -> &str {
        FIRST_KEY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int16)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan(format!("{FIRST_KEY} takes a vector")));
        };
        let a = arg.to_array(args.number_rows)?;
        let out: Int16Array = match a.data_type() {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => (0..a
                .len())
                .map(|i| {
                    if a.is_null(i) {
                        return Ok(None);
                    }
                    let v = ScalarValue::try_from_array(&a, i)?;
                    let ScalarValue::List(l) =
                        v.cast_to(&DataType::new_list(DataType::Int16, true))?
                    else {
                        return Ok(None);
                    };
                    let values = l.values();
                    let values = values.as_primitive::<datafusion::arrow::datatypes::Int16Type>();
                    Ok((!values.is_empty() && !values.is_null(0)).then(|| values.value(0)))
                })
                .collect::<DfResult<_>>()?,
            _ => {
                let t = datafusion::arrow::compute::cast(&a, &DataType::Utf8)?;
                t.as_string::<i32>()
                    .iter()
                    .map(|s| s.and_then(first_element))
                    .collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `pg_options_to_table(text[])`: one (option_name, option_value) row per
/// `name=value` of a literal option array; none for NULL or any other
/// argument (Strata keeps no options; a correlated call is rewritten away,
/// see `compat`).
#[derive(Debug)]
pub(crate) struct OptionsToTable;

/// The most options read from one literal.
const MAX_OPTIONS: usize = 1024;

fn option_texts(e: &Expr) -> Vec<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => s
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .filter(|s| !s.is_empty())
            .take(MAX_OPTIONS)
            .map(|s| s.trim_matches('"').to_string())
            .collect(),
        Expr::Literal(ScalarValue::List(l), _) => {
            let values = l.values();
            match datafusion::arrow::compute::cast(values, &DataType::Utf8) {
                Ok(v) => v
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .take(MAX_OPTIONS)
                    .map(String::from)
                    .collect(),
                Err(_) => vec![],
            }
        }
        Expr::Cast(c) => option_texts(&c.expr),
        Expr::ScalarFunction(f) if f.name() == "make_array" => f
            .args
            .iter()
            .take(MAX_OPTIONS)
            .filter_map(|a| match a {
                Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

impl TableFunctionImpl for OptionsToTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let texts = args.exprs().first().map(option_texts).unwrap_or_default();
        let (names, values): (Vec<String>, Vec<Option<String>>) = texts
            .iter()
            .map(|t| match t.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (t.clone(), None),
            })
            .unzip();
        let schema = Arc::new(Schema::new(vec![
            Field::new("option_name", DataType::Utf8, false),
            Field::new("option_value", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(values)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_like_postgres() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(format_text("%s", &[s("int4")]).unwrap(), "int4");
        assert_eq!(
            format_text("\"%s\".\"%s\"", &[s("ns"), s("t")]).unwrap(),
            "\"ns\".\"t\""
        );
        assert_eq!(
            format_text("%I.%I", &[s("ns"), s("My T")]).unwrap(),
            "ns.\"My T\""
        );
        assert_eq!(
            format_text("%L, %L", &[s("it's"), None]).unwrap(),
            "'it''s', NULL"
        );
        assert_eq!(format_text("[%s] 100%%", &[None]).unwrap(), "[] 100%");
        assert_eq!(format_text("%2$s %1$s", &[s("a"), s("b")]).unwrap(), "b a");
        assert!(format_text("%s %s", &[s("a")]).is_err());
        assert!(format_text("%I", &[None]).is_err());
        assert!(format_text("%x", &[s("a")]).is_err());
        let big = "x".repeat(MAX_FORMAT_LEN);
        assert!(format_text("%s%s", &[s(&big), s(&big)]).is_err());
    }

    #[test]
    fn first_elements_of_key_vectors() {
        assert_eq!(first_element("2"), Some(2));
        assert_eq!(first_element("3 1"), Some(3));
        assert_eq!(first_element("{4,5}"), Some(4));
        assert_eq!(first_element(""), None);
    }

    #[test]
    fn options_from_literals() {
        let e = Expr::Literal(ScalarValue::Utf8(Some("{a=1,b}".into())), None);
        assert_eq!(option_texts(&e), vec!["a=1".to_string(), "b".to_string()]);
        assert!(option_texts(&Expr::Literal(ScalarValue::Utf8(None), None)).is_empty());
    }
}
