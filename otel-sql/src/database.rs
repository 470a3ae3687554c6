//! The databases `TracedPool` supports, and what it needs to know about each: the
//! `db.system.name` value, the SQL dialect for fingerprints, and where the pool connects
//! (`db.namespace`, `server.address`, `server.port`).
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use otel_sql::TracedDatabase;
//! assert_eq!(<sqlx::Sqlite as TracedDatabase>::SYSTEM_NAME, "sqlite");
//! # }
//! ```

use sqlx::Database;

use crate::fingerprint::Dialect;

/// A sqlx database that `TracedPool` can instrument. Implemented for `sqlx::Postgres`,
/// `sqlx::MySql` and `sqlx::Sqlite` behind the features of the same names; sealed.
pub trait TracedDatabase: Database + sealed::Sealed {
    /// The `db.system.name` value (`postgresql`, `mysql`, `sqlite`).
    const SYSTEM_NAME: &'static str;
    /// Lexical rules used to fingerprint this database's SQL.
    const DIALECT: Dialect;

    /// `db.namespace`, `server.address` and `server.port` of a pool's connect options.
    fn endpoint(options: &<Self::Connection as sqlx::Connection>::Options) -> Endpoint;

    /// A hash of bound argument values, for telling duplicates (same shape, same values)
    /// from N+1 (same shape, other values). Hashes at most [`MAX_HASHED_ARGUMENT_BYTES`]
    /// bytes of the arguments' debug form; never stores them.
    fn arguments_hash(arguments: &Self::Arguments) -> u64;
}

/// Where a pool connects: the values of `db.namespace`, `server.address`, `server.port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// `db.namespace`: the database name (or the SQLite file name).
    pub namespace: Option<String>,
    /// `server.address`: the host name or socket path.
    pub address: Option<String>,
    /// `server.port`.
    pub port: Option<u16>,
}

/// How many bytes of an argument list's debug form [`TracedDatabase::arguments_hash`] reads.
pub const MAX_HASHED_ARGUMENT_BYTES: usize = 4096;

mod sealed {
    pub trait Sealed {}
}

/// A client/server database: namespace, host and port come from its connect options alike.
macro_rules! network_database {
    ($feature:literal, $db:ty, $system:literal, $dialect:expr, $options:ty) => {
        #[cfg(feature = $feature)]
        impl sealed::Sealed for $db {}
        #[cfg(feature = $feature)]
        impl TracedDatabase for $db {
            const SYSTEM_NAME: &'static str = $system;
            const DIALECT: Dialect = $dialect;

            fn endpoint(options: &$options) -> Endpoint {
                Endpoint {
                    namespace: options.get_database().map(str::to_owned),
                    address: Some(options.get_host().to_owned()),
                    port: Some(options.get_port()),
                }
            }

            fn arguments_hash(arguments: &Self::Arguments) -> u64 {
                debug_hash(arguments)
            }
        }
    };
}

network_database!(
    "postgres",
    sqlx::Postgres,
    "postgresql",
    Dialect::Postgres,
    sqlx::postgres::PgConnectOptions
);
network_database!(
    "mysql",
    sqlx::MySql,
    "mysql",
    Dialect::MySql,
    sqlx::mysql::MySqlConnectOptions
);

#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::Sqlite {}
#[cfg(feature = "sqlite")]
impl TracedDatabase for sqlx::Sqlite {
    const SYSTEM_NAME: &'static str = "sqlite";
    const DIALECT: Dialect = Dialect::Sqlite;

    fn endpoint(options: &sqlx::sqlite::SqliteConnectOptions) -> Endpoint {
        // sqlx names an in-memory database `file:sqlx-in-memory-<n>`; say what it is.
        let file = options.get_filename().to_string_lossy();
        let namespace = if file.starts_with("file:sqlx-in-memory-") {
            ":memory:".to_owned()
        } else {
            file.into_owned()
        };
        Endpoint {
            namespace: Some(namespace),
            address: None,
            port: None,
        }
    }

    fn arguments_hash(arguments: &Self::Arguments) -> u64 {
        debug_hash(arguments)
    }
}

