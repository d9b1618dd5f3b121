//! One connection to the ledger, SQLite or PostgreSQL, that runs the same
//! SQL on both: queries are written once with `?N` placeholders (turned into
//! `$N` for PostgreSQL), values travel as a small [`Value`] enum, and rows
//! come back as values too, so every query of the journal is backend-blind.
//! What differs (the write lock, new ids, the catalogue, column types) is
//! said here once.

use std::borrow::Cow;
use std::fmt;

use super::postgres::PgConn;

/// A value sent to or read from the ledger. The schema only has integers and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// Something that can be a query parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for Cow<'_, str> {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// The parameters of a query, as `params![a, b]` (the same shape as rusqlite's).
#[macro_export]
#[doc(hidden)]
macro_rules! journal_params {
    () => {
        &[] as &[&dyn $crate::journal::db::ToValue]
    };
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::journal::db::ToValue),+] as &[&dyn $crate::journal::db::ToValue]
    };
}
pub use crate::journal_params as params;

/// Something a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> DbResult<Self>;
}

impl FromValue for String {
    fn from_value(value: &Value) -> DbResult<Self> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            Value::Int(number) => Ok(number.to_string()),
            Value::Null => Err(DbError::Type("a text column is null".into())),
        }
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> DbResult<Self> {
        match value {
            Value::Int(number) => Ok(*number),
            Value::Text(text) => {
                text.parse().map_err(|_| DbError::Type(format!("not a number: {}", crate::untrusted::visible(text))))
            }
            Value::Null => Err(DbError::Type("a number column is null".into())),
        }
    }
}

macro_rules! int_from_value {
    ($($kind:ty),*) => {$(
        impl FromValue for $kind {
            fn from_value(value: &Value) -> DbResult<Self> {
                let number = i64::from_value(value)?;
                <$kind>::try_from(number).map_err(|_| DbError::Type(format!("{number} is out of range")))
            }
        }
    )*};
}
int_from_value!(i32, u32);

