package main

// Handler tests with httptest and no database; tests/backend/test_backend.py covers the built binary,
// signals and a real PostgreSQL. Run with `sh build.sh test` (Debian's Go, GO111MODULE=off).

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func init() { gin.SetMode(gin.TestMode) }

func serve(t *testing.T, a *app, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	if a.draining == nil {
		a.draining = new(atomic.Bool)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	newRouter(a).ServeHTTP(rec, req)
	return rec
}

func TestRootGreets(t *testing.T) {
	rec := serve(t, &app{}, http.MethodGet, "/", "")
	if rec.Code != http.StatusOK || rec.Body.String() != "Hello from the other side!" {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET / content type %q, want text/plain", ct)
	}
}

func TestLivezIgnoresDatabase(t *testing.T) {
	rec := serve(t, &app{store: &fakeStore{err: errors.New("down")}}, http.MethodGet, "/livez", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /livez with a broken database = %d, want 200", rec.Code)
	}
}

func TestVersionReportsCommit(t *testing.T) {
	old := commit
	defer func() { commit = old }()

	for _, tc := range []struct{ injected, env, want string }{
		{"0123abc", "ffffff", "0123abc"}, // -ldflags wins
		{"", "feedbee", "feedbee"},       // then GIT_COMMIT
		{"unknown", "", "unknown"},       // build.sh outside a repository
	} {
		commit = tc.injected
		t.Setenv("GIT_COMMIT", tc.env)
		rec := serve(t, &app{}, http.MethodGet, "/version", "")
		var got map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("GET /version = %d %q (%v)", rec.Code, rec.Body.String(), err)
		}
		if got["commit"] != tc.want || got["version"] != version {
			t.Errorf("commit=%q GIT_COMMIT=%q: /version = %v, want commit %q", tc.injected, tc.env, got, tc.want)
		}
	}
}

func TestHealthz(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a        *app
		want     int
		contains string
	}{
		{"no database configured", &app{}, 200, "ok"},
		{"database answers", &app{store: &fakeStore{}}, 200, "ok"},
		{"database down", &app{store: &fakeStore{err: errors.New("connection refused")}}, 503, "connection refused"},
		{"draining", &app{store: &fakeStore{}, draining: draining()}, 503, "shutting down"},
	} {
		rec := serve(t, tc.a, http.MethodGet, "/healthz", "")
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("%s: GET /healthz = %d %q, want %d containing %q",
				tc.name, rec.Code, rec.Body.String(), tc.want, tc.contains)
		}
	}
}

func TestNotesWithoutDatabase(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		rec := serve(t, &app{}, method, "/api/notes", `{"text": "hi"}`)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s /api/notes without a database = %d, want 503", method, rec.Code)
		}
	}
}

func TestNotesRoundTripAndValidation(t *testing.T) {
	a := &app{store: &fakeStore{}}
	for _, body := range []string{``, `not json`, `{"text": "   "}`, `{"text": "` + strings.Repeat("x", maxNoteBytes+1) + `"}`} {
		if rec := serve(t, a, http.MethodPost, "/api/notes", body); rec.Code != http.StatusBadRequest {
			t.Errorf("POST /api/notes %.20q = %d, want 400", body, rec.Code)
		}
	}
	rec := serve(t, a, http.MethodPost, "/api/notes", `{"text": "survives restarts"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /api/notes = %d %q", rec.Code, rec.Body.String())
	}
	rec = serve(t, a, http.MethodGet, "/api/notes", "")
	var notes []Note
	if err := json.Unmarshal(rec.Body.Bytes(), &notes); err != nil || len(notes) != 1 || notes[0].Text != "survives restarts" {
		t.Fatalf("GET /api/notes = %d %q (%v)", rec.Code, rec.Body.String(), err)
	}
}

func TestDSNEscapesAndLogsWithoutPassword(t *testing.T) {
	env := map[string]string{"POSTGRES_HOST": "db-core", "POSTGRES_DB": "puppylove", "POSTGRES_PASSWORD": "p@ss w/rd:"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://postgres:p%40ss%20w%2Frd%3A@db-core:5432/puppylove?connect_timeout=5&sslmode=disable"; cfg.DB.DSN() != want {
		t.Errorf("DSN = %q, want %q", cfg.DB.DSN(), want)
	}
	if s := cfg.DB.String(); strings.Contains(s, "p@ss") || strings.Contains(s, "p%40ss") {
		t.Errorf("String() leaks the password: %q", s)
	}
	if cfg.Port != "8080" || cfg.ShutdownTimeout != 10*time.Second || cfg.ShutdownDelay != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	for _, bad := range []map[string]string{{"PORT": "http"}, {"POSTGRES_PORT": "0"}, {"SHUTDOWN_DELAY": "5"}} {
		if _, err := loadConfig(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("loadConfig(%v) accepted a bad value", bad)
		}
	}
}

func draining() *atomic.Bool {
	b := new(atomic.Bool)
	b.Store(true)
	return b
}

// fakeStore stands in for PostgreSQL at the notesStore boundary.
type fakeStore struct {
	err   error
	notes []Note
}

func (f *fakeStore) Check(context.Context) error { return f.err }

func (f *fakeStore) AddNote(_ context.Context, text string) (Note, error) {
	if f.err != nil {
		return Note{}, f.err
	}
	n := Note{ID: int64(len(f.notes) + 1), Text: text, CreatedAt: time.Now()}
	f.notes = append(f.notes, n)
	return n, nil
}

func (f *fakeStore) ListNotes(context.Context, int) ([]Note, error) { return f.notes, f.err }
