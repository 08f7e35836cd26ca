"""Contract tests that plugins subclass: core owns the contract, each plugin proves it meets it.

- ``memgpt.testing.backend.BackendContract``: for ``register_backends`` plugins.
- ``memgpt.testing.wrapper.WrapperContract``: for ``register_wrappers`` plugins.

Import these modules only from tests (they import pytest).
"""
