package main

// Configuration from the environment, with the variable names of the seed's ConfigMap
// (backend-core-config) and Secret. main.go reads it once at start; store.go turns DBConfig into a
// connection string. Nothing here may log a password: DBConfig.String redacts it.

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// DBConfig locates the PostgreSQL database. An empty Host means "no database configured".
type DBConfig struct {
	Host     string
	Port     string
	Name     string
	User     string
	Password string
	SSLMode  string
}

// Config is everything the service reads from its environment.
type Config struct {
	Port string
	DB   DBConfig
	// Read for parity with the real service's ConfigMap; this stand-in does not use them yet.
	Domain    string
	AdminID   string
	AdminPass string
	// ShutdownDelay keeps serving (with /healthz answering 503) after SIGTERM so that the endpoints
	// controller and load balancers stop sending traffic before the listener closes. A scratch image
	// has no `sleep` for a preStop hook, so the delay lives here. 0 by default.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds the drain of in-flight requests; it must stay well under the pod's
	// terminationGracePeriodSeconds (30 s by default) minus ShutdownDelay.
	ShutdownTimeout time.Duration
}

// Enabled reports whether a database is configured at all.
func (d DBConfig) Enabled() bool { return d.Host != "" }

// DSN is the lib/pq connection URL. The URL form escapes any character a password may contain.
func (d DBConfig) DSN() string {
	u := d.url()
	u.User = url.UserPassword(d.User, d.Password)
	return u.String()
}

// String is the DSN without the password, safe for logs.
func (d DBConfig) String() string {
	u := d.url()
	u.User = url.User(d.User)
	return u.String()
}

func (d DBConfig) url() *url.URL {
	u := &url.URL{Scheme: "postgres", Host: net.JoinHostPort(d.Host, d.Port)}
	if d.Name != "" {
		u.Path = "/" + d.Name
	}
	u.RawQuery = url.Values{"sslmode": {d.SSLMode}, "connect_timeout": {"5"}}.Encode()
	return u
}

// loadConfig reads the configuration through getenv (os.Getenv in production, a map in tests).
func loadConfig(getenv func(string) string) (Config, error) {
	or := func(name, fallback string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return fallback
	}
	cfg := Config{
		Port: or("PORT", "8080"),
		DB: DBConfig{
			Host: getenv("POSTGRES_HOST"),
			Port: or("POSTGRES_PORT", "5432"),
			Name: getenv("POSTGRES_DB"),
			// lib/pq would otherwise look the OS user up, which fails in a scratch image.
			User:     or("POSTGRES_USER", "postgres"),
			Password: getenv("POSTGRES_PASSWORD"),
			// The seed's database is an in-cluster Service without TLS.
			SSLMode: or("POSTGRES_SSLMODE", "disable"),
		},
		Domain:    getenv("DOMAIN"),
		AdminID:   getenv("ADMIN_ID"),
		AdminPass: getenv("ADMIN_PASS"),
	}
	if err := checkPort("PORT", cfg.Port); err != nil {
		return cfg, err
	}
	if err := checkPort("POSTGRES_PORT", cfg.DB.Port); err != nil {
		return cfg, err
	}
	var err error
	if cfg.ShutdownDelay, err = duration(getenv, "SHUTDOWN_DELAY", 0); err != nil {
		return cfg, err
	}
	if cfg.ShutdownTimeout, err = duration(getenv, "SHUTDOWN_TIMEOUT", 10*time.Second); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func checkPort(name, value string) error {
	n, err := strconv.Atoi(value)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s=%q is not a TCP port (1-65535)", name, value)
	}
	return nil
}

func duration(getenv func(string) string, name string, fallback time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return fallback, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a duration such as 5s or 500ms", name, v)
	}
	return d, nil
}
