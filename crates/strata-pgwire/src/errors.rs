//! Strata errors as Postgres ErrorResponses.

use pgwire::error::{ErrorInfo, PgWireError};
use strata_common::StrataError;

pub fn to_pg(e: StrataError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

pub fn error_info(e: StrataError) -> ErrorInfo {
    if matches!(e, StrataError::Internal(_) | StrataError::Storage(_)) {
        tracing::error!(error = %e, "statement failed");
    } else {
        tracing::debug!(error = %e, sqlstate = e.sqlstate(), "statement failed");
    }
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.to_string());
    if let StrataError::WithContext { context, .. } = e {
        info.where_context = Some(context);
    }
    info
}

pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}
