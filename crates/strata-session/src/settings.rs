//! Session settings: SET, SHOW, RESET and DISCARD, the values a client sent
//! in its startup packet (which RESET returns to, as in Postgres), and
//! statement_timeout, which cuts a statement off with 57014.

use crate::session::Session;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strata_common::{Result, StrataError};
use strata_pgcatalog::Vars;
use strata_pgcatalog::functions::text_arg;
use strata_query::output::{QueryOutput, batch_output};
use strata_sql::sqlparser::ast;
use tokio::time::Instant;

/// Settings a client may SHOW before it SETs them, with Postgres' defaults.
const DEFAULT_VARS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("server_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("max_identifier_length", "63"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("statement_timeout", "0"),
    ("server_version", "15.0"),
    ("server_version_num", "150000"),
    // Postgres' default; names resolve in the first entry that names a
    // namespace (`first_in_search_path` skips `$user`), i.e. public.
    ("search_path", "\"$user\", public"),
    // asyncpg reads it before every type lookup; an error there would abort
    // the transaction block the lookup runs in.
    ("jit", "off"),
    ("copy_memory_limit", "1GB"),
];

/// Startup parameters that are settings (the others name the user, database...).
const STARTUP_SETTINGS: &[&str] = &[
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "search_path",
    "statement_timeout",
];

/// Settings only the server sets.
const READ_ONLY: &[&str] = &[
    "server_encoding",
    "server_version",
    "server_version_num",
    "integer_datetimes",
    "max_identifier_length",
];

