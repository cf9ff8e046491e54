"""The project's one error hierarchy; the HTTP and task layers translate it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class AudienceWorkerError(Exception):
    """Base of every error this project raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One rejected input: which parameter, where it came from, and why."""

    param: str
    msg: str
    value: Any = None
    location: str = "body"


class InvalidInput(AudienceWorkerError):
    """Input that can never be accepted as it is; carries every problem found."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.param}: {p.msg}" for p in problems))
        self.problems = problems


class AudienceNotFound(AudienceWorkerError):
    """No audience with that id exists for the caller's brand."""


class InvalidMessage(AudienceWorkerError):
    """A task message that can never succeed (malformed or unknown id, wrong types)."""


class UpdateConflict(AudienceWorkerError):
    """The document kept changing under a read-modify-write; the caller may try again."""


class ConfigurationError(AudienceWorkerError):
    """A setting the requested command needs is missing or malformed."""
