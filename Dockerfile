# bridge: one image, one config file, a state volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bridge

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
# The reply templates ship inside the package (bridge/templates). To change some of them, mount
# a folder holding only those files and name it in tickets.templates_dir (e.g. /app/templates).
RUN pip install --no-cache-dir .
COPY config.yaml ./config.yaml

RUN mkdir -p /app/state && chown bridge /app/state
VOLUME ["/app/state"]
# The optional HTTP endpoint (http.port in config.yaml): /healthz, /readyz, /metrics, /webhook/ticket.
EXPOSE 8080
USER bridge

# The config's relative paths (state/, an optional templates_dir) resolve against /app.
CMD ["bridge", "run", "--config", "/app/config.yaml"]
