"""TF Serving's error codes map to its HTTP statuses in one place. Time budget: < 1 s."""
import pytest

from model.server import errors


@pytest.mark.parametrize("error,status", [
    (errors.InvalidArgument("x"), 400), (errors.FailedPrecondition("x"), 400),
    (errors.NotFound("x"), 404), (errors.Unavailable("x"), 503),
    (errors.Unimplemented("x"), 501), (errors.DeadlineExceeded("x"), 504),
    (errors.with_code("RESOURCE_EXHAUSTED", "x"), 429), (errors.with_code("bogus", "x"), 500),
])
def test_http_status_of_each_code(error, status):
    assert error.http_status == status


def test_messages_are_tf_servings():
    assert errors.servable_not_found("Latest(m)").message == \
        "Servable not found for request: Latest(m)"
    assert errors.unknown_label("x").message == "Unrecognized servable version label: x"
