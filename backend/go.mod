// Used by Dockerfile.multistage only: build.sh sets GO111MODULE=off and takes gin and lib/pq from
// Debian (/usr/share/gocode: gin 1.8.1, lib/pq 1.10.7, sql-migrate 2019-12). The code keeps to the API both versions share.
// Without network access when this was written, go.sum and the indirect requirements are missing; run
// `go mod tidy` on a connected machine and commit both files.
module github.com/campus/backend

go 1.22

require (
	github.com/gin-gonic/gin v1.10.0
	github.com/lib/pq v1.10.9
	github.com/rubenv/sql-migrate v1.7.0
)
