//! The PostgreSQL store's schema, as the migrations that make it: the same tables as SQLite's
//! (keys `COLLATE "C"`, so order and prefix ranges match SQLite's byte order), and what servers
//! sharing the store need beside them (leadership, nodes, the change trigger, the cluster's name,
//! the per-second metric samples standbys hand to the leader).

/// The schema's migrations, in order; `berth_schema.version` counts those applied. A released
/// migration is never edited: a change is a new one at the end.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE resources (
    kind TEXT COLLATE "C" NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, name_key)
);
CREATE TABLE records (
    kind TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX records_by_time ON records (kind, created_ms);
CREATE TABLE tags (
    arn TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
);
CREATE TABLE metric_samples (
    endpoint TEXT COLLATE "C" NOT NULL,
    variant TEXT COLLATE "C" NOT NULL,
    resolution BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (endpoint, variant, resolution, ts)
);
CREATE TABLE custom_metrics (
    namespace TEXT COLLATE "C" NOT NULL,
    metric_name TEXT COLLATE "C" NOT NULL,
    dimensions TEXT COLLATE "C" NOT NULL,
    ts BIGINT NOT NULL,
    unit TEXT NOT NULL,
    sample_count DOUBLE PRECISION NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    minimum DOUBLE PRECISION NOT NULL,
    maximum DOUBLE PRECISION NOT NULL
);
CREATE INDEX custom_metrics_by_name ON custom_metrics (namespace, metric_name, dimensions, ts);
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    endpoint_key TEXT COLLATE "C" NOT NULL,
    variant TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX events_by_endpoint ON events (endpoint_key, id);
CREATE TABLE alarms (
    name TEXT COLLATE "C" PRIMARY KEY,
    body TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE resources ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
CREATE TABLE leadership (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    node TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL
);
CREATE TABLE nodes (
    name TEXT COLLATE "C" PRIMARY KEY,
    address TEXT NOT NULL,
    started TIMESTAMPTZ NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL
);
CREATE FUNCTION berth_resource_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('berth_changes', json_build_object('kind', OLD.kind, 'name', OLD.name_key, 'version', OLD.version, 'deleted', true)::text);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('berth_changes', json_build_object('kind', NEW.kind, 'name', NEW.name_key, 'version', NEW.version, 'deleted', false)::text);
    RETURN NEW;
END $$;
CREATE TRIGGER resources_changed AFTER INSERT OR UPDATE OR DELETE ON resources FOR EACH ROW EXECUTE FUNCTION berth_resource_changed();
"#,
    r#"
CREATE TABLE cluster (
    id INT PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL
);
INSERT INTO cluster (id, name) VALUES (1, md5(random()::text || clock_timestamp()::text));
"#,
    r#"
CREATE TABLE metric_handoff (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node TEXT NOT NULL,
    endpoint TEXT COLLATE "C" NOT NULL,
    variant TEXT COLLATE "C" NOT NULL,
    ts BIGINT NOT NULL,
    body TEXT NOT NULL
);
"#,
];
