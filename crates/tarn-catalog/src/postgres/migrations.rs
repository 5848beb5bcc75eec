//! Numbered schema migrations of the PostgreSQL catalog. They run when a catalog is opened,
//! all pending ones in one transaction under a transaction-level advisory lock of the
//! schema, so that two processes opening a new catalog at once apply each exactly once; the
//! applied ones are recorded in `schema_migrations`. Never edit a released migration: add the
//! next one.
//!
//! Migration 1 is SQLite's migrations 1 to 5 at once, with the differences of
//! docs/design/0006: ordered values are `bytea` in the order-preserving encoding of
//! [`crate::ordered`], names compare bytewise (`COLLATE "C"`) whatever the database's
//! locale, ids are identities, and commit ids come from the `lake_clock` row.

use super::{Session, quote_ident};
use crate::error::{CatalogError, Result};

pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
-- The lake's clock: the row every write transaction locks first (so the lake's writers run
-- one at a time, across machines), and where commit ids and times come from, so that ids
-- increase in the order commits become visible and times never go backwards.
CREATE TABLE lake_clock (
    id integer PRIMARY KEY CHECK (id = 1),
    last_commit bigint NOT NULL,
    last_ts bigint NOT NULL
);
INSERT INTO lake_clock (id, last_commit, last_ts) VALUES (1, 0, 0);
CREATE TABLE commits (
    id bigint PRIMARY KEY,
    ts_micros bigint NOT NULL
);
CREATE INDEX commits_by_time ON commits (ts_micros);
CREATE TABLE datasets (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    ordered_on text NOT NULL,
    created_micros bigint NOT NULL,
    CONSTRAINT datasets_name_key UNIQUE (name)
);
CREATE TABLE branches (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES datasets(id),
    name text COLLATE "C" NOT NULL,
    head_version bigint NOT NULL,
    parent_branch_id bigint REFERENCES branches(id),
    fork_version bigint,
    -- The lake-wide commit that created the branch (docs/design/0003).
    created_commit bigint REFERENCES commits(id),
    CONSTRAINT branches_dataset_id_name_key UNIQUE (dataset_id, name)
);
CREATE INDEX branches_by_parent ON branches (parent_branch_id);
CREATE TABLE versions (
    branch_id bigint NOT NULL REFERENCES branches(id),
    version bigint NOT NULL,
    commit_id bigint NOT NULL REFERENCES commits(id),
    operation text NOT NULL,
    message text,
    rows bigint NOT NULL,
    row_groups bigint NOT NULL,
    bytes bigint NOT NULL,
    min_value bytea,
    max_value bytea,
    schema_json text NOT NULL,
    options_json text NOT NULL,
    metadata_json text NOT NULL,
    expired boolean NOT NULL DEFAULT false,
    PRIMARY KEY (branch_id, version)
);
-- The version of a branch at a lake commit: the newest entry at or before the commit.
CREATE INDEX versions_by_commit ON versions (branch_id, commit_id, version);
CREATE TABLE files (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES datasets(id),
    path text NOT NULL,
    bytes bigint NOT NULL,
    created_commit bigint NOT NULL,
    -- How many row groups the file holds, so that a scan can say which of them a version
    -- reads without opening the footer.
    row_group_count bigint,
    CONSTRAINT files_path_key UNIQUE (path)
);
CREATE TABLE row_groups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id bigint NOT NULL REFERENCES files(id),
    rg_index bigint NOT NULL,
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    min_value bytea NOT NULL,
    max_value bytea NOT NULL
);
CREATE INDEX row_groups_by_file ON row_groups (file_id);
CREATE TABLE branch_row_groups (
    branch_id bigint NOT NULL REFERENCES branches(id),
    row_group_id bigint NOT NULL REFERENCES row_groups(id),
    added_in bigint NOT NULL,
    removed_in bigint,
    -- Copies of the row group's ordered_on bounds, so that range lookups decide on the
    -- indexes below alone: at the head by (max_value, min_value), at an old version by
    -- (added_in, removed_in) and the bounds.
    min_value bytea NOT NULL,
    max_value bytea NOT NULL,
    PRIMARY KEY (branch_id, row_group_id)
);
CREATE INDEX branch_row_groups_live ON branch_row_groups (branch_id, removed_in, max_value, min_value);
CREATE INDEX branch_row_groups_added ON branch_row_groups (branch_id, added_in, removed_in, max_value, min_value);
CREATE INDEX branch_row_groups_by_rg ON branch_row_groups (row_group_id);
CREATE TABLE tags (
    dataset_id bigint NOT NULL REFERENCES datasets(id),
    name text COLLATE "C" NOT NULL,
    branch_id bigint NOT NULL REFERENCES branches(id),
    version bigint NOT NULL,
    created_micros bigint NOT NULL,
    CONSTRAINT tags_pkey PRIMARY KEY (dataset_id, name)
);
CREATE INDEX tags_by_branch ON tags (branch_id, version);
CREATE TABLE collections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    schema_json text NOT NULL,
    created_micros bigint NOT NULL,
    CONSTRAINT collections_name_key UNIQUE (name)
);
-- The registry (docs/design/0005).
CREATE TABLE registry_components (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text COLLATE "C" NOT NULL CHECK (kind IN ('dimension', 'mapping', 'project', 'registration')),
    name text COLLATE "C" NOT NULL,
    head_version bigint NOT NULL,
    CONSTRAINT registry_components_kind_name_key UNIQUE (kind, name)
);
CREATE TABLE registry_versions (
    component_id bigint NOT NULL REFERENCES registry_components(id),
    version bigint NOT NULL,
    commit_id bigint NOT NULL REFERENCES commits(id),
    author text NOT NULL,
    message text NOT NULL,
    body_json text NOT NULL,
    PRIMARY KEY (component_id, version)
);
CREATE TABLE dimension_records (
    component_id bigint NOT NULL,
    version bigint NOT NULL,
    id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    extra_json text NOT NULL,
    PRIMARY KEY (component_id, version, id),
    FOREIGN KEY (component_id, version) REFERENCES registry_versions (component_id, version)
);
CREATE TABLE mapping_rows (
    component_id bigint NOT NULL,
    version bigint NOT NULL,
    from_id text COLLATE "C" NOT NULL,
    to_id text COLLATE "C" NOT NULL,
    fraction double precision NOT NULL,
    PRIMARY KEY (component_id, version, from_id, to_id),
    FOREIGN KEY (component_id, version) REFERENCES registry_versions (component_id, version)
);
-- Not a foreign key on the target: dataset targets live elsewhere, and component targets
-- are checked when the version is written.
CREATE TABLE registry_dependencies (
    component_id bigint NOT NULL,
    version bigint NOT NULL,
    target_kind text COLLATE "C" NOT NULL,
    target_name text COLLATE "C" NOT NULL,
    target_version bigint NOT NULL,
    PRIMARY KEY (component_id, version, target_kind, target_name),
    FOREIGN KEY (component_id, version) REFERENCES registry_versions (component_id, version)
);
-- "What uses county v2" is one seek, answered from the index alone.
CREATE INDEX registry_dependents ON registry_dependencies (target_kind, target_name, target_version)
    INCLUDE (component_id, version);
