"""The HTTP floor: a bare FastAPI app answering the prediction POST with a constant JSON body.

It reads the request body (as any server must) but neither parses nor predicts, and runs in
one uvicorn process exactly as `modelfactory serve` does (uvicorn.run, uvloop + httptools
picked by "auto", no access log), so the gap to it is what our endpoint adds above HTTP.

    .venv/bin/python bench/floor_app.py --port 8100
    curl -X POST localhost:8100/models/demand_forecast/predict -d '{"rows": []}'
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request, Response

ANSWER = b'{"model":"demand_forecast","predictions":[]}'


def create_app() -> FastAPI:
    app = FastAPI(title="HTTP floor")

    @app.post("/models/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