impl FromValue for bool {
    fn from_value(value: &Value) -> DbResult<Self> {
        i64::from_value(value).map(|number| number != 0)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> DbResult<Self> {
        match value {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// One row of a result.
#[derive(Clone, Debug)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, index: usize) -> DbResult<T> {
        let value = self.0.get(index).ok_or_else(|| DbError::Type(format!("no column {index}")))?;
        T::from_value(value)
    }

    pub fn values(&self) -> &[Value] {
        &self.0
    }
}

/// Why a query failed. Never holds a password: PostgreSQL's messages do
/// not repeat it, and connection settings are never put in one.
#[derive(Debug)]
pub enum DbError {
    /// `query_row` found nothing (see [`OptionalExtension`]).
    NoRows,
    Sqlite(rusqlite::Error),
    Postgres(String),
    Type(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::NoRows => f.write_str("no row found"),
            DbError::Sqlite(err) => write!(f, "{err}"),
            DbError::Postgres(err) => f.write_str(err),
            DbError::Type(err) => write!(f, "unexpected value: {err}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
            err => DbError::Sqlite(err),
        }
    }
}

pub type DbResult<T> = std::result::Result<T, DbError>;

/// `query_row(...).optional()`: `None` instead of [`DbError::NoRows`].
pub trait OptionalExtension<T> {
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(DbError::NoRows) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Which engine holds the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How long a write transaction's commit waits: see [`Conn::begin_immediate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Durable,
    Bookkeeping,
}

/// An open connection to the ledger.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> DbResult<usize> {
        match self {
            Conn::Sqlite(conn) => {
                Ok(conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(sqlite_params(params)))?)
            }
            Conn::Postgres(conn) => conn.execute(&placeholders(sql), values(params)).map(|count| count as usize),
        }
    }

    /// Runs statements without parameters (schema), as they are written for SQLite.
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Conn::Postgres(conn) => conn.batch(&postgres_schema(sql)),
        }
    }

    /// Runs an `INSERT` into a table whose key is `id INTEGER PRIMARY KEY`; the new row's id.
    pub fn insert(&self, sql: &str, params: &[&dyn ToValue]) -> DbResult<i64> {
        match self {
            Conn::Sqlite(conn) => {
                conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(sqlite_params(params)))?;
                Ok(conn.last_insert_rowid())
            }
            Conn::Postgres(conn) => {
                let rows = conn.query(&format!("{} RETURNING id", placeholders(sql)), values(params))?;
                rows.first().ok_or(DbError::NoRows)?.get(0)
            }
        }
    }

    /// The rows of a query.
    pub fn query(&self, sql: &str, params: &[&dyn ToValue]) -> DbResult<Vec<Row>> {
        match self {
            Conn::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let width = statement.column_count();
                let mut rows = statement.query(rusqlite::params_from_iter(sqlite_params(params)))?;
                let mut found = Vec::new();
                while let Some(row) = rows.next()? {
                    let values =
                        (0..width).map(|index| row.get_ref(index).map(from_sqlite)).collect::<Result<_, _>>()?;
                    found.push(Row(values));
                }
                Ok(found)
            }
            Conn::Postgres(conn) => conn.query(&placeholders(sql), values(params)),
        }
    }

    /// The first row of a query through `f`; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(&self, sql: &str, params: &[&dyn ToValue], f: impl FnOnce(&Row) -> DbResult<T>) -> DbResult<T> {
        let rows = self.query(sql, params)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// Every row of a query through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// A query to run (rusqlite's shape, so that queries read the same on both).
    pub fn prepare(&self, sql: &str) -> DbResult<Statement<'_>> {
        Ok(Statement { conn: self, sql: sql.to_owned() })
    }

    /// Whether the ledger has this table.
    pub fn has_table(&self, name: &str) -> DbResult<bool> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1"
            }
        };
        self.query_row(sql, params![name], |row| row.get::<i64>(0)).map(|count| count > 0)
    }

    /// The columns of a table.
    pub fn columns(&self, table: &str) -> DbResult<Vec<String>> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT name FROM pragma_table_info(?1)",
            Backend::Postgres => {
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()
                 AND table_name = ?1 ORDER BY ordinal_position"
            }
        };
        self.query_map(sql, params![table], |row| row.get(0))
    }

    /// Starts a transaction that holds the ledger's write lock until it
    /// ends: what it reads cannot change under it in another process before
    /// it writes. SQLite: `BEGIN IMMEDIATE`. PostgreSQL: one advisory lock
    /// for every such transaction (the same one writer at a time), released
    /// by the commit or the rollback.
    ///
    /// `Durability::Bookkeeping` (who holds a lease, a slot or room, until
    /// when) does not wait on PostgreSQL for its commit to reach the
    /// server's disk (`synchronous_commit` off for that transaction only;
    /// every other session still sees it at once). A crash of the server
    /// can lose the last of them, which only makes a lease end sooner or
    /// later than asked: every act is preceded by a durable intent that
    /// checks the lease in its own transaction, so two runs never both act.
    pub fn begin_immediate(&self, durability: Durability) -> DbResult<()> {
        match (self, durability) {
            (Conn::Sqlite(conn), _) => Ok(conn.execute_batch("BEGIN IMMEDIATE")?),
            (Conn::Postgres(conn), Durability::Durable) => {
                conn.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
            }
            (Conn::Postgres(conn), Durability::Bookkeeping) => conn.batch(&format!(
                "BEGIN; SET LOCAL synchronous_commit TO OFF; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
            )),
        }
    }

    pub fn commit(&self) -> DbResult<()> {
        match self {
            Conn::Sqlite(conn) => Ok(conn.execute_batch("COMMIT")?),
            Conn::Postgres(conn) => conn.batch("COMMIT"),
        }
    }

    pub fn rollback(&self) -> DbResult<()> {
        match self {
            Conn::Sqlite(conn) => Ok(conn.execute_batch("ROLLBACK")?),
            Conn::Postgres(conn) => conn.batch("ROLLBACK"),
        }
    }
}

/// A query of [`Conn::prepare`].
pub struct Statement<'c> {
    conn: &'c Conn,
    sql: String,
}

impl Statement<'_> {
    /// Every row through `f`, as an iterator of results.
    pub fn query_map<T>(
        &mut self,
        params: &[&dyn ToValue],
        f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        Ok(self.conn.query(&self.sql, params)?.iter().map(f).collect::<Vec<_>>().into_iter())
    }
}

/// The advisory lock key of the ledger's writers ("hvmigrat" in ASCII).
const WRITE_LOCK: i64 = 0x6876_6d69_6772_6174;

fn values(params: &[&dyn ToValue]) -> Vec<Value> {
    params.iter().map(|param| param.to_value()).collect()
}

fn sqlite_params(params: &[&dyn ToValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|param| match param.to_value() {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(number) => rusqlite::types::Value::Integer(number),
            Value::Text(text) => rusqlite::types::Value::Text(text),
        })
        .collect()
}

fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => Value::Int(number),
        ValueRef::Real(number) => Value::Text(number.to_string()),
        ValueRef::Text(text) | ValueRef::Blob(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
    }
}

/// `?N` becomes `$N` (outside quoted text).
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

/// The schema as written for SQLite, in PostgreSQL's words: an integer key
/// is an identity column, integers are 64 bits (what SQLite stores), and
/// text compares byte by byte as in SQLite (time stamps, host order).
pub fn postgres_schema(sql: &str) -> String {
    sql.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace(" TEXT", " TEXT COLLATE \"C\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_schema_in_postgresql_words() {
        assert_eq!(
            placeholders("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
        assert_eq!(
            postgres_schema("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT)"),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, s TEXT COLLATE \"C\")"
        );
    }
}
