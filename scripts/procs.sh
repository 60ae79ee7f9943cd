# Sourced by stack.sh and airflow.sh: start, find and stop the background processes of the local
# stack. Each runs in its own session with a pid file and its command line under $RUN, so `down`
# stops exactly what `up` started (never a process that merely reuses a pid) and the whole group.
# Needs RUN and LOGS set by the caller (STATE for `secret`).

log() { printf '[%s] %s\n' "${LOG_TAG:-stack}" "$*" >&2; }

alive() {  # alive NAME: the pid file names a live process that we started
  local pidfile=$RUN/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  # Guard against a recycled pid: the process must still be running the command we started.
  kill -0 "$pid" 2>/dev/null && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$(head -n1 "$RUN/$1.cmd")"
}

wait_http() {  # wait_http URL SECONDS NAME: until URL answers 2xx, or show NAME's log and fail
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    if ! alive "$3"; then
      log "$3 exited before it answered $1; last log lines:"
      tail -n 30 "$LOGS/$3.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$3 did not answer $1 within $2 s; last log lines:"
      tail -n 30 "$LOGS/$3.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

start() {  # start NAME CMD...: in its own session, so `stop` can end the whole group
  local name=$1; shift
  if alive "$name"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
  echo "$1" > "$RUN/$name.cmd"
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  log "started $name (pid $!), log: $LOGS/$name.log"
}

stop() {  # stop NAME [SECONDS]: TERM the process group we started, then KILL what is left
  local name=$1 grace=${2:-10} pid
  if ! alive "$name"; then rm -f "$RUN/$name.pid" "$RUN/$name.cmd"; return 0; fi
  pid=$(cat "$RUN/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid" "$RUN/$name.cmd"
  log "stopped $name (pid $pid)"
}

secret() {  # secret FILE: a random secret generated once into $STATE/FILE (0600), then reused
  if [ ! -s "$STATE/$1" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$STATE/$1")
  fi
  cat "$STATE/$1"
}
