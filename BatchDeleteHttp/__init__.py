"""HTTP trigger: delete Defender indicators in bulk, and read a job's status."""

from __future__ import annotations

import azure.functions as func

from shared.handlers import HttpCall, handle_http


def main(req: func.HttpRequest) -> func.HttpResponse:
    call = HttpCall(
        method=req.method.upper(),
        url=req.url,
        job_id=req.route_params.get("jobId") or None,
        headers={k.lower(): v for k, v in req.headers.items()},
        params=dict(req.params),
        body=req.get_body(),
    )
    response = handle_http(call)
    return func.HttpResponse(
        response.body_bytes(),
        status_code=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
        charset="utf-8",
    )