-- The lake this catalog holds (docs/design/0006).
CREATE TABLE lake (
    id integer PRIMARY KEY CHECK (id = 1),
    storage text NOT NULL,
    created_micros bigint NOT NULL
);
"#,
    ),
    (
        2,
        r#"
-- tarn serve (docs/design/0009), as SQLite's migration 6: the commit that applies a queued
-- request names it; the durable request queue; API tokens (the secret's SHA-256 only).
ALTER TABLE commits ADD COLUMN request_id text COLLATE "C";
CREATE UNIQUE INDEX commits_by_request ON commits (request_id) WHERE request_id IS NOT NULL;
CREATE TABLE requests (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL,
    idempotency_key text COLLATE "C",
    lane text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    params_json text NOT NULL,
    staged_path text,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    owner text,
    leased_until_micros bigint,
    created_micros bigint NOT NULL,
    started_micros bigint,
    finished_micros bigint,
    version bigint,
    commit_id bigint,
    error text,
    CONSTRAINT requests_id_key UNIQUE (id),
    CONSTRAINT requests_idempotency_key UNIQUE (idempotency_key)
);
CREATE INDEX requests_unfinished ON requests (lane, seq) WHERE status IN ('queued', 'running');
CREATE INDEX requests_staged ON requests (seq) WHERE staged_path IS NOT NULL AND status IN ('succeeded', 'failed');
CREATE TABLE api_tokens (
    id text COLLATE "C" PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    secret_sha256 bytea NOT NULL,
    scopes_json text NOT NULL,
    created_micros bigint NOT NULL,
    CONSTRAINT api_tokens_name_key UNIQUE (name)
);
"#,
    ),
];

