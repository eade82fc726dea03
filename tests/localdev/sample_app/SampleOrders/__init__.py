import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    order, line = req.route_params["orderId"], req.route_params["lineNo"]
    return func.HttpResponse(f"order {order} line {line}")
