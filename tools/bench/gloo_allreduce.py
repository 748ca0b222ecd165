"""The gloo baseline of `tensorfleet bench allreduce`: PyTorch's CPU all-reduce on this machine.

    python3 gloo_allreduce.py --world-size N --sizes BYTES,... --iters N,... [--warmup 2]

Spawns N processes on 127.0.0.1 (torch.distributed, backend gloo), times
dist.all_reduce(SUM) on a float32 tensor per size after warm-up, each
iteration after a barrier, as the Node bench does, and prints one JSON line
per size: {"bytes": ..., "times_ms": [...], "cpu_ms": ...} with, per iteration,
the slowest rank's time, and the CPU time (user + system, all threads) of all
ranks over the timed all-reduces. Needs Debian's python3-torch (make bench installs it).
"""
import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, world_size, port, sizes, iters, warmup, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    for size, count in zip(sizes, iters):
        data = torch.full((size // 4,), 1.0 / world_size, dtype=torch.float32)
        times = []
        cpu = 0.0
        for i in range(warmup + count):
            dist.barrier()
            cpu_start = time.process_time()
            start = time.perf_counter()
            dist.all_reduce(data, op=dist.ReduceOp.SUM)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
                cpu += (time.process_time() - cpu_start) * 1000
        queue.put((rank, size, times, cpu))
    dist.barrier()
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--iters", required=True)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    iters = [int(s) for s in args.iters.split(",")]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, args.world_size, port, sizes, iters, args.warmup, queue)) for r in range(args.world_size)]
    for p in procs:
        p.start()
    results = {}
    for _ in range(args.world_size * len(sizes)):
        rank, size, times, cpu = queue.get(timeout=600)
        results.setdefault(size, []).append((times, cpu))
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"gloo rank exited with {p.exitcode}")
    for size in sizes:
        per_rank = [times for times, _ in results[size]]
        slowest = [max(t[i] for t in per_rank) for i in range(len(per_rank[0]))]
        cpu_ms = sum(cpu for _, cpu in results[size])
        print(json.dumps({"bytes": size, "times_ms": slowest, "cpu_ms": cpu_ms}), flush=True)


if __name__ == "__main__":
    main()
