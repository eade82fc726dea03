import azure.functions as func

INTERNAL_DETAIL = "connection string AccountKey=do-not-leak"


def main(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError(INTERNAL_DETAIL)
