"""The services' RPC entrypoint (``@rpc``, nameko's, on the internal RPC exchange) with one
difference: a reply the broker does not take is not fatal.

nameko publishes an RPC reply on a connection of its own and treats any error there as a failed
worker, which kills the whole service container (seen when a long import held members-service's only
OS thread past the broker's handshake timeout: six key look-ups' replies were reset, members-service
stopped). A lost reply costs the caller only its answer: every caller in the platform waits with a
timeout (``verbund.personal.MemberKeys``, ``ClusterRpcProxy(timeout=…)``) and treats silence as the
other service being unavailable, so its event waits and is tried again. So the request is acked, the
lost reply logged, and the service stays up.
"""
from __future__ import annotations

import logging

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.rpc import Rpc, RpcConsumer

log = logging.getLogger(__name__)

# What publishing the reply raises when the broker or the way to it fails (a reset, a closed
# connection, a handshake that timed out); anything else is a bug and stays fatal.
REPLY_LOST = (OSError, OperationalError, AmqpConnectionError)


class TolerantRpcConsumer(RpcConsumer):
    """nameko's RPC consumer, but a reply that cannot be published is logged, not raised."""

    def handle_result(self, message, result, exc_info):
        """Reply to ``message`` and ack it; if the reply cannot be published (``REPLY_LOST``), log
        it, ack the request all the same (the caller's timeout answers for it) and return
        ``(result, exc_info)`` as nameko does, so the worker ends normally."""
        try:
            return super().handle_result(message, result, exc_info)
        except REPLY_LOST as exc:
            log.warning("the reply to RPC %s was not sent (%s: %s); the caller's timeout answers for it",
                        message.delivery_info.get("routing_key"), type(exc).__name__, exc)
            self.queue_consumer.ack_message(message)
            return result, exc_info


class TolerantRpc(Rpc):
    """``@rpc`` for the services (see the module's docstring). A service uses this one only, never
    also nameko's: both would consume the service's one RPC queue."""

    rpc_consumer = TolerantRpcConsumer()


rpc = TolerantRpc.decorator
