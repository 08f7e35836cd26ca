"""Editing the history (the slash commands): drop the last exchanges, rewrite the last thoughts."""

from __future__ import annotations

from memgpt.agent import events
from memgpt.agent._context import Context
from memgpt.contract.types import FunctionCall


class History(Context):
    """Edits of the context window a person asks for (``/pop``, ``/rethink``)."""

    def pop(self, n: int = 1) -> int:
        """Remove the last ``n`` exchanges (a user input and everything after it) from the context window.
        They stay in recall memory."""
        removed = 0
        with self.storage.transaction():
            for _ in range(n):
                starts = [i for i, m in enumerate(self.messages) if m.role == "user" and events.user_text(m.content) is not None]
                if not starts:
                    break
                removed += len(self.messages) - starts[-1]
                self.messages = self.messages[: starts[-1]]
            if removed:
                # Edits made in the removed exchanges stay made; their results, which showed them, are gone.
                self._show_current_memory()
            self._save()
        return removed

    def last_user_message(self) -> str | None:
        for m in reversed(self.messages):
            said = events.user_text(m.content) if m.role == "user" else None
            if said is not None:
                return said
        return None

    def rethink(self, thoughts: str) -> bool:
        """Replace the inner thoughts of the agent's last call (``/rethink``)."""
        for i in range(len(self.messages) - 1, -1, -1):
            m = self.messages[i]
            if m.role == "assistant" and m.function_call is not None:
                arguments = {**m.function_call.arguments, "inner_thoughts": thoughts}
                edited = m.model_copy(
                    update={"function_call": FunctionCall(name=m.function_call.name, arguments=arguments), "id": None}
                )
                with self.storage.transaction():
                    (stored,) = self.storage.add_messages(self.name, [edited])
                    self.messages[i] = stored
                    self._save()
                return True
        return False
