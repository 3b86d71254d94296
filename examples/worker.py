# A small background worker to try Kelpie with: `kelpie start examples/worker.py -- --every 5`.
# It prints its arguments, then a line every few seconds, until it is stopped.
import sys
import time

every = 5.0
if "--every" in sys.argv:
    every = float(sys.argv[sys.argv.index("--every") + 1])
print(f"worker started with {sys.argv[1:]}", flush=True)
while True:
    time.sleep(every)
    print(f"worker: still working ({time.strftime('%H:%M:%S')})", flush=True)
