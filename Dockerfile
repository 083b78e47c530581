# The MCP Gateway in a container: the production launcher (a lean mitmproxy master with the
# gateway's addons, no script reloader) on port 7860, the login app as its supervised child.
#
#   docker build -t mcp-gateway .
#   docker run -p 7860:7860 -e SECRET_KEY=… -e ADMIN_USER=admin -e ADMIN_PASSWORD=… \
#       -e MCP_AUTH_PROVIDER_TYPE=cognito -e MCP_AUTH_COGNITO_…=… \
#       -v $(pwd)/logs:/app/logs -v $(pwd)/registry/servers:/app/registry/servers mcp-gateway
#   docker compose up --build          # with the demo MCP server: see compose.yaml, docs/container.md
#
# Configured by environment variables alone (no file to mount; MCP_GATEWAY_CONFIG may name one).
# Everything lives under /app: logs/ (access and audit log), registry/servers/ (server files),
# var/ (sessions, registry state), policies/. Secrets only from the environment.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOGGING_LEVEL=INFO \
    MCP_GATEWAY_LOG_DIR=/app/logs

WORKDIR /app
COPY pyproject.toml README.md ./
COPY mcp_gateway ./mcp_gateway
COPY addons ./addons
COPY login_app ./login_app
COPY demo ./demo
# The demo extra brings the `mcp` SDK for the bundled demo server (compose runs it from this image).
RUN pip install ".[demo]" && rm -rf build ./*.egg-info

COPY policies ./policies
COPY deploy/entrypoint.sh ./deploy/entrypoint.sh

# The gateway runs as `gateway`, not root; deploy/entrypoint.sh (started as root) hands it the
# volume folders, which `docker run -v` may have created as root, then drops to it.
RUN useradd --system --uid 10001 --user-group --home-dir /app/var --no-create-home gateway \
    && mkdir -p /app/var /app/logs /app/registry/servers \
    && chown gateway:gateway /app/var /app/logs /app/registry/servers
VOLUME ["/app/var"]

# Only 7860 is served. The guide's `-p 80:80 -p 443:443` publish ports nothing listens on
# (harmless): put TLS in front, or see docs/container.md, "Ports 80 and 443".
EXPOSE 7860
# /healthz needs no login and says only {"status":"ok"}; the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["sh", "/app/deploy/entrypoint.sh"]
