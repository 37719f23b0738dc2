"""GraphQL over websockets: the rules Safelight's protocol server (graph/ws_protocol.py) keeps per connection.

Both protocols (graphql-transport-ws and the legacy graphql-ws) are Safelight's own, on Starlette's
WebSocket and graphql-core's execution (graph/ws_protocol.py); strawberry serves HTTP only. Here:
- `token_still_valid`: a socket whose token was revoked or has expired takes no new operation: the
  message that would start one closes the socket (4403) instead;
- `QueryTexts` keeps one string per distinct query text among the operation-starting messages the HTTP
  view decodes (graph/app.py); a websocket operation keeps no text of its own, only its parsed
  document, which the document cache shares (graph/documents.py).
Both protocols close a socket not initialised within the init timeout (4408).
"""

from __future__ import annotations

from graph.context import Context

__all__ = ["QueryTexts", "token_still_valid"]

_QUERY_TEXTS = 512  # distinct subscription documents whose text is shared (see QueryTexts)

# The message types that start an operation: graphql-transport-ws `subscribe`, graphql-ws `start`.
STARTS = ("subscribe", "start")


class QueryTexts:
    """One string per distinct query text among the operations a process holds.

    Each subscription keeps its query text for its whole life; 10,000 subscribers of one page's query
    then hold one copy, not 10,000 (bench/subscriptions.py, KB per idle subscription).
    """

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def share(self, message: object) -> None:
        """Replace the query text of an operation-starting message by the process's copy of it."""
        if not isinstance(message, dict) or message.get("type") not in STARTS:
            return
        payload = message.get("payload")
        if isinstance(payload, dict) and isinstance(query := payload.get("query"), str):
            if len(self._texts) >= _QUERY_TEXTS and query not in self._texts:
                self._texts.clear()
            payload["query"] = self._texts.setdefault(query, query)


async def token_still_valid(context: Context) -> bool:
    """A revoked or expired token ends its sockets at their next operation (graph/auth.py)."""
    if context.token_hash is None:
        return True  # dev mode's token-less local user, or not yet authenticated
    return await context.request.app.state.auth.viewer_by_hash(context.token_hash) is not None
