"""HTTP trigger: delete Defender indicators in bulk, and read a job's status."""

from __future__ import annotations

import azure.functions as func

from shared.service import handle_http


def main(req: func.HttpRequest) -> func.HttpResponse:
    response = handle_http(
        req.method.upper(),
        req.route_params.get("jobId"),
        req.headers.get("Content-Type"),
        req.get_body(),
    )
    return func.HttpResponse(
        response.body_bytes(),
        status_code=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
        charset="utf-8",
    )
