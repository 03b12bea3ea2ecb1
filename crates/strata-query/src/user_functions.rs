//! `current_user` and `session_user`: per-session constants, registered on the
//! session's own DataFusion context (each session is one user's).

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

#[derive(Debug, PartialEq, Eq, Hash)]
struct UserName {
    name: &'static str,
    value: String,
    signature: Signature,
}

impl ScalarUDFImpl for UserName {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.value.clone(),
        ))))
    }
}

/// `current_user` is the acting user (the EXECUTE AS target inside one);
/// `session_user` the user that logged in.
pub(crate) fn register(ctx: &SessionContext, current_user: &str, session_user: &str) {
    for (name, value) in [
        ("current_user", current_user),
        ("session_user", session_user),
    ] {
        ctx.register_udf(ScalarUDF::from(UserName {
            name,
            value: value.to_string(),
            signature: Signature::nullary(Volatility::Stable),
        }));
    }
}
