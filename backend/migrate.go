package main

// `backend migrate up|down|status`: the versioned schema in migrations/, applied by sql-migrate
// (Debian's golang-github-rubenv-sql-migrate-dev) from files embedded in the binary, so the release's
// migration Job runs exactly the image that is about to roll out. Each migration runs in a transaction
// (PostgreSQL's DDL is transactional): one that fails leaves the schema as the previous one left it.
// The applied ids are kept in the gorp_migrations table.

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"

	migrate "github.com/rubenv/sql-migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

func migrationSource() (migrate.MigrationSource, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return migrate.HttpFileSystemMigrationSource{FileSystem: http.FS(sub)}, nil
}

// runMigrate is the migrate subcommand; it returns the process's exit code.
func runMigrate(args []string, getenv func(string) string) int {
	mode := "up"
	if len(args) > 0 {
		mode = args[0]
	}
	if mode != "up" && mode != "down" && mode != "status" {
		fmt.Fprintf(os.Stderr, "backend migrate: unknown mode %q (use up, down or status)\n", mode)
		return 2
	}
	cfg, err := loadConfig(getenv)
	if err != nil || !cfg.DB.Enabled() {
		fmt.Fprintf(os.Stderr, "backend migrate: no database configured (POSTGRES_HOST): %v\n", err)
		return 2
	}
	db, err := sql.Open("postgres", cfg.DB.DSN())
	if err != nil {
		fmt.Fprintf(os.Stderr, "backend migrate: %v\n", err)
		return 2
	}
	defer db.Close()
	// A first release starts the database and this Job together: wait for it, as the server's own
	// schema loop does, instead of failing the release on "connection refused".
	if err := waitForDatabase(db, time.Minute); err != nil {
		fmt.Fprintf(os.Stderr, "backend migrate: the database did not answer within a minute: %v\n", err)
		return 1
	}
	source, err := migrationSource()
	if err != nil {
		fmt.Fprintf(os.Stderr, "backend migrate: reading the embedded migrations: %v\n", err)
		return 1
	}
	switch mode {
	case "status":
		records, err := migrate.GetMigrationRecords(db, "postgres")
		if err != nil {
			fmt.Fprintf(os.Stderr, "backend migrate status: %v\n", err)
			return 1
		}
		for _, r := range records {
			fmt.Printf("%s applied %s\n", r.Id, r.AppliedAt.UTC().Format("2006-01-02T15:04:05Z"))
		}
		return 0
	case "down":
		n, err := migrate.ExecMax(db, "postgres", source, migrate.Down, 1)
		if err != nil {
			fmt.Fprintf(os.Stderr, "backend migrate down: %v\n", err)
			return 1
		}
		fmt.Printf("backend migrate: %d migration(s) undone on %s\n", n, cfg.DB)
		return 0
	}
	n, err := migrate.Exec(db, "postgres", source, migrate.Up)
	if err != nil {
		// sql-migrate stops at the failing migration; the ones before it stay applied.
		fmt.Fprintf(os.Stderr, "backend migrate up: %d applied, then: %v\n", n, err)
		return 1
	}
	fmt.Printf("backend migrate: %d migration(s) applied on %s\n", n, cfg.DB)
	return 0
}

func waitForDatabase(db *sql.DB, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	delay := 250 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay)
		if delay *= 2; delay > 2*time.Second {
			delay = 2 * time.Second
		}
	}
}
