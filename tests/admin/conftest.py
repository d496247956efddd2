"""Helpers for the admin page's tests: a sandbox world with ``[admin]`` turned on."""

from __future__ import annotations

import secrets

from syncd.sandbox import World, free_port


def enable_admin(world: World, port: int | None = None) -> tuple[int, str]:
    """Turn the page on in the world's config (token from the environment, as in production);
    returns its port and the token."""
    port = port or free_port()
    token = secrets.token_urlsafe(24)
    world.config_path.write_text(world.config_path.read_text()
                                 + f'\n[admin]\nlisten = "127.0.0.1:{port}"\ntoken = "env:SYNCD_ADMIN_TOKEN"\n')
    world.env["SYNCD_ADMIN_TOKEN"] = token
    return port, token
