import azure.functions as func
from sample_support import recorder


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    recorder.calls.append(("SampleAnonymous", req))
    res.set(func.HttpResponse("hello", status_code=201))
