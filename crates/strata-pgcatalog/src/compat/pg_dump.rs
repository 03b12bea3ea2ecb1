//! pg_dump 15's and psql's catalog queries, where a part DataFusion cannot
//! plan reads catalogs that are always empty in Strata (row-level policies,
//! publications).

use std::borrow::Cow;

/// A policy's roles, named with a correlated `ARRAY(SELECT … FROM pg_roles
/// WHERE oid = ANY(pol.polroles))` (pg_dump's policies query, psql's `\d`),
/// which DataFusion cannot run. Strata has no policies (`pg_policy` is
/// empty), so the whole `CASE … END` is NULL.
const POLICY_ROLES: &str = "CASE WHEN pol.polroles = '{0}' THEN NULL ELSE";

/// The publication-tables query names a publication's columns with a
/// correlated `generate_series(0, array_upper(pr.prattrs, 1))`, a lateral
/// table function DataFusion cannot plan. Strata has no publications
/// (`pg_publication_rel` is empty), so the column list is always NULL.
const PRATTRS_START: &str = "(CASE\n  WHEN pr.prattrs IS NOT NULL THEN";
const PRATTRS_END: &str = "ELSE NULL END) prattrs";

/// pg_dump's index query reads `i.indkey` as int2vector text (`1 2`) and
/// parses it by spaces; Strata's is a list, whose text is `{1,2}`.
const INDKEY: (&str, &str) = (
    "pg_catalog.pg_get_indexdef(i.indexrelid) AS indexdef, i.indkey,",
    "pg_catalog.pg_get_indexdef(i.indexrelid) AS indexdef, pg_catalog.array_to_string(i.indkey, ' ') AS indkey,",
);

/// The event-trigger query quotes each tag with a correlated
/// `ARRAY(SELECT quote_literal(x) FROM unnest(evttags))`, which DataFusion
/// cannot run. Strata has no event triggers (`pg_event_trigger` is empty).
const EVTTAGS: (&str, &str) = (
    "array_to_string(array(select quote_literal(x)  from unnest(evttags) as t(x)), ', ') as evttags",
    "CAST(NULL AS TEXT) AS evttags",
);

pub(super) fn rewrite(sql: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(sql);
    // `x OPERATOR(pg_catalog.=) ANY (…)` (pg_dump -t, psql's patterns): the
    // parser reads a qualified operator before ANY/ALL only as a plain one.
    if out.contains("OPERATOR(pg_catalog.") {
        for op in ["=", "<>", "<=", ">=", "<", ">"] {
            for quantifier in ["ANY", "ALL"] {
                let qualified = format!("OPERATOR(pg_catalog.{op}) {quantifier}");
                if out.contains(&qualified) {
                    out = Cow::Owned(out.replace(&qualified, &format!("{op} {quantifier}")));
                }
            }
        }
    }
    if out.contains(EVTTAGS.0) {
        out = Cow::Owned(out.replace(EVTTAGS.0, EVTTAGS.1));
    }
    if out.contains(INDKEY.0) {
        out = Cow::Owned(out.replace(INDKEY.0, INDKEY.1));
    }
    if let Some(start) = out.find(POLICY_ROLES)
        && let Some(end) = case_end(&out[start + POLICY_ROLES.len()..])
    {
        let end = start + POLICY_ROLES.len() + end;
        out = Cow::Owned(format!(
            "{}CAST(NULL AS TEXT){}",
            &out[..start],
            &out[end..]
        ));
    }
    if let Some(start) = out.find(PRATTRS_START)
        && let Some(len) = out[start..].find(PRATTRS_END)
    {
        let end = start + len + PRATTRS_END.len();
        out = Cow::Owned(format!(
            "{}CAST(NULL AS TEXT[]) AS prattrs{}",
            &out[..start],
            &out[end..]
        ));
    }
    out
}

/// The byte offset just past the `END` closing a CASE whose text after
/// `ELSE` is `rest` (outside parentheses and quotes).
fn case_end(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let (mut depth, mut quoted) = (0i32, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ if !quoted
                && depth == 0
                && rest[i..].len() >= 3
                && rest[i..i + 3].eq_ignore_ascii_case("end")
                && i > 0
                && !bytes[i - 1].is_ascii_alphanumeric()
                && bytes
                    .get(i + 3)
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_') =>
            {
                return Some(i + 3);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_roles_case_becomes_null() {
        let sql = "SELECT pol.polname, CASE WHEN pol.polroles = '{0}' THEN NULL ELSE f(array(select rolname from r where oid = any (pol.polroles) order by 1),',') END, x FROM pol";
        assert_eq!(
            rewrite(sql),
            "SELECT pol.polname, CAST(NULL AS TEXT), x FROM pol"
        );
    }
}
