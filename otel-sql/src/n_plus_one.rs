//! N+1 query detection for sqlx: every query run through [`TracedPool`](crate::TracedPool)
//! feeds otel-core's repeated-shape detector with its fingerprint, kind, bound-value hash and
//! a sqlx-specific fix; this module adds the test helper that fails on findings.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! let pool = otel_sql::TracedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! otel_sql::assert_no_n_plus_one(async {
//!     sqlx::query("SELECT 1").execute(&pool).await.unwrap();
//! })
//! .await;
//! # Ok(()) }
//! ```
//!
//! Call sites: sqlx calls `Executor` methods from its own generic code, so `#[track_caller]`
//! on them would name sqlx, not you. Pass `pool.here()` (a `#[track_caller]` method) as the
//! executor where you want the finding to name the line of the query; otherwise the
//! detector names the enclosing span (your `#[instrument]`ed function).

use std::fmt::Write as _;
use std::future::Future;

use otel_core::repeated_shape::{self, Finding};

use crate::fingerprint::{Dialect, Fingerprint, StatementKind};

/// Runs `fut` in a fresh detection scope and panics, listing every finding (kind, shape,
/// count, call site, suggested fix), when the detector flagged anything.
pub async fn assert_no_n_plus_one<F: Future>(fut: F) -> F::Output {
    let (out, findings) = repeated_shape::capture(fut).await;
    if !findings.is_empty() {
        panic!("{}", describe_findings(&findings));
    }
    out
}

/// Runs `fut` in a fresh detection scope and returns its output with the findings.
pub async fn n_plus_one_findings<F: Future>(fut: F) -> (F::Output, Vec<Finding>) {
    repeated_shape::capture(fut).await
}

/// A readable report of `findings`, one paragraph per finding.
pub fn describe_findings(findings: &[Finding]) -> String {
    let mut out = format!("{} repeated-query finding(s):\n", findings.len());
    for f in findings {
        let _ = writeln!(
            out,
            "- {}: `{}` ran {} times ({:?} in all)",
            f.kind.as_str(),
            f.shape,
            f.count,
            f.total_duration
        );
        if let Some(site) = &f.call_site {
            let _ = writeln!(out, "  at {site}");
        }
        if let Some(source) = &f.source {
            let _ = writeln!(out, "  after `{source}`");
        }
        if let Some(fix) = &f.suggestion {
            let _ = writeln!(out, "  fix: {fix}");
        }
    }
    out
}

/// The sqlx-specific fix for repeats of `fp`, computed once per cached fingerprint.
pub(crate) fn suggestion(fp: &Fingerprint, dialect: Dialect) -> Option<&str> {
    fp.suggestion_cell()
        .get_or_init(|| compute_suggestion(fp, dialect).map(String::into_boxed_str))
        .as_deref()
}

fn compute_suggestion(fp: &Fingerprint, dialect: Dialect) -> Option<String> {
    let table = fp.collection().unwrap_or("the table");
    match (fp.kind(), fp.operation()) {
        (StatementKind::Ignored, _) => None,
        (StatementKind::Write, Some("INSERT")) => Some(match dialect {
            Dialect::Postgres => format!(
                "insert all rows into {table} in one statement: `sqlx::QueryBuilder::push_values(rows, |mut b, row| {{ b.push_bind(..); }})`, or `INSERT .. SELECT * FROM UNNEST($1::type[], ..)` with one `Vec` bind per column"
            ),
            _ => format!(
                "insert all rows into {table} in one statement: `sqlx::QueryBuilder::push_values(rows, |mut b, row| {{ b.push_bind(..); }})`"
            ),
        }),
        (_, op) => {
            let column = key_column(fp.sanitized()).unwrap_or("id");
            let op = op.unwrap_or("SELECT");
            Some(match dialect {
                Dialect::Postgres => format!(
                    "run one {op} for all keys: `WHERE {column} = ANY($1)` with a `Vec` of keys bound, or JOIN {table} into the query that produced the keys"
                ),
                _ => format!(
                    "run one {op} for all keys: `sqlx::QueryBuilder` with `push(\"... WHERE {column} IN (\")`, `separated(\", \")` and `push_bind(key)` per key, then `push(\")\")`; or JOIN {table} into the query that produced the keys"
                ),
            })
        }
    }
}

/// The column of the last `<column> = ?` comparison in sanitised text.
fn key_column(sanitized: &str) -> Option<&str> {
    let idx = sanitized.rfind(" = ?")?;
    let before = &sanitized[..idx];
    let start = before.rfind([' ', '(', ',']).map_or(0, |i| i + 1);
    let col = &before[start..];
    (!col.is_empty()).then_some(col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::fingerprint_with;

    #[test]
    fn suggestions_name_the_key_column_and_the_sqlx_tool() {
        let fp = fingerprint_with(
            "SELECT * FROM comments WHERE post_id = $1",
            Dialect::Postgres,
        );
        assert_eq!(
            suggestion(&fp, Dialect::Postgres),
            Some(
                "run one SELECT for all keys: `WHERE post_id = ANY($1)` with a `Vec` of keys bound, or JOIN comments into the query that produced the keys"
            )
        );
        let fp = fingerprint_with(
            "SELECT * FROM comments c WHERE c.post_id = ?",
            Dialect::MySql,
        );
        assert!(
            suggestion(&fp, Dialect::MySql)
                .unwrap()
                .contains("WHERE c.post_id IN (")
        );
        let fp = fingerprint_with("INSERT INTO t (a) VALUES (?)", Dialect::Sqlite);
        assert!(
            suggestion(&fp, Dialect::Sqlite)
                .unwrap()
                .contains("push_values")
        );
        let fp = fingerprint_with("BEGIN", Dialect::Sqlite);
        assert_eq!(suggestion(&fp, Dialect::Sqlite), None);
    }
}
