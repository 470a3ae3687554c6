//! `fingerprint::cached`: a text seen before is the same fingerprint on every thread while the
//! process-wide table has room, and the table stops growing at `INTERNED_MAX_BYTES` without
//! changing any result. Its own test binary: the table is process-wide.

use otel_sql::fingerprint::{
    CACHE_MAX_TEXT_LEN, CachedFingerprint, Dialect, INTERNED_MAX_BYTES, cached, fingerprint_with,
};

/// A distinct query text of about `CACHE_MAX_TEXT_LEN` bytes.
fn long_query(i: usize) -> String {
    let columns = "some_column_name, ".repeat((CACHE_MAX_TEXT_LEN - 100) / 18);
    format!("SELECT {columns}id FROM table_{i} WHERE id = {i}")
}

fn on_another_thread(sql: &str) -> CachedFingerprint {
    let sql = sql.to_owned();
    std::thread::spawn(move || cached(&sql, Dialect::Postgres))
        .join()
        .unwrap()
}

#[test]
fn shared_across_threads_until_the_table_is_full_then_still_right() {
    // Room: one text is one fingerprint for the whole process.
    let first = long_query(0);
    let here = cached(&first, Dialect::Postgres);
    assert!(CachedFingerprint::ptr_eq(&here, &on_another_thread(&first)));
    assert_eq!(*here, fingerprint_with(&first, Dialect::Postgres));

    // Fill the table: each long text holds more than 2 KiB of it.
    let texts = INTERNED_MAX_BYTES / CACHE_MAX_TEXT_LEN + 10;
    for i in 1..=texts {
        let sql = long_query(i);
        let fp = cached(&sql, Dialect::Postgres);
        assert_eq!(*fp, fingerprint_with(&sql, Dialect::Postgres), "text {i}");
        assert_eq!(fp.summary(), format!("SELECT table_{i}"));
    }

    // Full: a new text is fingerprinted per thread (no longer one for the process), and
    // still cached on its thread and right.
    let late = long_query(texts + 1);
    let a = cached(&late, Dialect::Postgres);
    let b = cached(&late, Dialect::Postgres);
    assert!(CachedFingerprint::ptr_eq(&a, &b), "the thread's own cache");
    let elsewhere = on_another_thread(&late);
    assert!(!CachedFingerprint::ptr_eq(&a, &elsewhere));
    assert_eq!(*a, *elsewhere);
    assert_eq!(*a, fingerprint_with(&late, Dialect::Postgres));

    // What was in the table before it filled up still is.
    assert!(CachedFingerprint::ptr_eq(
        &cached(&first, Dialect::Postgres),
        &on_another_thread(&first)
    ));
}

#[test]
fn dialects_and_overlong_texts_are_told_apart() {
    let sql = "SELECT * FROM t WHERE a = \"x\"";
    let generic = cached(sql, Dialect::Generic);
    let mysql = cached(sql, Dialect::MySql);
    assert_eq!(generic.sanitized(), "SELECT * FROM t WHERE a = \"x\"");
    assert_eq!(mysql.sanitized(), "SELECT * FROM t WHERE a = ?");

    let overlong = format!("SELECT {} FROM t", "a, ".repeat(CACHE_MAX_TEXT_LEN));
    let fp = cached(&overlong, Dialect::Generic);
    assert_eq!(*fp, fingerprint_with(&overlong, Dialect::Generic));
    assert!(!CachedFingerprint::ptr_eq(
        &fp,
        &cached(&overlong, Dialect::Generic)
    ));
}
