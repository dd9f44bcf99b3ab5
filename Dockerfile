# Tidings: the server alone. Point it at MongoDB (TIDINGS_MONGODB_URL) and, for many nodes,
# Redis (TIDINGS_REDIS_URL). Without a MongoDB URL it runs the embedded store (the `embedded`
# extra, GPL-2.0, installed here) with its data in /data. It listens on 0.0.0.0, so it refuses to
# start with the public development secret: pass TIDINGS_AUTH_API_SECRET (32+ bytes).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TIDINGS_SERVER_HOST=0.0.0.0 TIDINGS_SERVER_DATA_DIR=/data

RUN useradd --create-home --uid 10001 tidings && mkdir /data && chown tidings /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY server ./server
RUN pip install --no-cache-dir -e '.[embedded]'

USER tidings
EXPOSE 8080
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["tidings", "serve"]
