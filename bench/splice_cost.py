"""Cost of moving log bytes pipe -> file, for the design of issue 51 finding 3 in
docs/reliability.md: read+write (today: the daemon consumes the pipe when it reads) vs
tee+read+splice (the pipe is consumed only by the splice that writes the file; the read copy
feeds the hub). A writer thread fills a 1 MiB pipe with 91-byte lines as fast as it can.
Usage: python3 bench/splice_cost.py [BYTES] (default 400 MiB); writes a scratch file in /tmp."""
import ctypes, os, sys, threading, time, resource
libc = ctypes.CDLL("libc.so.6", use_errno=True)
F_SETPIPE_SZ = 1031
TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 400 * 1024 * 1024
LINE = b"line 0000000 " + b"x" * 77 + b"\n"
BLOCK = LINE * 720  # ~64 KiB

def producer(w):
    sent = 0
    while sent < TOTAL:
        sent += os.write(w, BLOCK)
    os.close(w)

def run(mode, path):
    r, w = os.pipe()
    import fcntl
    fcntl.fcntl(r, F_SETPIPE_SZ, 1 << 20)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_APPEND if mode == "read+write" else 0))
    sr, sw = os.pipe()
    fcntl.fcntl(sw, F_SETPIPE_SZ, 1 << 20)
    t = threading.Thread(target=producer, args=(w,)); t.start()
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    moved = 0
    if mode == "read+write":
        while True:
            b = os.read(r, 64 * 1024)
            if not b: break
            os.write(out, b); moved += len(b)
    else:
        while True:
            n = libc.tee(r, sw, 64 * 1024, 0)
            if n == 0: break
            if n < 0: raise OSError(ctypes.get_errno(), "tee")
            seen = os.read(sr, n)           # the hub's copy
            cut = seen.rfind(b"\n") + 1 or n  # whole lines only
            done = 0
            while done < cut:
                done += os.splice(r, out, cut - done)
            moved += cut
    el = time.perf_counter() - t0; r1 = resource.getrusage(resource.RUSAGE_SELF)
    t.join(); os.close(r); os.close(out); os.close(sr); os.close(sw)
    size = os.path.getsize(path); os.unlink(path)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"{mode:16s} {moved/2**20:7.0f} MiB in {el:.2f} s, process CPU {cpu:.2f} s (incl. producer), file {size/2**20:.0f} MiB")

for mode in ["read+write", "tee+read+splice"] * 2:
    run(mode, f"/tmp/splice-cost-{os.getpid()}.bin")
