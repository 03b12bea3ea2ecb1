//! `int2vector` and `oidvector` values (pg_index.indkey, indclass, …): lists
//! in Arrow, on the wire as Postgres sends them — text as the elements
//! separated by spaces (`1 2`), binary as a one-dimensional array whose
//! subscripts start at 0. Tools (DBeaver, pg_dump) split the text form.

use arrow::array::{Array, AsArray, ListArray};
use arrow::datatypes::{DataType, Int16Type, Int32Type};
use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql};

/// One vector value.
#[derive(Debug)]
pub(crate) struct PgVector(pub(crate) Vec<i64>);

impl PgVector {
    /// Row `r` of a list column of small integers; None when NULL (or not
    /// such a list).
    pub(crate) fn at(array: &dyn Array, r: usize) -> Option<PgVector> {
        let list: &ListArray = array.as_list_opt::<i32>()?;
        if list.is_null(r) {
            return None;
        }
        let values = list.value(r);
        let out: Vec<i64> = match values.data_type() {
            DataType::Int16 => values
                .as_primitive::<Int16Type>()
                .iter()
                .map(|v| i64::from(v.unwrap_or(0)))
                .collect(),
            DataType::Int32 => values
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| i64::from(v.unwrap_or(0)))
                .collect(),
            _ => return None,
        };
        Some(PgVector(out))
    }
}

impl ToSql for PgVector {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let (element, width) = if *ty == Type::INT2_VECTOR {
            (Type::INT2, 2)
        } else {
            (Type::OID, 4)
        };
        let len = i32::try_from(self.0.len())?;
        out.put_i32(1); // dimensions
        out.put_i32(0); // no NULLs
        out.put_u32(element.oid());
        out.put_i32(len);
        out.put_i32(0); // lower bound
        for v in &self.0 {
            out.put_i32(width);
            if width == 2 {
                out.put_i16(i16::try_from(*v)?);
            } else {
                out.put_u32(u32::try_from(*v)?);
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2_VECTOR | Type::OID_VECTOR)
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for PgVector {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let text: Vec<String> = self.0.iter().map(i64::to_string).collect();
        out.put_slice(text.join(" ").as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int16Builder, ListBuilder};

    #[test]
    fn vectors_read_as_postgres_writes_them() {
        let mut b = ListBuilder::new(Int16Builder::new());
        b.values().append_value(1);
        b.values().append_value(3);
        b.append(true);
        b.append(false);
        let list = b.finish();
        let v = PgVector::at(&list, 0).unwrap();
        let mut text = BytesMut::new();
        v.to_sql_text(&Type::INT2_VECTOR, &mut text, &FormatOptions::default())
            .unwrap();
        assert_eq!(&text[..], b"1 3");
        let mut bin = BytesMut::new();
        v.to_sql(&Type::INT2_VECTOR, &mut bin).unwrap();
        assert_eq!(bin.len(), 20 + 2 * 6);
        assert!(PgVector::at(&list, 1).is_none());
    }
}
