"""Call a user function as the Python worker does: async ones on the loop, sync ones in a thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from concurrent.futures import Executor
from typing import Any

from .app_loader import FunctionSpec


async def call_function(spec: FunctionSpec, kwargs: dict[str, Any], executor: Executor) -> Any:
    """Run `spec.func(**kwargs)` and return its result; the user's exception propagates."""
    if inspect.iscoroutinefunction(spec.func):
        return await spec.func(**kwargs)
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, spec.func, **kwargs)
    result = await loop.run_in_executor(executor, call)
    if inspect.isawaitable(result):  # a sync wrapper around an async function
        result = await result
    return result
