#!/usr/bin/env python3
"""The failure drills (issue 5): with several clients pushing and pulling,
break one part of a private scripts/cluster, check what clients see, bring it
back, and check that every acknowledged push pulls back byte-exact.

    drills.py --build=DIR --dir=DIR [--only=a,b] [drill ...]

Prints one PASS/FAIL line per check with what it measured, and at the end
"N passed, N failed"; exits 1 if anything failed. One cluster serves every
drill, in order; each drill leaves it whole again. The caller (run.sh) owns
the directory and removes it; this program always runs `cluster down`.
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRILLS = ["chunkserver", "registry", "chunkmaster", "database", "fill"]
PIECE = 2 << 20  # the imageserver's default --piece_size


# ---- results ----------------------------------------------------------------
class Results:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, drill, ok, what):
        print("%s %s: %s" % ("PASS" if ok else "FAIL", drill, what), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def log(msg):
    print("  .. " + msg, flush=True)


# ---- the cluster ----------------------------------------------------------------
def free_port_run(count):
    """A random base port such that base..base+count-1 are all free."""
    for _ in range(200):
        base = random.randint(10000, 32000 - count)  # below the ephemeral range (32768-)
        try:
            socks = []
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Cluster:
    """scripts/cluster in a private directory, plus the drills' handles on
    its parts (PID files, route table, metrics)."""

    def __init__(self, directory, build, groups=2, replicas=2, chunks=4, chunk_size="128M"):
        base = free_port_run(3 + groups * replicas)
        self.dir, self.build = directory, build
        self.db_port, self.master_port, self.registry_port = base, base + 1, base + 2
        self.cs_ports = [base + 3 + i for i in range(groups * replicas)]
        self.groups, self.replicas = groups, replicas
        self.chunks, self.chunk_size = chunks, chunk_size
        self.flags = ["--dir=" + directory, "--build=" + build, "--groups=%d" % groups,
                      "--replicas=%d" % replicas, "--db_port=%d" % self.db_port,
                      "--master_port=%d" % self.master_port,
                      "--first_chunkserver_port=%d" % self.cs_ports[0],
                      "--registry_port=%d" % self.registry_port, "--chunks=%d" % chunks,
                      "--chunk_size=" + chunk_size, "--report_interval=1", "--timeout=60"]

    def script(self, *args):
        return subprocess.run([os.path.join(REPO, "scripts", args[0])] + list(args[1:]),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def up(self):
        """Starts whatever is not running and waits until it is healthy
        (scripts/cluster up is idempotent). Returns the seconds it took."""
        t0 = time.time()
        r = self.script("cluster", "up", *self.flags)
        if r.returncode != 0:
            raise RuntimeError("cluster up failed:\n" + r.stdout)
        return time.time() - t0

    def down(self):
        self.script("cluster", "down", "--dir=" + self.dir)

    def group_ports(self, group):
        return self.cs_ports[(group - 1) * self.replicas:group * self.replicas]

    def pidfile(self, part, port=None):
        return {"registry": "registry/registry.pid", "chunkmaster": "master/chunkmaster.pid",
                "spy_server": "cs-%s/spy_server.pid" % port}[part]

    def stop(self, part, port=None, sig=signal.SIGTERM):
        """Signals the process named by a part's PID file (ours: we started
        the cluster) and waits until it is gone. Returns its PID."""
        with open(os.path.join(self.dir, self.pidfile(part, port))) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            program = {"registry": b"imageserver"}.get(part, part.encode())
            if program not in f.read():
                raise RuntimeError("pid %d is not %s" % (pid, part))
        os.kill(pid, sig)
        for _ in range(300):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("%s (pid %d) did not exit" % (part, pid))
        return pid

    def http_json(self, port, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return json.loads(r.read())

    def route(self):
        return self.http_json(self.master_port, "/v1/chunkmaster/route")

    def fid(self):
        return self.http_json(self.master_port, "/v1/chunkmaster/fid?count=1")["FidBegin"]

    def cs_status(self, port):
        r = subprocess.run([os.path.join(self.build, "chunkserver/chunktool"), "--port=%d" % port,
                            "status"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           timeout=20)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def objects(self, group):
        return [(self.cs_status(p) or {}).get("objects", -1) for p in self.group_ports(group)]

    def registry_metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.registry_port, timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def metric(self, name):
        """One registry metric (None if absent or unreachable)."""
        try:
            return self.registry_metrics().get(name)
        except OSError:
            return None

    def log_mark(self, part, port=None):
        """The current end of a part's log, for new_log_lines."""
        try:
            return os.path.getsize(self.log_path(part, port))
        except OSError:
            return 0

    def log_path(self, part, port=None):
        return os.path.join(self.dir, {"registry": "registry/registry.log",
                                       "chunkmaster": "master/chunkmaster.log",
                                       "spy_server": "cs-%s/spy_server.log" % port}[part])

    def new_log_lines(self, part, mark, port=None, limit=4):
        """Distinct warning/error lines a part logged since mark (what the
        operator sees), timestamps stripped, at most limit."""
        try:
            with open(self.log_path(part, port), errors="replace") as f:
                f.seek(mark)
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            if not any(w in line.lower() for w in ("warn", "error", "err ", "fail", "unreach", "back", "lost")):
                continue
            first, _, rest = line.partition(" ")
            text = rest if first[:2] == "20" else line  # drop the ISO timestamp
            if text not in out:
                out.append(text)
        return out[:limit]

    def registry_answers(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/v2/" % self.registry_port, timeout=2):
                return True
        except OSError:
            return False


def wait_for(cond, seconds, step=0.1):
    """Polls cond() until it is true (returns the seconds waited) or the time
    is up (returns None)."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        if cond():
            return time.time() - t0
        time.sleep(step)
    return None


def stats_line(w):
    return ("pushes ok %d failed %d (attempts failed %d), pulls ok %d failed %d, longest push gap "
            "%.2f s, longest pull gap %.2f s, max latency %.2f s") % (
        w["push_ok"], w["push_failed"], w["push_attempt_failed"], w["pull_ok"], w["pull_failed"],
        w["push_gap"], w["pull_gap"], w["max_latency"])


# ---- drills -----------------------------------------------------------------------
def drill_chunkserver(c, ld, res):
    """Stop one replica of group 1 under load; pulls fail over, pushes go on;
    start it again: it serves, and with its partner stopped every blob still
    pulls (so nothing it held was lost)."""
    name = "chunkserver"
    a, b = c.group_ports(1)
    before = c.cs_status(a)["objects"]
    t_stop = time.time()
    c.stop("spy_server", a)
    log("stopped spy_server %d (group 1, %d objects)" % (a, before))
    time.sleep(8)
    w = ld.window(t_stop, time.time())
    log(stats_line(w))
    res.check(name, w["pull_failed"] == 0 and w["pull_ok"] > 0,
              "pulls keep succeeding with %d down: %d ok, %d failed, longest pull gap %.2f s"
              % (a, w["pull_ok"], w["pull_failed"], w["pull_gap"]))
    res.check(name, w["push_failed"] == 0 and w["push_ok"] > 0,
              "pushes keep succeeding: %d ok, %d failed after retries, %d attempts retried, "
              "failover pause (longest push gap) %.2f s" % (w["push_ok"], w["push_failed"],
                                                          w["push_attempt_failed"], w["push_gap"]))
    failovers = c.metric("speedy_registry_blob_read_failovers_total")
    stale = wait_for(lambda: any(e["Port"] == a and e["State"] == "STALE" and not e["GroupWritable"]
                                 for e in c.route()["1"]), 20, 0.25)
    res.check(name, stale is not None,
              "the master shows %d STALE and group 1 not writable %.1f s after the stop (--rw_timeout "
              "15 s); registry read failovers so far %s, servers blacklisted %s"
              % (a, (time.time() - t_stop) if stale is not None else -1, failovers,
                 c.metric("speedy_registry_blob_blacklisted")))
    w = ld.window(t_stop, time.time())
    res.check(name, w["pull_failed"] == 0 and w["push_failed"] == 0,
              "through the whole %.0f s outage: %s" % (time.time() - t_stop, stats_line(w)))
    t_start = time.time()
    c.up()
    rw = time.time() - t_start
    after = c.cs_status(a)["objects"]
    res.check(name, after >= before, "restarted %d is RW in a writable group after %.1f s; "
              "objects %d before, %d after" % (a, rw, before, after))
    # Only the restarted replica of group 1 left: every piece there must come from it.
    c.stop("spy_server", b)
    log("stopped its partner %d: every group-1 piece must now come from %d" % (b, a))
    problems, st = ld.verify()
    res.check(name, not problems, "with only %d serving group 1, %d acknowledged pushes pull back "
              "byte-exact%s" % (a, st["acked"], "" if not problems else ": " + "; ".join(problems[:3])))
    c.up()


def drill_registry(c, ld, res):
    """kill -9 the registry while a streamed push is in its PATCH; the blob
    is never visible; the client's retry succeeds after the restart."""
    name = "registry"
    seed = ld.new_seed()
    data = load.blob_bytes(seed, 8 << 20)
    digest = load.sha256_digest(data)
    repo = "drill/slow"
    halfway = threading.Event()

    def pace(sent):
        if sent >= (2 << 20):
            halfway.set()
        time.sleep(0.02)  # about 3 MiB/s: the push is certainly in flight at the kill

    outcome = {}

    def slow_push():
        try:
            load.Registry("127.0.0.1", c.registry_port).push_blob(repo, data, True, pace=pace)
            outcome["ok"] = True
        except Exception as e:  # noqa: BLE001 - any failure is the expected outcome here
            outcome["error"] = repr(e)

    t = threading.Thread(target=slow_push)
    t.start()
    if not halfway.wait(30):
        res.check(name, False, "the slow push never got 2 MiB in")
        t.join()
        return
    t_kill = time.time()
    c.stop("registry", sig=signal.SIGKILL)
    t.join(60)
    res.check(name, "error" in outcome, "kill -9 mid-PATCH: the client saw %s" % outcome.get("error", "success?!"))
    c.up()
    down = time.time() - t_kill
    log("registry restarted; answering %.2f s after the kill" % down)
    r = load.Registry("127.0.0.1", c.registry_port)
    head = r.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))[0]
    get = r.request("GET", "/v2/%s/blobs/%s" % (repo, digest))[0]
    res.check(name, head == 404 and get == 404, "the interrupted blob is not visible: HEAD %d, GET %d" % (head, get))
    entry = {"kind": "blob", "repo": repo, "digest": digest, "size": len(data), "seed": seed, "streamed": True}
    ok = ld.push_with_retries("push", lambda: r.push_blob(repo, data, True), entry)
    res.check(name, ok and ld.pull_check(entry)[0],
              "the client's retry of the interrupted push succeeds and pulls back byte-exact")
    time.sleep(2)
    w = ld.window(t_kill, time.time())
    log(stats_line(w))
    res.check(name, w["push_failed"] == 0 and w["push_ok"] > 0,
              "the load's pushes all succeed through retries: %d ok, %d failed, %d attempts failed, "
              "longest push gap %.2f s (registry down %.2f s)" % (w["push_ok"], w["push_failed"],
                                                                 w["push_attempt_failed"], w["push_gap"], down))


