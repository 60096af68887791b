"""The services' RPC entrypoint (``verbund.rpc``) in a real service process over the real broker: a
reply the broker does not take costs the caller its answer, not the service its life."""
import pytest
import requests
from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ClusterRpcProxy

pytestmark = pytest.mark.integration


def test_a_lost_reply_leaves_the_service_running_and_the_next_call_answered(start_service, amqp_uri):
    probe = start_service("probe", env={"PROBE_RESET_FIRST_REPLY": "1"})
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=5) as cluster:
        with pytest.raises(RpcTimeout):  # its reply was lost: the caller's timeout answers for it
            cluster.probe.echo("first")
        assert cluster.probe.echo("second") == "second"  # with nameko's own @rpc the service was gone
    assert requests.get(f"{probe.url}/health", timeout=5).status_code == 200
    assert probe.process.poll() is None
    assert "was not sent" in probe.log_path.read_text()
