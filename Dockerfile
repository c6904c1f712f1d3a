# Beacon service image. Production expects Postgres: set BEACON_DATABASE_URL and BEACON_PARTNERS_FILE,
# run `beacon db upgrade` once per release (e.g. as an init container), then start N replicas.
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies exactly as locked (hashes checked; the lock also pins the build backend), then
# Beacon itself without resolving anything again. The lock carries the dev tools too: one lock
# file for everything keeps service and CI on the same versions.
COPY requirements.lock ./
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
RUN /venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    BEACON_ENV=production \
    BEACON_HOST=0.0.0.0 \
    BEACON_PORT=8000
RUN useradd --create-home --uid 10001 beacon
WORKDIR /srv/beacon
COPY --from=build /venv /venv
# Migrations live beside the package so `beacon db upgrade` finds them (app/core/migrate.py).
COPY migrations ./migrations
COPY alembic.ini ./
USER beacon
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["beacon", "serve"]
