# Slim Python 3.11 image, non-root user, data on a volume at /data (Railway).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/bot.db \
    LOG_FORMAT=json \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_DATA_HOME=/data/xdg \
    CREWAI_DISABLE_TELEMETRY=true \
    OTEL_SDK_DISABLED=true

WORKDIR /app
RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app:app /data

# Dependencies first (cached layer), then the code.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY agents ./agents
COPY engine ./engine
COPY storage ./storage
COPY migrations ./migrations
COPY main.py run_migrations.py ./
RUN pip install --upgrade pip && pip install .

USER app
VOLUME ["/data"]
# SIGTERM stops polling, finishes the current tick and closes the database.
STOPSIGNAL SIGTERM
CMD ["python", "main.py"]
