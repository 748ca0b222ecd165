"""The JSON-over-HTTP baseline of `tensorfleet bench smashed`: split learning as teams write it today.

    python3 fastapi_smashed.py --rows 64 --cols 1568 --seconds 3 [--warmup-seconds 0.3]

Starts a FastAPI app under uvicorn on 127.0.0.1 (its own process, like the
server pod) with one endpoint, POST /forward, that takes a batch of smashed
activations as nested JSON lists (what tensor.tolist() gives) plus the labels,
turns them into tensors, checks their shapes, and answers with a same-size
gradient as nested JSON lists and the loss (a dict, which FastAPI encodes).
The client (requests, one keep-alive session) posts in a loop:
activations.tolist() in, the reply's gradient back into a tensor, its shape
checked. After a warm-up it times round trips for --seconds and prints one
JSON line: {"round_trips_per_second": ..., "round_trips": ..., "seconds": ..., "versions": {...}}.

The body is read with request.json(), not declared as a pydantic model with
List[List[float]] fields: that idiom is common too, but pydantic then checks
every one of the 100k floats each way and the exchange runs about 2.5x slower
(1.3 instead of about 3 round trips/s here). The bench keeps the faster way.

Tensors are torch's when python3-torch is there, numpy's otherwise (tolist()
gives the same lists). Needs Debian's python3-fastapi, python3-uvicorn and
python3-requests (make bench installs them).
"""
import argparse
import json
import multiprocessing as mp
import socket
import sys
import time

try:
    import torch

    TENSOR_LIB = f"torch {torch.__version__}"

    def random_matrix(rows, cols, seed):
        return torch.rand((rows, cols), generator=torch.Generator().manual_seed(seed)) * 2 - 1

    def as_tensor(values):
        return torch.tensor(values, dtype=torch.float32)

    def random_labels(rows, seed):
        return torch.randint(0, 10, (rows,), generator=torch.Generator().manual_seed(seed))

    def as_labels(values):
        return torch.tensor(values, dtype=torch.int64)

except ImportError:
    import numpy as np

    TENSOR_LIB = f"numpy {np.__version__}"

    def random_matrix(rows, cols, seed):
        return (np.random.default_rng(seed).random((rows, cols), dtype=np.float32) * 2 - 1).astype(np.float32)

    def as_tensor(values):
        return np.asarray(values, dtype=np.float32)

    def random_labels(rows, seed):
        return np.random.default_rng(seed).integers(0, 10, rows)

    def as_labels(values):
        return np.asarray(values, dtype=np.int64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port, rows, cols):
    import uvicorn
    from fastapi import FastAPI, HTTPException, Request

    app = FastAPI()
    gradient = random_matrix(rows, cols, 2)

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.post("/forward")
    async def forward(request: Request):
        batch = await request.json()
        acts = as_tensor(batch["activations"])
        labels = as_labels(batch["labels"])
        if tuple(acts.shape) != (rows, cols) or tuple(labels.shape) != (rows,):
            raise HTTPException(status_code=422, detail=f"expected activations [{rows}, {cols}] and labels [{rows}], got {list(acts.shape)} and {list(labels.shape)}")
        # The server's top would run here; the bench replies with a fixed gradient of the same size.
        return {"step": batch["step"], "gradient": gradient.tolist(), "loss": 1.0}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_ready(session, url, server, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.is_alive():
            sys.exit(f"the FastAPI server exited with {server.exitcode} before it answered {url}/healthz")
        try:
            if session.get(f"{url}/healthz", timeout=1).ok:
                return
        except Exception:
            time.sleep(0.05)
    sys.exit(f"the FastAPI server did not answer {url}/healthz within {timeout_s}s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--cols", type=int, default=1568)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup-seconds", type=float, default=0.3)
    args = parser.parse_args()
    for name in ("rows", "cols"):
        if getattr(args, name) < 1:
            sys.exit(f"--{name} must be an integer >= 1, got {getattr(args, name)}")
    if args.seconds <= 0:
        sys.exit(f"--seconds must be > 0, got {args.seconds}")

    import fastapi
    import requests
    import uvicorn

    port = free_port()
    server = mp.get_context("spawn").Process(target=serve, args=(port, args.rows, args.cols), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        session = requests.Session()
        wait_ready(session, url, server, 60)
        acts = random_matrix(args.rows, args.cols, 1)
        labels = random_labels(args.rows, 3)
        step = 0

        def round_trip():
            nonlocal step
            reply = session.post(f"{url}/forward", json={"step": step, "activations": acts.tolist(), "labels": labels.tolist()}, timeout=60)
            reply.raise_for_status()
            gradient = as_tensor(reply.json()["gradient"])
            if tuple(gradient.shape) != (args.rows, args.cols):
                sys.exit(f"the gradient is {list(gradient.shape)}, expected [{args.rows}, {args.cols}]")
            step += 1

        warm_end = time.perf_counter() + args.warmup_seconds
        while time.perf_counter() < warm_end:
            round_trip()
        count = 0
        start = time.perf_counter()
        while count < 3 or time.perf_counter() - start < args.seconds:
            round_trip()
            count += 1
        elapsed = time.perf_counter() - start
        versions = {"fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__, "requests": requests.__version__, "tensors": TENSOR_LIB, "python": sys.version.split()[0]}
        print(json.dumps({"round_trips_per_second": count / elapsed, "round_trips": count, "seconds": elapsed, "versions": versions}), flush=True)
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
