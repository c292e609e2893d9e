#!/bin/sh
# rewardflow container entrypoint: `gateway`, `dataflow`, `population`, `simulator`,
# `create-topics`, or any other command (run as is). Extra arguments are passed on to the
# role's command.
set -eu

role="${1:-gateway}"
[ "$#" -gt 0 ] && shift

case "$role" in
  gateway)
    # Several uvicorn workers share one /metrics view through prometheus_client's
    # multiprocess mode; its directory must start empty.
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
      rm -rf "$PROMETHEUS_MULTIPROC_DIR"
      mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    fi
    exec uvicorn --factory gateway.main:create_app \
      --host 0.0.0.0 --port "${RF_GATEWAY_PORT:-8000}" \
      --workers "${RF_GATEWAY_WORKERS:-2}" \
      --log-config /app/logging.yaml --no-server-header "$@"
    ;;
  dataflow)
    # One process: the multiprocess metrics directory is for the gateway only.
    unset PROMETHEUS_MULTIPROC_DIR
    mkdir -p "${RF_RECOVERY_DIR:-/data/recovery}"
    exec python -m dataflows.run "$@"
    ;;
  population)
    unset PROMETHEUS_MULTIPROC_DIR
    exec python -m dataflows.population_run "$@"
    ;;
  simulator)
    unset PROMETHEUS_MULTIPROC_DIR
    exec python -m simulator.demo --base-url "${RF_GATEWAY_URL:-http://gateway:8000}" "$@"
    ;;
  create-topics)
    unset PROMETHEUS_MULTIPROC_DIR
    exec python /app/create_topics.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
