"""The MCP Gateway's login app.

    uvicorn login_app:app          # config from MCP_GATEWAY_CONFIG (default gateway.toml)
    python -m login_app --config gateway.toml --port 7861
"""


def __getattr__(name: str):
    # Built on first access so importing the package never reads configuration.
    if name == "app":
        from .app import create_app_from_env

        globals()["app"] = application = create_app_from_env()
        return application
    raise AttributeError(name)
