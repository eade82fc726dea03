import azure.functions as func
from sample_support import recorder

GATE_TIMEOUT_S = 10


def main(ticker: func.TimerRequest) -> None:
    recorder.calls.append(("SampleTimer", ticker))
    recorder.timer_started.set()
    recorder.timer_gate.wait(GATE_TIMEOUT_S)
    if recorder.timer_fails:
        raise RuntimeError("timer failed on purpose")
