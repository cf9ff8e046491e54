"""Key names. The `{<id>}` hash tag keeps one audience's keys on one Redis Cluster slot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudienceKeys:
    """The three keys of one audience's published result, or of one run's build."""

    recipients: str
    owners: str
    meta: str
    # During a uniqueOwner build: each owner's first tokenId so far, by (length, text).
    firsts: str

    @classmethod
    def published(cls, prefix: str, audience_id: str) -> AudienceKeys:
        return cls._under(f"{prefix}:{{{audience_id}}}")

    @classmethod
    def building(cls, prefix: str, audience_id: str, run_id: str) -> AudienceKeys:
        return cls._under(f"{prefix}:{{{audience_id}}}:build:{run_id}")

    @staticmethod
    def last_run(prefix: str, audience_id: str) -> str:
        """A hash of the last finished run's figures (duration, reads, round trips)."""
        return f"{prefix}:{{{audience_id}}}:lastrun"

    @staticmethod
    def parts(prefix: str, audience_id: str, run_id: str) -> str:
        """A hash of a partitioned run: its plan, and what each finished part counted."""
        return f"{prefix}:{{{audience_id}}}:build:{run_id}:parts"

    @classmethod
    def _under(cls, base: str) -> AudienceKeys:
        return cls(f"{base}:recipients", f"{base}:owners", f"{base}:meta", f"{base}:firsts")

    def all(self) -> tuple[str, str, str]:
        """The keys a result consists of (`firsts` only ever exists during a build)."""
        return self.recipients, self.owners, self.meta
