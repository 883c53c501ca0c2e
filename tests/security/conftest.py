"""Fixtures for the security tables: one stack per module (shared, recordings reset before each test).

Modules that use these set ``pytestmark = pytest.mark.asyncio(loop_scope="module")`` so their tests run
on the loop the shared stack lives on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.fake_op import OpStack, running_op_stack
from tests.support.stack import Stack, running_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_op_stack() -> AsyncIterator[OpStack]:
    async with running_op_stack() as stack:
        yield stack


@pytest.fixture
def op_stack(shared_op_stack: OpStack) -> OpStack:
    shared_op_stack.reset()
    return shared_op_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_dev_stack() -> AsyncIterator[Stack]:
    async with running_stack() as stack:
        yield stack


@pytest.fixture
def dev_stack(shared_dev_stack: Stack) -> Stack:
    shared_dev_stack.echo.requests.clear()
    return shared_dev_stack