def drill_chunkmaster(c, ld, res):
    """Stop the master: pulls go on, pushes go on while the registry's cached
    fids last (burst pushes until they run out); restart it: it has every
    server, hands out fids above all earlier ones, and pushes resume."""
    name = "chunkmaster"
    fid_before = c.fid()
    fids_cached = c.metric("speedy_registry_blob_fids_available")
    mark = c.log_mark("registry")
    t_stop = time.time()
    c.stop("chunkmaster")
    log("stopped the chunkmaster (last fid handed out %d; the registry holds %s fids)" % (fid_before, fids_cached))
    # Burst: tiny one-piece blobs from 4 threads until one is refused.
    burst = {"ok": 0, "refused": None, "refusal": "", "refusal_latency": 0.0}
    lock = threading.Lock()
    stop_burst = threading.Event()

    def burster(n):
        r = load.Registry("127.0.0.1", c.registry_port, timeout=30)
        while not stop_burst.is_set():
            seed = ld.new_seed()
            data = load.blob_bytes(seed, 512)
            entry = {"kind": "blob", "repo": "drill/burst", "digest": load.sha256_digest(data),
                     "size": 512, "seed": seed, "streamed": False}
            t0 = time.time()
            try:
                r.push_blob("drill/burst", data, False)
                ld.ack(entry)
                with lock:
                    burst["ok"] += 1
            except Exception as e:  # noqa: BLE001
                ld.fail(entry)
                with lock:
                    if burst["refused"] is None:
                        burst["refused"] = time.time() - t_stop
                        burst["refusal"] = repr(e)
                        burst["refusal_latency"] = time.time() - t0
                stop_burst.set()

    threads = [threading.Thread(target=burster, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    stop_burst.wait(40)
    stop_burst.set()
    for t in threads:
        t.join(60)
    w = ld.window(t_stop, time.time())
    log(stats_line(w))
    res.check(name, w["pull_failed"] == 0 and w["pull_ok"] > 0,
              "pulls continue without the master: %d ok, %d failed" % (w["pull_ok"], w["pull_failed"]))
    runway = burst["ok"] + w["push_ok"]
    try:
        health = load.Registry("127.0.0.1", c.registry_port).request("GET", "/healthz")
    except OSError as e:
        health = (0, None, repr(e).encode())
    log("operator view: /healthz %d %s; master_ok %s, fids left %s; registry log: %s"
        % (health[0], health[2].decode(errors="replace").strip(), c.metric("speedy_registry_blob_master_ok"),
           c.metric("speedy_registry_blob_fids_available"), c.new_log_lines("registry", mark)))
    if burst["refused"] is not None:
        res.check(name, runway > 0 and burst["refusal_latency"] < 10,
                  "pushes continue while cached fids last: fid-cache runway %d pushes (%s fids cached at "
                  "the stop; manifests take none) over %.1f s, then refused in %.2f s (%s)"
                  % (runway, fids_cached, burst["refused"], burst["refusal_latency"], burst["refusal"]))
    else:
        res.check(name, runway > 0, "pushes continue: %d pushes in 40 s without the master, cache not yet "
                  "empty (runway >= %d)" % (runway, runway))
    t_start = time.time()
    c.up()
    fid_after = c.fid()
    servers = sum(len(v) for v in c.route().values())
    res.check(name, fid_after > fid_before and servers == len(c.cs_ports),
              "restarted master: %d servers in the route (all RW, groups writable) %.1f s after start; "
              "fids resume at %d > %d" % (servers, time.time() - t_start, fid_after, fid_before))
    resume = wait_for(lambda: ld.first_ok_after("push", t_start) is not None, 30)
    res.check(name, resume is not None,
              "pushes resume after the restart: first acknowledged push %.2f s after the master started"
              % ((ld.first_ok_after("push", t_start) or -1)))


def drill_database(c, ld, res):
    """Restart MariaDB under load: requests fail fast (none hangs), and the
    registry reconnects by itself once it is back."""
    name = "database"
    mdir = os.path.join(c.dir, "mariadb")
    mark, mmark = c.log_mark("registry"), c.log_mark("chunkmaster")
    connects = c.metric("speedy_registry_meta_connects_total")
    t_stop = time.time()
    r = c.script("mariadb", "stop", mdir)
    log("mariadb stopped (%.1f s): %s" % (time.time() - t_stop, r.stdout.strip().splitlines()[-1:]))
    time.sleep(6)
    w_down = ld.window(t_stop, time.time())
    log("while down: " + stats_line(w_down))
    t_start = time.time()
    r = c.script("mariadb", "start", mdir, str(c.db_port))
    if not res.check(name, r.returncode == 0, "mariadb restarted in %.1f s" % (time.time() - t_start)):
        log(r.stdout)
        return
    # A probe that needs the database (an upload session is a row), every 0.1 s.
    probe = load.Registry("127.0.0.1", c.registry_port, timeout=30)
    reconnect = wait_for(lambda: probe.request("POST", "/v2/drill/probe/blobs/uploads/")[0] == 202, 40)
    res.check(name, reconnect is not None,
              "the registry reconnects by itself: an upload POST succeeds %.2f s after the database "
              "answered (%.2f s after it was started)"
              % (reconnect if reconnect is not None else -1, time.time() - t_start))
    wait_for(lambda: ld.first_ok_after("push", t_start) is not None, 30)
    first = ld.first_ok_after("push", t_start)
    res.check(name, first is not None,
              "the load's pushes resume: first acknowledged push %.2f s after the database answered "
              "(client back-off included)" % (first if first is not None else -1))
    time.sleep(2)
    log("operator view: registry meta connects %s -> %s, connect failures %s; registry log: %s; "
        "chunkmaster log: %s" % (connects, c.metric("speedy_registry_meta_connects_total"),
                                 c.metric("speedy_registry_meta_connect_failures_total"),
                                 c.new_log_lines("registry", mark), c.new_log_lines("chunkmaster", mmark)))
    w = ld.window(t_stop, time.time())
    log(stats_line(w))
    res.check(name, w["max_latency"] < 30,
              "no request hangs: the slowest request during the outage took %.2f s (limit 30 s); "
              "errors seen: %s" % (w["max_latency"], w["errors"][:2]))


def drill_fill(c, ld, res):
    """Fill group 1's chunk files behind the registry's back (chunktool
    fill); the group stops taking pieces, pushes land on group 2."""
    name = "fill"
    tool = os.path.join(c.build, "chunkserver/chunktool")
    t0 = time.time()
    for i, port in enumerate(c.group_ports(1)):
        # Fids far above anything the master hands out; 1 MiB objects until full.
        subprocess.run([tool, "--port=%d" % port, "fill", str(10 ** 12 + i * 10 ** 6), "100000", "1M"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    log("filled group 1 in %.1f s" % (time.time() - t0))

    def group1_full():
        return all(e["MaxFreeSpace"] < PIECE + 4096 for e in c.route()["1"])

    seen = wait_for(group1_full, 15, 0.2)
    entries = c.route()["1"]
    res.check(name, seen is not None,
              "the route shows group 1 without room for a piece (%d B + 4 KiB) %.1f s after the fill: "
              "MaxFreeSpace %s, GroupWritable %s" % (PIECE, seen if seen is not None else -1,
                                                     [e["MaxFreeSpace"] for e in entries],
                                                     [e["GroupWritable"] for e in entries]))
    time.sleep(3)  # the registry refreshes its route every 2 s; pieces in flight finish
    g1, g2 = c.objects(1), c.objects(2)
    t_w = time.time()
    time.sleep(8)
    w = ld.window(t_w, time.time())
    g1b, g2b = c.objects(1), c.objects(2)
    log(stats_line(w))
    res.check(name, w["push_failed"] == 0 and w["push_ok"] > 0,
              "pushes keep succeeding: %d ok, %d failed, %d attempts failed"
              % (w["push_ok"], w["push_failed"], w["push_attempt_failed"]))
    res.check(name, g1b == g1 and g2b > g2,
              "pushes go elsewhere: group 1 objects %s -> %s, group 2 %s -> %s" % (g1, g1b, g2, g2b))


# ---- main ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("drills", nargs="*", default=DRILLS)
    args = ap.parse_args()
    res = Results()
    c = Cluster(args.dir, os.path.abspath(args.build))
    t_all = time.time()
    try:
        log("cluster up in %.1f s (%s)" % (c.up(), args.dir))
        ld = load.Load("127.0.0.1", c.registry_port, workers=args.workers,
                       seed_base=random.randint(1, 10 ** 9), journal=os.path.join(args.dir, "pushes.jsonl"))
        for d in args.drills:
            fn = globals().get("drill_" + d)
            if fn is None:
                res.check(d, False, "no such drill (known: %s)" % ", ".join(DRILLS))
                continue
            print("== drill %s" % d, flush=True)
            ld.start()
            time.sleep(3)  # warm up: there is something to pull
            t_d = time.time()
            try:
                fn(c, ld, res)
            except Exception as e:  # noqa: BLE001 - a broken drill is a failure, not a crash
                res.check(d, False, "drill aborted: %r" % e)
                try:
                    c.up()
                except Exception as e2:  # noqa: BLE001
                    log("cluster could not be restored: %r" % e2)
            ld.stop()
            problems, st = ld.verify()
            res.check(d, not problems,
                      "every acknowledged push pulls back byte-exact (%d acked; %d failed pushes: %d are "
                      "404, %d were completed by the registry, none partial; %d corrupt pulls) [%.0f s]%s"
                      % (st["acked"], st["failed"], st["failed_404"], st["failed_complete"],
                         len(ld.corrupt), time.time() - t_d,
                         "" if not problems else ": " + "; ".join(problems[:5])))
    except Exception as e:  # noqa: BLE001
        res.check("setup", False, repr(e))
    finally:
        c.down()
    print("drills took %.0f s" % (time.time() - t_all))
    print("%d passed, %d failed" % (res.passed, res.failed), flush=True)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
