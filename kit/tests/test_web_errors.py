"""How ApiEndpoint answers failures that are no fault of the request."""
import json

from nameko.exceptions import ContainerBeingKilled

from verbund.web import OUTAGE_RETRY_AFTER_SECONDS, ApiEndpoint


def test_a_request_arriving_while_the_service_is_being_stopped_is_a_503_to_retry_not_a_500():
    """nameko kills a container whose thread failed (e.g. an RPC reply the broker refused) and refuses
    every worker meanwhile; the request never ran, so the client may simply send it again."""
    response = ApiEndpoint("POST", "/members/import").response_from_exception(ContainerBeingKilled())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(OUTAGE_RETRY_AFTER_SECONDS)
    assert "try again" in json.loads(response.get_data())["error"]


def test_a_fault_of_the_code_stays_a_500():
    response = ApiEndpoint("GET", "/x").response_from_exception(KeyError("bug"))
    assert response.status_code == 500
