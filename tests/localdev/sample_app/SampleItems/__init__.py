import json

import azure.functions as func
from sample_support import recorder


def main(request: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    recorder.calls.append(("SampleItems", request))
    echo = {
        "method": request.method,
        "route_params": dict(request.route_params),
        "params": dict(request.params),
        "body": request.get_body().decode(),
        "invocation_id": context.invocation_id,
        "function_name": context.function_name,
    }
    return func.HttpResponse(
        json.dumps(echo),
        status_code=200,
        mimetype="application/json",
        headers={"X-Sample": "items"},
    )
