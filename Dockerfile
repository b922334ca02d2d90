# Slim Python 3.11 image, non-root user (uid 10001), the database under /data.
# No VOLUME instruction (Railway's builder rejects it): on Railway attach a volume mounted at /data
# to the service; without one, /data is the container's own folder and is lost on redeploy.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/bot.db \
    LOG_FORMAT=json \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    XDG_DATA_HOME=/data/xdg \
    CREWAI_DISABLE_TELEMETRY=true \
    OTEL_SDK_DISABLED=true

WORKDIR /app
RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app:app /data

# Dependencies first, from pyproject.toml alone (a cached layer while only the code changes),
# then the code itself (the SQL migrations are package data in storage/migrations) without
# re-resolving them.
COPY pyproject.toml ./
RUN python -c "import tomllib; \
print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/deps.txt \
    && pip install -r /tmp/deps.txt
COPY README.md ./
COPY bot ./bot
COPY agents ./agents
COPY engine ./engine
COPY storage ./storage
COPY main.py run_migrations.py ./
RUN pip install --no-deps .
# Compile the backtest kernels once at build time (numba's cache, readable by the app user).
RUN python -c "from engine.backtest import run_backtest; import numpy as np; n = 300; \
t = np.arange(n) * 60; p = np.linspace(100, 90, n); \
run_backtest({'conditions': [{'type': 'price_drop', 'token': 'X', 'threshold': 1, 'timeframe': '1h'}], \
'actions': [{'type': 'buy', 'token': 'X', 'amount_percent': 50}]}, \
{'time': t, 'open': p, 'high': p, 'low': p, 'close': p, 'volume': p})" && chmod -R a+rwX /tmp/numba

USER 10001
# SIGTERM stops polling, cancels a worker iteration still running (each money effect is its own
# transaction) and closes the database; railway.toml's drainingSeconds bounds the time it gets.
STOPSIGNAL SIGTERM
CMD ["python", "main.py"]
