#!/usr/bin/env bash
# Until the first release lands, the whole schema lives in one initial migration that is
# regenerated from the models. After that, every change is a new migration (alembic revision).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*_initial_schema.py
DATABASE_URL="sqlite:///$tmp/empty.db" .venv/bin/alembic -c alembic.ini revision --autogenerate \
  --rev-id 0001 -m "initial schema"
rm -rf "$tmp"
