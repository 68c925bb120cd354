"""Domain errors carrying TF Serving's error codes, and the one map from code to HTTP status."""

# tensorflow_serving/model_servers/http_server.cc: ToHTTPStatusCode.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """An error answered to the client as `{"error": message}` with its code's HTTP status."""

    code = "UNKNOWN"

    @property
    def message(self):
        return str(self.args[0]) if self.args else self.code

    @property
    def http_status(self):
        return HTTP_STATUS[self.code]


class InvalidArgument(ServingError):
    code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    code = "NOT_FOUND"


class FailedPrecondition(ServingError):
    code = "FAILED_PRECONDITION"


class Unavailable(ServingError):
    code = "UNAVAILABLE"


class Unimplemented(ServingError):
    code = "UNIMPLEMENTED"


class DeadlineExceeded(ServingError):
    code = "DEADLINE_EXCEEDED"


class Internal(ServingError):
    code = "INTERNAL"


def with_code(code, message):
    """Return a ServingError carrying TF Serving error code name `code`."""
    error = ServingError(message)
    error.code = code if code in HTTP_STATUS else "UNKNOWN"
    return error


def servable_not_found(request):
    """Return the manager's answer for a request no loaded version satisfies."""
    return NotFound(f"Servable not found for request: {request}")


def unknown_label(label):
    """Return ServerCore's answer for a label that no config defines."""
    return InvalidArgument(f"Unrecognized servable version label: {label}")
