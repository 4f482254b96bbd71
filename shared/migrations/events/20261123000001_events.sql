-- The events tables (issue #4). Applied by worker-ingest at start-up with sqlx::migrate! (idempotent);
-- api-events only reads.
--
-- Every ingest of a file is a load (generation) with its own load_id. Rows are written under their
-- load_id, batch by batch, with the load's checkpoint updated in the same transaction; queries only
-- see the load that event_files points at, and that pointer moves in one transaction when a load has
-- finished. So a re-ingest replaces a file's rows atomically, a half-loaded file is never visible, and
-- other files are untouched.

CREATE TABLE IF NOT EXISTS event_loads (
    load_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    filename    VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    source_etag VARCHAR(256) NOT NULL,
    state       ENUM('loading', 'done', 'superseded') NOT NULL DEFAULT 'loading',
    -- The checkpoint: next byte to read, lines read, rows inserted, rejections (JSON).
    byte_offset BIGINT UNSIGNED NOT NULL DEFAULT 0,
    line_no     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    accepted    BIGINT UNSIGNED NOT NULL DEFAULT 0,
    rejections  TEXT NOT NULL,
    started_at  DATETIME(3) NOT NULL,
    updated_at  DATETIME(3) NOT NULL,
    KEY event_loads_by_file (filename)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The load each file's queries see.
CREATE TABLE IF NOT EXISTS event_files (
    filename   VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    load_id    BIGINT UNSIGNED NOT NULL,
    swapped_at DATETIME(3) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per accepted line. The clustered key serves (file, time range) queries in time order; seq is
-- the line number, so a batch written twice would collide instead of duplicating rows.
CREATE TABLE IF NOT EXISTS events (
    load_id    BIGINT UNSIGNED NOT NULL,
    event_time DATETIME NOT NULL,
    seq        BIGINT UNSIGNED NOT NULL,
    email      VARCHAR(320) NOT NULL,
    session_id VARCHAR(128) NOT NULL,
    PRIMARY KEY (load_id, event_time, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The issue's events(filename, event_time, email, session_id), current loads only, for SQL users.
CREATE OR REPLACE VIEW events_current AS
    SELECT f.filename, e.event_time, e.email, e.session_id
    FROM event_files f JOIN events e ON e.load_id = f.load_id;
