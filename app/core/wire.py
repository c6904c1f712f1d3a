"""The base of every server→client WebSocket frame: a frozen pydantic model that serialises to
one compact JSON text frame. Optional fields named in ``omit_if_none`` are left out when unset
(docs/protocol.md: "plus ``kind`` for system messages" means absent, not null); every other
field is always sent, null included."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class ServerFrame(BaseModel):
    model_config = ConfigDict(frozen=True)
    omit_if_none: ClassVar[frozenset[str]] = frozenset()

    def dump(self) -> str:
        absent = {name for name in self.omit_if_none if getattr(self, name) is None}
        return self.model_dump_json(exclude=absent or None)
