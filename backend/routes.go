package main

// HTTP routes. main.go builds the router with newRouter and serves it; main_test.go drives it with
// httptest. The store is nil when no database is configured (POSTGRES_HOST unset).

import (
	"context"
	"log"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	greeting     = "Hello from the other side!"
	maxNoteBytes = 10000
	maxBodyBytes = 64 << 10
	listLimit    = 1000
)

// app is the state the handlers share.
type app struct {
	store    notesStore   // nil: no database configured
	draining *atomic.Bool // set on SIGTERM; readiness fails while in-flight requests drain
}

func newRouter(a *app) *gin.Engine {
	r := gin.New()
	// Probes hit /healthz and /livez every few seconds; logging them would drown the access log.
	r.Use(gin.LoggerWithConfig(gin.LoggerConfig{SkipPaths: []string{"/healthz", "/livez"}}), gin.Recovery())
	// Client addresses are only logged; trusting no proxy headers keeps them honest.
	_ = r.SetTrustedProxies(nil)

	r.GET("/", func(c *gin.Context) { c.String(http.StatusOK, greeting) })
	r.GET("/livez", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/healthz", a.healthz)
	r.GET("/version", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"commit": buildCommit(), "version": version})
	})
	r.POST("/api/notes", a.addNote)
	r.GET("/api/notes", a.listNotes)
	return r
}

// healthz is the readiness probe: it fails while draining and while the database does not answer.
// Liveness (/livez) deliberately ignores the database, or a database outage would restart every pod.
func (a *app) healthz(c *gin.Context) {
	if a.draining != nil && a.draining.Load() {
		c.String(http.StatusServiceUnavailable, "shutting down")
		return
	}
	if a.store == nil {
		c.String(http.StatusOK, "ok (no database configured)")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Check(ctx); err != nil {
		c.String(http.StatusServiceUnavailable, "database not ready: "+shorten(err.Error(), 200))
		return
	}
	c.String(http.StatusOK, "ok")
}

func (a *app) addNote(c *gin.Context) {
	if !a.haveStore(c) {
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	var req struct {
		Text string `json:"text"`
	}
	if err := c.ShouldBindJSON(&req); err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": `expected a JSON body {"text": "..."}`})
		return
	}
	if strings.TrimSpace(req.Text) == "" {
		c.JSON(http.StatusBadRequest, gin.H{"error": "text must not be empty"})
		return
	}
	if len(req.Text) > maxNoteBytes {
		c.JSON(http.StatusBadRequest, gin.H{"error": "text is longer than 10000 bytes"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	note, err := a.store.AddNote(ctx, req.Text)
	if err != nil {
		dbError(c, "storing a note", err)
		return
	}
	c.JSON(http.StatusCreated, note)
}

func (a *app) listNotes(c *gin.Context) {
	if !a.haveStore(c) {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	notes, err := a.store.ListNotes(ctx, listLimit)
	if err != nil {
		dbError(c, "listing notes", err)
		return
	}
	c.JSON(http.StatusOK, notes)
}

func (a *app) haveStore(c *gin.Context) bool {
	if a.store == nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": "no database configured (POSTGRES_HOST is unset)"})
		return false
	}
	return true
}

// dbError logs the driver's error and answers 503 without echoing it: it may name hosts and users.
func dbError(c *gin.Context, doing string, err error) {
	log.Printf("database: %s: %v", doing, err)
	c.JSON(http.StatusServiceUnavailable, gin.H{"error": "database unavailable while " + doing})
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
