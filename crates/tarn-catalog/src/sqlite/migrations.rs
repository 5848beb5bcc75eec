//! Numbered schema migrations. Each runs once, in its own transaction, when a catalog is
//! opened; the applied ones are recorded in `schema_migrations`. Never edit a released
//! migration: add the next one.

pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    ordered_on TEXT NOT NULL,
    created_micros INTEGER NOT NULL
);
CREATE TABLE branches (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    name TEXT NOT NULL,
    head_version INTEGER NOT NULL,
    parent_branch_id INTEGER REFERENCES branches(id),
    fork_version INTEGER,
    UNIQUE (dataset_id, name)
);
CREATE TABLE commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_micros INTEGER NOT NULL
);
CREATE TABLE versions (
    branch_id INTEGER NOT NULL REFERENCES branches(id),
    version INTEGER NOT NULL,
    commit_id INTEGER NOT NULL REFERENCES commits(id),
    operation TEXT NOT NULL,
    message TEXT,
    rows INTEGER NOT NULL,
    row_groups INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    min_value,
    max_value,
    schema_json TEXT NOT NULL,
    options_json TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    expired INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (branch_id, version)
) WITHOUT ROWID;
CREATE INDEX versions_by_commit ON versions (branch_id, commit_id);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    path TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    created_commit INTEGER NOT NULL
);
CREATE TABLE row_groups (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id),
    rg_index INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    min_value NOT NULL,
    max_value NOT NULL
);
CREATE INDEX row_groups_by_file ON row_groups (file_id);
CREATE TABLE branch_row_groups (
    branch_id INTEGER NOT NULL REFERENCES branches(id),
    row_group_id INTEGER NOT NULL REFERENCES row_groups(id),
    added_in INTEGER NOT NULL,
    removed_in INTEGER,
    -- Copies of the row group's ordered_on bounds, so that range lookups on the head use
    -- the index below instead of scanning every live row group.
    min_value NOT NULL,
    max_value NOT NULL,
    PRIMARY KEY (branch_id, row_group_id)
) WITHOUT ROWID;
CREATE INDEX branch_row_groups_live ON branch_row_groups (branch_id, removed_in, max_value);
CREATE INDEX branch_row_groups_added ON branch_row_groups (branch_id, added_in);
CREATE INDEX branch_row_groups_by_rg ON branch_row_groups (row_group_id);
CREATE TABLE tags (
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    name TEXT NOT NULL,
    branch_id INTEGER NOT NULL REFERENCES branches(id),
    version INTEGER NOT NULL,
    created_micros INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
"#,
    ),
    (
        2,
        r#"
-- Branches (docs/design/0003): the lake-wide commit at which a branch was created, so that
-- a read pinned to an earlier lake state knows the branch did not exist yet. NULL for the
-- `main` branches created with their dataset before this migration.
ALTER TABLE branches ADD COLUMN created_commit INTEGER REFERENCES commits(id);
CREATE INDEX branches_by_parent ON branches (parent_branch_id);
CREATE INDEX tags_by_branch ON tags (branch_id, version);
CREATE INDEX commits_by_time ON commits (ts_micros);
-- How many row groups each file holds, so that a scan can say which of them a version reads
-- without opening the footer (NULL for files written before: read from the footer).
ALTER TABLE files ADD COLUMN row_group_count INTEGER;
-- Range lookups decide on the index alone, without a table lookup per lifetime row: at the
-- head by (max_value, min_value), at an old version by (added_in, removed_in) and the bounds.
DROP INDEX branch_row_groups_live;
CREATE INDEX branch_row_groups_live ON branch_row_groups (branch_id, removed_in, max_value, min_value);
DROP INDEX branch_row_groups_added;
CREATE INDEX branch_row_groups_added ON branch_row_groups (branch_id, added_in, removed_in, max_value, min_value);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    schema_json TEXT NOT NULL,
    created_micros INTEGER NOT NULL
);
"#,
    ),
    (
        4,
        r#"
-- The registry (docs/design/0005): dimensions, mappings, projects and registrations, each
-- versioned; a version takes a lake commit, and its records, mapping rows and dependencies
-- are written in the same transaction.
CREATE TABLE registry_components (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('dimension', 'mapping', 'project', 'registration')),
    name TEXT NOT NULL,
    head_version INTEGER NOT NULL,
    UNIQUE (kind, name)
);
CREATE TABLE registry_versions (
    component_id INTEGER NOT NULL REFERENCES registry_components(id),
    version INTEGER NOT NULL,
    commit_id INTEGER NOT NULL REFERENCES commits(id),
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    body_json TEXT NOT NULL,
    PRIMARY KEY (component_id, version)
) WITHOUT ROWID;
-- A dimension version's records; extra_json is a JSON object of the record's other columns.
CREATE TABLE dimension_records (
    component_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    extra_json TEXT NOT NULL,
    PRIMARY KEY (component_id, version, id),
    FOREIGN KEY (component_id, version) REFERENCES registry_versions (component_id, version)
) WITHOUT ROWID;
CREATE TABLE mapping_rows (
    component_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    from_id TEXT NOT NULL,
    to_id TEXT NOT NULL,
    fraction REAL NOT NULL,
    PRIMARY KEY (component_id, version, from_id, to_id),
    FOREIGN KEY (component_id, version) REFERENCES registry_versions (component_id, version)
) WITHOUT ROWID;
-- What a component version uses: a registry component version, or a dataset version
-- (target_kind 'dataset', target_name like 'demand/nc@main'). Not a foreign key: dataset
-- targets live elsewhere, and component targets are checked when the version is written.
CREATE TABLE registry_dependencies (
    component_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    target_kind TEXT NOT NULL,
    target_name TEXT NOT NULL,
    target_version INTEGER NOT NULL,
    PRIMARY KEY (component_id, version, target_kind, target_name),
    FOREIGN KEY (component_id, version) REFERENCES registry_versions (component_id, version)
) WITHOUT ROWID;
-- "What uses county v2" is one seek.
CREATE INDEX registry_dependents ON registry_dependencies (target_kind, target_name, target_version);
"#,
    ),
    (
        5,
        r#"
-- The lake this catalog holds (docs/design/0006): its storage URL, recorded once, so that a
-- second machine's `tarn init` can join it and a wrong storage is refused.
CREATE TABLE lake (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    storage TEXT NOT NULL,
    created_micros INTEGER NOT NULL
);
"#,
    ),
    (
        6,
        r#"
-- tarn serve (docs/design/0009): the commit that applies a queued request names it, so a
-- request handed out again after a crash is seen as applied and never applied twice.
ALTER TABLE commits ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX commits_by_request ON commits (request_id) WHERE request_id IS NOT NULL;
-- The durable request queue: arrival order is seq; a lane (a dataset) is applied in order.
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,
    params_json TEXT NOT NULL,
    staged_path TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    leased_until_micros INTEGER,
    created_micros INTEGER NOT NULL,
    started_micros INTEGER,
    finished_micros INTEGER,
    version INTEGER,
    commit_id INTEGER,
    error TEXT
);
CREATE INDEX requests_unfinished ON requests (lane, seq) WHERE status IN ('queued', 'running');
CREATE INDEX requests_staged ON requests (seq) WHERE staged_path IS NOT NULL AND status IN ('succeeded', 'failed');
-- API tokens: the SHA-256 of the secret, never the secret.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_sha256 BLOB NOT NULL,
    scopes_json TEXT NOT NULL,
    created_micros INTEGER NOT NULL
);
"#,
    ),
];
