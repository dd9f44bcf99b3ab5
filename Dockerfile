# Tidings: the server alone. Point it at MongoDB (TIDINGS_MONGODB_URL) and, for many nodes,
# Redis (TIDINGS_REDIS_URL). Without a MongoDB URL it runs the embedded store (the `embedded`
# extra, GPL-2.0, installed here) with its data in /data. It listens on 0.0.0.0, so it refuses to
# start with the public development secret: pass TIDINGS_AUTH_API_SECRET (32+ bytes).

# The wheel, built from the sources: the package with its packaged defaults and the dashboard.
FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server/tidings ./server/tidings
COPY clients/dashboard/public ./clients/dashboard/public
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# The image: the wheel installed as any user would install it, no source tree.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TIDINGS_SERVER_HOST=0.0.0.0 TIDINGS_SERVER_DATA_DIR=/data

RUN useradd --create-home --uid 10001 tidings && mkdir /data && chown tidings /data
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/tidings-*.whl)[embedded]" && rm -r /wheels

USER tidings
WORKDIR /home/tidings
EXPOSE 8080
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["tidings", "serve"]
