"""Property-based run of schemathesis against the live server's OpenAPI schema: no request it generates
(valid or not) may produce a server error, and every response must match the documented schema.

Excluded: the "schema-valid request accepted" check. Some parameters are checked beyond what the schema
can say (a cursor must be one the API issued, ``end`` after ``start``, ``interval`` one of the configured
intervals) and answer 422 with the parameter named, which is the intended behaviour.

Operations are driven with plain Hypothesis (``operation.as_strategy()``) because schemathesis' pytest
plugin does not work with pytest 9.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from infra.local.servers import ApiServer
from tests.api.conftest import API_KEY

EXAMPLES_PER_OPERATION = 40


def test_generated_requests_get_no_server_error(api_server: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", headers={"X-API-Key": API_KEY})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/v1/symbols",
        "/api/v1/latest/{symbol}",
        "/api/v1/ticks/{symbol}",
        "/api/v1/bars/{symbol}",
        "/api/v1/aggregated/{symbol}",
        "/api/v1/indicators/{symbol}",
        "/api/v1/anomalies",
        "/api/v1/predictions/{symbol}",
        "/ready",
        "/metrics",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"X-API-Key": API_KEY}, excluded_checks=[schemathesis.checks.positive_data_acceptance]
            )

        run()
