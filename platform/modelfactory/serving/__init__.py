"""Serving: the endpoint app, canary rollouts and data capture.

Importing this package is cheap; FastAPI and the app load only with `create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See modelfactory.serving.app.create_app."""
    # deferred: loads fastapi; importing the serving package stays cheap (see above)
    from modelfactory.serving.app import create_app as _create_app

    return _create_app(*args, **kwargs)
