//! Where the state is kept: an SQLite file, or a PostgreSQL schema (URL, password kept apart
//! from the URL and out of every log line, schema name).

use std::fmt;
use std::path::PathBuf;

/// Which backend holds the state, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// A shared PostgreSQL database.
    Postgres(PostgresLocation),
}

/// A PostgreSQL schema as `database.url`, `database.password_file` / `PGPASSWORD` and
/// `database.schema` name it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresLocation {
    /// `postgres://user@host:port/db?sslmode=…`, without a password.
    pub url: String,
    /// The password, from `database.password_file` or `PGPASSWORD`; never from TOML.
    pub password: Option<String>,
    /// The schema holding the tables (created if missing).
    pub schema: String,
}

/// The password is redacted: a location may be logged.
impl fmt::Debug for PostgresLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLocation")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("schema", &self.schema)
            .finish()
    }
}

impl Location {
    /// How an operator reads it: the SQLite file, or the PostgreSQL URL and schema.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(pg) => pg.describe(),
        }
    }
}

impl PostgresLocation {
    /// How an operator reads it: the URL (which carries no password) and the schema.
    pub fn describe(&self) -> String {
        format!("{} (schema {})", self.url, self.schema)
    }
}

/// Whether `name` can be a schema name used unquoted: lower-case letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (PostgreSQL's identifier limit).
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_name_must_be_usable_unquoted() {
        assert!(is_plain_identifier("mesolive"));
        assert!(is_plain_identifier("_ha_2"));
        assert!(!is_plain_identifier(""));
        assert!(!is_plain_identifier("2fa"));
        assert!(!is_plain_identifier("Mesolive"));
        assert!(!is_plain_identifier("a;drop"));
        assert!(!is_plain_identifier(&"a".repeat(64)));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let location = PostgresLocation {
            url: "postgres://u@h/db".into(),
            password: Some("hunter2".into()),
            schema: "mesolive".into(),
        };
        assert!(!format!("{location:?}").contains("hunter2"));
    }
}
