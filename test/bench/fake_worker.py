"""A broken stand-in for pytorch_fx_bench.py --worker (qfx-bench's tests).

$QFX_FAKE_WORKER picks how it breaks: "die" exits with code 3 (after a
message on stderr) on the first command, "die-mid" after answering the load
and one run, "garbage" replies with a line that is not JSON, "hang" never
replies.
"""

import json
import os
import sys
import time

mode = os.environ.get("QFX_FAKE_WORKER", "die")
if mode == "die-mid":
    sys.stdin.readline()
    print(json.dumps({"variants": ["fp32", "int8"]}), flush=True)
    sys.stdin.readline()
    print(json.dumps({"runs_ms": [1.0]}), flush=True)
    mode = "die"
sys.stdin.readline()
if mode == "die":
    print("fake worker: broken on purpose", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "garbage":
    print("this is not json", flush=True)
    sys.stdin.readline()
else:
    time.sleep(3600)