/// The newest migration this tarn knows.
pub fn known() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// The schemas a `search_path` setting names, in order, unquoted (`$user` as is).
fn search_path_entries(search_path: &str) -> Vec<String> {
    search_path
        .split(',')
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => s.to_string(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Checks that the tables will go where the URL says, then applies pending migrations.
/// `url` is the catalog's URL without its password, for messages.
pub(super) async fn migrate(s: &mut Session, describe: &str, url: &str) -> Result<()> {
    let row = s
        .query_one(
            "SELECT current_setting('search_path'), current_user::text, current_schema()::text",
            &[],
        )
        .await?;
    let (search_path, user, current): (String, String, Option<String>) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let mut wanted = None;
    for entry in search_path_entries(&search_path) {
        if entry == "$user" {
            if current.as_deref() == Some(user.as_str()) {
                wanted = Some(user.clone());
                break;
            }
            continue;
        }
        wanted = Some(entry);
        break;
    }
    let schema = match (wanted, current) {
        (Some(w), Some(c)) if w == c => c,
        (Some(w), _) => {
            return Err(CatalogError::Unavailable {
                catalog: describe.to_string(),
                reason: format!(
                    "schema {w:?}, the first of the search_path ({search_path}), does not \
                     exist (or this role may not use it); create it with CREATE SCHEMA {} \
                     (as a role that may), or fix options=-c search_path=... in the catalog URL",
                    quote_ident(&w)
                ),
            });
        }
        (None, _) => {
            return Err(CatalogError::Unavailable {
                catalog: describe.to_string(),
                reason: format!(
                    "the search_path ({search_path:?}) names no schema that exists; give one \
                     with options=-c search_path=SCHEMA in the catalog URL, after CREATE SCHEMA"
                ),
            });
        }
    };
    let qualified = format!("{}.schema_migrations", quote_ident(&schema));
    let known = known();
    // Fast path, without a transaction: an up-to-date catalog opens with one more read. The
    // table is looked up in the catalog's own schema only, so that one of another lake later
    // in the search_path is never taken for this one's.
    let exists: bool = s
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
        .await?
        .try_get(0)?;
    if exists {
        let applied: i64 = s
            .query_one(
                &format!("SELECT coalesce(max(version), 0)::bigint FROM {qualified}"),
                &[],
            )
            .await?
            .try_get(0)?;
        if applied == known {
            return Ok(());
        }
    }
    s.begin().await?;
    // One lock per schema: catalogs in other schemas of the database migrate independently.
    s.query_one(
        "SELECT pg_advisory_xact_lock(1952543342, hashtext($1))::text",
        &[&schema],
    )
    .await?;
    s.batch(&format!(
        "CREATE TABLE IF NOT EXISTS {qualified} (version bigint PRIMARY KEY, applied_micros bigint NOT NULL)"
    ))
    .await?;
    let current: i64 = s
        .query_one(
            &format!("SELECT coalesce(max(version), 0)::bigint FROM {qualified}"),
            &[],
        )
        .await?
        .try_get(0)?;
    if current > known {
        return Err(CatalogError::TooNew {
            path: format!("{} (schema {schema})", url),
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        s.batch(sql).await?;
        s.execute(
            &format!(
                "INSERT INTO {qualified} (version, applied_micros) VALUES ($1, {})",
                super::NOW_MICROS
            ),
            &[version],
        )
        .await?;
    }
    s.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_entries_are_unquoted() {
        assert_eq!(
            search_path_entries("\"$user\", public"),
            ["$user", "public"]
        );
        assert_eq!(search_path_entries("tarn_t_1"), ["tarn_t_1"]);
        assert_eq!(
            search_path_entries("\"My \"\"Lake\"\"\" ,x"),
            ["My \"Lake\"", "x"]
        );
        assert!(search_path_entries("").is_empty());
    }
}
