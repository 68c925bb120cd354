"""Every error is one JSON shape with the right status; nothing leaks a traceback. Budget: <1 s."""
import pytest

from service import errors


@pytest.mark.parametrize("cls, status", [
    (errors.BadRequest, 400), (errors.Unauthorized, 401), (errors.Forbidden, 403),
    (errors.NotFound, 404), (errors.Conflict, 409), (errors.PreconditionFailed, 412),
    (errors.UnsupportedMediaType, 415), (errors.Unprocessable, 422),
    (errors.TooManyRequests, 429), (errors.BadGateway, 502), (errors.ServiceUnavailable, 503),
    (errors.GatewayTimeout, 504),
])
def test_error_classes_render_their_status_and_shape(app, cls, status):
    with app.test_request_context():
        response = errors.render(cls("what is wrong", field="where"))
    assert response.status_code == status
    assert response.json == {"error": {"code": cls.code, "message": "what is wrong",
                                       "field": "where"}}
    if status in (429, 502, 503, 504):
        assert response.headers["Retry-After"] == "1"


def test_unexpected_exceptions_are_a_generic_500(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    answer = app.test_client().get("/boom")
    assert answer.status_code == 500
    assert answer.json == {"error": {"code": "internal_error", "message":
                                     "internal error: the server could not complete the request"}}
    assert b"secret internals" not in answer.data and b"Traceback" not in answer.data


@pytest.mark.parametrize("messages, field, message", [
    ({"json": {"name": ["Missing."]}}, "name", "Missing."),
    ({"json": {"tags": {"0": ["Bad."]}}}, "tags.0", "Bad."),
    ({"json": {"_schema": ["Empty."]}}, None, "Empty."),
    ({"query": {"per_page": ["Too big."]}}, "per_page", "Too big."),
    ({"json": {"inputs": {"x": {"value": {"dtype": ["No."]}}}}}, "inputs.x.dtype", "No."),
])
def test_validation_messages_name_the_field(messages, field, message):
    assert errors._first_message(messages) == (field, message)
