"""The one exception tree of loopml.

Every error a user can cause is a :class:`LoopmlError` whose message says what was
wrong, the offending value and how to fix it. Each class carries the HTTP status the
server answers with and an MLflow-style ``error_code`` so a remote client can rebuild
the same class.

::

    LoopmlError
    ├── NotFound                 404  RESOURCE_DOES_NOT_EXIST
    ├── AlreadyExists            409  RESOURCE_ALREADY_EXISTS
    ├── InvalidArgument          400  INVALID_PARAMETER_VALUE   (also a ValueError)
    │   ├── FilterSyntaxError    400  INVALID_PARAMETER_VALUE
    │   ├── InvalidInput         422  INVALID_PARAMETER_VALUE   (data that does not fit a
    │   │                                                        model's signature)
    │   └── RequestTooLarge      413  REQUEST_TOO_LARGE
    ├── Conflict                 409  INVALID_STATE
    ├── PermissionDenied         403  PERMISSION_DENIED
    │   └── Unauthorized         401  UNAUTHENTICATED           (no valid bearer token)
    ├── CorruptData              500  DATA_LOSS
    ├── BackendUnavailable       503  TEMPORARILY_UNAVAILABLE
    │   └── NotReady             503  TEMPORARILY_UNAVAILABLE   (no model version loaded yet)
    ├── MissingDependency        500  MISSING_DEPENDENCY         (also an ImportError)
    ├── ModelFailed              500  MODEL_FAILED              (a model raised on a valid input)
    │   └── ModelRejectedInput   422  INVALID_PARAMETER_VALUE   (... a ValueError or alike:
    │                                                            also an InvalidArgument)
    └── StepFailed               500  STEP_FAILED

The model server (:mod:`loopml.serving`) answers with the status of the class and a body
``{"error_code", "message", "request_id"}`` (plus ``field`` and ``row`` for InvalidInput).
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BackendUnavailable",
    "Conflict",
    "CorruptData",
    "FilterSyntaxError",
    "InvalidArgument",
    "InvalidInput",
    "LoopmlError",
    "MissingDependency",
    "ModelFailed",
    "ModelRejectedInput",
    "NotFound",
    "NotReady",
    "PermissionDenied",
    "RequestTooLarge",
    "StepFailed",
    "Unauthorized",
]


class LoopmlError(Exception):
    """Root of every error loopml raises on purpose."""

    http_status: int = 500
    error_code: str = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(LoopmlError):
    """The named experiment, run, blob, … does not exist."""

    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(LoopmlError):
    """Something with that name or key exists already."""

    http_status = 409
    error_code = "RESOURCE_ALREADY_EXISTS"


class InvalidArgument(LoopmlError, ValueError):
    """An argument has a value that is not allowed; the message names what is."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class FilterSyntaxError(InvalidArgument):
    """A search filter does not parse; the message names the position and what was expected."""

    def __init__(self, message: str, *, text: str, position: int) -> None:
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(message + pointer)
        self.text = text
        self.position = position


class InvalidInput(InvalidArgument):
    """A request whose data does not fit the model's signature; ``field`` and ``row`` say
    where (the message never quotes the value sent)."""

    http_status = 422

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None
                 ) -> None:
        super().__init__(message)
        self.field = field
        self.row = row


class RequestTooLarge(InvalidArgument):
    """A request body over the server's size limit."""

    http_status = 413
    error_code = "REQUEST_TOO_LARGE"


class Conflict(LoopmlError):
    """The operation clashes with the current state (e.g. changing a logged param)."""

    http_status = 409
    error_code = "INVALID_STATE"


class PermissionDenied(LoopmlError):
    """The caller may not do this."""

    http_status = 403
    error_code = "PERMISSION_DENIED"


class Unauthorized(PermissionDenied):
    """No bearer token, or not the one the server expects (401, not 403)."""

    http_status = 401
    error_code = "UNAUTHENTICATED"


class CorruptData(LoopmlError):
    """Stored bytes do not match their content address."""

    http_status = 500
    error_code = "DATA_LOSS"


class BackendUnavailable(LoopmlError):
    """A database or object store could not be reached."""

    http_status = 503
    error_code = "TEMPORARILY_UNAVAILABLE"


class NotReady(BackendUnavailable):
    """A model server has no model version loaded yet; retry once it is ready."""


class MissingDependency(LoopmlError, ImportError):
    """An optional package is needed; the message names the install command."""

    error_code = "MISSING_DEPENDENCY"

    def __init__(self, feature: str, *, package: str, extra: str | None = None) -> None:
        install = f"pip install 'loopml[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package '{package}', which is not installed; "
                         f"install it with: {install}")
        self.package = package


class ModelFailed(LoopmlError):
    """A model raised on an input that passed its signature's checks (the message names
    the exception's type only; the server log has the rest)."""

    error_code = "MODEL_FAILED"


class ModelRejectedInput(ModelFailed, InvalidArgument):
    """A model refused an input that passed its signature's checks, with a ValueError,
    TypeError or LookupError: the input's fault rather than the model's (422)."""

    http_status = 422
    error_code = "INVALID_PARAMETER_VALUE"


class StepFailed(LoopmlError):
    """A pipeline step failed after its retries; the message names the step, the exception,
    where its logs are and how to resume. ``run_id`` is the pipeline run."""

    error_code = "STEP_FAILED"

    def __init__(self, message: str, *, run_id: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id


def error_class_for_code(error_code: str) -> type[LoopmlError]:
    """The class a remote client raises for an ``error_code`` received from a server."""
    for cls in (NotFound, AlreadyExists, InvalidArgument, Conflict, PermissionDenied,
                CorruptData, BackendUnavailable, StepFailed, Unauthorized, RequestTooLarge,
                ModelFailed):
        if cls.error_code == error_code:
            return cls
    return LoopmlError