pub(crate) fn default_vars() -> BTreeMap<String, String> {
    DEFAULT_VARS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Session {
    /// Takes the settings among a client's startup parameters; they are also
    /// what RESET goes back to.
    pub fn apply_startup_parameters<'a>(
        &self,
        params: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        let mut pairs: Vec<(String, String)> = vec![];
        for (name, value) in params {
            if name.eq_ignore_ascii_case("options") {
                pairs.extend(command_line_settings(value));
            } else {
                pairs.push((name.clone(), value.clone()));
            }
        }
        for (name, value) in &pairs {
            let name = name.to_lowercase();
            if !STARTUP_SETTINGS.contains(&name.as_str()) {
                continue;
            }
            match normalize(&name, value) {
                Ok(v) => {
                    self.vars().lock().insert(name.clone(), v.clone());
                    self.reset_values.lock().insert(name, v);
                }
                Err(e) => tracing::debug!(setting = %name, error = %e, "ignored startup setting"),
            }
        }
    }

    pub(crate) fn set(&self, set: &ast::Set) -> Result<QueryOutput> {
        match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_lowercase();
                let value = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        ast::Expr::Identifier(id) => id.value.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                if value.eq_ignore_ascii_case("default") {
                    return self.reset(Some(&name));
                }
                self.assign(name, &value)
            }
            ast::Set::SetTimeZone { value, .. } => {
                let v = value.to_string();
                self.assign("timezone".into(), v.trim_matches('\''))
            }
            ast::Set::SetRole { role_name, .. } => {
                let name = role_name.as_ref().map(strata_sql::normalize_ident);
                self.set_role("SET ROLE", name.as_deref())
            }
            ast::Set::SetSessionAuthorization(param) => {
                let name = match &param.kind {
                    ast::SetSessionAuthorizationParamKind::Default => None,
                    ast::SetSessionAuthorizationParamKind::User(id) => {
                        Some(strata_sql::normalize_ident(id))
                    }
                };
                self.set_role("SET SESSION AUTHORIZATION", name.as_deref())
            }
            // Other SET forms (SET NAMES, SET TRANSACTION ...) have no effect here.
            _ => Ok(QueryOutput::command("SET")),
        }
    }

    /// SET ROLE and SET SESSION AUTHORIZATION. Strata has no role switching
    /// inside a session (a statement acts as another user through EXECUTE AS
    /// USER, which checks privileges each time), so they are refused rather
    /// than answered SET while nothing changes: a pooler relying on them
    /// would keep its own privileges. Naming the login user itself, NONE or
    /// DEFAULT already holds and is accepted.
    fn set_role(&self, what: &str, name: Option<&str>) -> Result<QueryOutput> {
        match name {
            None => Ok(QueryOutput::command("SET")),
            Some(n) if n.eq_ignore_ascii_case("none") || n == self.session_user() => {
                Ok(QueryOutput::command("SET"))
            }
            Some(n) => Err(StrataError::unsupported(format!(
                "{what} is not supported (cannot act as \"{n}\"); run a statement as another user with EXECUTE AS USER '{n}' (...)"
            ))),
        }
    }

    fn assign(&self, name: String, value: &str) -> Result<QueryOutput> {
        if READ_ONLY.contains(&name.as_str()) {
            return Err(StrataError::CantChangeRuntimeParam(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        match name.as_str() {
            "role" => return self.set_role("SET ROLE", Some(value.trim())),
            "session_authorization" => {
                return self.set_role("SET SESSION AUTHORIZATION", Some(value.trim()));
            }
            _ => {}
        }
        let value = normalize(&name, value)?;
        if name == "copy_memory_limit" {
            let max = self.engine().options().max_copy_memory;
            if memory_bytes(&value)? > max {
                return Err(StrataError::InvalidParameterValue(format!(
                    "copy_memory_limit can be at most {} on this server ([limits] max_copy_memory_mb)",
                    show_memory(max)
                )));
            }
        }
        let mut vars = self.vars().lock();
        check_room(&vars, &name)?;
        vars.insert(name, value);
        Ok(QueryOutput::command("SET"))
    }

    pub(crate) fn show(&self, name: &str) -> Result<QueryOutput> {
        let schema = show_schema(name);
        if name == "all" {
            let vars = self.vars().lock().clone();
            let names: Vec<&str> = vars.keys().map(String::as_str).collect();
            let values: Vec<&str> = vars.values().map(String::as_str).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                ],
            )
            .map_err(|e| StrataError::internal(e.to_string()))?;
            return Ok(batch_output(schema, vec![batch], "SHOW"));
        }
        let key = match name {
            "transaction isolation level" => "transaction_isolation",
            "time zone" => "timezone",
            other => other,
        };
        let value = self.vars().lock().get(key).cloned().ok_or_else(|| {
            StrataError::UndefinedObject(format!("unrecognized configuration parameter \"{name}\""))
        })?;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value]))],
        )
        .map_err(|e| StrataError::internal(e.to_string()))?;
        Ok(batch_output(schema, vec![batch], "SHOW"))
    }

    /// RESET name (None: RESET ALL): back to the startup or default value.
    pub(crate) fn reset(&self, name: Option<&str>) -> Result<QueryOutput> {
        let reset_values = self.reset_values.lock().clone();
        match name {
            None => *self.vars().lock() = reset_values,
            Some(name) => {
                if READ_ONLY.contains(&name) {
                    return Err(StrataError::CantChangeRuntimeParam(format!(
                        "parameter \"{name}\" cannot be changed"
                    )));
                }
                let mut vars = self.vars().lock();
                match reset_values.get(name) {
                    Some(v) => vars.insert(name.to_string(), v.clone()),
                    None => vars.remove(name),
                };
            }
        }
        Ok(QueryOutput::command("RESET"))
    }

    /// DISCARD ALL: settings back to their reset values and SQL-level prepared
    /// statements gone. Not inside a transaction block, as in Postgres.
    pub(crate) fn discard(&self, what: &ast::DiscardObject) -> Result<QueryOutput> {
        if let ast::DiscardObject::ALL = what {
            if self.txn().in_block() {
                return Err(StrataError::ActiveSqlTransaction(
                    "DISCARD ALL cannot run inside a transaction block".into(),
                ));
            }
            self.reset(None)?;
            self.sql_prepared.lock().clear();
        }
        Ok(QueryOutput::command(&format!("DISCARD {what}")))
    }

    /// How much memory the rows of one COPY FROM may take before it fails
    /// (they are all held until the COPY commits them together).
    pub fn copy_memory_limit(&self) -> usize {
        self.vars()
            .lock()
            .get("copy_memory_limit")
            .and_then(|v| memory_bytes(v).ok())
            .unwrap_or(DEFAULT_COPY_MEMORY_LIMIT)
            .min(self.engine().options().max_copy_memory)
    }

    /// statement_timeout, when one is set.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let ms = self
            .vars()
            .lock()
            .get("statement_timeout")
            .and_then(|v| duration_ms(v).ok())?;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// A setting's value as SHOW will give it, checked where a bad value would
