"""`make faults`: the app under the faults production meets, scored for loss.

Every scenario runs on one local stack (Azurite, the Defender emulator, the
identity stand-ins and the functions host) at limits scaled to 30 BatchDelete
calls per 3 s and 1,500 per 180 s on both the app and the emulator, with
0.1 s per Defender call. A scenario loads a tenant of seed indicators,
submits its jobs over HTTP as callers do (`bench.ours`), lets worker
processes and/or the HTTP polls finish them while it kills a worker, freezes
storage, takes Key Vault down, throttles, fails or drops calls, and then
scores the emulator's final tenant and call log against the app's reports
(`bench.faults.tally`). Lost and misreported must be 0 in every row.

    python -m bench.faults                    # every scenario, under 10 min
    python -m bench.faults --only 429-storm   # the baseline and one scenario
    python -m bench.faults --quick            # smaller tenants, a smoke run
"""
