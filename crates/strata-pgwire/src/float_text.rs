//! REAL and DOUBLE PRECISION in text as Postgres writes them (`34`, not
//! pgwire's `34.0`; `1e+20`; `Infinity`), so psql, COPY TO and text-mode
//! drivers see what PostgreSQL would send.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use bytes::BytesMut;
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql};

#[derive(Debug)]
pub(crate) enum PgFloat {
    F4(f32),
    F8(f64),
}

impl PgFloat {
    /// Row `r` of a float column; None when NULL or not a float column.
    pub(crate) fn at(array: &dyn Array, r: usize) -> Option<PgFloat> {
        if array.is_null(r) {
            return None;
        }
        match array.data_type() {
            DataType::Float32 => Some(PgFloat::F4(array.as_primitive::<Float32Type>().value(r))),
            DataType::Float64 => Some(PgFloat::F8(array.as_primitive::<Float64Type>().value(r))),
            _ => None,
        }
    }
}

impl ToSql for PgFloat {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            PgFloat::F4(v) => v.to_sql(ty, out),
            PgFloat::F8(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::FLOAT4 | Type::FLOAT8)
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for PgFloat {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let text = match self {
            PgFloat::F4(v) => strata_sql::pgtext::float4_text(*v),
            PgFloat::F8(v) => strata_sql::pgtext::float8_text(*v),
        };
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}
