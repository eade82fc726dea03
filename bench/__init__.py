"""`make bench`: our app against what public tools do, at scaled Defender limits.

Every scenario runs against the local stack (Azurite, the Defender emulator,
the identity stand-ins and the functions host) with time scaled by 6/60: the
emulator and the app both allow 30 BatchDelete calls per 6 s and 1,500 per
360 s, and each Defender call takes 0.3 s. Our app is driven the way callers
drive it (HTTP POST, then the status URL) and does its work in separate
worker processes; the baselines in `bench.baselines` talk straight to the
emulator. Each run is scored against the emulator's tenant and call log by
`bench.scoring`, and `bench.report` prints one table and writes
``bench/results/latest.json``.

    python -m bench           # the full run, about 15 minutes on 2 cores
    python -m bench --quick   # a reduced smoke run, under 2 minutes
"""