/// break something later.
fn normalize(name: &str, value: &str) -> Result<String> {
    match name {
        "statement_timeout" => Ok(show_duration(duration_ms(value)?)),
        "copy_memory_limit" => Ok(show_memory(memory_bytes(value)?)),
        "client_encoding" => match value.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "UTF8" | "UNICODE" => Ok("UTF8".into()),
            _ => Err(StrataError::unsupported(format!(
                "client encoding \"{value}\" is not supported; Strata speaks UTF8"
            ))),
        },
        "extra_float_digits" => match value.trim().parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => Ok(n.to_string()),
            _ => Err(StrataError::InvalidParameterValue(format!(
                "invalid value for parameter \"extra_float_digits\": \"{value}\""
            ))),
        },
        _ => Ok(value.to_string()),
    }
}

const DEFAULT_COPY_MEMORY_LIMIT: usize = 1 << 30;

/// What `set_config` may not do that SET checks: settings that are
/// read-only, switch users or are bounded by the server go through SET only,
/// and the number of distinct settings is bounded the same way.
pub(crate) fn check_set_config(vars: &BTreeMap<String, String>, name: &str) -> Result<()> {
    if READ_ONLY.contains(&name)
        || matches!(
            name,
            "role" | "session_authorization" | "copy_memory_limit" | "statement_timeout"
        )
    {
        return Err(StrataError::CantChangeRuntimeParam(format!(
            "set_config cannot change \"{name}\"; use SET"
        )));
    }
    check_room(vars, name)
}

/// Each distinct name a client sets is kept for the session: bound them.
fn check_room(vars: &BTreeMap<String, String>, name: &str) -> Result<()> {
    if !vars.contains_key(name) && vars.len() >= MAX_SETTINGS {
        return Err(StrataError::ProgramLimitExceeded(format!(
            "a session can set at most {MAX_SETTINGS} distinct parameters"
        )));
    }
    Ok(())
}

/// The most distinct settings one session may hold.
const MAX_SETTINGS: usize = 1000;

/// A memory setting in bytes: a number (kB, as Postgres reads memory
/// settings) or a number with a unit (`B`, `kB`, `MB`, `GB`).
fn memory_bytes(value: &str) -> Result<usize> {
    let v = value.trim().trim_matches('\'').trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let bad = || {
        StrataError::InvalidParameterValue(format!(
            "invalid value for a memory setting: \"{value}\" (use a size such as 64MB)"
        ))
    };
    let n: usize = num.parse().map_err(|_| bad())?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "kb" => 1 << 10,
        "b" => 1,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

fn show_memory(bytes: usize) -> String {
    for (unit, scale) in [
        ("TB", 1usize << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("kB", 1 << 10),
    ] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

/// A duration setting in milliseconds: a number (ms) or a number with a unit
/// (`ms`, `s`, `min`, `h`, `d`), as Postgres reads them.
fn duration_ms(value: &str) -> Result<u64> {
    let v = value.trim().trim_matches('\'').trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let bad = || {
        StrataError::InvalidParameterValue(format!(
            "invalid value for parameter \"statement_timeout\": \"{value}\""
        ))
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim().to_lowercase().as_str() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(bad()),
    };
    let ms = n * scale;
    if !(0.0..=i32::MAX as f64).contains(&ms) {
        return Err(bad());
    }
    Ok(ms.round() as u64)
}

fn show_duration(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

pub(crate) fn variable_name(v: &[ast::Ident]) -> String {
    v.iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        return Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
        ]));
    }
    // Postgres names the column after the parameter's canonical spelling.
    let col = match name {
        "transaction isolation level" => "transaction_isolation",
        "time zone" | "timezone" => "TimeZone",
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        other => other,
    };
    Arc::new(Schema::new(vec![Field::new(col, DataType::Utf8, false)]))
}

