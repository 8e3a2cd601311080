package main

// PostgreSQL access: the notes table and the readiness check. routes.go talks to it through the
// notesStore interface; main.go opens it and starts the background schema loop.
//
// The database may come up after the backend (or restart under it). sql.Open never dials, the
// schema loop retries with backoff, and database/sql replaces dead connections on its own, so the
// process never exits because of the database: /healthz reports the state instead.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver
)

// Note is one row of the notes table.
type Note struct {
	ID        int64     `json:"id"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// notesStore is what the HTTP layer needs from the database.
type notesStore interface {
	Check(ctx context.Context) error
	AddNote(ctx context.Context, text string) (Note, error)
	ListNotes(ctx context.Context, limit int) ([]Note, error)
}

// errSchemaPending means the database has not been reached since start, so the table may be missing.
var errSchemaPending = errors.New("notes table not created yet")

const schema = `CREATE TABLE IF NOT EXISTS notes (
	id         BIGSERIAL PRIMARY KEY,
	text       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// pgStore is the PostgreSQL notesStore.
type pgStore struct {
	db    *sql.DB
	ready atomic.Bool // the notes table exists
}

func openStore(cfg DBConfig) (*pgStore, error) {
	db, err := sql.Open("postgres", cfg.DSN())
	if err != nil {
		return nil, err
	}
	// One replica of a campus app: a small pool is plenty and keeps PostgreSQL's connection slots free
	// for the other replicas during a rolling update.
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(5)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &pgStore{db: db}, nil
}

func (s *pgStore) Close() error { return s.db.Close() }

// ensureSchema creates the notes table if it is missing. Two replicas creating it at once can make
// one CREATE ... IF NOT EXISTS fail on the catalog's unique index; the callers retry.
func (s *pgStore) ensureSchema(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return err
	}
	s.ready.Store(true)
	return nil
}

// initSchema retries ensureSchema with backoff until it succeeds or ctx ends.
func (s *pgStore) initSchema(ctx context.Context) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.ensureSchema(attemptCtx)
		cancel()
		if err == nil {
			log.Printf("database: notes table ready (attempt %d)", attempt)
			return
		}
		log.Printf("database: not reachable yet (attempt %d, next in %s): %v", attempt, delay, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if delay *= 2; delay > 10*time.Second {
			delay = 10 * time.Second
		}
	}
}

// Check answers whether the database can serve requests right now. Until the schema loop has
// succeeded it tries the schema itself, so readiness follows the database without waiting for the
// loop's next attempt.
func (s *pgStore) Check(ctx context.Context) error {
	if !s.ready.Load() {
		if err := s.ensureSchema(ctx); err != nil {
			return fmt.Errorf("%w: %v", errSchemaPending, err)
		}
		return nil
	}
	return s.db.PingContext(ctx)
}

func (s *pgStore) AddNote(ctx context.Context, text string) (Note, error) {
	var n Note
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO notes (text) VALUES ($1) RETURNING id, text, created_at`, text,
	).Scan(&n.ID, &n.Text, &n.CreatedAt)
	return n, err
}

func (s *pgStore) ListNotes(ctx context.Context, limit int) ([]Note, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, text, created_at FROM notes ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	notes := []Note{} // an empty list is [] in JSON, not null
	for rows.Next() {
		var n Note
		if err := rows.Scan(&n.ID, &n.Text, &n.CreatedAt); err != nil {
			return nil, err
		}
		notes = append(notes, n)
	}
	return notes, rows.Err()
}
