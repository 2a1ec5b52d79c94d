"""Real OpenTelemetry SDKs (Python, JavaScript) exporting to a running `bass serve`;
every field they send is read back through the JSON API and compared."""

import pytest

# readback's asserts compare what was sent with what was stored: let pytest explain them.
pytest.register_assert_rewrite("tests.exporters.readback")
