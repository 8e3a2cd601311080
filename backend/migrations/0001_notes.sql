-- The notes table as the backend first created it on its own (store.go's bootstrap does the same, with
-- IF NOT EXISTS on both sides, so a database made before migrations existed is adopted unchanged).
-- +migrate Up
CREATE TABLE IF NOT EXISTS notes (
	id         BIGSERIAL PRIMARY KEY,
	text       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +migrate Down
DROP TABLE notes;
