//! Property tests of `otel_sql::fingerprint`: no panic on any input, idempotence, literal
//! and IN-list-length insensitivity, no literal echoed.

use otel_sql::fingerprint::{Dialect, fingerprint, fingerprint_with};
use proptest::prelude::*;

const DIALECTS: [Dialect; 4] = [
    Dialect::Generic,
    Dialect::Postgres,
    Dialect::MySql,
    Dialect::Sqlite,
];

/// SQL-like token soup: keywords, identifiers, every literal and comment form, broken ones too.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "SELECT", "select", "FROM", "WHERE", "IN", "VALUES", "INSERT", "INTO", "UPDATE", "SET",
            "DELETE", "JOIN", "ON", "AND", "OR", "NULL", "TRUE", "false", "BEGIN", "COMMIT",
            "WITH", "AS", "(", ")", ",", ";", ".", "::", "=", "<>", "*", "-", "--", "/*", "*/",
            "#", "'", "\"", "`", "$", "$$", "$a$", "?", "?1", "$1", ":name", "@p1", "E'", "N'",
            "X'", "\\", "\n", "é", "0x1F", "1e-3", ".5", "users", "t.id",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
        "[0-9]{1,6}",
        "'[^']{0,6}'",
        "\\$[a-z]{0,3}\\$[^$]{0,5}\\$[a-z]{0,3}\\$",
    ]
}

fn soup() -> impl Strategy<Value = String> {
    join(token())
}

/// Tokens that leave the lexer outside any literal or comment afterwards.
fn closed_token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "SELECT", "FROM", "WHERE", "IN", "VALUES", "(", ")", ",", ";", ".", "::", "=", "*",
            "NULL", "?", "$1", ":name", "@p1", "users", "t.id", "0x1F", "1e-3", "*/", "é",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
        "[0-9]{1,6}",
        "'[^'\\\\]{0,6}'",
    ]
}

fn join(tokens: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::collection::vec((tokens, prop::sample::select(vec!["", " ", "\t"])), 0..40).prop_map(
        |parts| {
            parts
                .into_iter()
                .map(|(t, sep)| format!("{t}{sep}"))
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        for d in DIALECTS {
            let _ = fingerprint_with(&text, d);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes_as_lossy_text(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        for d in DIALECTS {
            let _ = fingerprint_with(&text, d);
        }
    }

    #[test]
    fn idempotent_on_sql_like_soup(text in soup()) {
        for d in DIALECTS {
            let once = fingerprint_with(&text, d);
            let twice = fingerprint_with(once.sanitized(), d);
            prop_assert_eq!(twice.sanitized(), once.sanitized(), "dialect {:?}, input {:?}", d, text);
            prop_assert_eq!(twice.hash(), once.hash());
        }
    }

    #[test]
    fn literal_values_and_list_lengths_do_not_change_the_fingerprint(
        a in any::<i64>(), b in "[a-zA-Z0-9 ]{0,12}", list in prop::collection::vec(any::<u32>(), 1..20),
    ) {
        let base = fingerprint("SELECT * FROM t WHERE a = 1 AND b = 'x' AND c IN (1)");
        let list: Vec<String> = list.iter().map(u32::to_string).collect();
        let sql = format!("select * from t where a = {a} and b = '{b}' and c in ({})", list.join(", "));
        let fp = fingerprint(&sql);
        prop_assert_eq!(fp.hash(), base.hash());
        prop_assert_eq!(fp.sanitized(), "SELECT * FROM t WHERE a = ? AND b = ? AND c IN (?)");
    }

    #[test]
    fn quoted_secrets_never_reach_the_sanitised_text(secret in "[a-z]{6,12}", prefix in join(closed_token())) {
        // A secret inside a literal never shows, whatever well-formed SQL precedes it.
        for d in DIALECTS {
            let sql = format!("SELECT * FROM t WHERE a = 'zz{secret}zz'");
            prop_assert!(!fingerprint_with(&sql, d).sanitized().contains(&secret));
            let sql = format!("{prefix} 'zz{secret}zz'");
            let out = fingerprint_with(&sql, d);
            prop_assert!(!out.sanitized().contains(&format!("zz{secret}zz")), "{:?} -> {:?}", sql, out.sanitized());
        }
    }
}

#[test]
fn multi_row_values_share_a_shape() {
    let a = fingerprint("INSERT INTO t (a, b) VALUES (1, 'x')");
    let b = fingerprint("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')");
    assert_eq!(a.hash(), b.hash());
    assert_eq!(b.sanitized(), "INSERT INTO t (a, b) VALUES (?)");
}