/// A statement's rows that end with 57014 once `deadline` passes.
pub(crate) fn until_deadline(
    stream: SendableRecordBatchStream,
    deadline: Instant,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let sleep = Box::pin(tokio::time::sleep_until(deadline));
    let rows = futures::stream::unfold(Some((stream, sleep)), |state| async move {
        let (mut stream, mut sleep) = state?;
        match futures::future::select(sleep.as_mut(), stream.next()).await {
            futures::future::Either::Left(_) => Some((
                Err(DataFusionError::External(Box::new(
                    StrataError::StatementTimeout,
                ))),
                None,
            )),
            futures::future::Either::Right((item, _)) => {
                item.map(|item| (item, Some((stream, sleep))))
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, rows))
}

/// Applies the deadline to what a statement streams.
pub(crate) fn output_until(out: QueryOutput, deadline: Instant) -> QueryOutput {
    match out {
        QueryOutput::Rows {
            schema,
            stream,
            tag,
        } => QueryOutput::Rows {
            schema,
            stream: until_deadline(stream, deadline),
            tag,
        },
        QueryOutput::CopyOut {
            schema,
            stream,
            options,
        } => QueryOutput::CopyOut {
            schema,
            stream: until_deadline(stream, deadline),
            options,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_show_like_postgres() {
        assert_eq!(duration_ms("5000").unwrap(), 5000);
        assert_eq!(duration_ms("'100ms'").unwrap(), 100);
        assert_eq!(duration_ms("1.5s").unwrap(), 1500);
        assert_eq!(duration_ms("2min").unwrap(), 120_000);
        assert!(duration_ms("soon").is_err());
        assert!(duration_ms("-1").is_err());
        assert_eq!(show_duration(5000), "5s");
        assert_eq!(show_duration(150), "150ms");
        assert_eq!(show_duration(120_000), "2min");
        assert_eq!(show_duration(0), "0");
        assert_eq!(memory_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(memory_bytes("'1GB'").unwrap(), 1 << 30);
        assert_eq!(memory_bytes("100").unwrap(), 100 << 10);
        assert!(memory_bytes("lots").is_err());
        assert_eq!(show_memory(64 << 20), "64MB");
        assert_eq!(show_memory(1500), "1500B");
    }
}

/// `current_setting(name [, missing_ok])` and `set_config(name, value,
/// is_local)` over the session's settings (what SHOW and SET see).
#[derive(Debug)]
struct Setting {
    name: &'static str,
    vars: Vars,
    signature: Signature,
}

impl PartialEq for Setting {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.vars, &other.vars)
    }
}

impl Eq for Setting {}

impl std::hash::Hash for Setting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.vars) as usize).hash(state);
    }
}

impl ScalarUDFImpl for Setting {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let name = text_arg(&args.args, 0)?.unwrap_or_default().to_lowercase();
        let value = if self.name == "set_config" {
            let value = text_arg(&args.args, 1)?.unwrap_or_default();
            let mut vars = self.vars.lock();
            check_set_config(&vars, &name)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            vars.insert(name, value.clone());
            Some(value)
        } else {
            let missing_ok = matches!(
                args.args.get(1),
                Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
            );
            match self.vars.lock().get(&name) {
                Some(v) => Some(v.clone()),
                None if missing_ok => None,
                None => {
                    return Err(datafusion::error::DataFusionError::External(Box::new(
                        strata_common::StrataError::UndefinedObject(format!(
                            "unrecognized configuration parameter \"{name}\""
                        )),
                    )));
                }
            }
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
    }
}

/// Registers the settings functions on a session's DataFusion context.
pub(crate) fn register_functions(ctx: &SessionContext, vars: &Vars) {
    use datafusion::logical_expr::TypeSignature;
    for (name, arities) in [("current_setting", vec![1, 2]), ("set_config", vec![3])] {
        ctx.register_udf(ScalarUDF::from(Setting {
            name,
            vars: vars.clone(),
            signature: Signature::one_of(
                arities.into_iter().map(TypeSignature::Any).collect(),
                Volatility::Volatile,
            ),
        }));
    }
}

/// The settings in a startup `options` parameter, given as on the `postgres`
/// command line: `-c name=value`, `-cname=value` or `--name=value`, separated
/// by spaces (`\ ` is a space inside a value). Other switches are ignored.
pub(crate) fn command_line_settings(options: &str) -> Vec<(String, String)> {
    let mut words = vec![];
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = vec![];
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        let setting = if w == "-c" {
            words.next()
        } else {
            w.strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .map(str::to_string)
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod command_line_tests {
    use super::command_line_settings as parse;

    #[test]
    fn options_parameter_forms() {
        assert_eq!(
            parse("-c search_path=app -cstatement_timeout=5s --application-name=my\\ app -d 5"),
            vec![
                ("search_path".to_string(), "app".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
                ("application_name".to_string(), "my app".to_string()),
            ]
        );
        assert!(parse("").is_empty());
        assert!(parse("-c").is_empty());
    }
}
