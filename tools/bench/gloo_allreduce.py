"""The gloo baseline of `tensorfleet bench allreduce`: PyTorch's CPU all-reduce on this machine.

    python3 gloo_allreduce.py --world-size N [--warmup 2]

Spawns N processes on 127.0.0.1 (torch.distributed, backend gloo) that stay
up, as the bench's ring ranks do, prints {"ready": true} once every rank
joined the group, and times rounds of all-reduces on request:
each line on stdin, {"bytes": B, "iters": K}, runs K timed dist.all_reduce(SUM)
of a float32 tensor of B bytes (kept per size; its first round also runs
--warmup untimed ones), each after a barrier, as the Node bench does, and
prints one JSON line, {"bytes": B, "times_ms": [...], "cpu_ms": ...}: per
iteration the slowest rank's time, and the CPU time (user + system, all
threads) of all ranks over the round. End of stdin ends the ranks. Between
rounds the ranks wait (the bench times the JS algorithms meanwhile). Needs
Debian's python3-torch (make bench installs it).
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


def rank_main(rank, world_size, port, warmup, commands, results):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    results.put((rank, "ready", 0.0))
    tensors = {}
    while True:
        command = commands.get()
        if command is None:
            break
        size, count = command
        first = size not in tensors
        if first:
            tensors[size] = torch.full((size // 4,), 1.0 / world_size, dtype=torch.float32)
        data = tensors[size]
        skip = warmup if first else 0
        times = []
        cpu = 0.0
        for i in range(skip + count):
            dist.barrier()
            cpu_start = time.process_time()
            start = time.perf_counter()
            dist.all_reduce(data, op=dist.ReduceOp.SUM)
            if i >= skip:
                times.append((time.perf_counter() - start) * 1000)
                cpu += (time.process_time() - cpu_start) * 1000
        results.put((rank, times, cpu))
    dist.barrier()
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    commands = [ctx.Queue() for _ in range(args.world_size)]
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, args.world_size, port, args.warmup, commands[r], results)) for r in range(args.world_size)]
    for p in procs:
        p.start()
    for _ in procs:
        results.get(timeout=600)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        size, count = int(request["bytes"]), int(request["iters"])
        for queue in commands:
            queue.put((size, count))
        per_rank = [results.get(timeout=600) for _ in procs]
        slowest = [max(times[i] for _, times, _ in per_rank) for i in range(count)]
        cpu_ms = sum(cpu for _, _, cpu in per_rank)
        print(json.dumps({"bytes": size, "times_ms": slowest, "cpu_ms": cpu_ms}), flush=True)
    for queue in commands:
        queue.put(None)
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"gloo rank exited with {p.exitcode}")


if __name__ == "__main__":
    main()
