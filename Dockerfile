# syntax=docker/dockerfile:1
# --- build: exactly the runtime lock's packages and PushPilot in a virtualenv ------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, hashes checked (this layer is reused until the lock changes); it
# holds the build backend too, so PushPilot itself builds with nothing fetched or unpinned.
COPY requirements/main.lock ./requirements/
RUN pip install --require-hashes -r requirements/main.lock
COPY pyproject.toml README.md ./
COPY config ./config
COPY apps ./apps
RUN pip install --no-deps --no-build-isolation .

# --- runtime: the virtualenv, gunicorn's config and nothing else -------------------------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 pushpilot \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /app --create-home pushpilot
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    ENVIRONMENT=production \
    PUSHPILOT_VAR_DIR=/app/var \
    PORT=8000
# Static files (Swagger UI included) are collected at build time and served by whitenoise.
# var/prometheus: the metrics volume; web, worker and dispatcher each write a directory of it.
RUN ENVIRONMENT=local SECRET_KEY=collectstatic-only DEBUG=false django-admin collectstatic --noinput \
    && mkdir -p /app/var/prometheus \
    && chown -R 10001:10001 /app
# Numeric, so that a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "config.wsgi:application"]
