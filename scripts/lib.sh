# Shared set-up for scripts/test and scripts/demo: install what is missing, start what is not running.
# Safe to run again: every step checks before it acts. Sourced, not executed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# chromium: the release dashboard's browser test (Playwright drives Debian's /usr/bin/chromium).
DEBIAN_PACKAGES=(docker.io docker-registry golang-go golang-github-gin-gonic-gin-dev golang-github-lib-pq-dev
                 golang-github-rubenv-sql-migrate-dev apache2-utils git curl shellcheck busybox-static postgresql-15 chromium
                 wrk)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# Debian packages, only as root on a Debian-like machine and only those missing. A laptop or CI runner that
# already has a Docker engine keeps its own and gets nothing installed system-wide but the sandbox's tools.
ensure_packages() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    if [ "$pkg" = docker.io ] && docker_answers; then continue; fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing packages: ${missing[*]}. Install them (or their equivalents) and run this again."
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_docker() {
  docker_answers && return 0
  command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is not installed. Install docker.io."
  [ "$(id -u)" = 0 ] || die "no Docker engine answers. Start Docker (or run this as root to let it start dockerd)."
  say "starting the Docker engine"
  local log=/var/log/dockerd-pipeline.log
  nohup dockerd >"$log" 2>&1 &
  for _ in $(seq 1 60); do
    docker_answers && return 0
    sleep 0.5
  done
  die "dockerd did not start within 30 s; see $log"
}

# The venv is rebuilt only when pyproject.toml changes.
ensure_venv() {
  local stamp="$VENV/.installed" want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "installing the project into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # pip's notes about this machine's extra package indexes are noise here; real errors still show.
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" 2>&1 \
    | grep -vE "^WARNING: Location|^ *$|BuildBackendWarning|^ *!!|\*{10}|Please be careful|same$|precedence|wheel_obj" >&2 \
    || true
  "$VENV/bin/python" -c "import pipeline, sandbox, invoke" || die "installing the project into $VENV failed"
  echo "$want" >"$stamp"
}

ensure_all() {
  ensure_packages
  ensure_docker
  ensure_venv
  export PATH="$VENV/bin:$PATH"
  cd "$ROOT"
}
