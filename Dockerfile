# The MCP Gateway in a container: the production launcher (a lean mitmproxy master with the
# gateway's addons, no script reloader) on port 7860, the login app as its supervised child.
#
#   docker build -t mcp-gateway .
#   docker compose up --build          # with the demo MCP server: see compose.yaml, docs/container.md
#
# Config /config/gateway.toml (deploy/gateway.compose.toml by default; mount your own), policies
# in /policies, everything the gateway writes in /state. Secrets only from the environment.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOGGING_LEVEL=INFO \
    MCP_GATEWAY_CONFIG=/config/gateway.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY mcp_gateway ./mcp_gateway
COPY addons ./addons
COPY login_app ./login_app
COPY demo ./demo
# The demo extra brings the `mcp` SDK for the bundled demo server (compose runs it from this image).
RUN pip install ".[demo]" && rm -rf build ./*.egg-info

COPY policies /policies
COPY deploy/gateway.compose.toml /config/gateway.toml

# Not root; /state belongs to the gateway so a fresh named volume inherits that owner.
RUN useradd --system --uid 10001 --user-group --home-dir /state --no-create-home gateway \
    && mkdir -p /state && chown gateway:gateway /state
USER gateway
VOLUME ["/state"]

EXPOSE 7860
# /healthz needs no login and says only {"status":"ok"}; the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["python", "-m", "addons.launcher", "run", "--config", "/config/gateway.toml"]
