// Command backend is a small gin service in the shape of the campus backend (a gin API in front of
// PostgreSQL, configured by the backend-core-config ConfigMap). The delivery pipeline builds, ships and
// smoke-tests it: GET / for the greeting, /version to see which commit runs, /healthz and /livez for
// the probes, /api/notes to prove that data outlives a database pod.
//
// Files: main.go (process lifecycle), config.go (environment), routes.go (HTTP), store.go (PostgreSQL),
// migrate.go (the `migrate` subcommand and the versioned schema in migrations/).
// build.sh compiles it offline with Debian's Go and gin; Dockerfile wraps the binary in scratch.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

var (
	// commit is the git commit the binary was built from: -ldflags "-X main.commit=<sha>".
	commit = ""
	// version is the service's own version; -ldflags "-X main.version=..." may override it.
	version = "0.1.0"
)

// buildCommit is the injected commit, else $GIT_COMMIT, else "unknown".
func buildCommit() string {
	if commit != "" && commit != "unknown" {
		return commit
	}
	if c := os.Getenv("GIT_COMMIT"); c != "" {
		return c
	}
	return "unknown"
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(runMigrate(os.Args[2:], os.Getenv))
	}
	os.Exit(run())
}

func run() int {
	// End-to-end tests build a deliberately broken image with this set, to see a rollout fail and be
	// rolled back. Checked before anything else so that nothing can mask it.
	if v := os.Getenv("CRASH_ON_START"); v != "" {
		fmt.Fprintf(os.Stderr, "backend: CRASH_ON_START=%q is set: exiting with code 3 on purpose (failure-test image)\n", v)
		return 3
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		log.Printf("backend: bad configuration: %v", err)
		return 2
	}
	log.Printf("backend %s (commit %s) starting on :%s, gin mode %s", version, buildCommit(), cfg.Port, gin.Mode())

	// SIGTERM is what Kubernetes sends on a rolling update; SIGINT is Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	a := &app{draining: new(atomic.Bool)}
	if cfg.DB.Enabled() {
		st, err := openStore(cfg.DB)
		if err != nil {
			log.Printf("backend: database settings: %v", err)
			return 2
		}
		defer st.Close()
		log.Printf("database: %s (password %s); connecting in the background", cfg.DB, setOrNot(cfg.DB.Password))
		go st.initSchema(ctx)
		a.store = st
	} else {
		log.Printf("database: POSTGRES_HOST is unset; running without one (/api/notes answers 503)")
	}

	srv := &http.Server{
		Addr:              ":" + cfg.Port,
		Handler:           newRouter(a),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		log.Printf("backend: %v", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Printf("backend: listening on %s", ln.Addr())

	select {
	case err := <-served:
		log.Printf("backend: server stopped: %v", err)
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process at once

	a.draining.Store(true)
	if cfg.ShutdownDelay > 0 {
		log.Printf("backend: shutdown signal; still serving for SHUTDOWN_DELAY=%s while endpoints update", cfg.ShutdownDelay)
		time.Sleep(cfg.ShutdownDelay)
	}
	log.Printf("backend: draining in-flight requests (up to %s)", cfg.ShutdownTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Printf("backend: drain incomplete: %v", err)
		return 1
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("backend: %v", err)
		return 1
	}
	log.Printf("backend: stopped cleanly")
	return 0
}

func setOrNot(s string) string {
	if s == "" {
		return "not set"
	}
	return "set"
}