/// Hashes a value's `Debug` form as it is written, without allocating, stopping after
/// [`MAX_HASHED_ARGUMENT_BYTES`]. sqlx's argument buffers are private; their `Debug` output
/// is the one stable view of the encoded values that all three drivers offer.
///
/// The formatter hands the text over in many small pieces (`SqliteArguments`, ` { `, a
/// digit, ...): each is folded with a few overlapping loads ([`fold_piece`]) and no
/// finaliser, which costs a fraction of hashing every piece on its own; the finaliser runs
/// once at the end.
#[allow(dead_code)]
fn debug_hash<T: std::fmt::Debug>(value: &T) -> u64 {
    use std::fmt::Write;
    struct HashWriter {
        state: u64,
        seen: usize,
    }
    impl Write for HashWriter {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = MAX_HASHED_ARGUMENT_BYTES.saturating_sub(self.seen);
            let bytes = &s.as_bytes()[..s.len().min(room)];
            self.seen += bytes.len();
            self.state = fold_piece(self.state, bytes);
            if s.len() > room {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut w = HashWriter {
        state: 0x5eed,
        seen: 0,
    };
    let _ = write!(w, "{value:?}");
    crate::fingerprint::finalize(w.state ^ w.seen as u64)
}

/// Folds one piece into `h`: its length, then 8-byte words (the last one overlapping the
/// one before when the length is not a multiple of 8), or for a piece under 8 bytes two
/// overlapping 4-byte words or three single bytes. The words determine every byte given the
/// length, so equal states mean equal pieces short of a hash collision. Hand-written (the
/// small-input reads of wyhash-style hashes) because the formatter's pieces are a few bytes
/// long and a byte loop per piece cost more than the formatting.
fn fold_piece(h: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(K);
    let word8 = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let word4 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let n = bytes.len();
    let h = step(h, n as u64);
    match n {
        0 => h,
        1..=3 => step(
            h,
            u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16,
        ),
        4..=7 => step(h, word4(bytes) | word4(&bytes[n - 4..]) << 32),
        _ => {
            let mut h = h;
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                h = step(h, word8(chunk));
            }
            if chunks.remainder().is_empty() {
                h
            } else {
                step(h, word8(&bytes[n - 8..]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Args(Vec<i64>, String);

    #[test]
    fn fold_piece_tells_every_short_piece_apart() {
        // every piece of up to 3 bytes over a small alphabet, and pieces of 4..=17 bytes
        // differing in one position: all distinct
        let mut seen = std::collections::HashSet::new();
        let alphabet = [b'a', b'b', b'0', b' '];
        let mut pieces: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=3 {
            let mut piece = vec![0u8; len];
            for mut i in 0..alphabet.len().pow(len as u32) {
                for b in piece.iter_mut() {
                    *b = alphabet[i % alphabet.len()];
                    i /= alphabet.len();
                }
                pieces.push(piece.clone());
            }
        }
        for len in 4..=17 {
            for at in 0..len {
                let mut piece = vec![b'x'; len];
                piece[at] = b'y';
                pieces.push(piece);
            }
            pieces.push(vec![b'x'; len]);
        }
        for piece in &pieces {
            assert!(seen.insert(fold_piece(7, piece)), "{piece:?}");
        }
    }

    #[test]
    fn debug_hash_tells_values_apart_and_is_stable() {
        let a = debug_hash(&Args(vec![1, 2], "x".into()));
        assert_eq!(a, debug_hash(&Args(vec![1, 2], "x".into())));
        assert_ne!(a, debug_hash(&Args(vec![1, 3], "x".into())));
        assert_ne!(a, debug_hash(&Args(vec![1, 2], "y".into())));
        // longer than one buffer: every byte up to the cap counts
        let long = |c: char| Args(vec![7; 100], std::iter::repeat_n(c, 600).collect());
        assert_eq!(debug_hash(&long('a')), debug_hash(&long('a')));
        assert_ne!(debug_hash(&long('a')), debug_hash(&long('b')));
        // beyond the cap nothing more is read
        let capped = |c: char| {
            let mut s: String = std::iter::repeat_n('z', MAX_HASHED_ARGUMENT_BYTES).collect();
            s.push(c);
            Args(vec![], s)
        };
        assert_eq!(debug_hash(&capped('a')), debug_hash(&capped('b')));
    }
}
