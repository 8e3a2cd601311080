-- GET /api/notes lists by id; an index on created_at serves "notes since" queries and the retention job.
-- +migrate Up
CREATE INDEX IF NOT EXISTS notes_created_at_idx ON notes (created_at);

-- +migrate Down
DROP INDEX IF EXISTS notes_created_at_idx;
